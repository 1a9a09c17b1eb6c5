"""What QualiaCodeGen can deploy: the C number widths and the neuron kinds it maps (checked before deploying).

QualiaCodeGen's C numbers are int8 or int16 (``quantize='int8'|'int16'``), and its converter deploys a model of
any quantizer bits at either: a 4-, 6- or 12-bit model runs as int8 / int16 C, its weights quantized at the
file's q's and clipped to NUMBER_T, every output saturated to NUMBER_T (not to the model's bits). Refused here
only what the converter refuses or cannot map: ATIF neurons, LSQ, a quantype other than 'fxp', other widths."""

from __future__ import annotations

from ..errors import DeployError
from .stack import stack

C_WIDTHS = (8, 16)


def model_bits(model) -> set:
    """The bits of every enabled quantizer of ``model``."""
    return {int(m.bits) for m in model.modules()
            if hasattr(m, "compute_scale_and_offset") and getattr(m, "quant_enable", True)}


def deployable_width(model, width=None) -> int:
    """The C NUMBER_T width to deploy ``model`` at (default: :func:`natural_width` of its bits), or one-line refusal."""
    s = stack()
    atif = [n for n, m in model.named_modules() if isinstance(m, s.snn.QuantizedATIF)]
    if atif:
        raise DeployError(f"{atif[0]} (QuantizedATIF): qualia-codegen has no C mapping for ATIF neurons; use "
                          f"profile='torch-eval'")
    for name, m in model.named_modules():
        if hasattr(m, "compute_scale_and_offset") and getattr(m, "quant_enable", True):
            why = ("LSQ=True" if getattr(m, "LSQ", False) else
                   f"quantype={m.quantype!r}" if getattr(m, "quantype", "fxp") != "fxp" else None)
            if why:
                raise DeployError(f"{name}: {why}; Qualia's own converter (QualiaCodeGen) refuses it too: the "
                                  f"codegen profile takes fixed-point ('fxp', LSQ=False) models")
    bits = model_bits(model)
    if width is None:
        width = natural_width(bits)
    if isinstance(width, bool) or width not in C_WIDTHS:
        raise DeployError(f"width: {width!r} is not a QualiaCodeGen NUMBER_T (int8 / int16): use 8 or 16")
    return int(width)


def natural_width(bits) -> int:
    """The NUMBER_T a model of these quantizer bits deploys at when no ``[deploy] quantize`` says: the narrowest C
    width holding them (int8 up to 8 bits, int16 up to 16). QualiaCodeGen itself takes any ``quantize`` for any
    bits: the C computes at NUMBER_T (weights quantized and clipped to it, outputs saturated to it), whatever bits
    the quantizers had, which is what the codegen network follows."""
    top = max(bits, default=8)
    for w in C_WIDTHS:
        if top <= w:
            return w
    raise DeployError(f"width: the model's quantizers have up to {top} bits, more than QualiaCodeGen's widest "
                      f"NUMBER_T (int16); state width=8 or 16 (as [deploy] quantize does)")
