"""A Qualia quantized neuron module (QuantizedLIFNode / QuantizedIFNode / QuantizedATIF) -> its golden Spec.

What is read, as the module holds it now:

- each quantizer's bits, roundtype and q (:func:`golden.qualia.quantizers.quantizer_format`);
- the hyperparameters re-quantized the way the module re-quantizes them each step (v_threshold, 1/tau, v_reset
  through quantizer_v; ``v_reset is None`` means a soft reset), and ``decay_input``;
- QuantizedATIF's learned threshold as held, on the q_v grid or not: the fire/reset threshold C and the graded
  output Qact(Qv(vth)) (:mod:`golden.qualia.atif`). The codegen profile needs it on the grid.

``overrides`` (the profile function's keyword arguments) win over what is read, and a value given as an override is
not read: e.g. ``q_in=`` states the input format of a layer whose input quantizer is disabled (its producer's).
"""

from __future__ import annotations

import math

from .. import profiles
from ..errors import TorchBridgeError
from ..spec import QFormat, Spec, quantize_real
from .atif import atif_threshold
from .quantizers import enabled, quantizer_format
from .stack import stack

TORCH_PROFILES = ("torch-eval", "torch-train")
PROFILES = TORCH_PROFILES + ("codegen",)
NEURONS = ("QuantizedLIFNode", "QuantizedIFNode", "QuantizedATIF")


def kind(module) -> str:
    """'LIF' / 'IF' / 'ATIF', or a refusal naming why this module is not a neuron golden describes."""
    s = stack()
    if isinstance(module, s.snn.QuantizedLIFNode):
        return "LIF"
    if isinstance(module, s.snn.QuantizedIFNode):
        return "IF"
    if isinstance(module, s.snn.QuantizedATIF):
        return "ATIF"
    name = type(module).__name__
    if isinstance(module, s.neuron.BaseNode):
        raise TorchBridgeError(f"{name} is an unquantized SpikingJelly node: it computes in float, so no fixed-point "
                               f"datapath describes it; use qualia-plugin-snn's {' / '.join(NEURONS)}")
    raise TorchBridgeError(f"unsupported module type {name}: golden describes {', '.join(NEURONS)} "
                           f"(qualia-plugin-snn 2.6) and whole models of Qualia's quantized layers")


def is_neuron(module) -> bool:
    """A spiking neuron module (quantized or not: an unquantized one is then refused by :func:`kind`)."""
    s = stack()
    return isinstance(module, (s.snn.QuantizedLIFNode, s.snn.QuantizedIFNode, s.snn.QuantizedATIF, s.neuron.BaseNode))


def held(bits: int, q_v: int, roundtype: str):
    """value -> what quantizer_v makes of it (float32, rounded, *saturated*): the module holds that after one step.

    Re-quantizing is idempotent, so this changes nothing but a hyperparameter beyond the format's range, which
    Qualia saturates silently (e.g. v_threshold = 1.0 at 8 bits, q_v = 7 becomes 127/128).
    """
    fmt, rnd = QFormat(bits, q_v), profiles.qualia_round("round", roundtype)
    return lambda value: fmt.real(int(quantize_real(value, fmt, rnd)))


def _on_grid_threshold(module, q_v: int, bits_v: int, round_v: str) -> float:
    """ATIF's threshold for the codegen profile: one Parameter value on the q_v grid, or a refusal."""
    vth = module.v_threshold
    if vth.numel() != 1:
        raise TorchBridgeError(f"QuantizedATIF.v_threshold holds {vth.numel()} values; golden needs one per layer")
    value = float(vth.detach().reshape(()))
    fmt = QFormat(bits_v, q_v)
    raw = int(quantize_real(value, fmt, profiles.qualia_round("round", round_v)))
    if math.ldexp(raw, -q_v) != value and raw in (fmt.min, fmt.max):
        raise TorchBridgeError(f"QuantizedATIF.v_threshold = {value!r} is outside {fmt} (q_v={q_v}): Qualia fires on "
                               f"it but outputs the saturated {math.ldexp(raw, -q_v)!r}; lower the threshold or q_v")
    if math.ldexp(raw, -q_v) != value:
        raise TorchBridgeError(f"QuantizedATIF.v_threshold = {value!r} is not on the q_v={q_v} grid ({fmt}): the layer "
                               f"fires and resets on the unquantized threshold but outputs the quantized one, which "
                               f"no integer datapath reproduces; call module.set_coeffs(module.v_threshold.data), "
                               f"which quantizes it (under torch.no_grad())")
    return value


_QUANTIZERS = (("quantizer_v", ("bits", "q_v", "round")), ("quantizer_input", ("bits_in", "q_in", "round_in")),
               ("quantizer_act", ("bits_out", "q_out", "round_out")))


def module_params(module, kind_: str, profile: str, overrides: dict) -> dict:
    """Profile keyword arguments read from the module; an overridden q is not read (nor refused)."""
    params: dict = {}
    for attr, keys in _QUANTIZERS:
        if attr == "quantizer_input" and not enabled(module, attr) and "q_in" in overrides:
            continue  # disabled: the input arrives at its producer's format, which the overrides state
        values = quantizer_format(module, attr, profile, need_q=keys[1] not in overrides)
        params.update({k: v for k, v in zip(keys, values) if k not in overrides})
    params.update({k: v for k, v in overrides.items() if k in ("bits", "q_v", "round")})
    hold = held(params["bits"], params["q_v"], params["round"])
    if kind_ == "LIF":
        # Qv(float32(1 / tau)), as quantize_v_and_hyperparams does; tau = 1 / that. A 0 is left for the profile
        # to refuse (Qualia divides by it: ZeroDivisionError).
        rtau = hold(1.0 / float(module.tau))
        params["tau"] = 1.0 / rtau if rtau else float(module.tau)
        params["decay_input"] = bool(module.decay_input)
    else:
        params["tau"] = None
        params["decay_input"] = True
    if kind_ == "ATIF":
        params["v_reset"] = None
        if "v_threshold" not in overrides and profile == "codegen":
            params["v_threshold"] = _on_grid_threshold(module, params["q_v"], params["bits"], params["round"])
    else:
        params["v_reset"] = None if module.v_reset is None else hold(float(module.v_reset))
        params["v_threshold"] = hold(float(module.v_threshold))
    return params


def spec_from_module(module, profile: str = "torch-eval", **overrides) -> Spec:
    """The golden :class:`Spec` of one Qualia quantized neuron module under ``profile`` (see the module doc).

    ``profile``: "torch-eval" (the layer in ``.eval()``), "torch-train" (in ``.train()``, q's frozen by
    ``force_q``) or "codegen" (the C qualia-codegen generates for it; ``width`` / ``long_width`` give NUMBER_T /
    LONG_NUMBER_T, default ``width`` = quantizer_v's bits).
    """
    if profile not in PROFILES:
        raise TorchBridgeError(f"profile: {profile!r} is not one golden reads a module for (expected one of: "
                               f"{', '.join(PROFILES)})")
    k = kind(module)
    build = {"torch-eval": profiles.torch_eval, "torch-train": profiles.torch_train, "codegen": profiles.codegen}[
        profile]
    allowed = set(build.__kwdefaults__)
    unknown = set(overrides) - allowed
    if unknown:
        raise TorchBridgeError(f"unknown override(s) {', '.join(sorted(unknown))} for profile {profile!r} "
                               f"(allowed: {', '.join(sorted(allowed))})")
    if not enabled(module, "quantizer_input") and "q_in" not in overrides:
        raise TorchBridgeError(f"{type(module).__name__}.quantizer_input: quant_enable=False, so the layer takes its "
                               f"producer's output as it is: state that format with q_in= (and bits_in=), or read "
                               f"the whole model (golden.from_torch(model)), which takes it from the producer")
    read = "torch-train" if profile == "torch-train" else ("codegen" if profile == "codegen" else "torch-eval")
    params = module_params(module, k, read, overrides)
    spike_out = None
    if k == "ATIF" and profile in TORCH_PROFILES and "v_threshold" not in overrides:
        if module.v_threshold.numel() != 1:
            raise TorchBridgeError(f"QuantizedATIF.v_threshold holds {module.v_threshold.numel()} values; golden "
                                   f"needs one per layer")
        fmt_v = QFormat(params["bits"], params["q_v"])
        c, qvth = atif_threshold(float(module.v_threshold.detach().reshape(())), fmt_v,
                                 profiles.qualia_round("round", params["round"]))
        params["v_threshold"] = fmt_v.real(c)
        bits_o = overrides.get("bits_out", params.get("bits_out"))
        q_o = overrides.get("q_out", params.get("q_out"))
        round_o = overrides.get("round_out", params.get("round_out"))
        spike_out = int(quantize_real(fmt_v.real(qvth), QFormat(bits_o, q_o), profiles.qualia_round("round_out",
                                                                                                       round_o)))
    if profile == "codegen":
        params = {key: v for key, v in params.items() if key in allowed}
        params.setdefault("width", params.get("bits"))
        params.update(overrides)
        if params.get("width") not in (8, 16, 32):
            raise TorchBridgeError(f"width: quantizer_v has {params.get('bits')} bits, which is no C NUMBER_T; "
                                   f"state the C width with width=8, 16 or 32")
        return build(k, **params)
    params.update(overrides)
    spec = build(k, **params)
    return spec if spike_out is None else spec.replace(spike_out=spike_out)
