"""The layer kernels in plain Python, written from the definitions: the spec to read.

Same functions and signatures as :mod:`golden.network.kernels`; Python ints and
``fractions.Fraction`` throughout (no shifts of negative numbers to reason about).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

TRN, TRN_INF, RND = 0, 1, 2
SAT, WRAP = 0, 1


def rescale(n: int, s: int, mode: int, pre_bits: int = 64) -> int:
    """n * 2**-s rounded: floor, ceil, or floor(y + 1/2); the shifted value / the rounding sum live in pre_bits."""
    if s <= 0:
        return narrow(n * 2 ** -s, pre_bits, WRAP)[0]
    if mode == RND:
        return math.floor(Fraction(narrow(n + 2 ** (s - 1), pre_bits, WRAP)[0], 2 ** s))
    y = Fraction(n) / Fraction(2) ** s
    if mode == TRN:
        return math.floor(y)
    return math.ceil(y)


def narrow(n: int, bits: int, policy: int) -> tuple[int, int]:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if lo <= n <= hi:
        return n, 0
    if policy == SAT:
        return (lo if n < lo else hi), 1
    m = (n - lo) % 2 ** bits + lo
    return m, 1


def _arr(values, shape):
    return np.array(values, dtype=np.int64).reshape(shape)


def requant(x, s, mode, bits, policy, pre_bits=64):
    res = [narrow(rescale(int(v), s, mode, pre_bits), bits, policy) for v in np.asarray(x).reshape(-1)]
    return _arr([r[0] for r in res], np.shape(x)), sum(r[1] for r in res)


def linear(x, w, b, b_shift, p_shift, acc_bits):
    R, I = x.shape
    O = w.shape[0]
    out, hits = [], 0
    for r in range(R):
        for o in range(O):
            a = sum(int(w[o, i]) * int(x[r, i]) for i in range(I)) * 2 ** p_shift
            if len(b):
                a += int(b[o]) * 2 ** b_shift
            v, h = narrow(a, acc_bits, WRAP)
            out.append(v)
            hits += h
    return _arr(out, (R, O)), hits


def conv2d(x, w, b, b_shift, p_shift, acc_bits, sh, sw, ph, pw):
    R, C, H, W = x.shape
    O, _, KH, KW = w.shape
    padded = np.zeros((R, C, H + 2 * ph, W + 2 * pw), dtype=object)
    padded[:, :, ph:ph + H, pw:pw + W] = x.astype(object)
    OH, OW = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
    out, hits = [], 0
    for r in range(R):
        for o in range(O):
            for i in range(OH):
                for j in range(OW):
                    window = padded[r, :, i * sh:i * sh + KH, j * sw:j * sw + KW]
                    a = sum(int(p) * int(q) for p, q in zip(window.reshape(-1), w[o].reshape(-1))) * 2 ** p_shift
                    if len(b):
                        a += int(b[o]) * 2 ** b_shift
                    v, h = narrow(a, acc_bits, WRAP)
                    out.append(v)
                    hits += h
    return _arr(out, (R, O, OH, OW)), hits


def batchnorm(x, w, b, b_shift, p_shift, acc_bits):
    R, C, L = x.shape
    out, hits = [], 0
    for r in range(R):
        for c in range(C):
            for i in range(L):
                a = int(x[r, c, i]) * int(w[c]) * 2 ** p_shift + (int(b[c]) * 2 ** b_shift if len(b) else 0)
                v, h = narrow(a, acc_bits, WRAP)
                out.append(v)
                hits += h
    return _arr(out, (R, C, L)), hits


def maxpool2d(x, kh, kw, sh, sw, ph, pw):
    R, C, H, W = x.shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    out = []
    for r in range(R):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    cells = [int(x[r, c, y, z]) for y in range(i * sh - ph, i * sh - ph + kh)
                             for z in range(j * sw - pw, j * sw - pw + kw) if 0 <= y < H and 0 <= z < W]
                    out.append(max(cells))
    return _arr(out, (R, C, OH, OW))


def add(a, b, sa, sb):
    vals = [int(p) * 2 ** sa + int(q) * 2 ** sb for p, q in zip(np.asarray(a).reshape(-1), np.asarray(b).reshape(-1))]
    return _arr(vals, np.shape(a))


def sumpool(x):
    R, C, _L = x.shape
    return _arr([sum(int(v) for v in x[r, c]) for r in range(R) for c in range(C)], (R, C))
