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

The rules for reading Qualia live in :mod:`golden.qualia`; this module is the facade over them. Only torch,
spikingjelly 0.0.0.0.14 and qualia-plugin-snn 2.6 are imported, lazily; nothing of Qualia (AGPL-3.0) is copied
here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import SpecError, TorchBridgeError
from .qualia import neurons
from .qualia.check import check_network
from .qualia.deploy import network_codegen
from .qualia.deployment import Deployed, Packaged
from .qualia.network import network_from_module
from .qualia.neurons import PROFILES, TORCH_PROFILES, spec_from_module
from .qualia.stack import restore_quantizers, snapshot_quantizers, stack
from .simulate import simulate

__all__ = ["CheckReport", "Divergence", "LayerReport", "TorchBridgeError", "check_model", "from_torch"]

_TORCH_PROFILES = TORCH_PROFILES


def from_torch(module, profile: str = "torch-eval", **overrides):
    """The golden spec of a real Qualia quantized neuron layer; the :class:`golden.network.Network` of a whole model.

    A thin facade: it dispatches by the object's type to the explicit factories of :mod:`golden.qualia`:

    - a quantized neuron module (QuantizedLIFNode / QuantizedIFNode / QuantizedATIF):
      :func:`golden.qualia.spec_from_module` (profiles "torch-eval", "torch-train", "codegen"; ``overrides`` are
      the profile function's keyword arguments, e.g. ``q_in=7``, and a value given as an override is not read);
    - a whole calibrated model (QuantizedSMLP / SCNN / SResNet or any graph of the supported layers):
      :func:`golden.qualia.network_from_module` (torch-eval; override ``input_shape=`` when the model does not
      record it) or, with ``profile="codegen"``, :func:`golden.qualia.network_codegen` (the C Qualia deploys;
      overrides ``width`` 8/16 and ``long_width`` 16/32/64).

    Raises :class:`TorchBridgeError` (a :class:`golden.SpecError`) naming the cause for: an unsupported module
    type, an unquantized SpikingJelly node, a quantizer that is uncalibrated (global_max = -inf and no force_q),
    has LSQ=True, is asymmetric or has a quantype other than 'fxp' (Qualia's converter refuses those too).
    """
    if profile not in PROFILES:
        raise TorchBridgeError(f"profile: {profile!r} is not one from_torch builds (expected one of: "
                               f"{', '.join(PROFILES)})")
    if isinstance(module, (Packaged, Deployed)):  # golden's test factory's Built, or a deployment: its model
        if profile == "codegen":
            return _whole_codegen(module, overrides)
        module = module.model
    torch = stack().torch
    if not isinstance(module, torch.nn.Module):
        raise TorchBridgeError(f"unsupported object type {type(module).__name__}: from_torch reads a Qualia "
                               f"quantized neuron module or a whole quantized model (torch.nn.Module)")
    if neurons.is_neuron(module):
        return spec_from_module(module, profile, **overrides)
    if not any(True for _ in module.children()):
        neurons.kind(module)  # a lone non-neuron layer: refused, naming its type
    if profile == "codegen":
        return _whole_codegen(module, overrides)
    if profile != "torch-eval":
        raise TorchBridgeError(f"profile: a whole model is built for 'torch-eval' or 'codegen' (got {profile!r})")
    unknown = set(overrides) - {"input_shape"}
    if unknown:
        raise TorchBridgeError(f"unknown override(s) {', '.join(sorted(unknown))} for a whole model "
                               f"(allowed: input_shape)")
    return network_from_module(module, **overrides)


def _whole_codegen(model, overrides):
    unknown = set(overrides) - {"width", "long_width"}
    if unknown:
        raise TorchBridgeError(f"unknown override(s) {', '.join(sorted(unknown))} for a whole model's codegen "
                               f"profile (allowed: width, long_width)")
    return network_codegen(model, **overrides)


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


def check_model(model, inputs, profile: str = "torch-eval", *, network: bool = False):
    """Prove a real model against golden; ``network=True``: every layer of a whole model, see below.

    ``network=True`` (torch-eval): ``inputs`` is (samples, steps, *input_shape),
    channels-first; the model runs in its own step mode ('s' or 'm') with every
    sample in one batch; every layer (synaptic and neuron) is compared at every
    step, each replayed on the module's own inputs; returns a
    :class:`golden.qualia.check.NetworkReport` (first divergence as sample, t,
    layer, index with its cause and a shrunk input). Otherwise: the per-neuron
    check below.
    """
    if network:
        if profile != "torch-eval":
            raise TorchBridgeError(f"profile: a whole-network check runs torch-eval, not {profile!r}")
        return check_network(model, inputs)
    return _check_neurons(model, inputs, profile)


def _neuron_layers(model, profile: str):
    """([(module, report, record)] of the layers to check, [every neuron layer's report]): a refused one is reported."""
    layers, reports = [], []
    for name, m in model.named_modules():
        if not neurons.is_neuron(m):
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
    return layers, reports


def _compare_layer(torch, rep: LayerReport, rec: dict, T: int) -> None:
    """Replay one layer's recorded inputs through golden and fill ``rep`` (counts, first divergence, spike rate)."""
    calls = len(rec["x"])
    if calls != T:
        rep.error = f"called {calls} times over {T} steps; check_model needs exactly one call per step"
        return
    spec = rep.spec
    xs = torch.stack(rec["x"]).numpy()
    shape = xs.shape
    rep.steps, rep.neurons = T, int(np.prod(shape[1:], dtype=np.int64))
    try:
        raw = spec.quantize_input(xs)
    except SpecError as e:
        rep.error = f"recorded inputs: {e}"
        return
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
    if profile not in _TORCH_PROFILES:
        raise TorchBridgeError(f"profile: check_model runs the real model, so it takes one of "
                               f"{', '.join(_TORCH_PROFILES)}, not {profile!r}")
    s = stack()
    torch, functional = s.torch, s.functional
    x = inputs if torch.is_tensor(inputs) else torch.as_tensor(np.asarray(inputs))
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    if x.dim() < 2:
        raise TorchBridgeError(f"inputs: expected shape (T, batch, ...), got {tuple(x.shape)}")
    T = int(x.shape[0])

    layers, reports = _neuron_layers(model, profile)
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
    saved = snapshot_quantizers(model)
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
        restore_quantizers(saved)
        functional.reset_net(model)

    for _m, rep, rec in layers:
        _compare_layer(torch, rep, rec, T)
    return CheckReport(profile, reports)
