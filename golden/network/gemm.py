"""The synaptic layers as exact integer GEMMs on BLAS, in floating point, where a range analysis proves them exact.

Drop-in twins of :func:`golden.network.kernels.linear`, :func:`~golden.network.kernels.conv2d` and
:func:`~golden.network.kernels.batchnorm`: same arguments, same ``(acc, wraps)``, bit for bit.

**Why it is exact.** Every product ``w * x`` and every partial sum of a row's products is an integer of
magnitude at most ``B = max_o sum_i |w[o, i]| * max |x|``, whatever the order BLAS sums in (blocking, FMA,
threads). A float with a p-bit significand holds every integer of magnitude ``<= 2**p`` exactly, so while
``B <= 2**24`` (float32) or ``B <= 2**53`` (float64) no operation of the GEMM ever rounds, and its result *is*
the exact integer sum. :func:`bound` computes B from the layer's real weights and the input's magnitude;
:func:`choose` picks float32, float64 or the Numba kernel from it (the input format's largest magnitude,
before the run); and every call checks B again on the values it really got, falling back to the Numba
kernel where the float route is not proven (so these functions are exact on any input).

**Spike inputs.** Most synaptic layers after the first take a neuron's output: 0 or one value ``c`` (a spike times
its scale, e.g. 32767 in a 16-bit model), so every sum is ``c`` times a sum of weights over the active inputs.
:func:`spike_scale` finds such an input (every value 0 or ``c``); the GEMM then multiplies the 0/1 indicator,
whose bound is ``max_o sum_i |w[o, i]|`` (a 16-bit layer's ``2**28..2**39`` becomes ``2**13..2**24``: float32
instead of float64), and ``finish`` multiplies each exact sum by ``c`` in int64, where it is exactly the kernel's
sum (``|c * sum| <= B``, the bound of the plain route, far below 2**63).

**After the sum**, in int64 exactly as the Numba kernel does it: ``(sum << p_shift) + (b << b_shift)``
(two's-complement arithmetic, which wraps modulo 2**64 in both), then the wrap to ``acc_bits``, the C's
LONG_NUMBER_T. ``wraps`` counts what the kernels count: the *final* values (one per output) that
needed narrowing, not partial sums: the kernels sum exactly in int64 and narrow once, at the end
(:func:`golden.network.kernels.narrow`, its branch-free twin in ``conv2d``). Wrapping is modular, so the
wrapped value is the same whichever way one gets there; the count is of outputs, so it is the same too.

**Convolutions** by im2col: the zero-padded input's windows (stride, padding; 1-D as a 2-D with one row,
as :mod:`golden.network.ops` calls it) laid out as a (C*KH*KW, rows*OH*OW) matrix in chunks of
:data:`COLS_BYTES`, one GEMM ``W (O, C*KH*KW) @ cols`` per chunk, written back channels-first.

**Threads**: BLAS runs on ``golden.kernels.THREADS`` threads (GOLDEN_THREADS) when threadpoolctl is
installed; otherwise on the BLAS library's own setting (OPENBLAS_NUM_THREADS and the like).
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import numpy as np

from .. import kernels as neuron_kernels
from . import kernels

EXACT = {np.float32: 1 << 24, np.float64: 1 << 53}  # every integer of magnitude <= this is a float of the type
# multiply-accumulates per row below which a GEMM call's fixed cost (tens of us) outweighs it: measured at real sizes
# (docs/bench.md), the Numba conv kernel runs 1-4e8 MAC/s, so a GEMM pays from a few thousand MACs per row; the
# Numba linear kernel runs 1-3e9 MAC/s (its loop vectorises), so only wide Linear layers gain (512x512: 1.7-2.4x)
MIN_MACS = {"conv": 1 << 12, "linear": 1 << 16}
COLS_BYTES = 1 << 25  # the im2col matrix of one GEMM call: at most 32 MiB (rows are chunked to stay under it)
_INT64_MIN = np.iinfo(np.int64).min


# ------------------------------------------------------------------ the range analysis
def row_sums(w) -> list:
    """sum_i |w[o, i]| per output channel o (any weight shape (O, ...)), as exact Python ints."""
    w = np.asarray(w)
    if w.size == 0:
        return [0] * (w.shape[0] if w.ndim else 0)
    flat = w.reshape(w.shape[0], -1)
    peak = max(abs(int(flat.max())), abs(int(flat.min())))
    if peak * flat.shape[1] < 1 << 62:  # int64 holds every |w| and every row sum
        return [int(s) for s in np.abs(flat.astype(np.int64)).sum(axis=1)]
    return [sum(abs(int(v)) for v in row) for row in flat.tolist()]


def bound(w, x_max: int) -> int:
    """B = max_o sum_i |w[o, i]| * x_max: the largest magnitude any product or partial sum of a row can reach."""
    sums = row_sums(w)
    return max(sums, default=0) * int(x_max)


def float_type(b: int):
    """The narrowest float type that holds every integer up to ``b`` in magnitude (None: neither does)."""
    for ft in (np.float32, np.float64):
        if b <= EXACT[ft]:
            return ft
    return None


_WEIGHTS: dict = {}  # (id of the owning array, view) -> (weakref to the owner, max row sum, {float type: floats})


def _forget(key):
    return lambda _ref: _WEIGHTS.pop(key, None)


def prepared_count() -> int:
    """How many weight arrays are prepared (cached) now."""
    return len(_WEIGHTS)


def _owner(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def prepared(w, ft=None):
    """(max_o sum_i |w[o, i]|, w as an (O, fan_in) array of ``ft``): computed once per *read-only* weight array (a
    Network's are: ``Network`` freezes them; a view of one, as ops makes for a Conv1d, counts as the same), then
    reused while its memory lives; recomputed on every call for a writeable one, which could change between calls."""
    w = np.asarray(w)
    owner = _owner(w)
    if w.flags.writeable or owner.flags.writeable:
        return max(row_sums(w), default=0), None if ft is None else w.reshape(w.shape[0], -1).astype(ft)
    key = (id(owner), w.__array_interface__["data"][0], w.shape, w.strides, w.dtype.str)
    entry = _WEIGHTS.get(key)
    if entry is None or entry[0]() is not owner:
        entry = (weakref.ref(owner, _forget(key)), max(row_sums(w), default=0), {})
        _WEIGHTS[key] = entry
    if ft is not None and ft not in entry[2]:
        entry[2][ft] = w.reshape(w.shape[0], -1).astype(ft)
    return entry[1], None if ft is None else entry[2][ft]


def _x_max(x) -> int:
    if x.size == 0:
        return 0
    lo, hi = int(x.min()), int(x.max())
    return max(-lo, hi)


def spike_scale(x) -> int:
    """``c`` when every value of ``x`` is 0 or the one nonzero value ``c`` with ``|c| > 1`` (a spike train times
    its scale), else 1 (the input multiplies as it is)."""
    if x.size == 0:
        return 1
    lo, hi = int(x.min()), int(x.max())
    if lo != 0 and hi != 0 and lo != hi:
        return 1
    c = hi if hi != 0 else lo
    if abs(c) <= 1 or np.count_nonzero(x) != np.count_nonzero(x == c):
        return 1
    return c


def route(w, x):
    """(float type, spike scale c) of one call on the values it got: the plain input's bound first; where that
    needs float64 or more and the input is a spike train, its 0/1 indicator's bound (c = 1: the input as it is;
    float type None: neither is proven, the Numba kernel)."""
    rows = prepared(w)[0]
    ft = float_type(rows * _x_max(x))
    if ft is np.float32:
        return ft, 1
    c = spike_scale(x)
    if c != 1 and float_type(rows) is np.float32:
        return np.float32, c
    return ft, 1


def _operand(x, ft, c: int):
    """x as the GEMM's float operand: itself, or (spike scale c) its 0/1 indicator."""
    return (x == c).astype(ft) if c != 1 else x.astype(ft)


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` decided for one layer: the route, the float type, the bound and why."""

    route: str  # "gemm" or "kernel"
    dtype: type | None  # np.float32 / np.float64: the type the bound proves exact (None: neither)
    bound: int
    reason: str

    @property
    def impl(self):
        """The kernel family to call: this module, or :mod:`golden.network.kernels`."""
        import sys

        return sys.modules[__name__] if self.route == "gemm" else kernels


def choose(w, fmt_in, kind: str = "linear", macs: int | None = None, min_macs: int | None = None) -> Choice:
    """The route of one synaptic layer, decided once before the run from its real weights and input format.

    ``w``: the raw weights (O, ...); ``fmt_in``: the layer's input QFormat (its values are raw integers in
    ``fmt_in.min..fmt_in.max``); ``kind``: "linear", "conv" or "batchnorm". The GEMM route applies when
    :func:`bound` at the format's largest magnitude is at most 2**53 (float64) or 2**24 (float32, twice the
    rate) and the layer is a Linear or a Conv (a BatchNorm has no sum: the Numba kernel is already one pass).
    ``macs``: the layer's multiply-accumulates per row (out values x fan-in); below ``min_macs`` the Numba kernel
    is kept (a GEMM call costs tens of microseconds before it multiplies anything; default :data:`MIN_MACS` of the
    kind). ``macs`` None: no size rule.
    """
    x_max = max(-int(fmt_in.min), int(fmt_in.max))
    b = prepared(w)[0] * x_max  # once per read-only weight array: a call per layer call costs a lookup
    ft = float_type(b)
    if kind not in ("linear", "conv"):
        return Choice("kernel", None, b, f"{kind}: no sum to make a GEMM of")
    if ft is None:
        return Choice("kernel", None, b, f"bound {b} > 2**53: float64 could round")
    min_macs = MIN_MACS[kind] if min_macs is None else min_macs
    if macs is not None and macs < min_macs:
        return Choice("kernel", ft, b, f"{macs} MACs per row < {min_macs}: per-call overhead dominates (exact in "
                                       f"{np.dtype(ft).name}, not worth a GEMM call)")
    return Choice("gemm", ft, b, f"bound {b} <= 2**{24 if ft is np.float32 else 53}: exact in {np.dtype(ft).name}")


# ------------------------------------------------------------------ BLAS threads
_CONTROLLER = []


def _controller():
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER.append(ThreadpoolController())
        except ImportError:  # pragma: no cover - threadpoolctl absent: BLAS keeps its own setting
            _CONTROLLER.append(None)
    return _CONTROLLER[0]


def blas_threads(n: int | None = None):
    """A context in which BLAS runs on ``n`` threads (default ``golden.kernels.THREADS``); a no-op without
    threadpoolctl."""
    ctl = _controller()
    if ctl is None:  # pragma: no cover
        return contextlib.nullcontext()
    return ctl.limit(limits=neuron_kernels.THREADS if n is None else int(n), user_api="blas")


# ------------------------------------------------------------------ after the sum
@neuron_kernels.jit(nogil=True)
def finish(prod, b, b_shift, p_shift, acc_bits, scale=1):
    """prod (O, R, P) exact integer sums in floats -> acc (R, O, P) int64: ``(sum * scale << p_shift) + (b[o] <<
    b_shift)`` in int64 (wrapping modulo 2**64 as the kernels do), narrowed to ``acc_bits`` by wrapping; and the
    count of values that needed it. ``scale``: a spike input's ``c`` (its sums are of the 0/1 indicator)."""
    NO, R, P = prod.shape
    acc = np.empty((R, NO, P), np.int64)
    sh = max(64 - acc_bits, 0)
    hits = 0
    for o in range(NO):
        bo = b[o] << b_shift if b.size else np.int64(0)
        for r in range(R):
            for p in range(P):
                a = ((np.int64(prod[o, r, p]) * scale) << p_shift) + bo
                wrapped = (a << sh) >> sh
                hits += wrapped != a
                acc[r, o, p] = wrapped
    return acc, hits


# ------------------------------------------------------------------ the drop-in kernels
def linear(x, w, b, b_shift, p_shift, acc_bits):
    """:func:`golden.network.kernels.linear` as one GEMM: x (R, I), w (O, I) -> acc (R, O), wraps."""
    ft, c = route(w, x)
    if ft is None:
        return kernels.linear(x, w, b, b_shift, p_shift, acc_bits)
    wf = prepared(w, ft)[1]
    xt = _operand(np.asarray(x).T, ft, c)  # (I, R): the product lands as (O, R), finish's layout
    with blas_threads():
        prod = wf @ xt
    acc, hits = finish(prod.reshape(w.shape[0], x.shape[0], 1), b, b_shift, p_shift, acc_bits, c)
    return acc.reshape(x.shape[0], w.shape[0]), hits


def im2col(xp, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int):
    """xp (R, C, Hp, Wp) padded -> (C*KH*KW, R*OH*OW): column (r, i, j) holds the window of output (i, j)."""
    R, C = xp.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    return win.transpose(1, 4, 5, 0, 2, 3).reshape(C * kh * kw, R * oh * ow)


def conv2d(x, w, b, b_shift, p_shift, acc_bits, sh, sw, ph, pw):
    """:func:`golden.network.kernels.conv2d` by im2col + GEMM: x (R, C, H, W), w (O, C, KH, KW) -> (R, O, OH, OW)."""
    ft, c = route(w, x)
    if ft is None:
        return kernels.conv2d(x, w, b, b_shift, p_shift, acc_bits, sh, sw, ph, pw)
    R, C, H, W = x.shape
    NO, _, KH, KW = w.shape
    OH, OW = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
    wf = prepared(w, ft)[1]
    per_row = C * KH * KW * OH * OW * np.dtype(ft).itemsize
    step = max(1, COLS_BYTES // max(per_row, 1))
    acc = np.empty((R, NO, OH, OW), np.int64)
    hits = 0
    xp = np.zeros((min(step, R), C, H + 2 * ph, W + 2 * pw), ft)
    with blas_threads():
        for r0 in range(0, R, step):
            n = min(step, R - r0)
            pad = xp[:n]
            pad[:, :, ph:ph + H, pw:pw + W] = x[r0:r0 + n] if c == 1 else x[r0:r0 + n] == c  # into the zero border
            prod = wf @ im2col(pad, KH, KW, sh, sw, OH, OW)
            a, h = finish(prod.reshape(NO, n, OH * OW), b, b_shift, p_shift, acc_bits, c)
            acc[r0:r0 + n] = a.reshape(n, NO, OH, OW)
            hits += h
    return acc, hits


def batchnorm(x, w, b, b_shift, p_shift, acc_bits):
    """:func:`golden.network.kernels.batchnorm` in numpy int64 (no sum, so no float: the same modular arithmetic
    as the kernel): x (R, C, L) -> acc (R, C, L), wraps."""
    a = np.asarray(x, np.int64) * np.asarray(w, np.int64)[None, :, None]
    a <<= p_shift
    if b.size:
        a += (np.asarray(b, np.int64) << b_shift)[None, :, None]
    if acc_bits >= 64:
        return a, 0
    sh = 64 - acc_bits
    wrapped = (a << sh) >> sh
    return wrapped, int(np.count_nonzero(wrapped != a))
