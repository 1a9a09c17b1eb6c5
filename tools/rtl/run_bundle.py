"""Build and run tools/rtl/tb_bundle.v with Icarus Verilog on golden test vectors.

    python tools/rtl/run_bundle.py BUNDLE_DIR [BUNDLE_DIR ...] [--broken]

Each bundle's spec must be one the RTL implements (golden's ``codegen``
profile, int8/int16 NUMBER_T); others are reported as skipped. Exit status:
0 all checked bundles pass, 1 any fails, 2 a bundle could not be run.

Also importable: :func:`rtl_parameters` maps a golden Spec to the RTL's
parameters, :func:`run_arrays` checks in-memory arrays (it writes the hex
files itself), :func:`run_bundle` checks a bundle directory.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.vectors import hex_bytes

HERE = Path(__file__).resolve().parent
RTL = HERE / "lif_array.v"
TB = HERE / "tb_bundle.v"


class NotSupported(ValueError):
    """The spec is not one that lif_array.v implements."""


def rtl_parameters(spec, *, broken: bool = False) -> dict:
    """lif_array's parameters (and the testbench's hyperparameters) for a codegen-profile spec."""
    from golden.profiles import codegen  # noqa: F401  (documents which profile)

    why = []
    w = spec.fmt_v.bits
    if spec.arith != "int":
        why.append("arith is not int")
    if spec.kind not in ("IF", "LIF"):
        why.append(f"kind {spec.kind}")
    if w not in (8, 16):
        why.append(f"NUMBER_T width {w} (RTL covers 8 and 16)")
    if spec.fmt_in.bits != w or spec.fmt_out.bits != w:
        why.append("input/output widths differ from the potential's")
    if spec.acc_overflow != "wrap" or spec.v_overflow != "saturate":
        why.append("overflow policies are not wrap (accumulator) / saturate (potential)")
    if spec.acc_bits <= w or spec.acc_bits > 64:
        why.append(f"acc_bits {spec.acc_bits}")
    if spec.order != "fire_then_round" or spec.leak_shift != "max_q" or spec.v_init != "zero":
        why.append("order/leak_shift/v_init are not codegen's")
    if spec.round not in ("RND", "TRN"):
        why.append(f"round {spec.round}")
    q_out = spec.fmt_out.frac
    lw = spec.acc_bits
    wrap = lambda n: (n + (1 << (lw - 1))) % (1 << lw) - (1 << (lw - 1))  # noqa: E731
    if q_out >= 0:
        one = wrap(1 << q_out)
    else:
        one = wrap(1 + (1 << (-q_out - 1))) >> -q_out if spec.round == "RND" else 1 >> -q_out
    spike_out = min(max(one, -(1 << (w - 1))), (1 << (w - 1)) - 1)  # what lif_array.v computes from Q_OUT
    if spec.spike_out != spike_out:
        why.append(f"spike_out {spec.spike_out} is not clamp(scale(1, -q_out)) = {spike_out}")
    if why:
        raise NotSupported(f"{spec.describe()}: not the RTL's codegen datapath: " + "; ".join(why))
    return dict(
        WIDTH=w, LONG_WIDTH=spec.acc_bits, Q_IN=spec.fmt_in.frac, Q_V=spec.fmt_v.frac, Q_OUT=q_out,
        SOFT_RESET=int(spec.reset == "soft"), DECAY_INPUT=int(spec.decay_input), IS_LIF=int(spec.kind == "LIF"),
        ROUND_NEAREST=int(spec.round == "RND"), BROKEN_ROUNDING=int(broken),
        VTH=spec.v_threshold, VRESET=spec.v_reset, RTAU=spec.reciprocal_tau,
    )


@dataclass
class Result:
    passed: bool
    mismatches: int
    checked: int
    log: str


def tools_missing() -> str | None:
    """Why the testbench cannot run here, or None."""
    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian: apt-get install iverilog)"
    return None


def run_hex(params: dict, steps: int, n: int, files: dict, workdir: Path, timeout: float = 120) -> Result:
    """Compile tb_bundle with ``params`` and run it on the hex files ``files`` (x, out, v, spikes)."""
    workdir.mkdir(parents=True, exist_ok=True)
    binary = workdir / "tb_bundle.vvp"
    ps = {"STEPS": steps, "N": n, **params}
    cmd = ["iverilog", "-g2005", "-Wall", "-s", "tb_bundle", "-o", str(binary)]
    for k, v in ps.items():
        cmd += ["-P", f"tb_bundle.{k}={int(v)}"]
    cmd += [str(TB), str(RTL)]
    comp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if comp.returncode:
        raise RuntimeError(f"iverilog failed ({comp.returncode}):\n{comp.stdout}{comp.stderr}")
    plusargs = [f"+{k}={Path(files[k]).resolve()}" for k in ("x", "out", "v", "spikes")]
    sim = subprocess.run(["vvp", "-n", str(binary), *plusargs], capture_output=True, text=True, timeout=timeout,
                         cwd=workdir)
    log = sim.stdout + sim.stderr
    bad = [line for line in log.splitlines() if re.match(r"(WARNING|ERROR):.*(readmem|hex digits)", line)]
    if bad:  # a missing, short, long or too-wide hex file is an error, never a pass
        raise RuntimeError("malformed hex input: " + "; ".join(bad))
    m = re.search(r"^RESULT (PASS|FAIL) mismatches=(\d+) checked=(\d+)$", sim.stdout, re.M)
    if sim.returncode or not m:
        raise RuntimeError(f"vvp did not report a result (exit {sim.returncode}):\n{log}")
    return Result(m.group(1) == "PASS", int(m.group(2)), int(m.group(3)), log)


def run_arrays(spec, x, out, v, spikes, workdir: Path, *, broken: bool = False) -> Result:
    """Check (T, N) raw arrays: inputs ``x`` -> expected ``out``, ``v``, ``spikes``, writing the hex files itself."""
    steps = np.asarray(x).shape[0]
    x, out, v, spikes = (np.asarray(a).reshape(steps, -1) for a in (x, out, v, spikes))
    params = rtl_parameters(spec, broken=broken)
    workdir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, a, bits in (("x", x, spec.fmt_in.bits), ("out", out, spec.fmt_out.bits), ("v", v, spec.fmt_v.bits),
                          ("spikes", spikes.astype(np.int64), 1)):
        files[name] = workdir / f"{name}.hex"
        files[name].write_bytes(hex_bytes(a, bits, name))
    return run_hex(params, steps, x.shape[1], files, workdir)


def load_bundle(bundle: Path):
    """(spec, steps, neurons, hex files) of a bundle, as vectors/README.md documents it."""
    from golden.spec import Spec

    bundle = Path(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    if manifest.get("format") != "golden-vectors" or manifest.get("schema") != 1:
        raise ValueError(f"{bundle}: not a schema-1 golden-vectors bundle")
    if manifest.get("kind") == "network":
        raise NotSupported(f"{bundle}: a network bundle (the RTL replays single neuron layers)")
    spec = Spec.from_toml(manifest["spec"]["toml"])
    rtl_parameters(spec)  # NotSupported first: other profiles' bundles may carry no hex export
    if manifest.get("v0", "spec") != "spec":
        raise NotSupported(f"{bundle}: starts from a given v0, the RTL starts from v_init")
    hexes = manifest.get("exports", {}).get("hex")
    if not hexes:
        raise ValueError(f"{bundle}: has no hex export (golden vectors export {bundle} --format hex)")
    widths = {"x": spec.fmt_in.bits, "out": spec.fmt_out.bits, "v": spec.fmt_v.bits, "spikes": 1}
    files = {}
    for name, bits in widths.items():
        entry = hexes[name]
        if entry["bits"] != bits or entry["words"] != manifest["steps"] * manifest["neurons"]:
            raise ValueError(f"{bundle}: {entry['file']} is {entry['bits']}-bit x {entry['words']} words, "
                             f"expected {bits}-bit x {manifest['steps'] * manifest['neurons']}")
        files[name] = bundle / entry["file"]
    return spec, int(manifest["steps"]), int(manifest["neurons"]), files


def check_vh(bundle: Path, params: dict, steps: int, neurons: int) -> None:
    """The bundle's bundle.vh (if any) must declare the datapath the RTL is built for."""
    vh = Path(bundle) / "bundle.vh"
    if not vh.exists():
        return
    gv = {m.group(1): int(m.group(2))
          for m in re.finditer(r"localparam\s+integer\s+(GV_\w+)\s*=\s*(-?\d+)\s*;", vh.read_text())}
    work = max(params["Q_IN"], params["Q_V"])
    want = {"GV_STEPS": steps, "GV_NEURONS": neurons, "GV_V_THRESHOLD": params["VTH"], "GV_V_RESET": params["VRESET"],
            "GV_RECIPROCAL_TAU": params["RTAU"], "GV_V_INIT": 0, "GV_IN_BITS": params["WIDTH"],
            "GV_V_BITS": params["WIDTH"], "GV_OUT_BITS": params["WIDTH"], "GV_IN_FRAC": params["Q_IN"],
            "GV_V_FRAC": params["Q_V"], "GV_OUT_FRAC": params["Q_OUT"], "GV_KIND": params["IS_LIF"],
            "GV_SOFT_RESET": params["SOFT_RESET"], "GV_DECAY_INPUT": params["DECAY_INPUT"],
            "GV_ROUND": 3 if params["ROUND_NEAREST"] else 0, "GV_ACC_BITS": params["LONG_WIDTH"],
            "GV_ACC_OVERFLOW": 1, "GV_V_OVERFLOW": 0, "GV_ORDER": 0, "GV_ARITH_INT": 1, "GV_WORK_FRAC": work,
            "GV_SHIFT_IN": work - params["Q_IN"], "GV_SHIFT_V": work - params["Q_V"], "GV_LEAK_SHIFT": work}
    bad = [f"{k}={gv[k]} (RTL: {v})" for k, v in want.items() if k in gv and gv[k] != v]
    if bad:
        raise ValueError(f"{vh}: disagrees with the spec the RTL is built for: " + ", ".join(bad))


def run_bundle(bundle: Path, workdir: Path, *, broken: bool = False) -> Result:
    """Replay one bundle's hex export through the RTL; raises NotSupported for a spec the RTL does not implement."""
    spec, steps, neurons, files = load_bundle(bundle)
    params = rtl_parameters(spec, broken=broken)
    check_vh(bundle, params, steps, neurons)
    return run_hex(params, steps, neurons, files, workdir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--broken", action="store_true", help="use the deliberately broken rounding (must fail)")
    args = ap.parse_args(argv)
    if (why := tools_missing()):
        print(f"error: {why}", file=sys.stderr)
        return 2
    status = 0
    for b in args.bundles:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_bundle(b, Path(tmp), broken=args.broken)
        except NotSupported as e:
            print(f"SKIP {b}: {e}")
            continue
        except (RuntimeError, OSError, ValueError) as e:
            print(f"ERROR {b}: {e}", file=sys.stderr)
            status = 2
            continue
        print(f"{'PASS' if r.passed else 'FAIL'} {b}: mismatches={r.mismatches} checked={r.checked}")
        if not r.passed:
            print("".join(line + "\n" for line in r.log.splitlines() if line.startswith("MISMATCH")), end="")
            status = max(status, 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
