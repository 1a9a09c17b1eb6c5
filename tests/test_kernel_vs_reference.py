"""The Numba kernels equal the executable reference, for arbitrary specs and stimuli."""

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import golden
from golden import profiles, reference
from golden.spec import Kind
from golden.strategies import specs, stimuli

from proofs import record


def run_both(spec, x):
    try:
        ref = reference.simulate(spec, x)
    except reference.Overflow as e:
        with pytest.raises(golden.SimulationOverflow) as info:
            golden.simulate(spec, x)
        assert e.stage in info.value.stages and (info.value.t, info.value.neuron) == (e.t, e.neuron)
        return None
    trace = golden.simulate(spec, x)
    note(spec.to_toml())
    note(f"x = {x.tolist()}")
    differ = (trace.out != ref["out"]) | (trace.v != ref["v"]) | (trace.spikes != ref["spikes"])
    record("kernels", "golden.reference, the plain-Python oracle", x.size, int(differ.sum()))
    for field in ("out", "v", "spikes"):
        got, want = getattr(trace, field), ref[field]
        if not np.array_equal(got, want):
            t, n = np.argwhere(got != want)[0]
            raise AssertionError(f"{field} differs first at t={t} neuron={n}: kernel {got[t, n]} "
                                 f"reference {want[t, n]}")
    assert trace.overflow == ref["overflow"]
    return trace


@given(st.data())
def test_kernel_equals_reference_int(data):
    spec = data.draw(specs(arith=st.just("int")))
    run_both(spec, data.draw(stimuli(spec)))


@given(st.data())
def test_kernel_equals_reference_float32(data):
    spec = data.draw(specs(arith=st.just("float32")))
    run_both(spec, data.draw(stimuli(spec)))


@given(st.data())
def test_simulator_steps_equal_simulate(data):
    spec = data.draw(specs().filter(lambda s: "strict" not in (s.v_overflow, s.acc_overflow)))
    x = data.draw(stimuli(spec))
    trace = golden.simulate(spec, x)
    sim = golden.Simulator(spec, x.shape[1])
    for t in range(x.shape[0]):
        assert np.array_equal(sim.step(x[t]), trace.out[t])
        assert np.array_equal(sim.v, trace.v[t])
        assert np.array_equal(sim.spikes, trace.spikes[t])
    assert sim.overflow == trace.overflow
    sim.reset()
    assert np.array_equal(sim.v, np.full(x.shape[1], spec.v_start))


@pytest.mark.parametrize("profile,kind", [(p, k.value) for p in golden.PROFILES for k in profiles.KINDS[p]])
def test_large_specialised_and_parallel_kernels_agree(profile, kind):
    spec = golden.make(profile, kind, **({"v_reset": None} if Kind(kind).soft_reset_only else {}))
    rng = np.random.default_rng(1)
    x = rng.integers(spec.fmt_in.min, spec.fmt_in.max + 1, (16, 140_000)).astype(np.int8)
    par = golden.simulate(spec, x)  # >= 32 blocks: threaded, specialised
    ser = golden.simulate(spec, x, parallel=False)  # generic
    assert np.array_equal(par.out, ser.out) and np.array_equal(par.v, ser.v)
    assert par.overflow == ser.overflow
    small = reference.simulate(spec, x[:, :300])
    differ = (par.v[:, :300] != small["v"]) | (par.out[:, :300] != small["out"])
    record("kernels", "golden.reference, the plain-Python oracle", differ.size, int(differ.sum()))
    assert np.array_equal(par.v[:, :300], small["v"]) and np.array_equal(par.out[:, :300], small["out"])
