"""Cold start and no pause (issue 20, item 2): what a user waits for on a machine golden has never compiled on.

Every row runs in a fresh interpreter with a fresh, empty kernel cache (``GOLDEN_CACHE_DIR`` a new temporary
directory, removed after), from a neutral working directory, on this checkout's golden. Inside, every Numba
compile is timed (a wrapper around ``Dispatcher.compile``; a compile nested in another one counts in its
caller's): the *longest single compile* is what a user sits through at once, the sum is all the process
compiled.

- ``golden demo`` and ``golden demo --network``: wall time from the process's start to its exit (the result
  is printed just before): target <= :data:`DEMO_TARGET` s;
- the first ``golden vectors generate`` (the README's 1000 x 1024 bundle, stimulus ``uniform`` and ``ties``),
  a first torch-eval network and a first codegen network (a seeded qualia-plugin-snn model,
  :data:`NET_MODEL`, ``golden.from_torch(...).simulate(x)``): the longest single compile, target <=
  :data:`COMPILE_TARGET` s;
- no call slower than the one before it: :data:`CALLS` successive ``simulate`` calls of that new torch-eval
  network (its samples chosen for :data:`CALL_NEURON_STEPS` neuron-steps a call) on the same inputs, their
  outputs checked equal first; hit when the calls after the first compile nothing and each takes at most
  :data:`NOISE` x the one before plus :data:`SLACK` s (the machine is shared and a call takes milliseconds; the
  old mid-run compile made the second call 10-75x slower than the first, by seconds).

Run alone: ``python tools/bench/coldstart.py [--no-torch | --networks-only] [--json]``; ``golden bench`` adds
these rows unless ``--no-coldstart``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout whose golden is measured
DEMO_TARGET, COMPILE_TARGET, NOISE, SLACK = 5.0, 10.0, 1.5, 0.05
NET_MODEL, NET_NEURON, NET_S, NET_T, CALLS = "SResNet2d", "LIF-soft", 4, 16, 3
# neuron-steps of one call of the successive-calls row: 3/4 of the 2**20 after which golden used to compile every
# neuron layer's specialised kernel in mid-use (its second call), the case the row is for
CALL_NEURON_STEPS = 3 << 18
SPEC = "lif.toml"  # the README's: golden spec new --profile codegen --kind LIF
GENERATE = ("vectors", "generate", "--spec", SPEC, "--steps", "1000", "--neurons", "1024", "--seed", "1",
            "--formats", "npy,hex,h")

# The child: times every top-level Numba compile, then runs one job; its last stdout line is a JSON report.
_CHILD = r'''
import contextlib, io, json, os, sys, time
from numba.core import dispatcher

_orig, _depth, _log = dispatcher.Dispatcher.compile, [0], []

def _timed(self, sig):
    _depth[0] += 1
    t, c = time.perf_counter(), time.process_time()
    try:
        return _orig(self, sig)
    finally:
        _depth[0] -= 1
        if _depth[0] == 0:
            _log.append((time.perf_counter() - t, self.py_func.__qualname__, time.process_time() - c))

dispatcher.Dispatcher.compile = _timed
job = json.loads(sys.argv[1])
report = {}
if job["kind"] == "cli":
    from golden.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        report["rc"] = main(job["argv"])
else:
    import logging, warnings
    import numpy as np
    import golden
    from golden.refs import codegen_model as cm
    from golden.refs import qualia_models as qm
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):
        built = qm.build(**qm.MODELS[job["model"]], **qm.neuron_kwargs(job["neuron"], 8), bits=8, seed=0,
                         timesteps=job["T"])
        if job["S"] is None:  # samples for a call of about CALL_NEURON_STEPS neuron-steps (see the module docstring)
            per = job["T"] * sum(int(np.prod(n.layer.in_shape)) for n in golden.from_torch(built.model).nodes
                                 if type(n.layer).__name__ == "Neuron")
            job["S"] = max(1, round(job["per_call"] / per))
        x = built.sample_inputs(job["S"], seed=11)
        if job["profile"] == "codegen":
            dep = cm.deploy(built, dump_featuremaps=False, compile=False)
            net = golden.from_torch(dep, profile="codegen")
            xr = cm.quantize_input(dep, x).astype(net.fmt_input.dtype)
        else:
            net = golden.from_torch(built.model)
            xr = net.quantize_input(x)
    before = len(_log)
    calls, outs = [], []
    for _ in range(job["calls"]):
        n, t = len(_log), time.perf_counter()
        tr = net.simulate(xr)
        calls.append({"seconds": time.perf_counter() - t, "compiles": len(_log) - n,
                      "compile_seconds": sum(e[0] for e in _log[n:])})
        outs.append(np.concatenate([lt.out.reshape(-1).astype(np.int64) for lt in tr.layers.values()]))
    report.update(S=job["S"], neuron_steps=job["S"] * job["T"] * sum(
                      int(np.prod(n.layer.in_shape)) for n in net.nodes if type(n.layer).__name__ == "Neuron"),
                  calls=calls, equal=all(np.array_equal(outs[0], o) for o in outs[1:]), values=int(outs[0].size),
                  neuron_layers=sum(1 for n in net.nodes if type(n.layer).__name__ == "Neuron"),
                  before_calls=sum(e[0] for e in _log[:before]))
report["compiles"] = sorted(_log, reverse=True)
print(json.dumps(report))
'''


def available() -> str | None:
    """None if the network rows can run here (torch and Qualia), else why not."""
    import importlib.util

    for mod in ("torch", "spikingjelly", "qualia_core", "qualia_plugin_snn", "qualia_codegen_core",
                "qualia_codegen_plugin_snn"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (the [test] extra)"
    return None


def cold(job: dict, work: Path) -> dict:
    """``job`` in a fresh interpreter with an empty kernel cache, run from ``work``: the child's report, plus its
    wall and CPU seconds."""
    cache = Path(tempfile.mkdtemp(prefix="golden-cold-cache-"))
    env = dict(os.environ, GOLDEN_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    try:
        res = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(job)], cwd=work, env=env,
                             capture_output=True, text=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"coldstart: {job} failed (exit {res.returncode}): {tail}")
    report = json.loads(res.stdout.strip().splitlines()[-1])
    report["wall"] = wall
    report["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return report


def _longest(report: dict) -> tuple:
    """(wall seconds, what, CPU seconds) of the longest single compile."""
    return tuple(report["compiles"][0]) if report["compiles"] else (0.0, "-", 0.0)


def row_of(what: str, r: dict) -> dict:
    longest = _longest(r)
    return {"what": what, "wall": r["wall"], "cpu": r["cpu"], "longest": longest[0], "longest_in": longest[1],
            "longest_cpu": longest[2], "compiled": sum(e[0] for e in r["compiles"]),
            "compiled_cpu": sum(e[2] for e in r["compiles"]), "compiles": len(r["compiles"])}


def coldstart_rows(torch: bool = True, commands: bool = True) -> dict:
    """Every row (see the module docstring), each with its target and verdict (``commands`` False: the network
    rows only)."""
    rows = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="golden-cold-") as tmp:
        work = Path(tmp)
        spec = subprocess.run([sys.executable, "-m", "golden", "spec", "new", "--profile", "codegen", "--kind", "LIF"],
                              cwd=work, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                              check=True).stdout
        (work / SPEC).write_text(spec)
        jobs = [("golden demo", ["demo"], "demo"), ("golden demo --network", ["demo", "--network"], "demo"),
                *((f"golden vectors generate --stimulus {s} (1000 x 1024)",
                   [*GENERATE, "--stimulus", s, "--out", f"bundle-{s}"], "compile") for s in ("uniform", "ties"))]
        for what, argv, target in jobs if commands else ():
            r = cold({"kind": "cli", "argv": argv}, work)
            row = row_of(what, r)
            if target == "demo":
                row.update(target=f"result <= {DEMO_TARGET:g} s", ok=r["wall"] <= DEMO_TARGET and r["rc"] == 0)
            else:
                row.update(target=f"longest compile <= {COMPILE_TARGET:g} s", ok=row["longest"] <= COMPILE_TARGET)
            rows.append(row)
        calls = None
        if torch and available() is None:
            for profile in ("torch-eval", "codegen"):
                r = cold({"kind": "network", "profile": profile, "model": NET_MODEL, "neuron": NET_NEURON,
                          "S": None if profile == "torch-eval" else NET_S, "T": NET_T, "calls": CALLS,
                          "per_call": CALL_NEURON_STEPS}, work)
                row = row_of(f"a first {profile} network ({NET_MODEL}, {r['S']} x {NET_T}, {r['neuron_layers']} "
                           f"neuron layers): build + {CALLS} simulate calls", r)
                row.update(target=f"longest compile <= {COMPILE_TARGET:g} s", ok=row["longest"] <= COMPILE_TARGET)
                rows.append(row)
                if profile == "torch-eval":
                    calls = r
    out = {"load": load, "load_end": os.getloadavg()[0], "rows": rows}
    if calls is not None:
        c = calls["calls"]
        steady = all(x["compiles"] == 0 for x in c[1:])
        paced = all(b["seconds"] <= NOISE * a["seconds"] + SLACK for a, b in zip(c, c[1:]))
        out["calls"] = {"model": NET_MODEL, "S": calls["S"], "T": NET_T, "neuron_steps": calls["neuron_steps"],
                        "calls": c, "equal": calls["equal"],
                        "values": calls["values"], "ok": steady and paced and calls["equal"]}
    return out


def targets(cs: dict) -> list:
    """(target, measured, hit) triples."""
    out = [(f"{r['what']}: {r['target']}", f"{r['wall']:.2f} s (CPU {r['cpu']:.2f} s)" if r["target"].startswith(
        "result") else f"{r['longest']:.2f} s, CPU {r['longest_cpu']:.2f} s ({r['longest_in']})", r["ok"])
           for r in cs["rows"]]
    c = cs.get("calls")
    if c:
        secs = ", ".join(f"{x['seconds']:.3f} s ({x['compiles']} compiles)" for x in c["calls"])
        out.append((f"no call slower than the one before: {len(c['calls'])} calls of a new model, same inputs "
                    f"(after the first: no compile, each <= {NOISE:g}x the one before + {SLACK:g} s)", secs, c["ok"]))
    return out


def markdown(cs: dict) -> list:
    lines = ["", f"Cold start (issue 20, item 2): each row a fresh interpreter with an empty kernel cache "
                 f"(`GOLDEN_CACHE_DIR` a new directory), this checkout's golden; load average {cs['load']:.2f} at the "
                 f"start, {cs['load_end']:.2f} at the end (2 cores shared: wall times stretch with the load, CPU "
                 "times much less). Longest compile: the longest single Numba compile in the process (nested "
                 "compiles count in their caller), what a user waits for at once.", "",
             "| command (fresh kernel cache) | wall | CPU | longest compile | all compiles (top-level) | target "
             "| verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in cs["rows"]:
        lines.append(f"| {r['what']} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['longest']:.2f} s, CPU "
                     f"{r['longest_cpu']:.2f} s (`{r['longest_in']}`) | {r['compiled']:.2f} s, CPU "
                     f"{r['compiled_cpu']:.2f} s, in {r['compiles']} | {r['target']} | "
                     f"{'hit' if r['ok'] else '**missed**'} |")
    c = cs.get("calls")
    if c:
        lines += ["", f"Successive calls of a new model ({c['model']} torch-eval, {c['S']} samples x {c['T']} steps, "
                      f"{c['neuron_steps']} neuron-steps a call, "
                      f"the same inputs; outputs of every call equal: {'yes' if c['equal'] else '**NO**'}, "
                      f"{c['values']} values each):", "",
                  "| call | seconds | compiles during it | compiling |", "|---|---|---|---|"]
        for i, x in enumerate(c["calls"], 1):
            lines.append(f"| {i} | {x['seconds']:.3f} | {x['compiles']} | {x['compile_seconds']:.2f} s |")
        lines.append(f"\nNo call slower than the one before (no compile after the first call, each within {NOISE:g}x "
                     f"of the one before + {SLACK:g} s): {'hit' if c['ok'] else '**missed**'}.")
    lines += ["", "| cold-start target | measured | verdict |", "|---|---|---|",
              *(f"| {n} | {m} | {'hit' if ok else '**missed**'} |" for n, m, ok in targets(cs))]
    return lines


if __name__ == "__main__":
    result = coldstart_rows(torch="--no-torch" not in sys.argv[1:], commands="--networks-only" not in sys.argv[1:])
    if "--json" in sys.argv[1:]:
        print(json.dumps(result, indent=1))
    print("\n".join(markdown(result)))
