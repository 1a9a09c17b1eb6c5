"""The ``golden`` command line. Every error is one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np

from .. import profiles
from ..errors import GoldenError
from ..simulate import load_npy, simulate
from ..spec import Spec

DEMO = dict(profile="codegen", kind="LIF", neurons=1024, steps=200, seed=0)


def demo_stimulus(spec: Spec, steps: int, neurons: int, seed: int) -> np.ndarray:
    """Deterministic drive: each neuron gets its own mean current plus noise, quantized by the input quantizer."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(-0.25, 1.25, neurons).astype(np.float32)
    noise = rng.normal(0.0, 0.5, (steps, neurons)).astype(np.float32)
    return spec.quantize_input(mean + noise)


def cmd_demo(a) -> int:
    spec = profiles.make(a.profile, a.kind, **({"width": 8} if a.profile == "codegen" else {"bits": 8}), q_v=6)
    x = demo_stimulus(spec, a.steps, a.neurons, a.seed)
    simulate(spec, x, parallel=True)  # make the spec's specialised kernel (on-disk cache after the first run)
    t0 = time.perf_counter()
    trace = simulate(spec, x)
    dt = time.perf_counter() - t0
    n = a.steps * a.neurons
    print(f"golden demo: {spec.describe()}")
    print(f"  layer       {a.neurons} neurons x {a.steps} steps = {n} neuron-steps, seed {a.seed}")
    print(f"  spike rate  {trace.spike_rate:.4f} ({int(trace.spikes.sum())} spikes)")
    print(f"  saturation  input: {int(np.sum((x == spec.fmt_in.min) | (x == spec.fmt_in.max)))} values at full scale; "
          + ", ".join(f"{k}: {v}" for k, v in trace.overflow.items()))
    print(f"  potential   min {int(trace.v.min())} max {int(trace.v.max())} (raw {spec.fmt_v})")
    print(f"  throughput  {n / dt:.3g} neuron-steps/s ({dt * 1e3:.2f} ms)")
    if a.out:
        from .. import vectors
        vectors.write_bundle(Path(a.out), spec, x, trace, stimulus="demo", seed=a.seed, force=a.force)
        print(f"  bundle      {a.out}")
    return 0


def _profile_params(a) -> dict:
    p = {"q_v": a.q_v, "q_in": a.q_in, "q_out": a.q_out, "tau": a.tau, "v_threshold": a.v_threshold,
         "v_reset": None if a.soft else a.v_reset, "decay_input": not a.no_decay_input}
    if a.profile == "codegen":
        p.update(width=a.width or a.bits, long_width=a.long_width, round=a.round)
    elif a.profile == "hardware":
        p.update(bits=a.bits, round=a.round)
    else:
        p.update(bits=a.bits, round=a.round)
    if a.kind != "LIF":
        p.pop("tau"), p.pop("decay_input")
        if a.profile == "codegen":
            p.update(tau=None)
    return {k: v for k, v in p.items() if v is not None or k == "v_reset"}


def cmd_spec_new(a) -> int:
    spec = profiles.make(a.profile, a.kind, **_profile_params(a))
    sys.stdout.write(spec.to_toml())
    return 0


def cmd_simulate(a) -> int:
    spec = Spec.from_toml(Path(a.spec))
    x = load_npy(a.input)
    v0 = load_npy(a.v0, "v0") if a.v0 else None
    trace = simulate(spec, x, v0)
    np.savez(a.out, out=trace.out, v=trace.v, spikes=trace.spikes, spec=spec.to_toml(),
             **{f"overflow_{k}": v for k, v in trace.overflow.items()})
    print(f"{a.out}: {x.shape[0]} steps x {int(np.prod(x.shape[1:]))} neurons, spike rate {trace.spike_rate:.4f}")
    return 0


DELEGATED = ("vectors", "diff", "bench", "prove")  # sub-commands owned by their own modules: ``golden.<name>.cli(argv) -> int``


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="golden", description="Bit-exact golden model for quantized spiking neurons.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the main job on an embedded default layer and print a summary")
    d.add_argument("--profile", default=DEMO["profile"], choices=list(profiles.PROFILES))
    d.add_argument("--kind", default=DEMO["kind"], choices=["IF", "LIF", "ATIF"])
    d.add_argument("--neurons", type=int, default=DEMO["neurons"])
    d.add_argument("--steps", type=int, default=DEMO["steps"])
    d.add_argument("--seed", type=int, default=DEMO["seed"])
    d.add_argument("--out", help="also write a test-vector bundle to this directory")
    d.add_argument("--force", action="store_true", help="overwrite an existing --out bundle")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("spec", help="spec files").add_subparsers(dest="spec_command", required=True)
    n = s.add_parser("new", help="print a complete, commented TOML spec")
    n.add_argument("--profile", required=True)
    n.add_argument("--kind", required=True)
    n.add_argument("--bits", type=int, default=8)
    n.add_argument("--width", type=int, help="codegen: NUMBER_T width (default --bits)")
    n.add_argument("--long-width", type=int, help="codegen: LONG_NUMBER_T width (default 2*width)")
    n.add_argument("--q-v", type=int, default=6)
    n.add_argument("--q-in", type=int)
    n.add_argument("--q-out", type=int)
    n.add_argument("--tau", type=float, default=2.0)
    n.add_argument("--v-threshold", type=float, default=1.0)
    n.add_argument("--v-reset", type=float, default=0.0)
    n.add_argument("--soft", action="store_true", help="soft reset (v_reset=None)")
    n.add_argument("--no-decay-input", action="store_true")
    n.add_argument("--round", default=None, help="torch/codegen: nearest|floor|ceil; hardware: a Xilinx mode")
    n.set_defaults(func=cmd_spec_new)

    m = sub.add_parser("simulate", help="run a spec on saved raw inputs")
    m.add_argument("--spec", required=True)
    m.add_argument("--input", required=True, help=".npy of raw input integers, shape (T, *neurons)")
    m.add_argument("--out", required=True, help=".npz to write (out, v, spikes, overflow counts)")
    m.add_argument("--v0", help=".npy of raw initial potentials")
    m.set_defaults(func=cmd_simulate)

    for name, text in zip(DELEGATED, ("test-vector bundles: generate, verify, export",
                                      "compare two profiles on one layer config",
                                      "benchmark golden against compiled C and the Qualia layers",
                                      "prove a spec bit-exact against a reference on every (v, x): a certificate")):
        sub.add_parser(name, help=text, add_help=False)  # listed in --help; main() hands their argv over whole
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        try:
            return importlib.import_module(f"golden.{argv[0]}").cli(argv[1:])
        except (GoldenError, FileNotFoundError, FileExistsError) as e:
            print(f"golden: error: {e}", file=sys.stderr)
            return 2
    a = build_parser().parse_args(argv)
    if getattr(a, "round", None) is None and a.command == "spec":
        a.round = "RND" if a.profile == "hardware" else "nearest"
    try:
        return a.func(a)
    except (GoldenError, FileNotFoundError, FileExistsError) as e:
        print(f"golden: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
