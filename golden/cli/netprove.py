"""``golden prove --network NETDIR --against torch-eval|codegen [--out CERT.json] [--scheduler local|ADDRESS]``.

A whole-network certificate. Exit 0: every layer proven; 1: some layer not proven (each named with its reason); 2:
an error (one line on stderr, nothing written); 130: interrupted. With ``--scheduler`` the neuron planes above
``--neuron-pairs`` (the 16-bit ones: 2^32 pairs) run on Dask (:mod:`golden.dist`) exactly as ``golden prove
--scheduler`` runs one: the estimate first (refused past ``--budget`` unless ``--allow-long``), a progress line on a
terminal, and with ``--out`` each plane's finished chunks journaled in ``CERT.json.neuron-<spec>-<against>.state``
until the network certificate is written, so that the same command resumes after Ctrl-C.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

from ..errors import GoldenError
from ..netprove import AGAINST, MAX_VALUES, NEURON_PAIRS, NetProveError, check_out, prove_network, summary, to_json
from .options import Parser, UsageError, positive_float, positive_int
from .prove import BUDGET


def build_parser() -> Parser:
    p = Parser(prog="golden prove --network", description=(
        "Prove a saved network (network.toml + weights.npz) equal to its reference on every input sequence of its "
        "input format, by composition of per-layer proofs each checked on the real reference. Exit 0: proven; "
        "1: some layer not proven (named, with the reason); 2: error."))
    p.add_argument("--network", required=True, metavar="NETDIR", help="the saved network directory")
    p.add_argument("--against", required=True, choices=AGAINST, help="the reference: the real Qualia modules in "
                   ".eval() (torch-eval) or the C Qualia generates (codegen)")
    p.add_argument("--out", help="write the certificate (JSON) here; an existing file that is not a golden network "
                                 "certificate is refused unless --force")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file whatever it holds")
    p.add_argument("--neuron-pairs", type=positive_int, default=NEURON_PAIRS,
                   help=f"the largest (v, x) plane a neuron proof runs here (default {NEURON_PAIRS}: 16-bit specs, "
                        f"2^32 pairs, are reported not proven)")
    p.add_argument("--max-values", type=positive_int, default=MAX_VALUES,
                   help=f"the largest domain one layer check enumerates (default {MAX_VALUES})")
    p.add_argument("--json", action="store_true", help="print the certificate JSON instead of the summary")
    p.add_argument("--scheduler", metavar="local|ADDRESS",
                   help="run the neuron planes above --neuron-pairs (16-bit: 2^32 pairs) on Dask distributed: a "
                        "LocalCluster of --workers processes (local) or an existing scheduler (tcp://HOST:8786); "
                        "resumable with --out")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="with --scheduler local: worker processes (default: the CPU count); with an address: wait "
                        "for N workers")
    p.add_argument("--budget", type=positive_float, default=BUDGET, metavar="SECONDS",
                   help=f"with --scheduler: refuse a neuron plane estimated (from its first chunks) to take longer "
                        f"(default {BUDGET:g})")
    p.add_argument("--allow-long", action="store_true", help="with --scheduler: run however long the estimate says")
    return p


NEURON_CHUNK = None  # pairs per chunk of a neuron plane on the engine (None: golden.prove.CHUNK, 2^22)


class DistProver:
    """``prove_network``'s ``neuron_prover`` on an open :class:`golden.dist.Engine`: each plane is run as
    ``golden prove --scheduler`` runs one (estimate, budget, progress, journal); its journal is kept until the
    network certificate is written (:meth:`close`), so that a restart resumes every plane it holds."""

    def __init__(self, engine, a, label: str):
        self.engine, self.a, self.label = engine, a, label
        self.journals: list = []
        self.runs: list = []

    def __call__(self, spec, against):
        from .. import dist
        from ..prove import ProveError
        from .longrun import check_memory
        from .prove import run_proof

        args = dist.ProofArgs(spec, against, chunk=NEURON_CHUNK)
        proof = args.build()
        n = self.engine.workers if self.a.scheduler == "local" else 0
        check_memory(proof.chunk_bytes * (n + 1), f"a chunk of {proof.chunk_pairs} pairs in this process and each of "
                     f"{n} local worker(s)", "free memory, raise ulimit -v or pass fewer --workers")
        tag = f"neuron-{spec.digest()[:12]}-{against}"
        ns = SimpleNamespace(out=f"{self.a.out}.{tag}" if self.a.out else None, spec=f"{self.label} {tag}",
                             budget=self.a.budget, allow_long=self.a.allow_long)
        try:
            cert, journal, resumed, info = run_proof(proof, ns, self.engine, args)
        except ProveError as e:  # the engine failed (a worker lost): an error, not a finding about the spec
            raise NetProveError(f"neuron spec {spec.digest()[:12]}: {e}") from None
        if journal is not None:
            self.journals.append(journal)
        run = info.to_dict() if info is not None else {"chunks_run": 0, "note": "every chunk was resumed"}
        self.runs.append({"spec_sha256": spec.digest(), "against": against, "chunks": proof.chunks,
                          "chunks_resumed": resumed, **run})
        return cert

    def close(self, remove: bool) -> None:
        for j in self.journals:
            j.close(remove=remove)


def _prove(net, a) -> tuple:
    """(the certificate, the DistProver or None)."""
    if a.scheduler is None:
        return prove_network(net, a.against, neuron_pairs=a.neuron_pairs, max_values=a.max_values), None
    from .. import dist

    with dist.Engine(a.scheduler, a.workers) as engine:
        prover = DistProver(engine, a, f"golden prove --network {a.network}")
        try:
            cert = prove_network(net, a.against, neuron_pairs=a.neuron_pairs, max_values=a.max_values,
                                 neuron_prover=prover)
        except BaseException:
            prover.close(remove=False)
            raise
    cert["run"] = {"engine": "dask", "scheduler": a.scheduler, "neuron_planes": prover.runs,
                   "note": "how the neuron planes ran (wall time, workers); the proof does not depend on it"}
    return cert, prover


def run(argv) -> int:
    from ..network import load

    a = build_parser().parse_args(list(argv))
    if a.scheduler is None:
        for flag, given in (("--workers", a.workers is not None), ("--allow-long", a.allow_long),
                            ("--budget", a.budget != BUDGET)):
            if given:
                raise UsageError(f"{flag}: only with --scheduler (local or an address); drop it or add "
                                 f"--scheduler local")
    if a.out is not None:
        check_out(a.out, force=a.force)
    if not Path(a.network).is_dir():
        raise NetProveError(f"--network: {a.network} is not a directory (give a saved network: network.toml + "
                            f"weights.npz)")
    cert, prover = _prove(load(a.network), a)
    text = to_json(cert)
    try:
        if a.out is not None:
            from ..netprove import write_certificate

            write_certificate(cert, a.out, force=a.force)
    except BaseException:
        if prover is not None:
            prover.close(remove=False)
        raise
    if prover is not None:
        prover.close(remove=True)
    lines = [summary(cert)]
    for r in cert.get("run", {}).get("neuron_planes", []):
        lines.append(f"  run         neuron spec {r['spec_sha256'][:12]}: {r['chunks']} chunks ({r['chunks_resumed']} "
                     f"resumed) on {r.get('workers', 0)} Dask workers ({a.scheduler}) in {r.get('seconds', 0):.1f} s")
    sys.stdout.write(text if a.json else "\n".join(lines) + (f"\n  certificate {a.out}" if a.out else "") + "\n")
    return 0 if cert["proven"] else 1


def cli(argv) -> int:
    """The ``golden prove --network ...`` entry: exit 0 proven, 1 not proven, 2 error (one line, nothing written)."""
    try:
        return run(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (GoldenError, FileNotFoundError) as e:
        print(f"golden: error: {e}", file=sys.stderr)
        return 2
