"""Profiles: named presets of the one :class:`~golden.spec.Spec`.

Each profile is a function of a layer's real-valued parameters that quantizes
them exactly as its reference does and sets the datapath knobs the reference
implies. The tests prove each one against the real reference:

- ``torch-eval``: qualia-plugin-snn's quantized layers in ``.eval()``;
- ``torch-train``: the same layers in ``.train()`` (the QAT forward), q's frozen;
- ``codegen``: the C that qualia-codegen-plugin-snn generates;
- ``hardware``: a clean integer datapath for RTL (exact leak shift, wide
  accumulator, saturation everywhere); no upstream reference.
"""

from __future__ import annotations

import math

import numpy as np

from . import quant
from .spec import QUALIA_ROUND, Kind, QFormat, Spec, SpecError, quantize_real


def qualia_round(name: str, value: str) -> str:
    """The rounding mode of a Qualia roundtype (nearest, floor, ceil); SpecError naming ``name`` otherwise."""
    if value not in QUALIA_ROUND:
        raise SpecError(f"{name}: unknown Qualia roundtype {value!r} (expected one of: {', '.join(QUALIA_ROUND)})")
    return QUALIA_ROUND[value]




def _hyper(name: str, value: float, fmt: QFormat, rnd: str) -> int:
    """A hyperparameter quantized as Qualia's quantizer_v does; refuses saturation."""
    if value is None or not math.isfinite(value):
        raise SpecError(f"{name}: expected a finite real value, got {value!r}")
    raw = int(quantize_real(value, fmt, rnd, saturate=False))
    if not fmt.min <= raw <= fmt.max:
        shown = raw if abs(raw) < 1 << 62 else f"{'-' if raw < 0 else ''}2**62 or beyond"
        raise SpecError(f"{name}: {value!r} saturates in {fmt} (raw {shown} outside {fmt.min}..{fmt.max}); "
                        f"lower q_v or widen the format")
    return raw


def _layer(kind, *, bits_in, q_in, bits_v, q_v, bits_out, q_out, tau, v_threshold, v_reset, round_v, round_in):
    """Formats and raw hyperparameters of a layer, quantized the Qualia way."""
    kind = Kind.parse(kind, "kind")
    fin, fv, fout = QFormat(bits_in, q_in), QFormat(bits_v, q_v), QFormat(bits_out, q_out)
    vth = _hyper("v_threshold", v_threshold, fv, round_v)
    if vth < 0 or (vth == 0 and kind.graded_spike):
        raise SpecError(f"v_threshold: {v_threshold!r} quantizes to {vth} at q_v={q_v}; it must be "
                        f"{'positive' if kind.graded_spike else 'at least 0'}")
    vr = 0 if v_reset is None else _hyper("v_reset", v_reset, fv, round_v)
    rtau = 0
    if kind.has_leak:
        # The leak is held as Qv(float32(1 / tau)). Only tau > 0 is required: a module whose 1/tau quantized to
        # 1.0 or more holds tau <= 1 from then on (spikingjelly checks tau > 1 once, at construction).
        if tau is None or not (math.isfinite(tau) and tau > 0):
            raise SpecError(f"tau: LIF needs a finite tau > 0, got {tau!r}")
        with np.errstate(over="ignore"):
            inv = float(np.float32(1.0 / tau))
        if not math.isfinite(inv) or int(quantize_real(inv, fv, round_v, saturate=False)) > fv.max:
            raise SpecError(f"tau: 1/tau = {1.0 / tau:g} saturates in {fv} (at most {fv.real(fv.max):g}); "
                            f"raise tau or lower q_v")
        rtau = _hyper("tau", inv, fv, round_v)
        if rtau <= 0:
            raise SpecError(f"tau: 1/tau = {1 / tau!r} quantizes to 0 at q_v={q_v} (Qualia raises "
                            f"ZeroDivisionError); raise q_v")
    elif kind.soft_reset_only and v_reset is not None:
        raise SpecError(f"v_reset: {kind} always resets by subtraction; pass v_reset=None")
    return dict(kind=kind, fmt_in=fin, fmt_v=fv, fmt_out=fout, reset="soft" if v_reset is None else "hard",
                v_threshold=vth, v_reset=vr, reciprocal_tau=rtau, round_in=round_in)


def _torch(profile, kind, *, bits, q_v, q_in, q_out, bits_in, bits_out, tau, v_threshold, v_reset, decay_input,
           round, round_in, round_out):
    rv = qualia_round("round", round)
    ri = qualia_round("round_in", round_in or round)
    ro = qualia_round("round_out", round_out or round)
    layer = _layer(kind, bits_in=bits_in or bits, q_in=q_v if q_in is None else q_in, bits_v=bits, q_v=q_v,
                   bits_out=bits_out or bits, q_out=q_v if q_out is None else q_out, tau=tau,
                   v_threshold=v_threshold, v_reset=v_reset, round_v=rv, round_in=ri)
    fv, fout = layer["fmt_v"], layer["fmt_out"]
    # The spike's output: quantizer_act(1.0), or for ATIF quantizer_act(spike * quantizer_v(v_threshold)).
    kind = layer["kind"]
    spike_real = fv.real(layer["v_threshold"]) if kind.graded_spike else 1.0
    spike_out = int(quantize_real(spike_real, fout, ro))
    train = profile == "torch-train"
    # spikingjelly switches to its "reset0" charge formulas for v_reset None, and in train mode also for v_reset == 0.
    reset0 = v_reset is None or (train and layer["v_reset"] == 0)
    return Spec(**layer, decay_input=bool(decay_input), spike_out=spike_out, round=rv, v_overflow="saturate",
                order="round_then_fire" if train or kind.graded_spike else "fire_then_round", arith="float32",
                charge_form="reset0" if reset0 else "general", v_init="reset", profile=profile)


def torch_eval(kind="LIF", *, bits=8, q_v=6, q_in=None, q_out=None, bits_in=None, bits_out=None, tau=2.0,
               v_threshold=1.0, v_reset=0.0, decay_input=True, round="nearest", round_in=None, round_out=None) -> Spec:
    """Qualia QuantizedLIFNode / QuantizedIFNode / QuantizedATIF in ``.eval()``.

    Charge in float32 (LIF: a true float32 division by float32(tau)), spike
    test on the unrounded potential, reset, then quantize v; v starts at
    v_reset. ``round`` is quantizer_v's Qualia roundtype (nearest/floor/ceil).
    """
    return _torch("torch-eval", kind, bits=bits, q_v=q_v, q_in=q_in, q_out=q_out, bits_in=bits_in, bits_out=bits_out,
                  tau=tau, v_threshold=v_threshold, v_reset=v_reset, decay_input=decay_input, round=round,
                  round_in=round_in, round_out=round_out)


def torch_train(kind="LIF", *, bits=8, q_v=6, q_in=None, q_out=None, bits_in=None, bits_out=None, tau=2.0,
                v_threshold=1.0, v_reset=0.0, decay_input=True, round="nearest", round_in=None, round_out=None) -> Spec:
    """The same layers in ``.train()`` (QAT forward) with frozen q's (``force_q``): quantize, then fire."""
    return _torch("torch-train", kind, bits=bits, q_v=q_v, q_in=q_in, q_out=q_out, bits_in=bits_in, bits_out=bits_out,
                  tau=tau, v_threshold=v_threshold, v_reset=v_reset, decay_input=decay_input, round=round,
                  round_in=round_in, round_out=round_out)


def codegen(kind="LIF", *, width=8, long_width=None, bits=None, q_v=6, q_in=None, q_out=None, tau=2.0,
            v_threshold=1.0, v_reset=0.0, decay_input=True, round="nearest", round_in=None, round_out=None) -> Spec:
    """The C of qualia-codegen-plugin-snn (lif.cc / if.cc over number.hh), quirks included.

    NUMBER_T is ``width`` bits, LONG_NUMBER_T ``long_width`` (default 2*width)
    and wraps; the potential, input and leak are aligned to TMP = max(q_in,
    q_v) and the leak product is shifted by TMP too; the spike outputs
    clamp(1 << q_out); the potential starts at 0. ``bits`` is the Qualia
    quantizer width used to quantize the hyperparameters before export
    (default ``width``); the exported integers are clipped to ``width``.

    ``q_in`` is the scale of the C layer's input, i.e. the *previous* layer's
    output q (``node.innodes[0].q.output_scale_factor``), not this neuron's
    own quantizer_input. ``round`` is quantizer_v's roundtype, with which the
    exporter quantizes the hyperparameters (weights_round_mode); the C's
    arithmetic rounds by OUTPUT_ROUND_MODE, which is quantizer_act's roundtype:
    ``round_out`` (default ``round``).
    """
    kind = Kind.parse(kind, "kind")
    if kind not in KINDS["codegen"]:
        raise SpecError(f"kind: qualia-codegen has no mapping for {kind}; use a torch profile or 'hardware'")
    if width not in (8, 16, 32):
        raise SpecError(f"width: NUMBER_T must be 8, 16 or 32 bits, got {width!r}")
    long_width = 2 * width if long_width is None else long_width
    if long_width not in (16, 32, 64) or long_width <= width:
        raise SpecError(f"long_width: LONG_NUMBER_T must be 16, 32 or 64 bits and wider than width, got {long_width!r}")
    if round not in ("nearest", "floor"):
        raise SpecError(f"round: qualia-codegen exports hyperparameters 'nearest' or 'floor', got {round!r}")
    round_out = round if round_out is None else round_out
    if round_out not in ("nearest", "floor"):
        raise SpecError(f"round_out: the C rounds 'nearest' or 'floor' (OUTPUT_ROUND_MODE), got {round_out!r}")
    rv = QUALIA_ROUND[round]  # exporting the hyperparameters
    rc = QUALIA_ROUND[round_out]  # the C's arithmetic
    q_in = q_v if q_in is None else q_in
    q_out = q_v if q_out is None else q_out
    qbits = width if bits is None else bits
    layer = _layer(kind, bits_in=width, q_in=q_in, bits_v=qbits, q_v=q_v, bits_out=width, q_out=q_out, tau=tau,
                   v_threshold=v_threshold, v_reset=v_reset, round_v=rv,
                   round_in=qualia_round("round_in", round_in or round))
    c = QFormat(width, q_v)
    layer["fmt_v"] = c
    for name in ("v_threshold", "v_reset", "reciprocal_tau"):  # the exporter clips to the C width
        layer[name] = min(max(layer[name], c.min), c.max)
    # The spike value clamp_to(NUMBER_T, scale(NUMBER_T, 1, -q_out)): scale() takes and returns a LONG_NUMBER_T, so
    # 1 << q_out (or, for q_out < 0, the rounding right shift) wraps to long_width bits before the clamp (an int8
    # build with q_out = 15 outputs -128). C evaluates in int (or int64_t): shifts past its width are undefined.
    arith = max(32, long_width)
    if q_out >= 0 and q_out >= arith - 1:
        raise SpecError(f"q_out: 1 << {q_out} is undefined behaviour in the generated C ({arith}-bit arithmetic)")
    if q_out < 0 and (-q_out >= arith or (rc == "RND" and -q_out - 1 >= 31)):
        raise SpecError(f"q_out: scale(1, {-q_out}) is undefined behaviour in the generated C")
    one = quant.rescale(1, -q_out, rc, lambda m: quant.wrap(m, long_width))  # number.hh scale(1, -q_out) in LONG
    spike_out = min(max(one, c.min), c.max)
    return Spec(**layer, decay_input=bool(decay_input), spike_out=spike_out, round=rc, v_overflow="saturate",
                acc_bits=long_width, acc_overflow="wrap", order="fire_then_round", arith="int",
                leak_shift="max_q", v_init="zero", profile="codegen")


def hardware(kind="LIF", *, bits=8, q_v=6, q_in=None, q_out=None, acc_bits=None, tau=2.0, v_threshold=1.0,
             v_reset=0.0, decay_input=True, round="RND", overflow="saturate") -> Spec:
    """A clean integer datapath for RTL: exact leak shift, saturation, ties by ``round`` (a Xilinx mode name)."""
    q_in = q_v if q_in is None else q_in
    q_out = bits - 1 if q_out is None else q_out
    layer = _layer(kind, bits_in=bits, q_in=q_in, bits_v=bits, q_v=q_v, bits_out=bits, q_out=q_out, tau=tau,
                   v_threshold=v_threshold, v_reset=v_reset, round_v="RND", round_in="RND")
    fout = layer["fmt_out"]
    spike_real = layer["fmt_v"].real(layer["v_threshold"]) if layer["kind"].graded_spike else 1.0
    acc = acc_bits or 2 * bits + abs(q_in - q_v) + 2
    return Spec(**layer, decay_input=bool(decay_input), spike_out=int(quantize_real(spike_real, fout)), round=round,
                v_overflow=overflow, acc_bits=acc, acc_overflow=overflow, order="fire_then_round", arith="int",
                leak_shift="q_v", v_init="reset", profile="hardware")


PROFILES = {"torch-eval": torch_eval, "torch-train": torch_train, "codegen": codegen, "hardware": hardware}
# The neuron kinds each profile has (qualia-codegen has no ATIF mapping): the one list bench, diff and the CLI use.
KINDS = {name: tuple(Kind) for name in PROFILES} | {"codegen": (Kind.IF, Kind.LIF)}


def make(profile: str, kind: str = "LIF", **params) -> Spec:
    """Build a spec from a profile name and real-valued layer parameters."""
    if profile not in PROFILES:
        raise SpecError(f"profile: unknown value {profile!r} (expected one of: {', '.join(PROFILES)})")
    return PROFILES[profile](kind, **params)
