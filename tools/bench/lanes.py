"""Narrow lanes (issue 13, item 3): golden's kernel in the lanes its range analysis proves against the lanes it
used before, in one run.

For each int8 and int16 ``codegen`` and ``hardware`` spec (the bench's layer, LIF and IF), both kernels are
the one specialised kernel family of golden/kernels.py; they differ only in the lane type c.W:

- wide: :func:`golden.datapath.working_type`, the type wide enough by the formats' widths alone (the lanes
  golden's kernels used before the range analysis);
- narrow: :func:`golden.datapath.lane_type`, the narrowest type that the range analysis
  (:func:`golden.datapath.exact_ranges`, from the spec's formats, accumulator, shifts and constants) proves
  holds every exact intermediate value: what ``golden.simulate`` runs now.

Both are first checked bit-exact against each other and against ``golden.simulate`` on the timed input
(outputs, potentials, spikes, overflow counts). Then, timed interleaved on the same preallocated arrays, on
one thread: neuron-updates per second and their ratio; the copy bound of the layer's working set (a copy of
as many bytes as the kernel reads and writes; see harness.copy_bound); and, when ``asm``, the hot loop's
instructions per update (harness.hot_loop, reused).

    python tools/bench/lanes.py                  # N = 65536, T = 1000
    python tools/bench/lanes.py --n 8192 --steps 16   # in cache: what the datapath costs
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

import golden
from golden import datapath, kernels, profiles
from golden.spec import Spec

N, T = 65536, 1000
LAYERS = (("codegen", 8), ("codegen", 16), ("hardware", 8), ("hardware", 16))
KINDS = ("LIF", "IF")


def _harness():
    """tools/bench/harness.py, loaded beside this file (as ``golden bench`` loads it)."""
    module = sys.modules.get("golden_bench_harness")
    if module is None:
        spec = importlib.util.spec_from_file_location("golden_bench_harness", Path(__file__).with_name("harness.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def lane_spec(profile: str, bits: int, kind: str) -> Spec:
    """The bench's layer (harness.bench_spec: q_v 6, tau 2, v_threshold 1) at ``bits`` wide."""
    return profiles.make(profile, kind, **({"width": bits} if profile == "codegen" else {"bits": bits}))


def kernel(spec: Spec, lanes):
    """The spec's specialised kernel in lanes of type ``lanes``, as ``f(x, v, out, vt, spikes, counts, err, t0,
    lo, hi)``."""
    return kernels.specialised(datapath.encode(spec, lanes), datapath.constants(spec, lanes))


def compare(spec: Spec, n: int = N, steps: int = T, rounds: int = 5, min_time: float = 0.2, asm: bool = True,
            seed: int = 0) -> dict:
    """The wide and the narrow kernel of ``spec`` on one input, checked equal, then timed interleaved."""
    h = _harness()
    wide, narrow = datapath.working_type(spec), datapath.lane_type(spec)
    x = np.random.default_rng(seed).integers(spec.fmt_in.min, spec.fmt_in.max + 1, (steps, n)).astype(spec.fmt_in.dtype)
    want = golden.simulate(spec, x)
    fns, names = {}, {"wide": wide, "narrow": narrow}
    for name, lanes in names.items():
        k = kernel(spec, lanes)
        v = np.full(n, spec.v_start, spec.fmt_v.dtype)
        out, vt = np.empty((steps, n), spec.fmt_out.dtype), np.empty((steps, n), spec.fmt_v.dtype)
        spikes, counts, err = np.empty((steps, n), np.bool_), np.zeros(5, np.int64), np.full(3, -1, np.int64)
        k(x, v, out, vt, spikes, counts, err, 0, 0, n)
        got = dict(zip(want.overflow, counts.tolist()))
        if not (np.array_equal(out, want.out) and np.array_equal(vt, want.v) and np.array_equal(spikes, want.spikes)
                and got == want.overflow):
            raise AssertionError(f"the {name} kernel ({np.dtype(lanes).name} lanes) differs from golden.simulate "
                                 f"on {spec.describe()}")
        fns[name] = functools.partial(k, x, v, out, vt, spikes, counts, err, 0, 0, n)
    nbytes = n * steps * (spec.fmt_in.dtype.itemsize + spec.fmt_out.dtype.itemsize + spec.fmt_v.dtype.itemsize + 1)
    half = nbytes // 2
    a, b = np.ones(half, np.uint8), np.empty(half, np.uint8)
    fns["copy"] = functools.partial(np.copyto, b, a)
    secs = h.interleaved(fns, rounds, min_time)
    row = {"spec": spec.describe(), "profile": spec.profile, "kind": spec.kind.value, "bits": spec.fmt_v.bits,
           "N": n, "T": steps, "wide": np.dtype(wide).name, "narrow": np.dtype(narrow).name,
           "wide_rate": n * steps / secs["wide"], "narrow_rate": n * steps / secs["narrow"],
           "copy_bound": n * steps * (2 * half) / nbytes / secs["copy"], "bytes_per_update": nbytes // (n * steps)}
    row["ratio"] = row["narrow_rate"] / row["wide_rate"]
    if asm:
        for name, lanes in names.items():
            row[f"{name}_loop"] = h.hot_loop(spec, lanes)
    return row


def lanes_rows(n: int = N, steps: int = T, rounds: int = 5, min_time: float = 0.2, asm: bool = True,
               layers=LAYERS, kinds=KINDS) -> dict:
    """Every int8/int16 codegen and hardware spec (LIF and IF): :func:`compare`, one after the other."""
    rows = [compare(lane_spec(p, bits, kind), n, steps, rounds, min_time, asm) for p, bits in layers for kind in kinds]
    return {"N": n, "T": steps, "rows": rows, "load": os.getloadavg()[0], "target": 1.8}


def lanes_markdown(result: dict) -> list:
    """The rows as a markdown table (lines)."""
    lines = [f"Narrow lanes, N = {result['N']}, T = {result['T']}, one thread, same preallocated arrays, timed "
             f"interleaved in one run (load average {result['load']:.2f} when it started). wide: the lanes of "
             "`working_type` (golden's kernels before the range analysis); narrow: those of `lane_type` (what "
             "`golden.simulate` runs). Both checked bit-exact against `golden.simulate` first. Copy bound: updates/s "
             "a copy of the same bytes allows.", "",
             "| spec | lanes wide -> narrow | wide (updates/s) | narrow | ratio | copy bound | narrow of bound "
             "| instr/update wide | narrow |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        per = [f"{r[k]['per_update']:.2f}" if r.get(k) and r[k].get("per_update") else "-"
               for k in ("wide_loop", "narrow_loop")]
        lines.append(f"| {r['profile']} {r['kind']} int{r['bits']} | {r['wide']} -> {r['narrow']} | "
                     f"{r['wide_rate']:.2e} | {r['narrow_rate']:.2e} | **{r['ratio']:.2f}x** | {r['copy_bound']:.2e} "
                     f"| {r['narrow_rate'] / r['copy_bound']:.0%} | {per[0]} | {per[1]} |")
    return lines + [""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=N)
    ap.add_argument("--steps", type=int, default=T)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--no-asm", action="store_true")
    ap.add_argument("--kinds", default=",".join(KINDS))
    args = ap.parse_args(argv)
    result = lanes_rows(args.n, args.steps, args.rounds, args.min_time, not args.no_asm,
                        kinds=tuple(args.kinds.split(",")))
    print("\n".join(lanes_markdown(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
