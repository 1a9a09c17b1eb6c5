"""A real RTL consumer of golden: tools/rtl/lif_array.v (the `codegen` profile) under Icarus Verilog.

- the plain testbench (tools/rtl/tb_bundle.v) replays exported bundles
  ($readmemh) and compares every step, neuron and field;
- the cocotb test (tools/rtl/test_cocotb_lif.py) drives the same RTL with
  Hypothesis-generated stimuli against golden.Simulator, cycle by cycle;
- the deliberately broken variant (BROKEN_ROUNDING: ties to even instead of
  half up) must make both fail.

Needs iverilog (Debian: apt-get install iverilog) and, for the cocotb tests,
cocotb >= 2 (pip); each part is skipped, saying why, when its tool is absent.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import golden
from golden.spec import Kind, SpecError
from golden.strategies import stimuli

ROOT = Path(__file__).resolve().parents[1]
RTL_DIR = ROOT / "tools" / "rtl"
if str(RTL_DIR) not in sys.path:
    sys.path.insert(0, str(RTL_DIR))  # run_bundle here; test_cocotb_lif for the cocotb simulator (via sys.path)

import run_bundle as rb  # noqa: E402
from proofs import missing_module, record, requires  # noqa: E402

_missing = rb.tools_missing()
pytestmark = requires(None if _missing is None else f"the RTL tests need Icarus Verilog: {_missing}")

import golden.vectors as gv  # noqa: E402

# Specs the RTL is built for: int8/int16, IF/LIF, soft/hard, decay/no decay, nearest/floor, q_in != q_v.
SPECS = {
    "lif8-soft-decay": dict(kind="LIF", width=8, q_v=6, tau=2.0, v_reset=None, decay_input=True),
    "lif8-hard-nodecay-qin7": dict(kind="LIF", width=8, q_v=5, q_in=7, tau=3.0, v_reset=-0.25, decay_input=False),
    "lif16-hard-decay-qin13": dict(kind="LIF", width=16, q_v=12, q_in=13, tau=2.0, v_reset=0.0, decay_input=True),
    "lif16-soft-nodecay-floor-long64": dict(kind="LIF", width=16, long_width=64, q_v=10, q_in=8, tau=5.0,
                                            v_reset=None, decay_input=False, round="floor"),
    "if8-soft-qin7": dict(kind="IF", width=8, q_v=5, q_in=7, v_reset=None),
    "if16-hard": dict(kind="IF", width=16, q_v=12, v_threshold=2.0, v_reset=-0.5),
}


def make_bundle(spec, out: Path, stimulus: str, steps: int = 96, neurons: int = 8, seed: int = 3) -> Path:
    """A bundle with its hex export, written by golden.vectors."""
    return gv.generate(spec, steps, neurons, seed, stimulus, out, formats=("npy", "hex"), progress=False)


# ------------------------------------------------------------ the testbench
@pytest.mark.parametrize("stimulus", ["ties", "edges", "mixed"])
@pytest.mark.parametrize("name", list(SPECS))
def test_testbench_passes_on_bundles(name, stimulus, tmp_path):
    spec = golden.codegen(**SPECS[name])
    b = make_bundle(spec, tmp_path / "bundle", stimulus)
    r = rb.run_bundle(b, tmp_path / "work")
    record("rtl", "tools/rtl's Verilog under Icarus Verilog", r.checked, r.mismatches, unit="values")
    assert r.passed, r.log
    assert r.checked == 3 * 96 * 8


def test_testbench_passes_on_committed_corpus(tmp_path):
    """Every bundle of vectors/ whose spec the RTL implements (codegen, int8/int16) replays bit-exactly."""
    bundles = sorted(p.parent for p in (ROOT / "vectors").glob("*/manifest.json"))
    ran = []
    for b in bundles:
        try:
            r = rb.run_bundle(b, tmp_path / b.name)
        except rb.NotSupported:
            continue
        record("rtl", "tools/rtl's Verilog under Icarus Verilog", r.checked, r.mismatches, unit="values")
        assert r.passed, f"{b.name}:\n{r.log}"
        ran.append(b.name)
    if not ran:
        pytest.skip("the committed corpus holds no codegen int8/int16 bundle yet")


@pytest.mark.parametrize("name", ["lif8-soft-decay", "lif16-hard-decay-qin13", "if8-soft-qin7"])
def test_testbench_fails_on_broken_rounding(name, tmp_path):
    """Ties to even instead of half up: the testbench must catch it on the ties stimulus."""
    spec = golden.codegen(**SPECS[name])
    b = make_bundle(spec, tmp_path / "bundle", "ties")
    r = rb.run_bundle(b, tmp_path / "work", broken=True)
    assert not r.passed and r.mismatches > 0
    assert re.search(r"^MISMATCH t=\d+ neuron=\d+ field=(out|v|spikes) ", r.log, re.M)
    assert re.search(r"^RESULT FAIL mismatches=[1-9]\d* ", r.log, re.M)


def test_testbench_refuses_malformed_hex(tmp_path):
    spec = golden.codegen(**SPECS["lif8-soft-decay"])
    b = make_bundle(spec, tmp_path / "bundle", "uniform", steps=8, neurons=2)
    lines = (b / "v.hex").read_text().splitlines()
    (b / "v.hex").write_text("\n".join(lines[:-3]) + "\n")  # truncated
    with pytest.raises(RuntimeError, match="Not enough words"):
        rb.run_bundle(b, tmp_path / "w1")
    (b / "v.hex").write_text("\n".join(["1ff"] + lines[1:]) + "\n")  # a word wider than 8 bits
    with pytest.raises(RuntimeError, match="hex digits"):
        rb.run_bundle(b, tmp_path / "w2")


def test_bundle_vh_must_agree_with_the_rtl_build(tmp_path):
    spec = golden.codegen(**SPECS["lif8-soft-decay"])
    b = make_bundle(spec, tmp_path / "bundle", "uniform", steps=8, neurons=2)
    vh = b / "bundle.vh"
    vh.write_text(re.sub(r"GV_LEAK_SHIFT = \d+", "GV_LEAK_SHIFT = 99", vh.read_text()))
    with pytest.raises(ValueError, match="GV_LEAK_SHIFT=99"):
        rb.run_bundle(b, tmp_path / "w")


def test_unsupported_spec_is_refused():
    with pytest.raises(rb.NotSupported, match="not the RTL's codegen datapath"):
        rb.rtl_parameters(golden.hardware("LIF"))
    with pytest.raises(rb.NotSupported, match="width 32"):
        rb.rtl_parameters(golden.codegen("LIF", width=32, q_v=20))


def test_network_bundle_is_refused_in_one_line():
    with pytest.raises(rb.NotSupported, match="a network bundle"):
        rb.load_bundle(ROOT / "vectors" / "networks" / "codegen-smlp-lif8")


@st.composite
def codegen_specs(draw):
    """codegen datapaths with drawn formats and raw hyperparameters (any q_v, q_in != q_v, q_out < 0 ...)."""
    w = draw(st.sampled_from([8, 16]))
    lw = draw(st.sampled_from([x for x in (16, 32, 64) if x > w]))
    kind = draw(st.sampled_from(["IF", "LIF"]))
    soft = draw(st.booleans())
    q_v = draw(st.integers(-2, 2 * w))
    q_in = q_v + draw(st.integers(-4, 4))
    base = golden.codegen(kind, width=w, long_width=lw, q_v=w - 2, q_in=q_in, q_out=draw(st.integers(-3, w + 1)),
                          v_reset=None if soft else 0.0, decay_input=draw(st.booleans()),
                          round=draw(st.sampled_from(["nearest", "floor"])))
    fv = golden.QFormat(w, q_v)
    edge = lambda lo, hi: st.one_of(st.sampled_from([lo, hi]), st.integers(lo, hi))  # noqa: E731
    try:
        return base.replace(fmt_v=fv, v_threshold=draw(edge(1, fv.max)),
                            v_reset=0 if soft else draw(edge(fv.min, fv.max)),
                            reciprocal_tau=draw(edge(1, fv.max)) if Kind(kind).has_leak else 0)
    except SpecError:
        assume(False)


@settings(max_examples=25)
@given(data=st.data())
def test_testbench_matches_golden_on_drawn_specs(data, tmp_path_factory):
    spec = data.draw(codegen_specs(), label="spec")
    x = data.draw(stimuli(spec, max_steps=40, max_neurons=6), label="x")
    tr = golden.simulate(spec, x)
    r = rb.run_arrays(spec, x, tr.out, tr.v, tr.spikes, tmp_path_factory.mktemp("tb"))
    record("rtl", "tools/rtl's Verilog under Icarus Verilog", r.checked, r.mismatches, unit="values")
    assert r.passed, r.log


# ------------------------------------------------------------------ cocotb
COCOTB_CASES = {
    "lif8-soft-decay": dict(examples=40),
    "lif16-hard-decay-qin13": dict(examples=30),
    "if8-soft-qin7": dict(examples=20),
}


def run_cocotb(name: str, tmp_path: Path, *, broken: bool = False, examples: int = 30, n: int = 4):
    """Build lif_array for SPECS[name] and run the cocotb test; (failed, total, log text)."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    spec = golden.codegen(**SPECS[name])
    params = rb.rtl_parameters(spec, broken=broken)
    for k in ("VTH", "VRESET", "RTAU"):  # ports of lif_array, driven by the test
        params.pop(k)
    params["N"] = n
    runner = get_runner("icarus")
    build = tmp_path / "sim_build"
    runner.build(sources=[rb.RTL], hdl_toplevel="lif_array", parameters=params, build_dir=build, always=True,
                 timescale=("1ns", "1ps"))
    case = {"codegen": SPECS[name], "n": n, "examples": examples, "max_steps": 24}
    xml, log = tmp_path / "results.xml", tmp_path / "sim.log"
    try:
        runner.test(test_module="test_cocotb_lif", hdl_toplevel="lif_array", build_dir=build, test_dir=tmp_path,
                    extra_env={"GOLDEN_RTL_CASE": json.dumps(case)}, results_xml=str(xml), log_file=log)
    except SystemExit:  # cocotb's runner exits when, under pytest, a cocotb test failed
        pass
    total, failed = get_results(xml)
    return failed, total, log.read_text() if log.exists() else ""


@requires(missing_module("cocotb_tools"))
@pytest.mark.parametrize("name", list(COCOTB_CASES))
def test_cocotb_matches_golden(name, tmp_path):
    failed, total, log = run_cocotb(name, tmp_path, **COCOTB_CASES[name])
    assert total == 1 and failed == 0, log[-6000:]
    assert re.search(r"golden == RTL: \d+ examples, \d+ steps", log)


@requires(missing_module("cocotb_tools"))
def test_cocotb_fails_on_broken_rounding(tmp_path):
    failed, total, log = run_cocotb("lif8-soft-decay", tmp_path, broken=True, examples=40)
    assert total == 1 and failed == 1, log[-6000:]
    assert "RTL != golden" in log and ("Falsifying example" in log or "Failing test case" in log), log[-6000:]
