"""cocotb test: lif_array.v against golden.Simulator, on Hypothesis-generated stimuli.

Run by tests/test_rtl.py through cocotb's runner (cocotb_tools.runner, Icarus).
The case comes in the environment variable GOLDEN_RTL_CASE, JSON::

    {"codegen": {...keyword arguments of golden.codegen...}, "n": 4,
     "examples": 40, "max_steps": 24, "seed": 0}

The HDL parameters (formats, modes) are fixed by the build; the
hyperparameters (v_threshold, v_reset, reciprocal_tau) are ports, so
Hypothesis draws them per example along with the stimulus.

Hypothesis runs for real: a ``@given`` property runs in a cocotb bridge
thread (``cocotb.task.bridge``) and drives the simulator through ``cocotb.task.resume``,
so a failure is shrunk to a minimal counterexample and reported. The run is
deterministic: ``derandomize=True`` seeds Hypothesis from the property itself,
and no example database is used. Each example resets the DUT, then every
cycle drives one time step and compares every neuron's output and potential
with ``golden.Simulator.step`` (the live reference model) in the same cycle.
"""

from __future__ import annotations

import json
import os
import warnings

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import FallingEdge, RisingEdge
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisSideeffectWarning

import golden
from golden.strategies import stimuli

# cocotb loads pytest's assertion rewriting, which makes Hypothesis believe a
# pytest plugin is still initialising; building strategies here is fine.
warnings.filterwarnings("ignore", category=HypothesisSideeffectWarning)

CASE = json.loads(os.environ.get("GOLDEN_RTL_CASE", '{"codegen": {}, "n": 4}'))


def base_spec() -> golden.Spec:
    return golden.codegen(**CASE.get("codegen", {}))


@st.composite
def cases(draw, base: golden.Spec, n: int, max_steps: int):
    """A spec (the build's formats and modes, drawn hyperparameters) and a (T, n) raw stimulus for it."""
    fv = base.fmt_v
    edge = lambda lo, hi: st.one_of(st.sampled_from([lo, hi, (lo + hi) // 2]), st.integers(lo, hi))  # noqa: E731
    change = {"v_threshold": draw(st.one_of(st.just(base.v_threshold), edge(1, fv.max)))}
    if base.reset == "hard":
        change["v_reset"] = draw(st.one_of(st.just(base.v_reset), edge(fv.min, fv.max)))
    if base.kind == "LIF":
        change["reciprocal_tau"] = draw(st.one_of(st.just(base.reciprocal_tau), edge(1, fv.max)))
    spec = base.replace(**change)
    x = draw(stimuli(spec, max_steps=max_steps, max_neurons=n))
    if x.shape[1] < n:  # the DUT has n neurons: repeat the drawn columns
        x = np.resize(x.T, (n, x.shape[0])).T.copy()
    return spec, x


def pack(values, width: int) -> int:
    mask = (1 << width) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * width)
    return word


def unpack(word: int, n: int, width: int) -> list:
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    out = []
    for i in range(n):
        u = (word >> (i * width)) & mask
        out.append(u - (1 << width) if u & sign else u)
    return out


def read(handle, n: int, width: int):
    val = handle.value
    if not val.is_resolvable:
        return None
    return unpack(val.to_unsigned(), n, width)


@cocotb.test()
async def lif_array_matches_golden(dut):
    """Every cycle, every neuron: out and v equal golden.Simulator's."""
    base = base_spec()
    n = int(CASE.get("n", 4))
    w = base.fmt_v.bits
    max_steps = int(CASE.get("max_steps", 24))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.x.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    ran = {"examples": 0, "steps": 0}

    async def run_example(spec: golden.Spec, x: np.ndarray):
        """Reset, then drive x step by step; the first mismatch as a dict, or None."""
        model = golden.Simulator(spec, n)
        await FallingEdge(dut.clk)
        dut.v_threshold.value = spec.v_threshold & ((1 << w) - 1)
        dut.v_reset.value = spec.v_reset & ((1 << w) - 1)
        dut.reciprocal_tau.value = spec.reciprocal_tau & ((1 << w) - 1)
        dut.rst.value = 1
        dut.in_valid.value = 0
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        for t, x_t in enumerate(x):
            dut.x.value = pack(x_t, w)
            dut.in_valid.value = 1
            expected_out = model.step(x_t.astype(np.int64)).astype(np.int64).tolist()
            expected_v = model.v.astype(np.int64).tolist()
            await FallingEdge(dut.clk)  # the DUT stepped at the rising edge in between
            dut.in_valid.value = 0
            ran["steps"] += 1
            got_out, got_v = read(dut.out, n, w), read(dut.v, n, w)
            valid = str(dut.out_valid.value)
            if valid != "1" or got_out != expected_out or got_v != expected_v:
                return dict(t=t, x=x_t.tolist(), out_valid=valid, expected_out=expected_out, got_out=got_out,
                            expected_v=expected_v, got_v=got_v)
        return None

    run_blocking = resume(run_example)

    @settings(max_examples=int(CASE.get("examples", 40)), derandomize=True, database=None, deadline=None,
              print_blob=False, suppress_health_check=list(HealthCheck))
    @given(cases(base, n, max_steps))
    def rtl_equals_golden(case):
        spec, x = case
        ran["examples"] += 1
        bad = run_blocking(spec, x)
        assert bad is None, (f"RTL != golden for {spec.describe()} (vth={spec.v_threshold} vr={spec.v_reset} "
                             f"rtau={spec.reciprocal_tau}) at step {bad['t']}: {bad}")

    await bridge(rtl_equals_golden)()
    dut._log.info("golden == RTL: %d examples, %d steps (%s)", ran["examples"], ran["steps"], base.describe())
