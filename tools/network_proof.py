"""Prove golden's whole-network torch-eval model against the real Qualia models over a grid; print a table.

    python tools/network_proof.py [--models SMLP,SCNN1d] [--neurons LIF-soft,ATIF] [--bits 8,16]
                                  [--modes s,m] [--seeds 0] [--samples 3] [--json out.json]
    python tools/network_proof.py --codegen [--longs default,32] [--models ...] [--neurons ...] [--bits 8,16]

Each row: values compared, mismatches by cause, values outside the float32 bound,
spike rates, and the time of golden's network simulate vs the model in .eval().
With ``--codegen``: golden's codegen network vs the real generated C (Qualia's deployment
path, gcc): values compared, mismatches, spike rates, the real torch-vs-C differing values,
and the times of golden's simulate and of the C binary (process included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

warnings.filterwarnings("ignore", category=UserWarning)


def _time_model(built, x) -> float:
    import torch

    from golden.refs import qualia_models as qm

    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm._forward_seq(built, torch.from_numpy(x))
    return time.perf_counter() - t0


def run(label: str, kw: dict, samples: int) -> dict:
    import golden
    from golden.qualia.check import BUG, F32, OFF_GRID
    from golden.refs import qualia_models as qm

    built = qm.build(**kw)
    net = golden.from_torch(built.model)
    x = built.sample_inputs(samples, seed=7)
    rep = golden.check_model(built.model, x, network=True)
    xr = net.quantize_input(x)
    net.simulate(xr)  # compile
    t0 = time.perf_counter()
    trace = net.simulate(xr)
    t_golden = time.perf_counter() - t0
    t_model = min(_time_model(built, x) for _ in range(2))
    rates = [lt.spike_rate for lt in trace.layers.values() if lt.spikes is not None]
    return {"label": label, "compared": rep.compared, "bug": rep.count(BUG), "float32": rep.count(F32),
            "off_grid": rep.count(OFF_GRID), "outside_bound": sum(c.outside_bound for c in rep.layers),
            "end_to_end": rep.end_to_end_mismatches, "min_rate": min(rates), "mean_rate": float(np.mean(rates)),
            "t_golden": t_golden, "t_model": t_model, "first": str(rep.first) if rep.first else ""}


def run_codegen(label: str, kw: dict, long_width, samples: int) -> dict:
    import golden
    from golden.refs import codegen_model as cm
    from golden.refs import qualia_models as qm

    built = qm.build(**kw)
    dep = cm.deploy(built, long_width=long_width)
    net = golden.from_torch(dep, profile="codegen")
    x = built.sample_inputs(samples, seed=5)
    xr = cm.quantize_input(dep, x)
    r = cm.run(dep, xr)
    net.simulate(xr)  # compile
    t0 = time.perf_counter()
    tr = net.simulate(xr)
    t_golden = time.perf_counter() - t0
    values = sum(int(r.cf[n].size) for n in tr.layers)
    mis = sum(int((r.cf[n] != lt.out).sum()) for n, lt in tr.layers.items())
    rates = [lt.spike_rate for lt in tr.layers.values() if lt.spikes is not None]
    cmp = cm.compare_torch(dep, x, crun=r)
    return {"label": f"{label}/L{dep.long_width}", "compared": values, "mismatches": mis, "min_rate": min(rates),
            "max_rate": max(rates), "mean_rate": float(np.mean(rates)), "torch_vs_c": cmp.mismatches,
            "t_golden": t_golden, "t_c": r.run_seconds, "differs": net.meta.get("differs", "")}


def main_codegen(a) -> int:
    from golden.errors import GoldenError
    from golden.refs import qualia_models as qm

    neurons = a.neurons or [n for n in qm.NEURONS if n != "ATIF"]
    longs = [None if v == "default" else int(v) for v in a.longs]
    rows = []
    print(f"{'config':48} {'values':>7} {'mis':>4} {'rate min/mean/max %':>20} {'torch!=C':>8} {'golden ms':>9} "
          f"{'C ms':>7}")
    for label, kw in qm.configs(a.models, neurons, tuple(map(int, a.bits)), ("s",), tuple(map(int, a.seeds))):
        for lw in longs:
            if lw == 2 * kw["bits"] and None in longs:
                continue  # the converter's default LONG already is 2 * width
            try:
                r = run_codegen(label, kw, lw, a.samples)
            except GoldenError as e:
                print(f"{label + '/L' + str(lw or 'default'):48} REFUSED: {e}", flush=True)
                rows.append({"label": label, "refused": str(e)})
                continue
            rows.append(r)
            print(f"{r['label']:48} {r['compared']:7} {r['mismatches']:4} {100 * r['min_rate']:6.1f}/"
                  f"{100 * r['mean_rate']:5.1f}/{100 * r['max_rate']:5.1f} {r['torch_vs_c']:8} "
                  f"{1e3 * r['t_golden']:9.2f} {1e3 * r['t_c']:7.1f}"
                  + (f"  follows deployment: {r['differs']}" if r["differs"] else ""), flush=True)
    done = [r for r in rows if "refused" not in r]
    tot = {k: sum(r[k] for r in done) for k in ("compared", "mismatches", "torch_vs_c")}
    print(f"total: {len(done)} configs checked, {len(rows) - len(done)} refused, {tot}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 1 if tot["mismatches"] else 0


def main(argv=None) -> int:
    from golden.errors import GoldenError
    from golden.refs import qualia_models as qm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    def split(s):
        return [a for a in s.split(",") if a]

    ap.add_argument("--models", type=split, default=None)
    ap.add_argument("--neurons", type=split, default=None)
    ap.add_argument("--bits", type=split, default=["8", "16"])
    ap.add_argument("--modes", type=split, default=["s", "m"])
    ap.add_argument("--seeds", type=split, default=["0"])
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--codegen", action="store_true", help="golden's codegen network vs the real generated C")
    ap.add_argument("--longs", type=split, default=["default", "32"], help="with --codegen: LONG widths")
    a = ap.parse_args(argv)
    if a.codegen:
        return main_codegen(a)
    rows = []
    print(f"{'config':44} {'values':>7} {'bug':>4} {'f32':>4} {'outside':>7} {'e2e':>4} {'rate min/mean':>13} "
          f"{'golden ms':>9} {'model ms':>9}")
    for label, kw in qm.configs(a.models, a.neurons, tuple(map(int, a.bits)), tuple(a.modes),
                                tuple(map(int, a.seeds))):
        try:
            r = run(label, kw, a.samples)
        except GoldenError as e:  # a model golden refuses (e.g. a layer that never spiked in calibration)
            print(f"{label:44} REFUSED: {e}", flush=True)
            rows.append({"label": label, "refused": str(e)})
            continue
        rows.append(r)
        print(f"{label:44} {r['compared']:7} {r['bug']:4} {r['float32']:4} {r['outside_bound']:7} "
              f"{r['end_to_end']:4} {100 * r['min_rate']:5.1f}/{100 * r['mean_rate']:5.1f}% "
              f"{1e3 * r['t_golden']:9.2f} {1e3 * r['t_model']:9.2f}", flush=True)
        if r["bug"] or r["off_grid"]:
            print(f"    first: {r['first']}", flush=True)
    done = [r for r in rows if "refused" not in r]
    tot = {k: sum(r[k] for r in done) for k in ("compared", "bug", "float32", "off_grid", "outside_bound")}
    print(f"total: {len(done)} configs checked, {len(rows) - len(done)} refused, {tot}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 1 if tot["bug"] or tot["off_grid"] else 0


if __name__ == "__main__":
    sys.exit(main())
