"""The layer kernels in plain Python, written from the definitions: the spec to read.

Same functions and signatures as :mod:`golden.network.kernels`; Python ints throughout, the
requantization (``rescale``, ``narrow``) :mod:`golden.quant`'s: the oracle shares nothing with the
fast path. Modes and policies arrive as the kernels take them, ``Round.X.code`` / ``Overflow.X.code``.
"""

from __future__ import annotations

import numpy as np

from .. import quant
from ..spec import Overflow, Round

ROUND_OF = {m.code: m for m in Round}
POLICY_OF = {m.code: m for m in Overflow}
SAT, WRAP = Overflow.SATURATE.code, Overflow.WRAP.code


def rescale(n: int, s: int, mode: int, pre_bits: int = 64) -> int:
    """n * 2**-s rounded by the mode of code ``mode``; the shifted value / the rounding sum wrap in pre_bits."""
    return quant.rescale(n, s, ROUND_OF[mode], lambda m: quant.wrap(m, pre_bits))


def narrow(n: int, bits: int, policy: int) -> tuple[int, int]:
    """(n narrowed to ``bits`` by the policy of code ``policy``, 1 if it had to be)."""
    m, hit = quant.narrow(n, bits, POLICY_OF[policy])
    return m, int(hit)


def _arr(values, shape):
    return np.array(values, dtype=np.int64).reshape(shape)


def requant(x, s, mode, bits, policy, pre_bits=64):
    res = [narrow(rescale(int(v), s, mode, pre_bits), bits, policy) for v in np.asarray(x).reshape(-1)]
    return _arr([r[0] for r in res], np.shape(x)), sum(r[1] for r in res)


def round_f32(x):
    """float32 rounding of integers, from the definition: the nearest value with at most 24 significant bits (a
    multiple of 2**e, e = bit length - 24), ties to the even multiple."""
    def one(n: int) -> int:
        e = max(abs(n).bit_length() - 24, 0)
        q, r = divmod(abs(n), 1 << e)
        if 2 * r > 1 << e or (2 * r == 1 << e and q % 2):
            q += 1
        return (q << e) * (1 if n >= 0 else -1)

    return _arr([one(int(v)) for v in np.asarray(x).reshape(-1)], np.shape(x))


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
