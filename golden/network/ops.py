"""One layer over a batch of rows: the three stages of :mod:`golden.network.layers`, on a kernel family.

``impl`` is :mod:`golden.network.kernels` (Numba) or :mod:`golden.network.reference`
(plain Python): the same stages, so the property tests compare exactly the per-type kernels.
Neuron layers are run by :mod:`golden.network.graph` (they need the step axis).
"""

from __future__ import annotations

import numpy as np

from ..spec import QFormat
from . import kernels
from .layers import (
    F32_EXACT,
    ROUNDS,
    Add,
    BatchNorm,
    Conv,
    Flatten,
    GlobalSumPool,
    Identity,
    Layer,
    Linear,
    MaxPool,
    NetworkError,
    _Weighted,
)

SAT, WRAP = kernels.SAT, kernels.WRAP


def quantize(impl, x, fmt_from, fmt_to, rnd, policy="saturate", pre_bits=64):
    """Raw values at ``fmt_from`` through a quantizer to ``fmt_to``; (values, number narrowed).

    ``pre_bits``: the width the rescaling runs in (the C's LONG_NUMBER_T; 64: exact). Values at a format are on
    it (every producer narrows to its fmt_out), so a quantizer to the same frac and at least as many bits is the
    identity: it is skipped (no pass over the values), with nothing narrowed.
    """
    if (isinstance(fmt_from, QFormat) and fmt_from.frac == fmt_to.frac and fmt_from.bits <= fmt_to.bits
            and pre_bits >= 64):
        return np.ascontiguousarray(x, np.int64), 0
    return impl.requant(np.ascontiguousarray(x, np.int64), fmt_from.frac - fmt_to.frac, ROUNDS.index(rnd),
                        fmt_to.bits, SAT if policy == "saturate" else WRAP, pre_bits)


def _params(impl, layer, params):
    w = np.ascontiguousarray(params["weight"], np.int64)
    b = np.ascontiguousarray(params["bias"], np.int64) if layer.has_bias else np.zeros(0, np.int64)
    F = layer.acc_frac
    p_shift = F - layer.fmt_in.frac - layer.fmt_w.frac
    b_shift = F - layer.fmt_b.frac if layer.has_bias else 0
    if layer.tmp_frac is not None and b.size:  # the C's scale(bias, q_b - F): rounds when q_b > F, in LONG
        b, _ = impl.requant(b, -b_shift, ROUNDS.index(layer.round_out), layer.acc_bits, WRAP, layer.acc_bits)
        b_shift = 0
    return w, b, b_shift, p_shift


def _lanes(impl, w, fmt_in):
    """``w`` as int32 when every Conv sum provably fits 32 bits (|x| <= 2**(bits-1), so |sum| <= that times the
    largest sum of |w| over a filter): the Numba kernel then sums in 32-bit lanes, twice as many per vector, with
    the same exact sums. The reference and wider layers keep int64."""
    if impl is not kernels or not w.size:
        return w
    bound = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max()) << (fmt_in.bits - 1)
    return w.astype(np.int32) if bound < 1 << 31 else w


def core(impl, layer: Layer, params: dict, xs: list, acc_bits: int | None = None):
    """The exact accumulator (R, *out_shape) at frac F from quantized inputs ``xs``; and the number narrowed."""
    x = xs[0]
    R = x.shape[0]
    if isinstance(layer, _Weighted):
        w, b, b_shift, p_shift = _params(impl, layer, params)
        bits = layer.acc_bits if acc_bits is None else acc_bits
        if isinstance(layer, Linear):
            return impl.linear(x, w, b, b_shift, p_shift, bits)
        if isinstance(layer, Conv):
            w = _lanes(impl, w, layer.fmt_in)
            if layer.dims == 1:
                acc, h = impl.conv2d(x[:, :, None, :], w[:, :, None, :], b, b_shift, p_shift, bits, 1,
                                     layer.stride[0], 0, layer.padding[0])
                return acc[:, :, 0, :], h
            (sh, sw), (ph, pw) = layer.stride, layer.padding
            return impl.conv2d(x, w, b, b_shift, p_shift, bits, sh, sw, ph, pw)
        if isinstance(layer, BatchNorm):
            acc, h = impl.batchnorm(x.reshape(R, layer.num_features, -1), w, b, b_shift, p_shift, bits)
            return acc.reshape(x.shape), h
    if isinstance(layer, MaxPool):
        if layer.dims == 1:
            return impl.maxpool2d(x[:, :, None, :], 1, layer.kernel[0], 1, layer.stride[0], 0,
                                  layer.padding[0])[:, :, 0, :], 0
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
        return impl.maxpool2d(x, kh, kw, sh, sw, ph, pw), 0
    bits = layer.acc_bits if acc_bits is None else acc_bits
    if isinstance(layer, Add):
        F = layer.acc_frac
        acc = impl.add(x, xs[1], F - layer.fmt_in.frac, F - layer.fmt_in_b.frac)
        return impl.requant(acc, 0, 0, bits, WRAP, 64) if bits < 64 else (acc, 0)
    if isinstance(layer, GlobalSumPool):
        acc = impl.sumpool(x.reshape(R, layer.in_shape[0], -1))
        return impl.requant(acc, 0, 0, bits, WRAP, 64) if bits < 64 else (acc, 0)
    if isinstance(layer, (Flatten, Identity)):
        return x.reshape(R, *layer.out_shape), 0
    raise NetworkError(f"no kernel for layer type {type(layer).__name__}")  # pragma: no cover


def run(impl, layer: Layer, params: dict, xs: list, name: str = "", bounds: bool = False) -> dict:
    """``xs``: raw arrivals (R, *in_shape) at fmt_src (Add: two). Returns out, overflow counts, f32_exact mask."""
    if isinstance(layer, Flatten):
        return {"out": xs[0].reshape(xs[0].shape[0], *layer.out_shape), "overflow": {}, "f32_exact": None}
    x, sat_in = quantize(impl, xs[0], layer.fmt_src, layer.fmt_in, layer.round_in)
    qs = [x]
    if isinstance(layer, Add):
        xb, sat_b = quantize(impl, xs[1], layer.fmt_src_b, layer.fmt_in_b, layer.round_in)
        qs.append(xb)
        sat_in += sat_b
    acc, wraps = core(impl, layer, params, qs)
    if wraps and getattr(layer, "acc_overflow", "wrap") == "strict":
        raise NetworkError(f"{name or layer.TYPE}: {wraps} accumulator value(s) overflow acc_bits={layer.acc_bits} "
                           f"(acc_overflow = strict); widen acc_bits")
    out, sat_out = quantize(impl, acc, _frac(layer.acc_frac), layer.fmt_out, layer.round_out, layer.out_overflow,
                            layer.acc_bits)
    mask = None
    if bounds and isinstance(layer, (_Weighted, Add, GlobalSumPool)):
        abs_params = {k: np.abs(np.asarray(v, np.int64)) for k, v in params.items()}
        absacc, _ = core(impl, layer, abs_params, [np.abs(q) for q in qs], acc_bits=64)
        F, q_out = layer.acc_frac, layer.fmt_out.frac
        half = 1 << (F - q_out - 1) if F > q_out else 0
        mask = absacc + half <= F32_EXACT
    return {"out": out, "overflow": {"in": int(sat_in), "acc": int(wraps), "out": int(sat_out)}, "f32_exact": mask}


class _frac:
    """A stand-in format carrying only a frac (the accumulator's), for :func:`quantize`."""

    def __init__(self, frac: int):
        self.frac = frac
