"""``golden prove --spec FILE --against REF [--out CERT.json]``: exit 0 proven, 1 not proven, 2 error, 130 Ctrl-C.

Everything is checked before the proof starts: the paths (``--out``/``--plot``: never a symlink, a directory or
an existing file without ``--force``), ``--config`` field by field, the memory a chunk (and a divergence map)
needs, and the time: a proof of more than one chunk times its first chunk (and its second, once warm), states
its cost and refuses past ``--budget`` unless ``--allow-long``. A long proof shows its progress on a terminal,
stops on Ctrl-C, and with ``--out`` saves each finished chunk in ``CERT.state``: the same command resumes.
``--scheduler local | ADDRESS`` runs the chunks as Dask tasks (:mod:`golden.dist`), journaled the same way; the
certificate file then gains a ``run`` section (engine, workers, throughput), the only part that depends on the run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .. import dist
from ..budget import DEFAULT_SECONDS, refuse
from ..errors import BudgetError
from ..fileio import check_new_file, write_atomic
from ..prove import REFERENCES, Chunk, Proof, ProveError, check_config, divergence_cost, divergence_map, plot_map
from ..spec import Spec
from .longrun import Interrupted, Journal, Progress, check_memory, duration, gib
from .options import Parser, UsageError, positive_float, positive_int

BUDGET = DEFAULT_SECONDS  # a proof estimated longer is refused unless --budget or --allow-long says otherwise
NOTE = 30.0  # seconds: a proof estimated longer states its cost on stderr before it runs
MAX_CONFIG = 1 << 20  # bytes: a layer config is a few hundred


def build_parser() -> Parser:
    p = Parser(prog="golden prove", description=(
        "Prove a spec bit-exact against a reference on one step from every (v, x) of its formats, hence on every "
        "input sequence (induction; its preconditions are checked on the reference). Exit 0: proven; 1: not "
        "proven (a pair differs, a pair is undefined in the reference, or a precondition fails); 2: error; "
        "130: interrupted (with --out, the same command resumes). A whole network: golden prove --network NETDIR "
        "(see golden prove --network x --help)."))
    p.add_argument("--spec", required=True, help="the spec (.toml) to prove")
    p.add_argument("--against", required=True,
                   help=f"{' | '.join(REFERENCES)} | another spec .toml (then also the divergence map by cause)")
    p.add_argument("--out", help="write the certificate (JSON) here; a long proof saves its finished chunks in "
                                 "OUT.state meanwhile, so that the same command resumes after Ctrl-C")
    p.add_argument("--force", action="store_true", help="replace an existing --out or --plot file")
    p.add_argument("--config", help="the reference's layer in Qualia's terms (JSON): torch_ref.make_module's or the "
                                    "C build's arguments, instead of those derived from the spec (torch-eval, "
                                    "torch-train and codegen only)")
    p.add_argument("--reachable", action="store_true", help="enumerate only the potentials reachable from v0")
    p.add_argument("--plot", metavar="FILE.png", help="against a spec: heat map of the (v, x) plane by cause")
    p.add_argument("--json", action="store_true", help="print the certificate JSON instead of the summary")
    p.add_argument("--budget", type=positive_float, default=BUDGET, metavar="SECONDS",
                   help=f"refuse a proof estimated (from its first chunks) to take longer (default {BUDGET:g})")
    p.add_argument("--allow-long", action="store_true", help="run however long the estimate says")
    p.add_argument("--scheduler", metavar="local|ADDRESS",
                   help="run the chunks on Dask distributed: a LocalCluster of --workers processes (local), or the "
                        "workers of an existing scheduler (e.g. tcp://HOST:8786); needs pip install 'golden[dist]'")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="with --scheduler local: worker processes, one thread each (default: the CPU count); with "
                        "an address: wait for N workers")
    p.add_argument("--v-range", metavar="LO:HI",
                   help="enumerate only the raw potentials LO..HI (inclusive): a slice of the plane, to time or "
                        "test a long proof; its certificate is never 'proven'")
    return p


def parse_v_range(text: str | None) -> tuple | None:
    """``LO:HI`` -> (LO, HI) ints, or None."""
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(lo), int(hi)
    except ValueError:
        raise UsageError(f"--v-range: expected LO:HI (raw potentials, e.g. -32768:-31745), got {text!r}") from None


def read_config(path: str | None, against) -> dict | None:
    """The ``--config`` JSON object, checked for ``against`` before anything is built from it."""
    if path is None:
        return None
    if not (isinstance(against, str) and against in REFERENCES[1:]):
        check_config(against, None)  # refuses: only torch-eval, torch-train and codegen are built from a config
    p = Path(path)
    if not p.is_file():
        raise ProveError(f"--config: file not found: {path}")
    if p.stat().st_size > MAX_CONFIG:
        raise ProveError(f"--config: {path} is {p.stat().st_size} bytes; a layer config is a small JSON object")
    try:
        cfg = json.loads(p.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise ProveError(f"--config: {path} is not JSON ({str(e)[:80]})") from None
    except RecursionError:
        raise ProveError(f"--config: {path} is nested too deeply to be a layer config") from None
    return check_config(against, cfg)


def _cost(proof: Proof, per_chunk: float, left: int, workers: int = 1) -> str:
    on = f" on {workers} workers" if workers > 1 else ""
    return (f"{proof.pairs} pairs in {proof.chunks} chunks of {proof.chunk_pairs} against {proof.ref.name}: "
            f"about {duration(per_chunk * -(-left // workers))} for the {left} left{on} (measured {per_chunk:.2f} s "
            f"per chunk), about {gib(proof.chunk_bytes * workers)} of memory")


def measure(proof: Proof, done: dict, a, workers: int = 1) -> float:
    """Run the first chunks still to do (kept in ``done``), timing them, until the estimate for the rest (on
    ``workers`` processes) fits the budget or two were timed (the first includes one-time costs: compiling,
    importing); refuse past the budget."""
    per = 0.0

    def estimate():
        return per * -(-len(proof.needed(done)) // workers)

    for n, i in enumerate(proof.needed(done)[:2]):
        t0 = time.perf_counter()
        done[i] = proof.run_chunk(i, proof.keep(done, i))
        per = time.perf_counter() - t0 if n == 0 else min(per, time.perf_counter() - t0)
        if estimate() <= a.budget:
            return per
    if a.allow_long or not proof.needed(done):
        return per
    left = len(proof.needed(done))
    raise BudgetError(f"prove: {_cost(proof, per, left, workers)}; more than --budget {a.budget:g} s: pass --budget "
                      f"{estimate() * 1.2:.0f} or --allow-long"
                      + ("" if a.out else " (with --out it can be stopped by Ctrl-C and resumed)"))


def run_proof(proof: Proof, a, engine=None, args=None) -> tuple:
    """(the certificate, the journal or None, how many chunks an earlier run had saved, the engine's RunInfo or
    None): the chunks not saved run here (or on ``engine``, a :class:`golden.dist.Engine` rebuilding the proof
    from ``args``), timed and checked against the budget first, each saved as it finishes (with --out)."""
    journal = Journal(Path(a.out)) if a.out and proof.chunks > 1 else None
    done = journal.load(proof.key(), Chunk.from_dict) if journal else {}
    resumed = len(done)
    workers = engine.workers if engine is not None else 1
    progress = Progress(f"golden prove {a.spec}" + (f" on {workers} Dask workers" if engine is not None else ""))
    info = None
    try:
        fresh = dict(done)
        per = measure(proof, fresh, a, workers) if len(proof.needed(done)) > 1 else 0.0
        left = len(proof.needed(fresh))
        if journal:
            journal.open(proof.key())
            for i in sorted(set(fresh) - set(done)):
                journal.append(fresh[i].to_dict())
        done = fresh
        if per * -(-left // workers) > NOTE or (engine is not None and left):
            where = f"the same command resumes ({journal.path} keeps the finished chunks)" if journal else \
                "one chunk: nothing to resume" if proof.chunks == 1 else "give --out to make it resumable"
            print(f"golden prove: {_cost(proof, per, left, workers)}; Ctrl-C stops, {where}", file=sys.stderr)

        def finished(chunk):
            done[chunk.index] = chunk
            if journal:
                journal.append(chunk.to_dict())
            progress.update(len(done), proof.chunks)

        if engine is None:
            cert = proof.run(done, on_chunk=finished)
        else:
            info = engine.run(proof, args, done, finished)
            cert = proof.certificate(done)
    except KeyboardInterrupt:
        progress.clear()
        if journal is not None:
            journal.close(remove=False)
            if journal.saved:
                raise Interrupted(f"prove: stopped after {journal.saved} of {proof.chunks} chunks, saved in "
                                  f"{journal.path}; the same command resumes") from None
        raise Interrupted("prove: stopped; nothing was written") from None
    progress.clear()
    return cert, journal, resumed, info


def write_results(cert, other: Spec | None, out: Path | None, plot: Path | None, name: str, force: bool,
                  run_info: dict | None = None) -> tuple:
    """(the divergence map or None, the certificate JSON): against a spec the map (and its plot) first, then the
    certificate, each written whole. ``run_info`` (a distributed run) is its ``run`` section: without it, the
    file is byte for byte the certificate a single process writes."""
    doc = cert.to_dict()
    if run_info is not None:
        doc["run"] = run_info
    dmap = None
    if other is not None:
        progress = Progress(f"golden prove {name}: divergence map", unit="pairs")
        dmap = divergence_map(cert.spec, other, progress=progress.update if progress.tty else None)
        progress.clear()
        doc["divergence"] = dmap.to_dict()
        if plot:
            plot_map(dmap, plot, force=force)
    text = json.dumps(doc, sort_keys=True, indent=1) + "\n"
    if out:
        write_atomic(out, lambda f: f.write(text.encode()), force=force)
    return dmap, text


def run(argv) -> int:
    a = build_parser().parse_args(list(argv))
    out = check_new_file(a.out, "--out", force=a.force)
    plot = check_new_file(a.plot, "--plot", force=a.force, suffix=".png")
    if out is not None and plot is not None and out.absolute() == plot.absolute():
        raise ProveError("--out and --plot name the same file")
    spec = Spec.from_toml(Path(a.spec))
    against = a.against
    other = None
    if against not in REFERENCES:
        if not against.endswith(".toml"):
            raise ProveError(f"--against: unknown reference {against!r} (expected one of: {', '.join(REFERENCES)}, "
                             f"or a spec .toml)")
        other = against = Spec.from_toml(Path(against))
    elif a.plot:
        raise ProveError("--plot: the heat map compares two specs; give --against a spec .toml")
    if a.workers is not None and a.scheduler is None:
        raise UsageError("--workers: only with --scheduler (local or an address); drop it or add --scheduler local")
    v_range = parse_v_range(a.v_range)
    config = read_config(a.config, against)
    if other is not None:  # the map runs after the proof: refused now if it cannot fit
        refuse(divergence_cost(spec, other), "--against SPEC", allow_long=a.allow_long, seconds=a.budget)
    args = dist.ProofArgs(spec, against, a.reachable, config, None, None, v_range)
    if a.scheduler is None:
        proof = args.build()
        check_memory(proof.chunk_bytes, f"a chunk of {proof.chunk_pairs} pairs", "free memory or raise ulimit -v")
        cert, journal, resumed, info = run_proof(proof, a)
    else:
        with dist.Engine(a.scheduler, a.workers) as engine:  # first: an unreachable scheduler fails fast
            proof = args.build()
            n = engine.workers if a.scheduler == "local" else 0  # remote workers use their own machines' memory
            check_memory(proof.chunk_bytes * (n + 1), f"a chunk of {proof.chunk_pairs} pairs in this process and "
                         f"each of {n} local worker(s)", "free memory, raise ulimit -v or pass fewer --workers")
            cert, journal, resumed, info = run_proof(proof, a, engine, args)
    try:
        dmap, text = write_results(cert, other, out, plot, a.spec, a.force, info.to_dict() if info else None)
    except KeyboardInterrupt:
        where = f"; its chunks are saved in {journal.path}: the same command resumes" if journal else ""
        raise Interrupted(f"prove: stopped after the proof, before its results were written{where}") from None
    if journal:
        journal.close(remove=True)
    if a.json:
        sys.stdout.write(text)
    else:
        print(cert)
        if dmap is not None and dmap.any:
            print(dmap)
        if resumed:
            print(f"  resumed     {resumed} of {proof.chunks} chunks from {journal.path}")
        if info is not None:
            r = info.to_dict()
            print(f"  run         {r['chunks_run']} chunks on {r['workers']} Dask workers ({a.scheduler}) in "
                  f"{r['seconds']:.1f} s: {r['pairs_per_second']} pairs/s, {r['pairs_per_second_per_worker']} per "
                  f"worker; median chunk {r['median_chunk_seconds_on_a_worker']:.2f} s "
                  f"({r['median_chunk_cpu_seconds_on_a_worker']:.2f} s CPU)")
        for path, what in ((a.out, "certificate"), (a.plot, "heat map")):
            if path:
                print(f"  {what:<11} {path}")
    return 0 if cert.proven else 1


def cli(argv) -> int:
    """``golden prove ...``; bad input raises GoldenError, which golden.cli.main prints as one line, exit 2."""
    return run(argv)
