"""One layer over a batch of rows: the three stages of :mod:`golden.network.layers`, on a kernel family.

``impl`` is :mod:`golden.network.kernels` (Numba) or :mod:`golden.network.reference`
(plain Python): the same stages, so the property tests compare exactly the per-type kernels.
What a layer type computes is its class's (``layer.core``); the stages around it are here, once.
Neuron layers are run by :mod:`golden.network.graph` (they need the step axis).
"""

from __future__ import annotations

import numpy as np

from ..errors import NetworkError
from ..spec import Overflow, QFormat, Round
from .layers import F32_EXACT, Layer


def quantize(impl, x, fmt_from, fmt_to, rnd, policy=Overflow.SATURATE, pre_bits=64):
    """Raw values at ``fmt_from`` through a quantizer to ``fmt_to``; (values, number narrowed).

    ``rnd``: a :class:`Round` member (or its name); ``policy``: an :class:`Overflow` member (or its name).
    ``pre_bits``: the width the rescaling runs in (the C's LONG_NUMBER_T; 64: exact). Values at a format are on
    it (every producer narrows to its fmt_out), so a quantizer to the same frac and at least as many bits is the
    identity: it is skipped (no pass over the values), with nothing narrowed.
    """
    if (isinstance(fmt_from, QFormat) and fmt_from.frac == fmt_to.frac and fmt_from.bits <= fmt_to.bits
            and pre_bits >= 64):
        return np.ascontiguousarray(x, np.int64), 0
    return impl.requant(np.ascontiguousarray(x, np.int64), fmt_from.frac - fmt_to.frac, Round(rnd).code,
                        fmt_to.bits, Overflow(policy).code, pre_bits)


def core(impl, layer: Layer, params: dict, xs: list, acc_bits: int | None = None):
    """The exact accumulator (R, *out_shape) at frac F from quantized inputs ``xs``; and the number narrowed."""
    return layer.core(impl, params, xs, acc_bits)


def run(impl, layer: Layer, params: dict, xs: list, name: str = "", bounds: bool = False) -> dict:
    """``xs``: raw arrivals (R, *in_shape) at each source's fmt_src. Returns out, overflow counts, f32_exact mask."""
    if not layer.QUANTIZED:
        return {"out": xs[0].reshape(xs[0].shape[0], *layer.out_shape), "overflow": {}, "f32_exact": None}
    qs, sat_in = [], 0
    for x, (fmt_src, fmt_in) in zip(xs, layer.sources(), strict=True):
        q, sat = quantize(impl, x, fmt_src, fmt_in, layer.round_in)
        qs.append(q)
        sat_in += sat
    acc, wraps = layer.core(impl, params, qs)
    if wraps and layer.acc_overflow == Overflow.STRICT:
        raise NetworkError(f"{name or layer.TYPE}: {wraps} accumulator value(s) overflow acc_bits={layer.acc_bits} "
                           f"(acc_overflow = strict); widen acc_bits")
    out, sat_out = layer.out_stage(impl, acc)
    mask = None
    if bounds and layer.SUMS and not layer.float32_reproduced:  # the same kernel on |inputs| and |weights|: each
        # value's worst partial sum (a layer whose float32 golden reproduces needs no mask: every value is torch's)
        abs_params = {k: np.abs(np.asarray(v, np.int64)) for k, v in params.items()}
        absacc, _ = layer.core(impl, abs_params, [np.abs(q) for q in qs], acc_bits=64)
        mask = absacc + layer.half_lsb() <= F32_EXACT
    return {"out": out, "overflow": {"in": int(sat_in), "acc": int(wraps), "out": int(sat_out)}, "f32_exact": mask}

