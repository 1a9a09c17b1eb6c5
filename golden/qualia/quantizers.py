"""A Qualia quantizer's fixed-point format, read from the quantizer itself (qualia-core 2.6, quantype 'fxp').

The scale is 2**-q. Qualia computes it from ``force_q`` or from the calibrated ``global_max``; golden reads q off
the scale the quantizer itself computes (so its float32 ``log2`` is honoured), never re-derives it.

Where golden follows torch and not the exporter: with ``global_max == 0`` (e.g. a neuron layer that never spiked
while it was calibrated) Qualia's ``compute_scale_and_offset`` uses a scale of 1 (q = 0), whatever ``force_q``
says, while ``fractional_bits`` (what the activation-range exporter, hence the deployed C, uses) reports another q.
torch-eval follows torch (q = 0); :func:`scale_one` names each such tensor so a network can record where the two
part.

Refused, each as Qualia's own deployment refuses it: LSQ (a learned scale that is not a power of two), a quantype
other than 'fxp', an asymmetric quantizer; and an uncalibrated one (global_max = -inf and no force_q: Qualia turns
every value into NaN).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

from ..errors import TorchBridgeError
from .stack import stack


class Format(NamedTuple):
    """bits, q (None when not asked for) and Qualia roundtype of one quantizer."""

    bits: int
    q: int | None
    roundtype: str


def enabled(module, attr: str) -> bool:
    """Whether ``module.<attr>`` quantizes; False for ``quant_enable = false`` (the tensor passes unchanged)."""
    qz = getattr(module, attr, None)
    return qz is not None and bool(getattr(qz, "quant_enable", True))


def scale_one(module, attr: str) -> str | None:
    """'<attr>: scale 1 (q=0) while fractional_bits=<n>' when torch computes with scale 1 (global_max == 0)."""
    qz = getattr(module, attr, None)
    if qz is None or not getattr(qz, "quant_enable", True) or getattr(qz, "LSQ", False):
        return None
    if float(qz.global_max) != 0:
        return None
    return f"{attr}: scale 1 (q=0) while fractional_bits={qz.fractional_bits}"


def quantizer_format(module, attr: str, profile: str = "torch-eval", need_q: bool = True) -> Format:
    """(bits, q, roundtype) of ``module.<attr>`` as torch computes it, or a TorchBridgeError naming the cause.

    ``profile``: "torch-train" reads a forced q even while global_max is still 0 (in train mode global_max is
    updated before anything is quantized); "codegen" reads, for global_max == 0, the ``fractional_bits`` the
    activation-range exporter writes (what the deployed C uses). ``need_q=False`` skips reading q (an override
    states it).
    """
    torch = stack().torch
    qz = getattr(module, attr, None)
    where = f"{type(module).__name__}.{attr}"
    if qz is None:
        raise TorchBridgeError(f"{where}: missing (not a Qualia quantized layer?)")
    if not getattr(qz, "quant_enable", True):
        raise TorchBridgeError(f"{where}: quant_enable=False, so this tensor is not quantized here; state its "
                               f"format as an override (the producer's), or read the whole model")
    if getattr(qz, "LSQ", False):
        raise TorchBridgeError(f"{where}: LSQ=True learns a scale that is not a power of two; golden needs "
                               f"fixed-point quantizers ('fxp', LSQ=False), and Qualia's own converter "
                               f"(QualiaCodeGen) refuses LSQ too")
    if getattr(qz, "is_asymmetric", False):
        raise TorchBridgeError(f"{where}: is_asymmetric=True adds an offset; golden needs symmetric fixed point, "
                               f"and Qualia's own converter (QualiaCodeGen) refuses it too")
    if qz.quantype != "fxp":
        raise TorchBridgeError(f"{where}: quantype={qz.quantype!r}; golden supports only 'fxp', and Qualia's own "
                               f"converter (QualiaCodeGen) refuses {qz.quantype!r} too")
    if qz.roundtype not in ("nearest", "floor", "ceil"):
        raise TorchBridgeError(f"{where}: unknown roundtype {qz.roundtype!r} (expected nearest, floor or ceil)")
    bits = int(qz.bits)
    if not need_q:
        return Format(bits, None, qz.roundtype)
    gm = float(qz.global_max)
    if qz.force_q is not None and (gm != 0 or profile == "torch-train"):
        return Format(bits, int(qz.force_q), qz.roundtype)
    if gm == 0:  # compute_scale_and_offset: scale 1 whatever force_q says; the exporter writes fractional_bits
        return Format(bits, int(qz.fractional_bits) if profile == "codegen" else 0, qz.roundtype)
    if math.isnan(gm) or gm == -math.inf:
        raise TorchBridgeError(f"{where}: uncalibrated quantizer (global_max={gm}, no force_q): Qualia would turn "
                               f"every value into NaN; calibrate it (run data through the model in train mode), set "
                               f"force_q, or state the q as an override")
    if not math.isfinite(gm):
        raise TorchBridgeError(f"{where}: global_max={gm} gives no usable scale; recalibrate it or set force_q")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Qualia's torch.tensor(tensor) UserWarning
        scale, _ = qz.compute_scale_and_offset(torch.zeros(1), qz.global_max, qz.global_min)
    mant, exp = math.frexp(float(scale))
    if mant != 0.5:  # pragma: no cover - fxp scales are powers of two
        raise TorchBridgeError(f"{where}: scale {float(scale)!r} is not a power of two")
    q = 1 - exp  # scale = 2**(exp - 1) = 2**-q
    fb = qz.fractional_bits
    if fb is not None and int(fb) != q:  # pragma: no cover - Qualia computes both the same way
        raise TorchBridgeError(f"{where}: scale 2**-{q} disagrees with fractional_bits={fb}")
    return Format(bits, q, qz.roundtype)
