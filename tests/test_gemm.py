"""The GEMM route (golden/network/gemm.py) equals golden.network.kernels and golden.network.reference on every value.

Drawn: shapes, strides, paddings, 1-D and 2-D convolutions, input/weight/bias widths 4..16 with values aimed at the
formats' limits, bias on and off, the product and bias shifts, accumulator widths 16/32/64 (and any 8..64) so that
the wrap and its count are hit, and the im2col chunk size (several GEMM calls per layer). Then the range analysis
at its edges: the float32 and float64 limits, where a float would round and the route must not be taken.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_network_kernels import cases as layer_cases

from golden.network import gemm, kernels, ops, reference
from golden.spec import QFormat

from proofs import record


def _raw(draw, bits, shape):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    edge = st.sampled_from([lo, hi, lo + 1, hi - 1, 0, -1, 1])
    n = int(np.prod(shape))
    vals = draw(st.lists(st.one_of(st.integers(lo, hi), edge, edge), min_size=n, max_size=n))
    return np.array(vals, np.int64).reshape(shape)


acc_widths = st.one_of(st.sampled_from([16, 32, 64]), st.integers(8, 64))
widths = st.integers(4, 16)


@st.composite
def synaptic(draw):
    """(kind, args of the kernel call) for linear, conv2d (2-D, or 1-D as ops calls it) and batchnorm."""
    kind = draw(st.sampled_from(["linear", "conv2d", "conv1d", "batchnorm"]))
    xb, wb, bb = draw(widths), draw(widths), draw(widths)
    R, n_o = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    has_b = draw(st.booleans())
    shifts = (draw(st.integers(0, 20)) if has_b else 0, draw(st.integers(0, 12)))
    acc_bits = draw(acc_widths)
    b = _raw(draw, bb, (n_o,)) if has_b else np.zeros(0, np.int64)
    if kind == "linear":
        i = draw(st.integers(1, 24))
        return kind, (_raw(draw, xb, (R, i)), _raw(draw, wb, (n_o, i)), b, *shifts, acc_bits)
    if kind == "batchnorm":
        return kind, (_raw(draw, xb, (R, n_o, draw(st.integers(1, 6)))), _raw(draw, wb, (n_o,)), b, *shifts, acc_bits)
    C = draw(st.integers(1, 3))
    if kind == "conv1d":
        kh, sh, ph, H = 1, 1, 0, 1
    else:
        kh, sh, ph = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
        H = draw(st.integers(max(1, kh - 2 * ph), 7))
    kw, sw, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
    W = draw(st.integers(max(1, kw - 2 * pw), 7))
    return kind, (_raw(draw, xb, (R, C, H, W)), _raw(draw, wb, (n_o, C, kh, kw)), b, *shifts, acc_bits, sh, sw, ph, pw)


def _impl(module, kind):
    return getattr(module, "conv2d" if kind.startswith("conv") else kind)



def _three(kind, args, cols_bytes):
    """(gemm, kernels, reference) results of one call; the GEMM route with its im2col chunk at ``cols_bytes``
    (small: one GEMM per row, or per few rows)."""
    saved, gemm.COLS_BYTES = gemm.COLS_BYTES, cols_bytes
    try:
        got = _impl(gemm, kind)(*args)
    finally:
        gemm.COLS_BYTES = saved
    return got, _impl(kernels, kind)(*args), _impl(reference, kind)(*args)

@given(synaptic(), st.sampled_from([gemm.COLS_BYTES, 64, 1]))
def test_gemm_equals_kernels_and_reference(case, cols_bytes):
    """Every accumulator value and the wrap count, against the Numba kernel and the plain-Python reference."""
    kind, args = case
    (got, got_h), (want, want_h), (ref, ref_h) = _three(kind, args, cols_bytes)
    assert got.dtype == np.int64 and got.shape == want.shape == ref.shape
    differ = int((got != want).sum()) + int((got != ref).sum())
    record("gemm route", "golden.network.kernels and golden.network.reference, each value", 2 * got.size, differ,
           unit="values")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, ref)
    assert got_h == want_h == ref_h


@given(synaptic())
def test_the_drawn_layers_take_the_float_route(case):
    """The property above tests the GEMM itself, not its fallback: widths <= 16 and these fan-ins are proven."""
    kind, args = case
    x, w = args[0], args[1]
    if kind != "batchnorm":
        assert gemm.float_type(gemm.bound(w, max(-int(x.min()), int(x.max())))) is not None


SCALES = st.one_of(st.sampled_from([2, -2, 3, 7, -8, 127, -128, 2047, 32767, -32768]),  # the widths' 4..16 edges
                   st.integers(-(1 << 15), (1 << 15) - 1))


@given(synaptic(), SCALES, st.floats(0, 1), st.integers(0, 2**32 - 1), st.sampled_from([gemm.COLS_BYTES, 64]))
def test_spike_inputs_equal_kernels_and_reference(case, c, rate, seed, cols_bytes):
    """A spike train times a scale c (every input 0 or c, c of any width 4..16): the GEMM of its 0/1 indicator, times
    c in int64, equals the kernels and the reference on every value and wrap count (LONG 16/32/64 and 8..64)."""
    kind, args = case
    if kind == "batchnorm":
        return
    x = np.where(np.random.default_rng(seed).random(args[0].shape) < rate, c, 0).astype(np.int64)
    args = (x, *args[1:])
    ft, scale = gemm.route(args[1], x)
    if scale != 1:  # the indicator route was taken: its bound is the weights' row sums
        assert ft is np.float32 and gemm.float_type(gemm.bound(args[1], 1)) is np.float32
        assert abs(c) > 1 and np.count_nonzero(x) > 0
    (got, got_h), (want, want_h), (ref, ref_h) = _three(kind, args, cols_bytes)
    record("gemm route, spike inputs", "golden.network.kernels and golden.network.reference, each value",
           2 * got.size, int((got != want).sum()) + int((got != ref).sum()), unit="values")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, ref)
    assert got_h == want_h == ref_h


@pytest.mark.parametrize("x,c", [
    ([0, 0, 0], 1), ([0, 1, 1], 1), ([0, -1], 1), ([0, 5, 5, 0], 5), ([0, -7], -7), ([9, 9], 9), ([0, 5, 4], 1),
    ([5, -5], 1), ([0, 5, -5], 1), ([], 1), ([-(1 << 62), 0], -(1 << 62)),
])
def test_spike_scale(x, c):
    assert gemm.spike_scale(np.array(x, np.int64)) == c


def test_a_16_bit_spike_layer_takes_float32_where_its_plain_bound_needs_float64():
    """A 16-bit layer (weights up to 2**15, fan-in 576) fed spikes of 32767: the plain bound needs float64, the
    indicator's fits float32; the route takes float32 and equals the kernel."""
    rng = np.random.default_rng(0)
    w = rng.integers(-3000, 3001, (8, 64, 3, 3))
    x = np.where(rng.random((2, 64, 6, 6)) < 0.2, 32767, 0)
    assert gemm.float_type(gemm.bound(w, 32767)) is np.float64 and gemm.route(w, x) == (np.float32, 32767)
    args = (x, w, np.arange(8), 3, 2, 32, 1, 1, 1, 1)
    got, want = gemm.conv2d(*args), kernels.conv2d(*args)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]
    x[0, 0, 0, 0] = 5  # no longer a spike train: the plain bound, float64
    assert gemm.route(w, x) == (np.float64, 1)


def _gemm_impl():
    """golden.network.kernels with its synaptic kernels replaced by gemm's: the wiring the lead makes."""
    names = ("requant", "maxpool2d", "add", "sumpool")
    return types.SimpleNamespace(**{n: getattr(kernels, n) for n in names}, linear=gemm.linear, conv2d=gemm.conv2d,
                                 batchnorm=gemm.batchnorm)


@given(layer_cases())
def test_whole_layers_through_ops_run(case):
    """A whole layer (input quantizer, core, output quantizer, tmp_frac, the float32-bound mask) run through
    ops.run on gemm's kernels equals it on the Numba kernels: a drop-in at the layer dispatch."""
    layer, params, xs = case
    got = ops.run(_gemm_impl(), layer, params, xs, bounds=True)
    want = ops.run(kernels, layer, params, xs, bounds=True)
    record("gemm route, whole layers", "ops.run on golden.network.kernels, each output value", got["out"].size,
           int((got["out"] != want["out"]).sum()), unit="values")
    np.testing.assert_array_equal(got["out"], want["out"])
    assert got["overflow"] == want["overflow"]
    if want["f32_exact"] is not None:
        np.testing.assert_array_equal(got["f32_exact"], want["f32_exact"])


# ------------------------------------------------------------------ the range analysis at its edges
def _lin(x, w):
    x, w = np.array([x], np.int64), np.array([w], np.int64)
    got = gemm.linear(x, w, np.zeros(0, np.int64), 0, 0, 64)
    assert got == kernels.linear(x, w, np.zeros(0, np.int64), 0, 0, 64)
    return int(got[0][0, 0])


@pytest.mark.parametrize("x,w,ftype,exact", [
    ([(1 << 23) - 1, (1 << 23)], [1, 1], np.float32, (1 << 24) - 1),  # B = 2**24: float32 holds every such sum
    ([1 << 24, 1], [1, 1], np.float64, (1 << 24) + 1),  # float32 would give 2**24
    ([(1 << 52) - 1, (1 << 52) - 1], [1, 1], np.float64, (1 << 53) - 2),  # B = 2**53 - 2: still float64
    ([1 << 53, 1], [1, 1], None, (1 << 53) + 1),  # float64 would give 2**53: the Numba kernel instead
    ([(1 << 52) + 1, (1 << 52) + 1], [-1, 1], None, 0),  # B = 2**53 + 2, sum 0: the bound decides
    ([-(1 << 62), 1], [0, 3], None, 3),  # a zero weight still meets the largest |x|: B = 3 * 2**62, the kernel
])
def test_range_analysis_edges(x, w, ftype, exact):
    b = gemm.bound(np.array([w], np.int64), max(abs(v) for v in x))
    assert gemm.float_type(b) is ftype
    assert _lin(x, w) == exact


def test_choose_decides_from_the_weights_and_the_format():
    w8 = np.full((4, 4608), -128, np.int64)  # a 3x3x512 filter at the 8-bit limit: 2**24 < B
    c = gemm.choose(w8, QFormat(8, 4), "conv")
    assert (c.route, c.dtype, c.bound) == ("gemm", np.float64, 4608 * 128 * 128) and c.impl is gemm
    small = gemm.choose(w8[:, :576], QFormat(8, 4), "conv")  # 3x3x64: B = 576 * 2**14 <= 2**24
    assert small.dtype is np.float32 and small.bound == 576 * 128 * 128
    w16 = np.full((2, 4608), 1 << 15, np.int64) * -1  # 16-bit, 3x3x512: 2**15 * 2**15 * 4608 < 2**53
    assert gemm.choose(w16, QFormat(16, 8), "conv").dtype is np.float64
    wide = gemm.choose(np.full((1, 8), 1 << 40, np.int64), QFormat(16, 0), "linear")
    assert wide.route == "kernel" and wide.impl is kernels and "2**53" in wide.reason
    assert gemm.choose(np.ones(4, np.int64), QFormat(8, 0), "batchnorm").route == "kernel"
    for kind in ("linear", "conv"):
        tiny = gemm.choose(w8, QFormat(8, 4), kind, macs=gemm.MIN_MACS[kind] - 1)
        assert tiny.route == "kernel" and tiny.dtype is np.float64 and "per-call overhead" in tiny.reason
        assert gemm.choose(w8, QFormat(8, 4), kind, macs=gemm.MIN_MACS[kind]).route == "gemm"
    assert gemm.choose(w8, QFormat(8, 4), "linear", macs=10, min_macs=10).route == "gemm"


def test_read_only_weights_are_prepared_once_and_writeable_ones_every_call():
    """A Network's weights are read-only: their bound and float copy are computed once (and dropped with the array);
    a writeable array may change between calls, so it is never cached: its new values are used."""
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (3, 40))
    w = rng.integers(-128, 128, (5, 40))
    b = np.zeros(0, np.int64)
    first = gemm.linear(x, w, b, 0, 0, 64)[0]
    w[0] = 127  # writeable: changed in place
    np.testing.assert_array_equal(gemm.linear(x, w, b, 0, 0, 64)[0], kernels.linear(x, w, b, 0, 0, 64)[0])
    assert not np.array_equal(first, gemm.linear(x, w, b, 0, 0, 64)[0])
    frozen = w.copy()
    frozen.flags.writeable = False
    before = gemm.prepared_count()
    for _ in range(3):
        np.testing.assert_array_equal(gemm.linear(x, frozen, b, 0, 0, 64)[0], kernels.linear(x, w, b, 0, 0, 64)[0])
    assert gemm.prepared_count() == before + 1
    w4 = frozen.reshape(5, 4, 1, 10)  # a view (as ops makes of a Conv1d's weights): the owner's memory, its own key
    x4 = rng.integers(-128, 128, (2, 4, 1, 12))
    args = (np.zeros(0, np.int64), 0, 0, 32, 1, 1, 0, 1)
    np.testing.assert_array_equal(gemm.conv2d(x4, w4, *args)[0], kernels.conv2d(x4, w4, *args)[0])
    assert gemm.prepared_count() == before + 2
    del frozen, w4
    assert gemm.prepared_count() == before  # dropped with the array: no stale entry for a reused address


def test_row_sums_beyond_int64():
    """Weights whose row sums leave int64 are summed as Python ints (a bound that large never takes the route)."""
    w = np.array([[np.iinfo(np.int64).min, np.iinfo(np.int64).max, 5]], np.int64)
    assert gemm.row_sums(w) == [2 ** 63 + 2 ** 63 - 1 + 5]
    assert gemm.float_type(gemm.bound(w, 1)) is None
