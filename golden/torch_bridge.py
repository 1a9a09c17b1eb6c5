"""From real Qualia layers to golden specs, and a whole-model bit-exactness check.

``from_torch(module, profile)`` reads a qualia-plugin-snn quantized neuron
(``QuantizedLIFNode``, ``QuantizedIFNode``, ``QuantizedATIF``) and returns the
:class:`~golden.spec.Spec` of what it computes:

- each quantizer's bits, roundtype and fractional bits q, from ``force_q`` or
  from its calibrated ``global_max`` (q is read off the scale the quantizer
  itself computes, so the float32 ``log2`` it uses is honoured);
- the hyperparameters as the module holds them now, re-quantized the way the
  module re-quantizes them each step (v_threshold, 1/tau, v_reset through
  quantizer_v; ``v_reset is None`` means a soft reset), and ``decay_input``.

``check_model(model, inputs, profile)`` runs a real model step by step, records
every quantized neuron layer's actual inputs, outputs and potentials, replays
the inputs through golden and reports, per layer, "exact" or the first
divergence.

Train mode (``profile="torch-train"``) is compared with every neuron
quantizer's q frozen by ``force_q``: in ``.train()`` Qualia updates
``global_max`` on every call, so an unforced q (and with it tau's
re-quantization) can move from one step to the next, which no fixed datapath
describes. ``check_model`` refuses an unforced quantizer in train mode.

Only torch, spikingjelly 0.0.0.0.14 and qualia-plugin-snn 2.6 are imported,
lazily; nothing of Qualia (AGPL-3.0) is copied here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .spec import SpecError

__all__ = ["CheckReport", "Divergence", "LayerReport", "TorchBridgeError", "check_model", "from_torch"]

_LAYERS = "qualia_plugin_snn.learningmodel.pytorch.layers.quantized_SNN_layers"
_TORCH_PROFILES = ("torch-eval", "torch-train")
_PROFILES = _TORCH_PROFILES + ("codegen",)


class TorchBridgeError(SpecError):
    """A module golden refuses to describe; the message names the cause (and the fix, when there is one)."""


def _stack():
    """torch, the Qualia quantized SNN layer module, spikingjelly's neuron and functional modules."""
    try:
        import importlib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
            layers = importlib.import_module(_LAYERS)
            from spikingjelly.activation_based import functional, neuron
    except Exception as e:
        raise TorchBridgeError(f"the torch reference stack is not importable (torch, spikingjelly 0.0.0.0.14, "
                               f"qualia-plugin-snn 2.6): {type(e).__name__}: {e}") from None
    return torch, layers, neuron, functional


def _kind(module) -> str:
    """'LIF' / 'IF' / 'ATIF', or a refusal naming why this module is not one golden describes."""
    _, layers, neuron, _ = _stack()
    if isinstance(module, layers.QuantizedLIFNode):
        return "LIF"
    if isinstance(module, layers.QuantizedIFNode):
        return "IF"
    if isinstance(module, layers.QuantizedATIF):
        return "ATIF"
    name = type(module).__name__
    if isinstance(module, neuron.BaseNode):
        raise TorchBridgeError(f"{name} is an unquantized SpikingJelly node: it computes in float, so no fixed-point "
                               f"datapath describes it; use qualia-plugin-snn's QuantizedLIFNode / QuantizedIFNode / "
                               f"QuantizedATIF")
    raise TorchBridgeError(f"unsupported module type {name}: golden describes QuantizedLIFNode, QuantizedIFNode and "
                           f"QuantizedATIF (qualia-plugin-snn 2.6)")


def _is_neuron(module) -> bool:
    _, layers, neuron, _ = _stack()
    return isinstance(module, (layers.QuantizedLIFNode, layers.QuantizedIFNode, layers.QuantizedATIF, neuron.BaseNode))


# ------------------------------------------------------------- quantizers
def _quantizer_format(module, attr: str, profile: str, need_q: bool = True):
    """(bits, q, roundtype) of ``module.<attr>``, or a refusal naming the cause; q is None unless ``need_q``."""
    torch = _stack()[0]
    qz = getattr(module, attr, None)
    where = f"{type(module).__name__}.{attr}"
    if qz is None:
        raise TorchBridgeError(f"{where}: missing (not a Qualia quantized layer?)")
    if not getattr(qz, "quant_enable", True):
        raise TorchBridgeError(f"{where}: quant_enable=False, so this tensor stays float; golden needs fixed point")
    if getattr(qz, "LSQ", False):
        raise TorchBridgeError(f"{where}: LSQ=True learns a scale that is not a power of two; golden needs "
                               f"fixed-point quantizers ('fxp', LSQ=False)")
    if getattr(qz, "is_asymmetric", False):
        raise TorchBridgeError(f"{where}: is_asymmetric=True adds an offset; golden needs symmetric fixed point")
    if qz.quantype != "fxp":
        raise TorchBridgeError(f"{where}: quantype={qz.quantype!r}; golden supports only 'fxp'")
    if qz.roundtype not in ("nearest", "floor", "ceil"):
        raise TorchBridgeError(f"{where}: unknown roundtype {qz.roundtype!r} (expected nearest, floor or ceil)")
    bits = int(qz.bits)
    if not need_q:
        return bits, None, qz.roundtype
    gm = float(qz.global_max)
    if qz.force_q is not None:
        # In train mode global_max == 0 only lasts while every value seen is 0 (scale 1 quantizes 0 to 0 all the
        # same); the first non-zero value moves it before it is quantized. In eval it stays 0 for good.
        if gm == 0 and profile != "torch-train":
            raise TorchBridgeError(f"{where}: global_max == 0, so Qualia uses a scale of 1 and ignores force_q="
                                   f"{qz.force_q} (while fractional_bits reports {qz.fractional_bits}); calibrate it "
                                   f"on non-zero data in train mode")
        return bits, int(qz.force_q), qz.roundtype
    if math.isnan(gm) or gm == -math.inf:
        raise TorchBridgeError(f"{where}: uncalibrated quantizer (global_max={gm}, no force_q): Qualia would turn "
                               f"every value into NaN; calibrate it (run data through the model in train mode), set "
                               f"force_q, or state the q as an override")
    if gm == 0:
        why = " (the layer never spiked while it was calibrated)" if attr == "quantizer_act" else ""
        raise TorchBridgeError(f"{where}: global_max == 0{why}, so Qualia uses a scale of 1 (q = 0) while "
                               f"fractional_bits reports {qz.fractional_bits}, which is what an exporter uses; "
                               f"calibrate it on data that makes it non-zero, set force_q, or state the q as an "
                               f"override")
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
    return bits, q, qz.roundtype


def _threshold(module, kind: str, q_v: int, bits_v: int, round_v: str) -> float:
    """The threshold as the module holds it; ATIF's must be one Parameter value on the q_v grid."""
    if kind != "ATIF":
        return float(module.v_threshold)
    vth = module.v_threshold
    if vth.numel() != 1:
        raise TorchBridgeError(f"QuantizedATIF.v_threshold holds {vth.numel()} values; golden needs one per layer")
    value = float(vth.detach().reshape(()))
    from .profiles import qualia_round
    from .spec import QFormat, quantize_real

    fmt = QFormat(bits_v, q_v)
    raw = int(quantize_real(value, fmt, qualia_round("round", round_v)))
    if math.ldexp(raw, -q_v) != value and raw in (fmt.min, fmt.max):
        raise TorchBridgeError(f"QuantizedATIF.v_threshold = {value!r} is outside {fmt} (q_v={q_v}): Qualia fires on "
                               f"it but outputs the saturated {math.ldexp(raw, -q_v)!r}; lower the threshold or q_v")
    if math.ldexp(raw, -q_v) != value:
        raise TorchBridgeError(f"QuantizedATIF.v_threshold = {value!r} is not on the q_v={q_v} grid ({fmt}): the layer "
                               f"fires and resets on the unquantized threshold but outputs the quantized one, which "
                               f"no integer datapath reproduces; call module.set_coeffs(module.v_threshold.data), "
                               f"which quantizes it (under torch.no_grad())")
    return value


def _module_params(module, kind: str, profile: str, overrides: dict) -> dict:
    """Profile keyword arguments read from the module; an overridden q is not read (nor refused)."""
    params: dict = {}
    for attr, keys in (("quantizer_v", ("bits", "q_v", "round")), ("quantizer_input", ("bits_in", "q_in", "round_in")),
                       ("quantizer_act", ("bits_out", "q_out", "round_out"))):
        values = _quantizer_format(module, attr, profile, need_q=keys[1] not in overrides)
        params.update({k: v for k, v in zip(keys, values) if k not in overrides})
    params.update({k: v for k, v in overrides.items() if k in ("bits", "q_v", "round")})
    held = _held(params["bits"], params["q_v"], params["round"])
    if kind == "LIF":
        # Qv(float32(1 / tau)), as quantize_v_and_hyperparams does; tau = 1 / that. A 0 is left for the profile
        # to refuse (Qualia divides by it: ZeroDivisionError).
        rtau = held(1.0 / float(module.tau))
        params["tau"] = 1.0 / rtau if rtau else float(module.tau)
        params["decay_input"] = bool(module.decay_input)
    else:
        params["tau"] = None
        params["decay_input"] = True
    if kind == "ATIF":
        params["v_reset"] = None
        if "v_threshold" not in overrides:
            params["v_threshold"] = _threshold(module, kind, params["q_v"], params["bits"], params["round"])
    else:
        params["v_reset"] = None if module.v_reset is None else held(float(module.v_reset))
        params["v_threshold"] = held(float(module.v_threshold))
    return params


def _held(bits: int, q_v: int, roundtype: str):
    """value -> what quantizer_v makes of it (float32, rounded, *saturated*): the module holds that after one step.

    Re-quantizing is idempotent, so this changes nothing but a hyperparameter beyond the format's range, which
    Qualia saturates silently (e.g. v_threshold = 1.0 at 8 bits, q_v = 7 becomes 127/128).
    """
    from .profiles import qualia_round
    from .spec import QFormat, quantize_real

    fmt, rnd = QFormat(bits, q_v), qualia_round("round", roundtype)
    return lambda value: fmt.real(int(quantize_real(value, fmt, rnd)))


def from_torch(module, profile: str = "torch-eval", **overrides):
    """The golden spec of a real Qualia quantized neuron layer; the :class:`golden.network.Network` of a whole model.

    ``profile="codegen"`` on a deployable whole model (a
    :class:`golden.refs.qualia_models.Built`, or :func:`golden.refs.codegen_model.deploy`'s
    result; overrides ``width`` 8/16 and ``long_width`` 16/32/64) gives the network the C that
    Qualia deploys computes (see :mod:`golden.network.codegen`).
    A whole calibrated model (QuantizedSMLP / SCNN / SResNet or any graph of the
    supported layers) gives its torch-eval network (see
    :mod:`golden.network.from_torch`; override ``input_shape=`` when the model does
    not record it). A QuantizedATIF's learned threshold is taken as it is held,
    on the q_v grid or not (see :mod:`golden.network.atif`).

    ``profile``: "torch-eval" (the layer in ``.eval()``), "torch-train" (in
    ``.train()``, q's frozen by ``force_q``) or "codegen" (the C that
    qualia-codegen generates for it; ``width`` / ``long_width`` overrides give
    NUMBER_T / LONG_NUMBER_T, default ``width`` = quantizer_v's bits).
    ``overrides`` are the profile function's keyword arguments (``q_in=7``,
    ``round_out="floor"``, ...) and win over what is read from the module; a
    value given as an override is not read, so e.g. ``q_in=7`` makes an
    uncalibrated input quantizer acceptable.

    Raises :class:`TorchBridgeError` (a :class:`golden.SpecError`) naming the
    cause for: an unsupported module type, an unquantized SpikingJelly node, a
    quantizer that is uncalibrated (global_max = -inf and no force_q), has
    LSQ=True, is asymmetric, has a quantype other than 'fxp' or a global_max of
    0 (and, for the codegen profile, an ATIF threshold off the q_v grid).
    """
    from . import profiles

    if profile not in _PROFILES:
        raise TorchBridgeError(f"profile: {profile!r} is not one from_torch builds (expected one of: "
                               f"{', '.join(_PROFILES)})")
    if profile == "codegen" and _is_model_bundle(module):
        unknown = set(overrides) - {"width", "long_width"}
        if unknown:
            raise TorchBridgeError(f"unknown override(s) {', '.join(sorted(unknown))} for a whole model's codegen "
                                   f"profile (allowed: width, long_width)")
        from .network.codegen import network_codegen

        return network_codegen(module, **overrides)
    if not _is_neuron(module) and not any(True for _ in module.children()):
        _kind(module)  # a lone non-neuron layer: refused, naming its type
    if not _is_neuron(module):
        if profile == "codegen":
            raise TorchBridgeError("profile: 'codegen' of a whole model needs the deployable model "
                                   "(golden.refs.qualia_models.Built, or codegen_model.deploy's result): the "
                                   "converter loads the weights into the float twin template")
        if profile != "torch-eval":
            raise TorchBridgeError(f"profile: a whole model is built for 'torch-eval' (got {profile!r})")
        unknown = set(overrides) - {"input_shape"}
        if unknown:
            raise TorchBridgeError(f"unknown override(s) {', '.join(sorted(unknown))} for a whole model "
                                   f"(allowed: input_shape)")
        from .network.from_torch import network_from_torch

        return network_from_torch(module, **overrides)
    kind = _kind(module)
    if kind == "ATIF" and profile in _TORCH_PROFILES and "v_threshold" not in overrides:
        if overrides:
            raise TorchBridgeError("ATIF: overrides are not supported with the threshold the module holds; pass "
                                   "v_threshold too")
        from .network.atif import neuron_spec

        return neuron_spec(module, type(module).__name__, profile)
    if profile == "codegen":
        allowed = set(profiles.codegen.__kwdefaults__)
    else:
        allowed = set(profiles.torch_eval.__kwdefaults__)
    unknown = set(overrides) - allowed
    if unknown:
        raise TorchBridgeError(f"unknown override(s) {', '.join(sorted(unknown))} for profile {profile!r} "
                               f"(allowed: {', '.join(sorted(allowed))})")
    params = _module_params(module, kind, "torch-train" if profile == "torch-train" else "torch-eval", overrides)
    if profile == "codegen":
        params = {k: v for k, v in params.items() if k in allowed}
        params.setdefault("width", params.get("bits"))
        params.update(overrides)
        if params.get("width") not in (8, 16, 32):
            raise TorchBridgeError(f"width: quantizer_v has {params.get('bits')} bits, which is no C NUMBER_T; "
                                   f"state the C width with width=8, 16 or 32")
        return profiles.codegen(kind, **params)
    params.update(overrides)
    build = profiles.torch_train if profile == "torch-train" else profiles.torch_eval
    return build(kind, **params)


def _is_model_bundle(obj) -> bool:
    """A whole model golden's codegen profile deploys: qualia_models.Built or codegen_model.Deployed."""
    return type(obj).__name__ in ("Built", "Deployed") and type(obj).__module__.startswith("golden.refs.")


# ------------------------------------------------------------ check_model
@dataclass
class Divergence:
    """The first step where golden and the module part: ``expected`` is golden's raw value, ``got`` the module's."""

    t: int
    neuron: int  # flat index over (batch, *neurons) of one step
    index: tuple  # the same, unravelled
    field: str  # "out" or "v"
    expected: int
    got: object  # a raw int, or the module's float when it is not on the grid (or not finite)
    expected_real: float
    got_real: float

    def __str__(self) -> str:
        return (f"t={self.t} neuron={self.neuron} {self.index} {self.field}: golden {self.expected} "
                f"({self.expected_real!r}) != module {self.got} ({self.got_real!r})")


@dataclass
class LayerReport:
    """One neuron layer: exact, or its first divergence (or why it could not be checked)."""

    name: str
    kind: str
    spec: object = None
    steps: int = 0
    neurons: int = 0
    divergence: Divergence | None = None
    error: str | None = None
    spike_rate: float = 0.0  # golden's, over the replay: a check with no spike proves little
    mismatches: dict = field(default_factory=dict)  # field -> number of differing neuron-steps

    @property
    def exact(self) -> bool:
        return self.error is None and self.divergence is None

    @property
    def neuron_steps(self) -> int:
        return self.steps * self.neurons

    def __str__(self) -> str:
        head = f"{self.name or '<model>'} ({self.kind})"
        if self.error is not None:
            return f"{head}: NOT CHECKED: {self.error}"
        if self.divergence is None:
            return (f"{head}: exact over {self.steps} steps x {self.neurons} neurons "
                    f"(spike rate {100 * self.spike_rate:.1f}%)")
        counts = ", ".join(f"{k} {v}" for k, v in self.mismatches.items() if v)
        return (f"{head}: DIVERGES first at {self.divergence} [mismatching neuron-steps: {counts}]\n"
                f"    spec: {self.spec.describe()}")


@dataclass
class CheckReport:
    """Per-layer results of :func:`check_model`; true when every layer is exact."""

    profile: str
    layers: list

    @property
    def ok(self) -> bool:
        return bool(self.layers) and all(layer.exact for layer in self.layers)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def neuron_steps(self) -> int:
        return sum(layer.neuron_steps for layer in self.layers)

    def __str__(self) -> str:
        if not self.layers:
            return f"check_model ({self.profile}): no quantized neuron layer found"
        verdict = "bit-exact" if self.ok else "NOT bit-exact"
        head = f"check_model ({self.profile}): {verdict}, {len(self.layers)} layer(s), {self.neuron_steps} neuron-steps"
        lines = [head]
        lines += [f"  {layer}" for layer in self.layers]
        return "\n".join(lines)


def _raw_compare(name: str, want: np.ndarray, have: np.ndarray, q: int):
    """First (t, flat) where the module's floats ``have`` differ from golden's raw ``want`` at q; and the count."""
    real = have.astype(np.float64) * 2.0 ** q
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(real) | (real != want.astype(np.float64))
    if not bad.any():
        return None, 0
    t, n = (int(a) for a in np.argwhere(bad)[0])
    got_real = float(have[t, n])
    r = real[t, n]
    got = int(r) if math.isfinite(r) and r == math.floor(r) else got_real
    return (t, n, name, int(want[t, n]), got, math.ldexp(int(want[t, n]), -q), got_real), int(bad.sum())


def _snapshot_quantizers(model):
    """Every Quantizer's running (global_max, global_min), to restore after a train-mode run."""
    saved = []
    for m in model.modules():
        if hasattr(m, "global_max") and hasattr(m, "compute_scale_and_offset"):
            saved.append((m, m.global_max, m.global_min))
    return saved


def check_model(model, inputs, profile: str = "torch-eval", *, network: bool = False):
    """Prove a real model against golden; ``network=True``: every layer of a whole model, see below.

    ``network=True`` (torch-eval): ``inputs`` is (samples, steps, *input_shape),
    channels-first; the model runs in its own step mode ('s' or 'm') with every
    sample in one batch; every layer (synaptic and neuron) is compared at every
    step, each replayed on the module's own inputs; returns a
    :class:`golden.network.check.NetworkReport` (first divergence as sample, t,
    layer, index with its cause and a shrunk input). Otherwise: the per-neuron
    check below.
    """
    if network:
        if profile != "torch-eval":
            raise TorchBridgeError(f"profile: a whole-network check runs torch-eval, not {profile!r}")
        from .network.check import check_network

        return check_network(model, inputs)
    return _check_neurons(model, inputs, profile)


def _check_neurons(model, inputs, profile: str = "torch-eval") -> CheckReport:
    """Run ``model`` step by step on ``inputs`` (T, batch, ...) and prove every quantized neuron layer against golden.

    Every QuantizedLIFNode / QuantizedIFNode / QuantizedATIF gets forward hooks
    recording its actual float input, output and potential at each step. The
    model is reset (spikingjelly ``functional.reset_net``), put in ``.eval()``
    (torch-eval) or ``.train()`` (torch-train) and run under ``torch.no_grad()``
    one step at a time; its mode and its quantizers' running calibration are
    restored afterwards. Each layer's spec is read with :func:`from_torch`
    before the run; its recorded inputs are quantized with
    ``spec.quantize_input`` and replayed through :func:`golden.simulate`, and
    the outputs and potentials are compared raw. A layer that golden cannot
    describe (an unquantized node, a refused quantizer) is reported, not
    skipped. The model must be in single-step mode.
    """
    from .simulate import simulate

    if profile not in _TORCH_PROFILES:
        raise TorchBridgeError(f"profile: check_model runs the real model, so it takes one of "
                               f"{', '.join(_TORCH_PROFILES)}, not {profile!r}")
    torch, _, _, functional = _stack()
    x = inputs if torch.is_tensor(inputs) else torch.as_tensor(np.asarray(inputs))
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    if x.dim() < 2:
        raise TorchBridgeError(f"inputs: expected shape (T, batch, ...), got {tuple(x.shape)}")
    T = int(x.shape[0])

    layers, reports = [], []
    for name, m in model.named_modules():
        if not _is_neuron(m):
            continue
        mode = getattr(m, "step_mode", "s")
        if mode != "s":
            raise TorchBridgeError(f"{name or type(m).__name__}: step_mode={mode!r}; check_model steps the model one "
                                   f"time step at a time: call spikingjelly's functional.set_step_mode(model, 's')")
        rep = LayerReport(name=name, kind=type(m).__name__)
        reports.append(rep)
        try:
            rep.spec = from_torch(m, profile)
            if profile == "torch-train":
                for attr in ("quantizer_input", "quantizer_v", "quantizer_act"):
                    if getattr(m, attr).force_q is None:
                        raise TorchBridgeError(f"{type(m).__name__}.{attr}: no force_q; in train mode Qualia "
                                               f"recalibrates q at every call, so torch-train is checked with every "
                                               f"neuron quantizer's q frozen by force_q")
        except SpecError as e:
            rep.error = str(e)
            continue
        layers.append((m, rep, {"x": [], "out": [], "v": []}))

    def pre_hook(rec):
        def hook(module, args):
            rec["x"].append(args[0].detach().to(torch.float32).clone())
        return hook

    def post_hook(rec):
        def hook(module, args, output):
            rec["out"].append(output.detach().to(torch.float32).clone())
            v = module.v
            v = v.detach().clone() if torch.is_tensor(v) else torch.tensor(float(v))
            rec["v"].append(torch.broadcast_to(v.to(torch.float32), output.shape).clone())
        return hook

    handles = []
    for m, _, rec in layers:
        handles.append(m.register_forward_pre_hook(pre_hook(rec)))
        handles.append(m.register_forward_hook(post_hook(rec)))
    was_training = model.training
    saved = _snapshot_quantizers(model)
    try:
        model.train(profile == "torch-train")
        functional.reset_net(model)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Qualia's torch.tensor(tensor)
            for t in range(T):
                model(x[t])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        for q, gmax, gmin in saved:
            q.global_max, q.global_min = gmax, gmin
        functional.reset_net(model)

    for _m, rep, rec in layers:
        calls = len(rec["x"])
        if calls != T:
            rep.error = f"called {calls} times over {T} steps; check_model needs exactly one call per step"
            continue
        spec = rep.spec
        xs = torch.stack(rec["x"]).numpy()
        shape = xs.shape
        rep.steps, rep.neurons = T, int(np.prod(shape[1:], dtype=np.int64))
        try:
            raw = spec.quantize_input(xs)
        except SpecError as e:
            rep.error = f"recorded inputs: {e}"
            continue
        trace = simulate(spec, raw)
        rep.spike_rate = trace.spike_rate
        first = None
        for fname, q in (("out", spec.fmt_out.frac), ("v", spec.fmt_v.frac)):
            have = torch.stack(rec[fname]).numpy().reshape(T, -1)
            want = getattr(trace, fname).reshape(T, -1)
            d, count = _raw_compare(fname, want, have, q)
            rep.mismatches[fname] = count
            if d is not None and (first is None or d[:2] < first[:2]):
                first = d
        if first is not None:
            t, n, fname, exp, got, exp_real, got_real = first
            index = tuple(int(i) for i in np.unravel_index(n, shape[1:]))
            rep.divergence = Divergence(t, n, index, fname, exp, got, exp_real, got_real)
    return CheckReport(profile, reports)
