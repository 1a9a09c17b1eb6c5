"""``golden diff``: the command line of :mod:`golden.diff`. Exit 0: identical; 1: they differ; 2: error.

Everything that can be refused is refused before the run, in one line: the ``--plot`` target (a new ``.png``
file, never a symlink or a directory, an existing file only with ``--force``), and any job whose memory this
machine cannot give or whose estimated time is past the budget (the message states the work, the memory and
the time; ``--allow-long`` lifts the time budget): ``--exhaustive`` maps, large ``--input`` arrays, large
``--samples`` / ``--steps`` of networks.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np

from .. import diff as gdiff
from .. import profiles
from ..budget import Cost, refuse
from ..causes import CAUSES
from ..fileio import check_new_file
from ..simulate import load_npy
from ..spec import Spec, SpecError
from .options import OutputError, Parser, add_layer_options, layer_params, natural_int, positive_int

LONG_NOTICE = 10.0  # seconds: an accepted job estimated longer says so on stderr first
PLOT_BYTES_PER_PAIR = 48  # a divergence map's plot: float64 normalised copy, RGBA colours, masks


def _spec(which: str, a) -> Spec:
    path = getattr(a, f"spec_{which}")
    if path:
        return Spec.from_toml(Path(path))
    profile = getattr(a, which)
    if profile not in profiles.PROFILES:
        raise SpecError(f"--{which}: unknown profile {profile!r} (expected one of: {', '.join(profiles.PROFILES)})")
    return profiles.make(profile, a.kind, **layer_params(profile, a))


def build_parser() -> Parser:
    p = Parser(prog="golden diff", description=(
        "Compare two profiles (or spec files) of one layer on a generated stimulus: mismatch rates, the first "
        "divergence with a minimal input, and the known cause of each divergence. Exit 0: identical; 1: they "
        "differ; 2: error."))
    p.add_argument("--a", default="torch-eval", help="profile a (default torch-eval)")
    p.add_argument("--b", default="codegen", help="profile b (default codegen)")
    p.add_argument("--spec-a", help="a TOML spec file instead of profile a")
    p.add_argument("--spec-b", help="a TOML spec file instead of profile b")
    add_layer_options(p.add_argument_group("layer (real values, shared by both profiles)"))
    s = p.add_argument_group("stimulus and output")
    s.add_argument("--steps", type=positive_int, help="default 200 (networks: 8)")
    s.add_argument("--neurons", type=positive_int, default=1024)
    s.add_argument("--seed", type=natural_int, default=0)
    s.add_argument("--input", help=".npy of raw inputs (T, N) in a's input format, instead of the generated stimulus")
    n = p.add_argument_group("whole networks (saved golden network directories)")
    n.add_argument("--net-a", metavar="DIR", help="network a (e.g. from_torch(model).save(DIR))")
    n.add_argument("--net-b", metavar="DIR", help="network b (e.g. from_torch(built, profile='codegen'))")
    n.add_argument("--samples", type=positive_int, default=4, help="networks: samples of the generated stimulus")
    s.add_argument("--exhaustive", action="store_true",
                   help="one step from every (v, x) of the formats instead of a stimulus: exact fractions by cause")
    s.add_argument("--allow-long", action="store_true",
                   help="run a job estimated past the time budget (it is still refused if it cannot fit in memory)")
    s.add_argument("--no-shrink", action="store_true", help="skip the minimal-input search")
    s.add_argument("--cause", help="report the first divergence of this cause instead: "
                   + ", ".join(f"'{c.name}'" for c in CAUSES) + " (several joined with ' + ')")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--plot", metavar="FILE.png", help="draw both potential traces (needs the 'plot' extra)")
    s.add_argument("--force", action="store_true", help="replace an existing --plot file")
    return p


def cli(argv) -> int:
    argv = list(argv)
    if argv[:1] == ["--"]:  # golden diff -- --kind IF ...
        argv = argv[1:]
    a = build_parser().parse_args(argv)
    if a.plot:
        check_plot_target(a.plot, a.force)
    if a.net_a or a.net_b:
        if a.plot:
            raise OutputError("--plot: not available for --net-a/--net-b (a network diff has no single trace)")
        a.steps = a.steps or 8
        return _networks(a)
    a.steps = a.steps or 200
    spec_a, spec_b = _spec("a", a), _spec("b", a)
    if a.exhaustive:
        return _exhaustive(spec_a, spec_b, a)
    if a.input:
        shape = npy_shape(a.input)
        n = 0 if shape is None else math.prod(shape)
        what = f"--input {a.input}: shape {shape} = {n} neuron-steps"
    else:
        n, what = a.steps * a.neurons, f"--steps x --neurons = {a.steps * a.neurons} neuron-steps"
    if n > gdiff.MAX_NEURON_STEPS:
        raise SpecError(f"{what} is more than golden diff holds in memory ({gdiff.MAX_NEURON_STEPS}); "
                        f"compare fewer neuron-steps")
    if n:
        _fits(Cost(what, gdiff.neuron_steps_bytes(n), 0.0), "golden diff", a)
    x = load_npy(a.input) if a.input else None
    report = gdiff.diff(spec_a, spec_b, x, steps=a.steps, neurons=a.neurons, seed=a.seed, shrink=not a.no_shrink,
                        cause=a.cause)
    if a.plot:
        gdiff.plot(report, a.plot, force=a.force)
    if a.json:
        d = report.to_dict()
        if a.plot:
            d["plot"] = a.plot
        print(json.dumps(d, indent=2))
    else:
        print(report)
        if a.plot:
            print(f"  plot        {a.plot}")
    return 0 if report.identical else 1


# ---------------------------------------------------------------------------------------- checks before a run
def check_plot_target(path: str, force: bool) -> Path:
    """Refuse, before any run, a --plot target golden must not write (golden's one rule,
    :func:`golden.fileio.check_new_file`, with a .png name), and a missing matplotlib (the 'plot' extra)."""
    p = check_new_file(path, "--plot", force=force, suffix=".png")
    if importlib.util.find_spec("matplotlib") is None:
        raise SpecError("--plot needs matplotlib: pip install 'golden[plot]'")
    return p


def npy_shape(path) -> tuple | None:
    """The shape a .npy file's header declares, read without loading the array; None when it is no readable
    regular .npy file (then :func:`golden.simulate.load_npy` names the problem)."""
    if not Path(path).is_file():
        return None
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, _ = header(f)
    except (OSError, ValueError):
        return None
    return tuple(int(d) for d in shape)


def _fits(cost: Cost, what: str, a) -> None:
    """Refuse ``cost`` past this machine's memory or (without --allow-long) the time budget; say so when long."""
    refuse(cost, what, allow_long=a.allow_long)
    if cost.seconds > LONG_NOTICE:
        print(f"{what}: {cost}", file=sys.stderr)


def _progress(done: int, total: int) -> None:
    print(f"\r  {100 * done // total:3d}% of {total} pairs", end="" if done < total else "\n", file=sys.stderr,
          flush=True)


# ---------------------------------------------------------------------------------------------- the modes
def _exhaustive(spec_a: Spec, spec_b: Spec, a) -> int:
    """The whole state space: one step from every (v, x), the exact divergence map (golden.prove)."""
    from ..prove import divergence_cost, divergence_map, plot_map

    cost = divergence_cost(spec_a, spec_b)
    if a.plot:  # matplotlib normalises the whole map to float64 and colours it (RGBA) before it resamples
        pairs = 1 << (spec_a.fmt_v.bits + spec_a.fmt_in.bits)
        cost = Cost(f"{cost.work} and its plot", cost.bytes + pairs * PLOT_BYTES_PER_PAIR, cost.seconds)
    _fits(cost, "golden diff --exhaustive", a)
    m = divergence_map(spec_a, spec_b, progress=_progress if sys.stderr.isatty() else None)
    if a.plot:
        plot_map(m, a.plot)
    print(json.dumps(m.to_dict(), indent=2, sort_keys=True) if a.json else m)
    return 0 if m.any == 0 and m.v0[0] == m.v0[1] else 1


def _networks(a) -> int:
    """Two networks of one model on one stimulus: per-layer mismatch rates, first divergence per sample, cause."""
    from ..network import Network, NetworkError, diff_networks
    from ..network.demo import stimulus
    from ..network.diff import diff_cost

    if not (a.net_a and a.net_b):
        raise NetworkError("--net-a and --net-b go together: give both network directories")
    net_a, net_b = Network.load(a.net_a), Network.load(a.net_b)
    if net_a.input_shape != net_b.input_shape:
        raise NetworkError(f"--net-b: input shape {net_b.input_shape} differs from --net-a's {net_a.input_shape}")
    if a.input:
        shape = npy_shape(a.input)
        if shape is not None and len(shape) >= 1:  # (samples, steps, *input_shape); checked in full after loading
            c = diff_cost(net_a, net_b, shape[0], shape[1] if len(shape) > 1 else 1)
            _fits(Cost(c.work, c.bytes + 8 * math.prod(shape), c.seconds), f"golden diff --input {a.input}", a)
    else:
        _fits(diff_cost(net_a, net_b, a.samples, a.steps), "golden diff --net-a/--net-b", a)
    x = load_npy(a.input) if a.input else stimulus(net_a, a.samples, a.steps, a.seed)
    d = diff_networks(net_a, net_b, x)
    print(json.dumps(d.to_dict(), indent=2) if a.json else d)
    return 0 if d.identical else 1
