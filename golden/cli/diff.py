"""``golden diff``: the command line of :mod:`golden.diff`. Exit 0: identical; 1: they differ; 2: error."""

from __future__ import annotations

import json
from pathlib import Path

from .. import diff as gdiff
from .. import profiles
from ..simulate import load_npy
from ..spec import Spec, SpecError
from .options import Parser, add_layer_options, layer_params, natural_int, positive_int


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
    s.add_argument("--no-shrink", action="store_true", help="skip the minimal-input search")
    s.add_argument("--cause", help="report the first divergence of this cause (e.g. 'TMP shift') instead")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--plot", metavar="FILE.png", help="draw both potential traces (needs the 'plot' extra)")
    return p


def cli(argv) -> int:
    argv = list(argv)
    if argv[:1] == ["--"]:  # golden diff -- --kind IF ...
        argv = argv[1:]
    a = build_parser().parse_args(argv)
    if a.net_a or a.net_b:
        a.steps = a.steps or 8
        return _networks(a)
    a.steps = a.steps or 200
    spec_a, spec_b = _spec("a", a), _spec("b", a)
    if a.exhaustive:
        return _exhaustive(spec_a, spec_b, a)
    x = load_npy(a.input) if a.input else None
    if a.steps * a.neurons > gdiff.MAX_NEURON_STEPS:
        raise SpecError(f"--steps x --neurons = {a.steps * a.neurons} is more than golden diff holds in memory "
                        f"({gdiff.MAX_NEURON_STEPS})")
    report = gdiff.diff(spec_a, spec_b, x, steps=a.steps, neurons=a.neurons, seed=a.seed, shrink=not a.no_shrink,
                        cause=a.cause)
    if a.plot:
        gdiff.plot(report, a.plot)
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


def _exhaustive(spec_a: Spec, spec_b: Spec, a) -> int:
    """The whole state space: one step from every (v, x), the exact divergence map (golden.prove)."""
    from ..prove import divergence_map, plot_map
    m = divergence_map(spec_a, spec_b)
    if a.plot:
        plot_map(m, a.plot)
    print(json.dumps(m.to_dict(), indent=2, sort_keys=True) if a.json else m)
    return 0 if m.any == 0 and m.v0[0] == m.v0[1] else 1


def _networks(a) -> int:
    """Two networks of one model on one stimulus: per-layer mismatch rates, first divergence per sample, cause."""
    from ..network import Network, NetworkError, diff_networks
    from ..network.demo import stimulus

    if not (a.net_a and a.net_b):
        raise NetworkError("--net-a and --net-b go together: give both network directories")
    net_a, net_b = Network.load(a.net_a), Network.load(a.net_b)
    if net_a.input_shape != net_b.input_shape:
        raise NetworkError(f"--net-b: input shape {net_b.input_shape} differs from --net-a's {net_a.input_shape}")
    x = load_npy(a.input) if a.input else stimulus(net_a, a.samples, a.steps, a.seed)
    d = diff_networks(net_a, net_b, x)
    print(json.dumps(d.to_dict(), indent=2) if a.json else d)
    return 0 if d.identical else 1
