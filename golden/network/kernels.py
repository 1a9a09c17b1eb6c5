"""One Numba kernel family per layer type, over a whole batch of (sample, step) rows at once.

Every array is int64 (exact); rows are the S * T (sample, step) pairs, which a
feed-forward layer treats independently. Each core kernel returns the exact
accumulator at the layer's frac F, narrowed to ``acc_bits`` (wrap), and the
number of values that needed narrowing; :func:`requant` is a quantizer (the
input and output stages). :mod:`golden.network.reference` is the same in plain
Python; the property tests hold them equal.

Modes and policies are ints, each the one code of its :class:`~golden.spec.Round` /
:class:`~golden.spec.Overflow` member (``Round.RND.code``): the same codes the
neuron datapath packs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..kernels import jit
from ..spec import Overflow, Round

TRN, TRN_INF, RND = Round.TRN.code, Round.TRN_INF.code, Round.RND.code  # the Qualia roundtypes a layer takes
SAT, WRAP = Overflow.SATURATE.code, Overflow.WRAP.code
INT64_MIN = -(1 << 63)  # a max-pool window's start (every value is above it; torch pads with -inf)
INT32_LANES = True  # a Conv whose sums provably fit 32 bits may pass int32 weights (twice the lanes per vector)


@njit(inline="always")
def wrap_to(n, bits):
    """n wrapped to a signed ``bits``-wide integer (two's complement)."""
    if bits >= 64:
        return n
    sh = 64 - bits
    return (n << sh) >> sh


@njit(inline="always")
def rescale(n, s, mode, pre_bits=64):
    """n * 2**-s rounded (s > 0: TRN floor, TRN_INF ceil, RND floor(. + 1/2)); n << -s when s <= 0.

    ``pre_bits``: the width the shift-left / the rounding addend is computed in (number.hh ``scale`` on a
    LONG_NUMBER_T: ``n << -s`` and ``n + (1 << (s - 1))`` wrap there); 64 = exact.
    """
    if s <= 0:
        return wrap_to(n << -s, pre_bits)
    if mode == RND:
        return wrap_to(n + (np.int64(1) << (s - 1)), pre_bits) >> s
    if mode == TRN:
        return n >> s
    return -((-n) >> s)  # TRN_INF


@njit(inline="always")
def narrow(n, bits, policy):
    """(n narrowed to a signed ``bits``-wide integer, 1 if it had to be)."""
    if bits >= 64:
        return n, 0
    hi = (np.int64(1) << (bits - 1)) - 1
    if -hi - 1 <= n <= hi:
        return n, 0
    if policy == SAT:
        return min(max(n, -hi - 1), hi), 1
    sh = 64 - bits
    return (n << sh) >> sh, 1


@jit()
def requant_flat(x, s, mode, bits, policy, pre_bits):
    """:func:`requant` on a 1-D int64 array: the one compiled quantizer, whatever the shape it serves."""
    out = np.empty(x.size, np.int64)
    hits = 0
    for i in range(x.size):
        out[i], h = narrow(rescale(x[i], s, mode, pre_bits), bits, policy)
        hits += h
    return out, hits


def requant(x, s, mode, bits, policy, pre_bits=64):
    """Elementwise ``N(R(x, s))``: a quantizer on raw values (input stage, output stage, Identity); (values, number
    narrowed). Any shape, through one compiled kernel (:func:`requant_flat`): a network compiles it once, not once
    per rank."""
    x = np.ascontiguousarray(x, np.int64)
    out, hits = requant_flat(x.reshape(-1), int(s), int(mode), int(bits), int(policy), int(pre_bits))
    return out.reshape(x.shape), hits


@jit()
def round_f32(x):
    """Each value rounded to 24 significant bits, ties to even: what float32 makes of an integer multiple of a
    power of two (IEEE 754 round to nearest; the identity below 2**24). The float32 BatchNorm's roundings."""
    flat = x.reshape(-1)
    out = np.empty(flat.size, np.int64)
    for i in range(flat.size):
        n = flat[i]
        a = -n if n < 0 else n
        e = 0
        while (a >> e) >= (np.int64(1) << 24):
            e += 1
        if e:
            q = a >> e
            r = a - (q << e)
            half = np.int64(1) << (e - 1)
            if r > half or (r == half and (q & 1) == 1):
                q += 1
            a = q << e
        out[i] = -a if n < 0 else a
    return out.reshape(x.shape)


@jit()
def linear(x, w, b, b_shift, p_shift, acc_bits):
    """x (R, I), w (O, I), b (O,) or empty: acc (R, O) = sum w x << p_shift + b << b_shift, narrowed (wrap)."""
    R, I = x.shape
    O = w.shape[0]
    acc = np.empty((R, O), np.int64)
    hits = 0
    for r in range(R):
        for o in range(O):
            a = np.int64(0)
            for i in range(I):
                a += w[o, i] * x[r, i]
            a = a << p_shift
            if b.size:
                a += b[o] << b_shift
            acc[r, o], h = narrow(a, acc_bits, WRAP)
            hits += h
    return acc, hits


ROW_BLOCK = 64  # rows a conv handles at once, side by side (its block of inputs and sums stays in L1/L2)


@jit()
def conv2d(x, w, b, b_shift, p_shift, acc_bits, sh, sw, ph, pw):
    """x (R, C, H, W), w (O, C, KH, KW): zero-padded, strided cross-correlation + bias; (R, O, OH, OW).

    Rows are the innermost axis of the sums (a block of ROW_BLOCK rows transposed in, every tap one vector
    multiply-add over the block): the same exact int64 sums as the plain loop, in another order.
    """
    R, C, H, W = x.shape
    O, _, KH, KW = w.shape
    OH, OW = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
    acc = np.empty((R, O, OH, OW), np.int64)
    xt = np.empty((C, H, W, ROW_BLOCK), w.dtype)  # int32 when the caller proved every sum fits (layers.Conv.lanes)
    at = np.empty((O, OH, OW, ROW_BLOCK), w.dtype)
    sh_acc = max(64 - acc_bits, 0)
    hits = 0
    for r0 in range(0, R, ROW_BLOCK):
        n = min(ROW_BLOCK, R - r0)
        for k in range(n):
            for c in range(C):
                for y in range(H):
                    for z in range(W):
                        xt[c, y, z, k] = x[r0 + k, c, y, z]
        for o in range(O):
            for i in range(OH):
                for j in range(OW):
                    a = at[o, i, j]
                    a[:n] = 0
                    for c in range(C):
                        for ki in range(KH):
                            y = i * sh + ki - ph
                            if y < 0 or y >= H:
                                continue
                            for kj in range(KW):
                                z = j * sw + kj - pw
                                if 0 <= z < W:
                                    wv = w[o, c, ki, kj]
                                    xs = xt[c, y, z]
                                    for k in range(n):
                                        a[k] += wv * xs[k]
        for o in range(O):
            bo = b[o] << b_shift if b.size else np.int64(0)
            for i in range(OH):
                for j in range(OW):
                    for k in range(n):
                        a = (np.int64(at[o, i, j, k]) << p_shift) + bo
                        wrapped = (a << sh_acc) >> sh_acc  # narrow(a, acc_bits, WRAP), branch-free
                        hits += wrapped != a
                        acc[r0 + k, o, i, j] = wrapped
    return acc, hits


@jit()
def batchnorm(x, w, b, b_shift, p_shift, acc_bits):
    """x (R, C, L): acc = x * w[c] << p_shift + b[c] << b_shift."""
    R, C, L = x.shape
    acc = np.empty((R, C, L), np.int64)
    hits = 0
    for r in range(R):
        for c in range(C):
            for i in range(L):
                a = (x[r, c, i] * w[c]) << p_shift
                if b.size:
                    a += b[c] << b_shift
                acc[r, c, i], h = narrow(a, acc_bits, WRAP)
                hits += h
    return acc, hits


@jit()
def maxpool2d(x, kh, kw, sh, sw, ph, pw):
    """x (R, C, H, W): the max over each window, padding ignored (torch pads with -inf)."""
    R, C, H, W = x.shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    out = np.empty((R, C, OH, OW), np.int64)
    for r in range(R):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    m = INT64_MIN
                    for ki in range(kh):
                        y = i * sh + ki - ph
                        if 0 <= y < H:
                            for kj in range(kw):
                                z = j * sw + kj - pw
                                if 0 <= z < W:
                                    m = max(m, x[r, c, y, z])
                    out[r, c, i, j] = m
    return out


@jit()
def add(a, b, sa, sb):
    """Elementwise (a << sa) + (b << sb)."""
    fa, fb = a.reshape(-1), b.reshape(-1)
    out = np.empty(fa.size, np.int64)
    for i in range(fa.size):
        out[i] = (fa[i] << sa) + (fb[i] << sb)
    return out.reshape(a.shape)


@jit()
def sumpool(x):
    """x (R, C, L): the exact sum over L."""
    R, C, L = x.shape
    out = np.zeros((R, C), np.int64)
    for r in range(R):
        for c in range(C):
            a = np.int64(0)
            for i in range(L):
                a += x[r, c, i]
            out[r, c] = a
    return out
