"""The ``golden`` command line. Every error is one clear line on stderr and exit code 2, never a traceback.

``main`` parses the subcommand and catches :class:`~golden.errors.GoldenError` once (Ctrl-C: one line, exit
130). ``demo``, ``spec new`` and ``simulate`` live here; ``diff``, ``bench``, ``vectors`` and ``prove`` each have
their module in this package (``golden.cli.<name>.cli(argv) -> int``, raising GoldenError on bad input); the
layer options and the one-line parser they share are in :mod:`golden.cli.options`; what a long or large job
checks before it starts (memory, output paths, budget, progress, resume state) in :mod:`golden.cli.longrun`.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import profiles
from ..errors import GoldenError
from ..fileio import check_new_file, write_atomic
from ..simulate import load_npy, simulate
from ..spec import Kind, Spec
from .longrun import check_memory
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


def demo_network(a) -> int:
    """``demo --network [DIR]``: refuses the single-layer options it does not use, and a size beyond memory."""
    from ..network.demo import DEFAULT, load, memory, run

    if a.out:
        raise UsageError("demo: --network writes no bundle, so --out is not taken; write a network bundle with "
                         "golden vectors generate --network DIR --samples N --steps T ... --out BUNDLE")
    steps = a.steps or 8
    net = load(a.network or None)
    check_memory(memory(net, a.samples, steps), f"demo --network: {a.samples} samples x {steps} steps",
                 "use fewer --samples or --steps")
    run(net, samples=a.samples, steps=steps, seed=a.seed, name=Path(a.network).name if a.network else DEFAULT)
    return 0


def cmd_demo(a) -> int:
    if a.network is not None:  # the embedded small network (or a network directory): numpy + numba only
        return demo_network(a)
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


def npy_values(path) -> tuple | None:
    """(values, bytes per value) a .npy header declares, when the file really holds them (else None: load_npy then
    says why it cannot read the file)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            values = int(np.prod(shape, dtype=object))
            held = os.fstat(f.fileno()).st_size - f.tell()
            return (values, dtype.itemsize) if values * dtype.itemsize <= held else None
    except (OSError, ValueError, TypeError, RecursionError):
        return None


def cmd_simulate(a) -> int:
    target = Path(a.out)
    if target.is_dir() and not target.is_symlink():
        raise OutputError(f"--out {target}: is a directory; give the .npz file to write")
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")  # the name np.savez gives a path; written and printed as such
    out = check_new_file(str(target), "--out", force=a.force)
    spec = Spec.from_toml(Path(a.spec))
    declared = npy_values(a.input)
    if declared is not None:  # the input, its native copy, and the trace: out, v and spikes per value
        values, itemsize = declared
        per = itemsize + sum(np.dtype(t).itemsize for t in (spec.fmt_in.dtype, spec.fmt_out.dtype, spec.fmt_v.dtype))
        check_memory(values * (per + 1), f"simulate: {a.input} ({values} input values)",
                     "simulate it in pieces of fewer steps (the API's v0 carries the state over)")
    x = load_npy(a.input)
    v0 = load_npy(a.v0, "v0") if a.v0 else None
    trace = simulate(spec, x, v0)
    write_atomic(out, lambda f: np.savez(f, out=trace.out, v=trace.v, spikes=trace.spikes, spec=spec.to_toml(),
                                         **{f"overflow_{k}": v for k, v in trace.overflow.items()}), force=a.force)
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
    m.add_argument("--force", action="store_true", help="replace an existing --out file")
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


# Lines the Qualia packages print on import when TensorFlow is absent (golden never uses Keras): dropped from
# golden's stderr, exactly, so that an error stays one line; any other text passes through untouched.
IMPORT_NOISE = frozenset({
    "Warning: cannot find TensorFlow, Keras models will be unavailable",  # qualia_core.learningmodel (print)
    "Warning: cannot find TensorFlow.Keras, Keras models will be unavailable",
    "Cannot find TensorFlow, Keras framework will be unavailable",  # qualia_codegen_core.graph (logging)
    "Cannot find Keras, Keras framework will be unavailable",
})


class QuietStderr:
    """A stderr that drops the exact lines of :data:`IMPORT_NOISE` and passes everything else on at once (text that
    could still become a noise line is held until its line ends)."""

    def __init__(self, stream):
        self.stream, self.held = stream, ""

    def write(self, text: str) -> int:
        self.held += text
        *lines, self.held = self.held.split("\n")
        for line in lines:
            if line not in IMPORT_NOISE:
                self.stream.write(line + "\n")
        if self.held and not any(n.startswith(self.held) for n in IMPORT_NOISE):
            self.stream.write(self.held)
            self.held = ""
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding, ...: the real stream's
        return getattr(self.stream, name)


def main(argv=None) -> int:
    real = sys.stderr
    sys.stderr = QuietStderr(real)
    try:
        return _main(argv)
    finally:
        if sys.stderr.held:
            real.write(sys.stderr.held)
        sys.stderr = real


def _main(argv=None) -> int:
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
    except KeyboardInterrupt as e:  # Ctrl-C: one line saying what was kept (longrun.Interrupted), exit 130
        print(f"golden: interrupted{': ' + _one_line(e) if str(e) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
