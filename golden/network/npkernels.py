"""The network kernel family in plain numpy: no compile, for calls too small to pay for one (issue 20, item 2).

Drop-in twins of :mod:`golden.network.kernels` (same functions, arguments and ``(values, count)`` results, bit
for bit), which :meth:`golden.network.graph.Network.plan` takes for a layer whose share of one call is at most
:data:`TINY` output values: a first ``golden demo --network`` then compiles no layer kernel at all. Only the layer
types of ``graph.NUMPY_TYPES`` take it (a type added elsewhere, or a subclass, keeps the Numba family).

**Why it is exact.** Every value is an int64 array and every operation is the kernels' own, elementwise:
shifts, adds, multiplies, compares, all modulo 2**64 as the Numba kernels compute them; the sums of Linear,
Conv and GlobalSumPool are numpy's integer ``matmul`` / ``sum``, exact modulo 2**64, so their order (numpy's,
not the kernels') changes nothing: modular addition is associative and commutative. ``tests/test_npkernels.py``
holds this family equal to :mod:`golden.network.reference` (the oracle) on the same drawn layers as the kernels.
"""

from __future__ import annotations

import numpy as np

from ..spec import Overflow, Round

TRN, TRN_INF, RND = Round.TRN.code, Round.TRN_INF.code, Round.RND.code
SAT = Overflow.SATURATE.code
# output values of one layer in one call up to which it runs here: a first demo's every layer (8 samples x 8 steps:
# at most 4096), never a benchmark's (32 x 100 rows: a Numba kernel's single pass beats numpy's few there)
TINY = 1 << 13
INT64_MIN = np.iinfo(np.int64).min


def wrap_to(n, bits: int):
    """n wrapped to a signed ``bits``-wide integer (two's complement)."""
    if bits >= 64:
        return n
    sh = 64 - bits
    return (n << sh) >> sh


def rescale(n, s: int, mode: int, pre_bits: int = 64):
    """n * 2**-s rounded (TRN floor, TRN_INF ceil, RND floor(. + 1/2)); n << -s when s <= 0; in ``pre_bits``."""
    if s <= 0:
        return wrap_to(n << -s, pre_bits)
    if mode == RND:
        return wrap_to(n + (np.int64(1) << np.int64(s - 1)), pre_bits) >> s
    if mode == TRN:
        return n >> s
    return -((-n) >> s)  # TRN_INF


def narrow(n, bits: int, policy: int):
    """(n narrowed to a signed ``bits``-wide integer, how many values had to be)."""
    if bits >= 64:
        return n, 0
    hi = (1 << (bits - 1)) - 1
    out = np.clip(n, -hi - 1, hi) if policy == SAT else wrap_to(n, bits)
    return out, int(np.count_nonzero(out != n))


def _int64(x):
    return np.ascontiguousarray(x, np.int64)


def requant(x, s, mode, bits, policy, pre_bits=64):
    """Elementwise ``N(R(x, s))``: a quantizer on raw values."""
    return narrow(rescale(_int64(x), int(s), int(mode), int(pre_bits)), int(bits), int(policy))


def round_f32(x):
    """Each value rounded to 24 significant bits, ties to even (what float32 makes of an integer multiple of a power
    of two): the kernels' ``round_f32``, elementwise."""
    n = _int64(x)
    a = np.abs(n)
    e = np.zeros_like(a)
    while True:  # e: the bits below float32's 24 significant ones (at most 39 passes for values below 2**63)
        big = (a >> e) >= (1 << 24)
        if not big.any():
            break
        e += big
    q = a >> e
    r = a - (q << e)
    half = np.where(e > 0, np.left_shift(1, np.maximum(e - 1, 0)), 0)
    up = (e > 0) & ((r > half) | ((r == half) & ((q & 1) == 1)))
    a = (q + up) << e
    return np.where(n < 0, -a, a).reshape(np.shape(x))


def _finish(a, b, b_shift: int, p_shift: int, acc_bits: int, axis: int):
    """``(a << p_shift) + (b << b_shift)`` (b along ``axis``), wrapped to ``acc_bits``; (acc, number wrapped)."""
    a = a << p_shift
    if b.size:
        shape = [1] * a.ndim
        shape[axis] = b.size
        a = a + (_int64(b) << b_shift).reshape(shape)
    return narrow(a, acc_bits, Overflow.WRAP.code)


def linear(x, w, b, b_shift, p_shift, acc_bits):
    """x (R, I), w (O, I): acc (R, O) = sum w x << p_shift + b << b_shift, narrowed (wrap)."""
    return _finish(_int64(x) @ _int64(w).T, b, b_shift, p_shift, acc_bits, 1)


def conv2d(x, w, b, b_shift, p_shift, acc_bits, sh, sw, ph, pw):
    """x (R, C, H, W), w (O, C, KH, KW): zero-padded, strided cross-correlation + bias; (R, O, OH, OW)."""
    x, w = _int64(x), _int64(w)
    R, C, H, W = x.shape
    NO, _, KH, KW = w.shape
    OH, OW = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
    xp = np.zeros((R, C, H + 2 * ph, W + 2 * pw), np.int64)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    win = np.lib.stride_tricks.sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :OH, :OW]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(R * OH * OW, C * KH * KW)  # a row per output position
    acc = (cols @ w.reshape(NO, -1).T).reshape(R, OH, OW, NO).transpose(0, 3, 1, 2)
    return _finish(np.ascontiguousarray(acc), b, b_shift, p_shift, acc_bits, 1)


def batchnorm(x, w, b, b_shift, p_shift, acc_bits):
    """x (R, C, L): acc = x * w[c] << p_shift + b[c] << b_shift."""
    return _finish(_int64(x) * _int64(w)[None, :, None], b, b_shift, p_shift, acc_bits, 1)


def maxpool2d(x, kh, kw, sh, sw, ph, pw):
    """x (R, C, H, W): the max over each window, padding ignored (torch pads with -inf)."""
    x = _int64(x)
    R, C, H, W = x.shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    xp = np.full((R, C, H + 2 * ph, W + 2 * pw), INT64_MIN, np.int64)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :OH, :OW]
    return np.ascontiguousarray(win.max(axis=(4, 5)))


def add(a, b, sa, sb):
    """Elementwise (a << sa) + (b << sb)."""
    return (_int64(a) << sa) + (_int64(b) << sb)


def sumpool(x):
    """x (R, C, L): the exact sum over L."""
    return _int64(x).sum(axis=2)
