"""The ``golden`` command line. Every error is one clear line on stderr and exit code 2, never a traceback.

``main`` parses the subcommand and catches :class:`~golden.errors.GoldenError` once. ``demo``, ``spec new``
and ``simulate`` live here; ``diff``, ``bench`` and ``vectors`` each have their module in this package
(``golden.cli.<name>.cli(argv) -> int``, raising GoldenError on bad input); the layer options and the
one-line parser they share are in :mod:`golden.cli.options`.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import numpy as np

from .. import profiles
from ..errors import GoldenError
from ..fileio import write_atomic
from ..simulate import load_npy, simulate
from ..spec import Kind, Spec
from .options import OutputError, Parser, UsageError, add_layer_options, kind, layer_params, natural_int, positive_int

DEMO = dict(profile="codegen", kind="LIF", neurons=1024, steps=200, seed=0)
DEMO_MAX = 1 << 28  # neuron-steps: the demo holds its stimulus and trace in memory (~10 bytes each)
SUBCOMMANDS = {"vectors": "test-vector bundles: generate, verify, export",
               "diff": "compare two profiles on one layer config",
               "bench": "benchmark golden against compiled C and the Qualia layers (from a source checkout)",
               "prove": "prove a spec bit-exact against a reference on every (v, x): a certificate",
               "from-qualia": "a real Qualia project (config + its run's out/) -> a saved golden network"}


def demo_stimulus(spec: Spec, steps: int, neurons: int, seed: int) -> np.ndarray:
    """Deterministic drive: each neuron gets its own mean current plus noise, quantized by the input quantizer."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(-0.25, 1.25, neurons).astype(np.float32)
    noise = rng.normal(0.0, 0.5, (steps, neurons)).astype(np.float32)
    return spec.quantize_input(mean + noise)


def cmd_demo(a) -> int:
    if a.network is not None:  # the embedded small network (or a network directory): numpy + numba only
        from ..network.demo import run
        run(a.network or None, samples=a.samples, steps=a.steps or 8, seed=a.seed)
        return 0
    a.steps = a.steps or DEMO["steps"]
    if a.neurons * a.steps > DEMO_MAX:
        raise UsageError(f"demo: --neurons x --steps = {a.neurons * a.steps} neuron-steps is more than the "
                         f"demo holds in memory ({DEMO_MAX}); use golden simulate or the API on chunks")
    params = {"width": 8} if a.profile == "codegen" else {"bits": 8}
    if Kind(a.kind).soft_reset_only:
        params["v_reset"] = None
    spec = profiles.make(a.profile, a.kind, **params, q_v=6)
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


def cmd_spec_new(a) -> int:
    spec = profiles.make(a.profile, a.kind, **layer_params(a.profile, a))
    sys.stdout.write(spec.to_toml())
    return 0


def cmd_simulate(a) -> int:
    spec = Spec.from_toml(Path(a.spec))
    x = load_npy(a.input)
    v0 = load_npy(a.v0, "v0") if a.v0 else None
    out = Path(a.out)
    if out.is_dir():
        raise OutputError(f"--out {out}: is a directory; give the .npz file to write")
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")  # the name np.savez gives a path; written and printed as such
    trace = simulate(spec, x, v0)
    write_atomic(out, lambda f: np.savez(f, out=trace.out, v=trace.v, spikes=trace.spikes, spec=spec.to_toml(),
                                         **{f"overflow_{k}": v for k, v in trace.overflow.items()}))
    print(f"{out}: {x.shape[0]} steps x {int(np.prod(x.shape[1:]))} neurons, spike rate {trace.spike_rate:.4f}")
    return 0


def build_parser() -> Parser:
    p = Parser(prog="golden", description="Bit-exact golden model for quantized spiking neurons.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    d = sub.add_parser("demo", help="run the main job on an embedded default layer and print a summary")
    d.add_argument("--profile", default=DEMO["profile"], choices=list(profiles.PROFILES))
    d.add_argument("--kind", type=kind, default=DEMO["kind"], help="IF | LIF | ATIF (any case)")
    d.add_argument("--neurons", type=positive_int, default=DEMO["neurons"])
    d.add_argument("--steps", type=positive_int, help=f"default {DEMO['steps']} (--network: 8)")
    d.add_argument("--seed", type=natural_int, default=DEMO["seed"])
    d.add_argument("--out", help="also write a test-vector bundle to this directory")
    d.add_argument("--network", nargs="?", const="", default=None, metavar="DIR",
                   help="run the embedded small network (or the network directory DIR) instead of one layer")
    d.add_argument("--samples", type=positive_int, default=8, help="--network: samples (default 8)")
    d.add_argument("--force", action="store_true", help="overwrite an existing --out bundle")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("spec", help="spec files").add_subparsers(dest="spec_command", required=True,
                                                                 parser_class=Parser)
    n = s.add_parser("new", help="print a complete, commented TOML spec")
    n.add_argument("--profile", required=True, choices=list(profiles.PROFILES))
    add_layer_options(n)
    n.set_defaults(func=cmd_spec_new)

    m = sub.add_parser("simulate", help="run a spec on saved raw inputs")
    m.add_argument("--spec", required=True, help="TOML spec (golden spec new ...)")
    m.add_argument("--input", required=True, help=".npy of raw input integers, shape (T, *neurons)")
    m.add_argument("--out", required=True, help=".npz to write (out, v, spikes, overflow counts)")
    m.add_argument("--v0", help=".npy of raw initial potentials")
    m.set_defaults(func=cmd_simulate)

    for name, text in SUBCOMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)  # listed in --help; main() hands their argv over whole
    return p


def subcommand(name: str):
    """The module of a subcommand with its own parser: ``golden.cli.<name>`` (``cli(argv) -> int``)."""
    return importlib.import_module(f"golden.cli.{name.replace('-', '_')}")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split("\n")) or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None:
        text = f"{e.filename}: {e.strerror or text}"
    return text


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["prove"] and any(a == "--network" or a.startswith("--network=") for a in argv):
            return subcommand("netprove").cli(argv[1:])  # golden prove --network: the whole-network proof
        if argv and argv[0] in SUBCOMMANDS:
            return subcommand(argv[0]).cli(argv[1:])
        a = build_parser().parse_args(argv)
        return a.func(a)
    except (GoldenError, OSError) as e:  # OSError: a file golden did not open through its own checks
        print(f"golden: error: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
