"""What QualiaCodeGen can deploy: the C number widths and the neuron kinds it maps (checked before deploying)."""

from __future__ import annotations

from ..errors import DeployError
from .stack import stack

C_WIDTHS = (8, 16)


def model_bits(model) -> set:
    """The bits of every enabled quantizer of ``model``."""
    return {int(m.bits) for m in model.modules()
            if hasattr(m, "compute_scale_and_offset") and getattr(m, "quant_enable", True)}


def deployable_width(model, width=None) -> int:
    """The C NUMBER_T width to deploy ``model`` at (default: its quantizers' bits), or a one-line refusal."""
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
    odd = sorted(bits - set(C_WIDTHS))
    if odd:
        raise DeployError(f"model: quantizers of {odd[0]} bits; QualiaCodeGen's C numbers are int8 or int16 only "
                          f"(quantize='int8'|'int16'), so the C would not saturate at {odd[0]} bits as torch does: "
                          f"the codegen profile takes 8- or 16-bit models (torch-eval reads any width)")
    if width is None:
        if len(bits) != 1:
            raise DeployError(f"width: the model's quantizers have {sorted(bits)} bits; state width=8 or 16")
        width = bits.pop()
    if isinstance(width, bool) or width not in C_WIDTHS:
        raise DeployError(f"width: {width!r} is not a QualiaCodeGen NUMBER_T (int8 / int16): use 8 or 16")
    return int(width)
