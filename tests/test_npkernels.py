"""The numpy network family (no compile, for tiny calls) equals the plain-Python reference and the Numba kernels.

The same drawn layers as tests/test_network_kernels.py (every type, format, rounding, overflow policy, accumulator
width, stride, padding; inputs aimed at full scale), through ``ops.run`` with its float32 bounds; then each
function alone on int64 values at the edges (wraps of the accumulator and of the rounding addend), and a network
that takes the numpy family for its tiny calls gives the Numba family's trace.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_network_kernels import cases

from golden.network import graph, kernels, npkernels, ops, reference
from golden.network.demo import load, stimulus
from golden.spec import Overflow, Round


@settings(max_examples=300, deadline=None)
@given(cases())
def test_numpy_family_equals_reference(case):
    layer, params, xs = case
    got = ops.run(npkernels, layer, params, xs, bounds=True)
    want = ops.run(reference, layer, params, xs, bounds=True)
    assert got["out"].dtype == np.int64 and got["out"].shape == (xs[0].shape[0], *layer.out_shape)
    np.testing.assert_array_equal(got["out"], want["out"])
    assert got["overflow"] == want["overflow"]
    if want["f32_exact"] is None:
        assert got["f32_exact"] is None
    else:
        np.testing.assert_array_equal(got["f32_exact"], want["f32_exact"])


EDGE = st.sampled_from([-(1 << 62), (1 << 62) - 1, -(1 << 40), (1 << 40) - 1, -1, 0, 1])
# accumulator values, far beyond every pre_bits (16, 32) and acc width, yet whose negation and rounding addend
# stay in int64 (the kernels' contract: an accumulator is at most 64 bits, wrapped there)
WIDE = st.lists(st.one_of(st.integers(-(1 << 62), (1 << 62) - 1), EDGE), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(WIDE, st.integers(-8, 40), st.sampled_from([m.code for m in (Round.TRN, Round.TRN_INF, Round.RND)]),
       st.integers(2, 64), st.sampled_from([Overflow.SATURATE.code, Overflow.WRAP.code]), st.sampled_from([16, 32, 64]))
def test_requant_on_any_int64(values, s, mode, bits, policy, pre_bits):
    """The quantizer on wide accumulator values (the wraps at pre_bits and at the output width included) as the
    oracle, the Numba kernel too."""
    x = np.array(values, np.int64)
    want = reference.requant(x, s, mode, bits, policy, pre_bits)
    for impl in (npkernels, kernels):
        got = impl.requant(x, s, mode, bits, policy, pre_bits)
        assert got[0].tolist() == want[0].tolist() and got[1] == want[1]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_sums_wrap_as_the_kernels(data):
    """Linear, Conv and BatchNorm sums that leave int64 wrap modulo 2**64 in any order: numpy's equal the kernels'."""
    big = st.one_of(st.integers(-(1 << 62), 1 << 62), EDGE)
    R, i, o = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3))
    x = np.array(data.draw(st.lists(big, min_size=R * i, max_size=R * i)), np.int64).reshape(R, i)
    w = np.array(data.draw(st.lists(big, min_size=o * i, max_size=o * i)), np.int64).reshape(o, i)
    b = np.array(data.draw(st.lists(big, min_size=o, max_size=o)), np.int64)
    acc_bits = data.draw(st.integers(8, 64))
    p_shift, b_shift = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    a, n = npkernels.linear(x, w, b, b_shift, p_shift, acc_bits)
    k, m = kernels.linear(x, w, b, b_shift, p_shift, acc_bits)
    assert a.tolist() == k.tolist() and n == m
    x4, w4 = x.reshape(R, 1, 1, i), w.reshape(o, 1, 1, i)[:, :, :, : min(i, 2)]
    a, n = npkernels.conv2d(x4, w4, b, b_shift, p_shift, acc_bits, 1, 1, 0, 1)
    k, m = kernels.conv2d(x4, w4, b, b_shift, p_shift, acc_bits, 1, 1, 0, 1)
    assert a.tolist() == k.tolist() and n == m
    xb, wb = x.reshape(R, 1, i), w[:1, 0]
    a, n = npkernels.batchnorm(xb, wb, b[:1], b_shift, p_shift, acc_bits)
    k, m = kernels.batchnorm(xb, wb, b[:1], b_shift, p_shift, acc_bits)
    assert a.tolist() == k.tolist() and n == m


def test_a_network_takes_the_numpy_family_for_tiny_calls_only(monkeypatch):
    """The plan names the numpy family for layers of a tiny call, Numba for larger ones; the traces are equal."""
    net = load()
    x = stimulus(net, 2, 3, seed=4)
    tiny = net.plan(2, 3)
    assert {v for k, v in tiny.items() if "neuron" not in k} == {graph.NUMPY}
    a = net.simulate(x)
    monkeypatch.setattr(npkernels, "TINY", 0)
    other = load()
    assert {v for k, v in other.plan(2, 3).items() if "neuron" not in k} == {graph.NUMBA}
    b = other.simulate(x)
    for name, lt in a.layers.items():
        np.testing.assert_array_equal(lt.out, b.layers[name].out)
        assert lt.overflow == b.layers[name].overflow


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(-(1 << 61), 1 << 61), st.integers(-(1 << 26), 1 << 26), EDGE.filter(
    lambda v: abs(v) < 1 << 61)), min_size=1, max_size=16))
def test_round_f32_as_the_kernels_and_numpy_float32(values):
    """float32's rounding of integers (24 significant bits, ties to even), as the float32 BatchNorm takes it."""
    x = np.array(values, np.int64)
    want = kernels.round_f32(x)
    assert npkernels.round_f32(x).tolist() == want.tolist() == reference.round_f32(x).tolist()
    assert want.tolist() == [int(v) for v in x.astype(np.float32).astype(np.float64)]
