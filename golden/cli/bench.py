"""``golden bench``: the options; the harness itself is ``tools/bench/harness.py`` of the source checkout.

The harness (timing, the Qualia reference, markdown, targets, a fresh process's start) is a tool for
golden's developers, not part of the model, so it is not installed. ``golden bench`` loads it from the
checkout this golden runs from (``pip install -e .``, or ``python tools/bench``); from an installed
wheel it says so in one line. The C kernel it times is in the package: :mod:`golden.ckernel`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from .. import profiles
from ..spec import Kind
from .options import Parser, UsageError, kind, positive_float, positive_int

HARNESS = Path(__file__).resolve().parents[2] / "tools" / "bench" / "harness.py"


def harness():
    """The checkout's ``tools/bench/harness.py`` as a module (loaded once); UsageError if golden is installed."""
    module = sys.modules.get("golden_bench_harness")
    if module is None:
        if not HARNESS.is_file():
            raise UsageError("bench: the benchmark harness is in golden's source checkout (tools/bench/), "
                             "not in the installed package: run it from a clone (pip install -e .)")
        spec = importlib.util.spec_from_file_location("golden_bench_harness", HARNESS)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def tool(name: str):
    """The checkout's ``tools/bench/<name>.py`` as a module, loaded once (beside the harness, which :func:`harness`
    checks)."""
    harness()
    module = sys.modules.get(f"golden_bench_{name}")
    if module is None:
        spec = importlib.util.spec_from_file_location(f"golden_bench_{name}", HARNESS.with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def build_parser() -> Parser:
    p = Parser(prog="golden bench", description="Benchmark golden against the C of the same spec and the Qualia "
                                                "layers, in one run (see docs/bench.md).")
    p.add_argument("--quick", action="store_true", help="N in 64..65536, T = 100")
    p.add_argument("--sizes", type=positive_int, nargs="+", help="layer sizes N (default 64 1024 65536 1048576)")
    p.add_argument("--steps", type=positive_int, nargs="+", help="time steps T (default 100 1000)")
    p.add_argument("--profiles", nargs="+", default=list(profiles.PROFILES), choices=list(profiles.PROFILES))
    p.add_argument("--kinds", nargs="+", type=kind, default=[k.value for k in Kind], help="IF LIF ATIF (any case)")
    p.add_argument("--rounds", type=positive_int, default=7, help="interleaved rounds per configuration (median)")
    p.add_argument("--min-time", type=positive_float, default=0.02, help="seconds per timed sample (calls batched)")
    p.add_argument("--no-c", action="store_true", help="skip the compiled C")
    p.add_argument("--no-qualia", action="store_true", help="skip the Qualia reference")
    p.add_argument("--no-users", action="store_true", help="skip the rows against the real generated C "
                                                           "(Simulator.step, simulate with fresh and reused traces)")
    p.add_argument("--no-stimuli", action="store_true", help="skip the rows of the vectors generate stimuli")
    p.add_argument("--no-lanes", action="store_true", help="skip the narrow-lanes rows (int8/int16 codegen and "
                                                           "hardware, narrow vs wide lanes, in one run)")
    p.add_argument("--no-networks", action="store_true", help="skip the whole-network rows (Network.simulate vs the "
                                                              "real generated model C and the Qualia model)")
    p.add_argument("--net-models", nargs="+", help="whole-network models (default: all of tools/bench/netc.py)")
    p.add_argument("--net-samples", type=positive_int, default=32, help="whole networks: samples S (default 32)")
    p.add_argument("--net-steps", type=positive_int, default=100, help="whole networks: steps T (default 100)")
    p.add_argument("--no-real", action="store_true", help="skip the real-size whole networks (golden torch-eval and "
                                                          "codegen vs the Qualia model and the model C, batch 1 and "
                                                          "--real-batch; toy sizes with --quick)")
    p.add_argument("--real-models", nargs="+", help="real-size networks (default: all of tools/bench/realnet.py)")
    p.add_argument("--real-batch", type=positive_int, default=32, help="real-size networks: the batch (default 32)")
    p.add_argument("--no-gemm", action="store_true", help="skip the real-size synaptic layer rows (Numba kernel vs "
                                                          "the exact GEMM route vs the Qualia module)")
    p.add_argument("--gemm-models", nargs="+", help="real-size models (default: all of tools/bench/gemm.py)")
    p.add_argument("--gemm-samples", type=positive_int, default=2, help="real-size layers: samples (default 2)")
    p.add_argument("--no-fresh", action="store_true", help="skip timing a fresh process's first result")
    p.add_argument("--no-coldstart", action="store_true", help="skip the cold-start rows (tools/bench/coldstart.py: "
                                                               "fresh kernel cache, longest compile, no-pause calls)")
    p.add_argument("--asm", action="store_true", help="also count the instructions of each kernel's hot loop")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--markdown", help="write the markdown table here")
    p.add_argument("--force", action="store_true", help="replace a --json / --markdown file golden wrote")
    p.add_argument("--quiet", action="store_true")
    return p


def cli(argv) -> int:
    from ..fileio import check_new_file, write_atomic

    a = build_parser().parse_args(list(argv))
    for name in ("json", "markdown"):  # refuse an output golden may not write before minutes of timing, not after
        check_new_file(getattr(a, name), f"bench: --{name}", force=a.force)
    bench = harness()
    known = [m[0] for m in bench.netc_module().MODELS]
    bad = [m for m in a.net_models or () if m not in known]
    if bad:
        raise UsageError(f"bench: --net-models {bad[0]}: not a whole-network model (known: {', '.join(known)})")
    gemm_known = list(bench.gemm_module().MODELS)
    bad = [m for m in a.gemm_models or () if m not in gemm_known]
    if bad:
        raise UsageError(f"bench: --gemm-models {bad[0]}: not a real-size model (known: {', '.join(gemm_known)})")
    real_known = list(bench.realnet_module().models())
    bad = [m for m in a.real_models or () if m not in real_known]
    if bad:
        raise UsageError(f"bench: --real-models {bad[0]}: not a real-size network (known: {', '.join(real_known)})")
    a.argv = list(argv)  # the command the generated file names
    result = bench.run(a)
    cold = None if a.no_coldstart else tool("coldstart")  # tools/bench/coldstart.py: its rows after the harness's
    if cold is not None:
        result["coldstart"] = cold.coldstart_rows(torch=not a.no_qualia)
    if a.json:
        write_atomic(a.json, lambda f: f.write((json.dumps(result, indent=1) + "\n").encode()), force=a.force)
    text = bench.markdown(result) + ("\n".join(cold.markdown(result["coldstart"])) + "\n" if cold else "")
    if a.markdown:
        write_atomic(a.markdown, lambda f: f.write(text.encode()), force=a.force)
    if not a.quiet:
        sys.stdout.write(text)
    return 0
