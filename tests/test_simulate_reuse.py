"""Reused buffers: ``Simulator.step(x_t, out=)``, ``simulate(spec, x, out=trace)``, ``Trace.empty``; the
Simulator's kernel chosen by its lifetime; one clean line for every bad buffer."""

import numpy as np
import pytest

import golden
from golden import kernels
from golden.errors import GoldenError
from golden.simulate import SPECIALISE_NEURONS

SPEC = golden.codegen("LIF", width=16, q_v=6, tau=3.0)


def _x(t, n, seed=0, spec=SPEC):
    rng = np.random.default_rng(seed)
    return rng.integers(spec.fmt_in.min, spec.fmt_in.max + 1, (t, n)).astype(spec.fmt_in.dtype)


def test_reused_trace_equals_a_fresh_one_and_is_returned():
    x = _x(20, 300)
    want = golden.simulate(SPEC, x)
    trace = golden.Trace.empty(SPEC, x.shape)
    trace.out[...], trace.v[...] = 7, 7  # stale values must all be overwritten
    for seed in (0, 1):  # reused twice: the second run leaves nothing of the first
        x = _x(20, 300, seed)
        want = golden.simulate(SPEC, x)
        got = golden.simulate(SPEC, x, out=trace)
        assert got is trace
        assert np.array_equal(got.out, want.out) and np.array_equal(got.v, want.v)
        assert np.array_equal(got.spikes, want.spikes) and got.overflow == want.overflow


def test_reused_trace_of_a_2d_layer_and_v0():
    x = _x(9, 24).reshape(9, 4, 6)
    v0 = np.arange(24, dtype=np.int16).reshape(4, 6)
    want = golden.simulate(SPEC, x, v0)
    got = golden.simulate(SPEC, x, v0, out=want.__class__.empty(SPEC, x.shape))
    assert np.array_equal(got.v, want.v) and np.array_equal(got.out, want.out)


def test_step_out_buffer_equals_simulate():
    x = _x(30, 100)
    trace = golden.simulate(SPEC, x)
    sim, o = golden.Simulator(SPEC, 100), np.empty(100, SPEC.fmt_out.dtype)
    for t in range(30):
        assert sim.step(x[t], out=o) is o
        assert np.array_equal(o, trace.out[t]) and np.array_equal(sim.v, trace.v[t])
        assert np.array_equal(sim.spikes, trace.spikes[t])
    assert sim.overflow == trace.overflow


def test_simulator_chooses_its_kernel_on_construction_and_keeps_it(monkeypatch):
    """A wide layer takes the specialised kernel at once, a narrow one the generic kernel for its whole life: no
    step ever compiles (the old lifetime switch compiled in mid-run); ``specialise=True`` asks for it up front.
    Both give the trace of ``simulate``."""
    assert golden.Simulator(SPEC, SPECIALISE_NEURONS).specialised
    spec = golden.hardware("LIF", bits=8, q_v=6, tau=3.0)  # a spec nothing here has specialised yet
    monkeypatch.setattr(kernels, "_made_for", lambda code, c: None)
    made = []
    real = kernels.specialised
    monkeypatch.setattr(kernels, "specialised", lambda code, c: made.append(code) or real(code, c))
    x = _x(80, 10, spec=spec)
    trace = golden.simulate(spec, x, parallel=False)
    narrow, eager = golden.Simulator(spec, 10), golden.Simulator(spec, 10, specialise=True)
    assert not narrow.specialised and eager.specialised and len(made) == 1  # chosen (and compiled) on construction
    for t in range(80):
        for sim in (narrow, eager):
            assert np.array_equal(sim.step(x[t]), trace.out[t]) and np.array_equal(sim.v, trace.v[t])
    assert not narrow.specialised and len(made) == 1  # 800 neuron-steps later: no switch, nothing compiled
    assert narrow.overflow == trace.overflow == eager.overflow
    with pytest.raises(golden.SpecError, match="specialise: expected True, False or None"):
        golden.Simulator(spec, 10, specialise="yes")


def test_step_input_of_another_dtype_or_a_strided_view():
    x = _x(5, 64)
    want = golden.simulate(SPEC, x[:, ::2].copy())
    wide, strided = golden.Simulator(SPEC, 32), golden.Simulator(SPEC, 32)
    for t in range(5):
        assert np.array_equal(wide.step(x[t, ::2].astype(np.int64)), want.out[t])  # another integer dtype
        assert np.array_equal(strided.step(x[t, ::2]), want.out[t])  # a strided view of the right dtype
        assert np.array_equal(wide.v, want.v[t]) and np.array_equal(strided.v, want.v[t])


BAD_STEP_OUT = [
    ("a list", [0] * 8, "out: cannot hold the results: expected a numpy array, got list"),
    ("wrong shape", np.zeros(9, np.int16), r"out: cannot hold the results: expected shape \(8,\), got \(9,\)"),
    ("wrong dtype", np.zeros(8, np.int32), "out: cannot hold the results: expected dtype int16, got int32"),
    ("read-only", np.zeros(8, np.int16), "out: cannot hold the results: the array is read-only"),
    ("strided", np.zeros(16, np.int16)[::2], "out: cannot hold the results: expected a C-contiguous array"),
]


@pytest.mark.parametrize("what,out,message", BAD_STEP_OUT, ids=[b[0] for b in BAD_STEP_OUT])
def test_step_bad_out(what, out, message):
    if what == "read-only":
        out.flags.writeable = False
    sim = golden.Simulator(SPEC, 8)
    with pytest.raises(GoldenError, match=message) as e:
        sim.step(np.zeros(8, np.int16), out=out)
    assert "\n" not in str(e.value)
    assert sim.t == 0 and np.array_equal(sim.v, np.zeros(8))  # nothing stepped


def _trace(**arrays):
    t = golden.Trace.empty(SPEC, (4, 8))
    for k, v in arrays.items():
        setattr(t, k, v)
    return t


def _read_only():
    t = golden.Trace.empty(SPEC, (4, 8))
    t.v.flags.writeable = False
    return t


def _shared():
    t = golden.Trace.empty(SPEC, (4, 8))
    t.v = t.out
    return t


BAD_TRACE = [
    ("an array", lambda: np.zeros((4, 8), np.int16), "out: expected a golden.Trace to reuse"),
    ("another spec", lambda: golden.Trace.empty(golden.codegen("LIF"), (4, 8)), "out: this Trace was made for "
                                                                                  "another spec"),
    ("wrong T", lambda: golden.Trace.empty(SPEC, (5, 8)), r"out.out: cannot hold the results: expected shape \(4, 8\)"),
    ("wrong v dtype", lambda: _trace(v=np.zeros((4, 8), np.int64)), "out.v: cannot hold the results: expected dtype "
                                                                     "int16, got int64"),
    ("spikes not bool", lambda: _trace(spikes=np.zeros((4, 8), np.uint8)), "out.spikes: cannot hold the results: "
                                                                           "expected dtype bool"),
    ("read-only v", _read_only, "out.v: cannot hold the results: the array is read-only"),
    ("strided out", lambda: _trace(out=np.zeros((4, 16), np.int16)[:, ::2]), "out.out: cannot hold the results: "
                                                                              "expected a C-contiguous array"),
    ("v is out", _shared, "out: its out, v and spikes arrays overlap"),
    ("None arrays", lambda: _trace(v=None), "out.v: cannot hold the results: expected a numpy array, got NoneType"),
]


@pytest.mark.parametrize("what,make,message", BAD_TRACE, ids=[b[0] for b in BAD_TRACE])
def test_simulate_bad_out(what, make, message):
    out = make()
    before = None if not isinstance(out, golden.Trace) else (out.out.copy() if isinstance(out.out, np.ndarray)
                                                            else None)
    with pytest.raises(GoldenError, match=message) as e:
        golden.simulate(SPEC, np.ones((4, 8), np.int16), out=out)
    assert "\n" not in str(e.value)
    if before is not None:
        assert np.array_equal(out.out, before)  # nothing written


@pytest.mark.parametrize("spec,shape,message", [
    ("codegen", (4, 8), "spec: expected a golden.Spec, got str"),
    (SPEC, 8, r"shape: expected \(T, \*neurons\), got \(8,\)"),
    (SPEC, (4, 0), "shape: expected a positive number of neurons"),
])
def test_trace_empty_bad_input(spec, shape, message):
    with pytest.raises(GoldenError, match=message):
        golden.Trace.empty(spec, shape)


@pytest.mark.parametrize("n", [8, SPECIALISE_NEURONS])  # the generic kernel and the specialised one
def test_step_strict_overflow_names_step_and_neuron(n):
    spec = golden.hardware("IF", bits=8, q_v=6).replace(v_overflow="strict")
    x = np.full((6, n), -60, np.int8)  # -60, -120, then -180: below Q8.6 at t = 2
    x[:, : n - 1] = 0
    with pytest.raises(golden.SimulationOverflow) as want:
        golden.simulate(spec, x)
    sim = golden.Simulator(spec, n)
    with pytest.raises(golden.SimulationOverflow) as got:
        for t in range(6):
            sim.step(x[t])
    assert (got.value.t, got.value.neuron, got.value.stages) == (want.value.t, want.value.neuron, want.value.stages)
    assert got.value.neuron == n - 1 and got.value.t == 2 and sim.t == 2
