"""Build small, calibrated, REAL qualia-plugin-snn models for whole-network checks.

This module only imports and calls the installed qualia-plugin-snn / qualia-core /
spikingjelly 0.0.0.0.14 (Qualia is AGPL-3.0; nothing of it is copied here).

    from golden.refs.qualia_models import build, configs, run_torch
    b = build("SCNN", dims=2, kind="LIF", bits=8, batch_norm=True, seed=1)
    x = b.sample_inputs(3, seed=7)            # float32 (S, T, *b.torch_input_shape), channels-first
    outs = run_torch(b, x)                     # {qualified layer name: float32 (S, T, *out_shape)}

Templates (the quantized class is built; ``Built.float_template`` names its float twin):

=========  ==========================  ===============================================
template   quantized class             shape (all small; 4 outputs)
=========  ==========================  ===============================================
SMLP       QuantizedSMLP               input (16, 1), units [8, 6]
SCNN       QuantizedSCNN  dims 1 / 2   input (16, 1) / (8, 8, 1), filters [4, 6], kernel 3,
                                       padding 1, stride 1, maxpool [2, 0]; ``batch_norm``;
                                       ``gsp`` (1x1 conv + neuron + global sum pool)
SResNet    QuantizedSResNet dims 1 / 2 input (16, 1) / (8, 8, 1), filters [4, 6], kernel 3,
                                       num_blocks [1], strides [1, 2] (maxpool + projection),
                                       postpool 'max'; ``batch_norm``
=========  ==========================  ===============================================

Shapes follow Qualia: ``input_shape`` is channels-last (what the template takes), the
tensors the torch model is fed are channels-first (``torch_input_shape``).  Not supported
by the installed layers: ``prepool > 1`` (SCNN) and ``postpool='avg'`` (SResNet) fail at
build (no ``QuantizedAvgPool`` in the spikingjelly layers module).

Quantization (``quant_params`` of every layer): fxp, not LSQ, symmetric, minmax, with
``bits`` and ``roundtype``; ``force_q`` fixes q for every tensor; ``overrides`` holds
per-tensor sub-dicts merged into quant_params, e.g. ``{"v": {"force_q": 4}}`` (keys
'input', 'act', 'v', 'w', 'bias'; they apply to every layer that has that tensor).

Neurons (``kind``): "LIF" (``tau``, ``decay_input``, ``soft_reset``, ``v_reset``), "IF"
(``soft_reset``, ``v_reset``), "ATIF" (threshold learned: drawn in [0.8, 1.0] x
``v_threshold``).  ``detach_reset=True``.  ATIF is built with step mode 's' and switched
with spikingjelly's ``set_step_mode`` for 'm'; its 2.6.0 ``ifsrl_fn`` reads the missing
attribute ``vp_th``, so every ATIF module gets ``m.vp_th = m.v_threshold`` (the same
Parameter; this test-driver alias is the only change made to a Qualia object).

Weights (seeded, so that neurons spike): Conv/Linear weights N(0, (2.5/sqrt(fan_in))^2),
biases U(0, 0.5); BatchNorm weight U(0.5, 1.5), bias U(0, 0.5).  The construction itself
runs under ``torch.manual_seed(seed)`` in a forked RNG (ATIF's threshold draw uses it).

Calibration, as Qualia's activation-range update does it: ``calib_batches`` batches of
``calib_batch`` samples (``sample_inputs`` with seed ``seed + 1000 + i``) through the model
in ``.train()`` under ``no_grad`` (``reset_net`` before each batch, T steps each), then
``.eval()``.  Calibration always runs single-step (``set_step_mode(model, 's')``, then every
layer back to the mode Qualia built it in: an 'm' SResNet keeps its ``QuantizedAdd`` in
's'): a BatchNorm in train mode updates its running stats once per call, so a
multi-step calibration (one call over T*B) would give a different model than a single-step
one (T calls); calibrating one way makes 's' and 'm' builds the same model.  The inputs are static
(the same frame at every step, Qualia's 'duplicate'
timestep mode): U(0, input_scale) per element, input_scale=2 by default (with U(0, 1) many
LIF layers of these tiny models stay almost silent).  Spike rates depend on the seed: a
3x3 first layer with 4 filters can be dead (e.g. SCNN2d seed 2); check the rates.

Determinism: the same arguments give the same state_dict and the same outputs; step
modes 's' and 'm' give identical outputs (tested in tests/test_qualia_models.py).
"""

from __future__ import annotations

import copy
import functools
import importlib
import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from golden.errors import ModelConfigError

__all__ = [
    "KINDS",
    "MODELS",
    "NEURONS",
    "TEMPLATES",
    "Built",
    "ModelConfigError",
    "build",
    "configs",
    "float_model",
    "layer_names",
    "neuron_kwargs",
    "run_torch",
]

TEMPLATES = ("SMLP", "SCNN", "SResNet")
BITS = (4, 6, 8, 12, 16)  # QualiaCodeGen deploys 8 and 16 only
KINDS = ("LIF", "IF", "ATIF")
_ROUNDS = ("nearest", "floor", "ceil")
_TENSORS = ("input", "act", "v", "w", "bias")
_PKG = "qualia_plugin_snn.learningmodel.pytorch"
_NEURON_KIND = {"LIF": "LIFNode", "IF": "IFNode", "ATIF": "ATIF"}


@functools.lru_cache(maxsize=1)
def _torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        from spikingjelly.activation_based import functional

        importlib.import_module(f"{_PKG}.layers.quantized_SNN_layers")
    return torch, functional


def _template_class(name: str):
    mod = importlib.import_module(f"{_PKG}.{name}")
    return getattr(mod, name)


@dataclass(frozen=True, eq=False)
class Built:
    """A calibrated quantized model in ``.eval()`` plus what deployment needs.

    ``float_template`` / ``float_kwargs``: the float twin class name (in
    ``qualia_plugin_snn.learningmodel.pytorch``) and its constructor kwargs; load
    ``model.state_dict()`` into it (see :func:`float_model`).  ``quantized_kwargs``
    rebuild the quantized model (uncalibrated).  Deep-copy kwargs before use: the
    templates mutate ``neuron['kind']``.
    """

    model: Any
    template: str
    quantized_template: str
    float_template: str
    float_kwargs: dict
    quantized_kwargs: dict
    input_shape: tuple[int, ...]  # channels-last, as given to the template
    torch_input_shape: tuple[int, ...]  # channels-first, one sample, one step
    timesteps: int
    step_mode: str
    config: dict = field(default_factory=dict)  # every build() argument, normalised

    @property
    def name(self) -> str:
        """A short identifier, e.g. 'SCNN2d-bn_LIF_8b_s0'."""
        c = self.config
        t = c["template"] + (f"{c['dims']}d" if c["template"] != "SMLP" else "")
        t += "-bn" if c.get("batch_norm") else ""
        t += "-gsp" if c.get("gsp") else ""
        return f"{t}_{c['kind']}_{c['bits']}b_s{c['seed']}"

    def sample_inputs(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` static float32 samples U(0, input_scale), repeated over T: shape (n, T, *torch_input_shape)."""
        if int(n) < 1:
            raise ModelConfigError(f"n must be >= 1, got {n}")
        rng = np.random.default_rng(int(seed))
        scale = np.float32(self.config["input_scale"])
        x = rng.random((int(n), *self.torch_input_shape), dtype=np.float32) * scale
        return np.repeat(x[:, None], self.timesteps, axis=1)

    def float_model(self):
        """The float twin template holding this model's float parameters (:func:`float_model`): what
        :func:`golden.qualia.deployment.deploy` converts for a packaged model (its ``Packaged`` protocol)."""
        return float_model(self)


def _quant_params(bits: int, roundtype: str, force_q: int | None, overrides: dict | None) -> dict:
    if bits not in BITS:
        raise ModelConfigError(f"bits must be one of {BITS} (the widths real Qualia configs use), got {bits!r}")
    if roundtype not in _ROUNDS:
        raise ModelConfigError(f"roundtype must be one of {_ROUNDS}, got {roundtype!r}")
    qp: dict[str, Any] = {
        "quant_enable": True, "LSQ": False, "quantype": "fxp", "range_setting": "minmax",
        "is_asymmetric": False, "bits": int(bits), "roundtype": roundtype, "force_q": force_q,
    }
    for k, v in (overrides or {}).items():
        if k not in _TENSORS or not isinstance(v, dict):
            raise ModelConfigError(f"overrides keys must be in {_TENSORS} with dict values, got {k!r}: {v!r}")
        qp[k] = dict(v)
    return qp


def _neuron(kind: str, step_mode: str, tau: float, decay_input: bool, soft_reset: bool, v_reset: float,
            v_threshold: float) -> dict:
    if kind not in KINDS:
        raise ModelConfigError(f"kind must be one of {KINDS}, got {kind!r}")
    if step_mode not in ("s", "m"):
        raise ModelConfigError(f"step_mode must be 's' or 'm', got {step_mode!r}")
    if kind == "ATIF":
        return {"kind": "ATIF", "params": {"v_threshold": float(v_threshold)}}
    params: dict[str, Any] = {
        "v_threshold": float(v_threshold),
        "v_reset": False if soft_reset else float(v_reset),
        "detach_reset": True,
        "step_mode": step_mode,
    }
    if kind == "LIF":
        params["tau"] = float(tau)
        params["decay_input"] = bool(decay_input)
    return {"kind": _NEURON_KIND[kind], "params": params}


def _arch(template: str, dims: int, batch_norm: bool, gsp: bool) -> tuple[tuple[int, ...], dict]:
    """Channels-last input shape and the architecture kwargs shared by the quantized and float twins."""
    if template not in TEMPLATES:
        raise ModelConfigError(f"template must be one of {TEMPLATES}, got {template!r}")
    if dims not in (1, 2):
        raise ModelConfigError(f"dims must be 1 or 2, got {dims!r}")
    in_shape = (16, 1) if dims == 1 else (8, 8, 1)
    if template == "SMLP":
        if dims != 1 or batch_norm or gsp:
            raise ModelConfigError("SMLP takes dims=1 and neither batch_norm nor gsp")
        return in_shape, {"units": [8, 6]}
    if template == "SCNN":
        return in_shape, {
            "filters": [4, 6], "kernel_sizes": [3, 3], "paddings": [1, 1], "strides": [1, 1],
            "dropouts": 0.0, "pool_sizes": [2, 0], "fc_units": [], "batch_norm": bool(batch_norm),
            "gsp": bool(gsp), "dims": dims,
        }
    if gsp:
        raise ModelConfigError("SResNet has no gsp option")
    return in_shape, {
        "filters": [4, 6], "kernel_sizes": [3, 3], "num_blocks": [1], "strides": [1, 2],
        "paddings": [1, 1], "batch_norm": bool(batch_norm), "postpool": "max", "dims": dims,
    }


def _init_weights(model, seed: int) -> None:
    torch, _ = _torch()
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _, m in model.named_modules():
            cls = type(m).__mro__
            names = {c.__name__ for c in cls}
            if names & {"Conv1d", "Conv2d", "Linear"}:
                fan_in = int(np.prod(m.weight.shape[1:]))
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.5 / np.sqrt(fan_in)))
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.5)
            elif names & {"BatchNorm1d", "BatchNorm2d"}:
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.5)


def _alias_atif(model) -> None:
    for m in model.modules():
        if type(m).__name__ == "QuantizedATIF" and not hasattr(m, "vp_th"):
            m.vp_th = m.v_threshold


def _forward_seq(built: Built, x, step_mode: str | None = None) -> Any:
    """Run one batch ``x`` (torch (B, T, ...)) from a fresh state; returns (B, T, ...) model output."""
    torch, functional = _torch()
    functional.reset_net(built.model)
    if (step_mode or built.step_mode) == "m":
        return built.model(x.transpose(0, 1).contiguous()).transpose(0, 1)
    return torch.stack([built.model(x[:, t]) for t in range(x.shape[1])], dim=1)


def build(template: str, *, dims: int = 1, kind: str = "LIF", bits: int = 8, step_mode: str = "s",
          seed: int = 0, roundtype: str = "nearest", force_q: int | None = None, overrides: dict | None = None,
          tau: float = 2.0, decay_input: bool = True, soft_reset: bool = True, v_reset: float = 0.0,
          v_threshold: float = 1.0, batch_norm: bool = False, gsp: bool = False, timesteps: int = 8,
          calib_batches: int = 4, calib_batch: int = 8, input_scale: float = 2.0) -> Built:
    """Build, seed and calibrate one quantized template; returns it in ``.eval()``. See the module doc."""
    torch, functional = _torch()
    in_shape, arch = _arch(template, int(dims), batch_norm, gsp)
    qp = _quant_params(int(bits), roundtype, force_q, overrides)
    neuron = _neuron(kind, step_mode, tau, decay_input, soft_reset, v_reset, v_threshold)
    if int(timesteps) < 1:
        raise ModelConfigError(f"timesteps must be >= 1, got {timesteps!r}")
    common = {"input_shape": in_shape, "output_shape": (4,), "timesteps": int(timesteps)}
    qkwargs = {**common, **arch, "quant_params": qp, "neuron": neuron}
    fkwargs = {**common, **arch, "neuron": copy.deepcopy(neuron)}
    qname = f"Quantized{template}"
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        model = _template_class(qname)(**copy.deepcopy(qkwargs))
    if kind == "ATIF":
        _alias_atif(model)
        if step_mode == "m":
            functional.set_step_mode(model, "m")
    _init_weights(model, seed)
    torch_in = (in_shape[-1], *in_shape[:-1])
    config = {
        "template": template, "dims": int(dims), "kind": kind, "bits": int(bits), "step_mode": step_mode,
        "seed": int(seed), "roundtype": roundtype, "force_q": force_q, "overrides": copy.deepcopy(overrides),
        "tau": float(tau), "decay_input": bool(decay_input), "soft_reset": bool(soft_reset),
        "v_reset": float(v_reset), "v_threshold": float(v_threshold), "batch_norm": bool(batch_norm),
        "gsp": bool(gsp), "timesteps": int(timesteps), "calib_batches": int(calib_batches),
        "calib_batch": int(calib_batch), "input_scale": float(input_scale),
    }
    built = Built(model, template, qname, template, fkwargs, qkwargs, in_shape, torch_in, int(timesteps),
                  step_mode, config)
    modes = {m: m.step_mode for m in model.modules() if isinstance(getattr(m, "step_mode", None), str)}
    functional.set_step_mode(model, "s")  # calibrate single-step whatever step_mode (BatchNorm stats: see doc)
    model.train()
    with torch.no_grad():
        for i in range(int(calib_batches)):
            xb = built.sample_inputs(int(calib_batch), seed=int(seed) + 1000 + i)
            _forward_seq(built, torch.from_numpy(xb), "s")
    model.eval()
    for m, mode in modes.items():  # each layer back in the mode Qualia built it in (an 'm' SResNet's add is 's')
        m.step_mode = mode
    functional.reset_net(model)
    return built


def float_model(built: Built):
    """The float twin template with the quantized model's state_dict loaded (strict), in ``.eval()``.

    Quantizer buffers (global_max/min) have no place in the float twin and are dropped.
    """
    _torch()
    model = _template_class(built.float_template)(**copy.deepcopy(built.float_kwargs))
    state = {k: v for k, v in built.model.state_dict().items() if ".quantizer_" not in k and not k.endswith("vp_th")}
    model.load_state_dict(state, strict=True)
    return model.eval()


def _is_layer(m) -> bool:
    """A leaf layer: no child modules other than quantizers, surrogates and FloatFunctional."""
    skip = ("Quantizer", "FloatFunctional", "Identity")
    for c in m.children():
        cname = type(c).__name__
        if cname in skip or any(b.__name__ == "SurrogateFunctionBase" for b in type(c).__mro__):
            continue
        return False
    return type(m).__name__ not in ("ModuleDict", "ModuleList", "Sequential", "Quantizer")


def layer_names(model) -> list[str]:
    """Qualified names (``named_modules``) of the model's leaf layers, in registration order."""
    def aux(n: str) -> bool:
        return any(p.startswith(("quantizer_", "surrogate")) or p == "functional" for p in n.split("."))

    return [n for n, m in model.named_modules() if n and not aux(n) and _is_layer(m)]


def run_torch(built: Built, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model in ``.eval()`` on ``x`` (S, T, *torch_input_shape) float32, one sample at a time.

    Returns every leaf layer's float32 output, channels-first, shape (S, T, *out_shape), keyed by
    qualified name in execution order, plus ``"output"`` (the model output).  State is reset
    (``reset_net``) before every sample.
    """
    torch, _ = _torch()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 3 or x.shape[1] != built.timesteps or tuple(x.shape[2:]) != built.torch_input_shape:
        raise ModelConfigError(f"x must be (S, {built.timesteps}, *{built.torch_input_shape}), got {x.shape}")
    model = built.model
    model.eval()
    store: dict[str, list] = {}
    handles = []
    mods = dict(model.named_modules())
    for n in layer_names(model):
        def hook(_m, _i, out, n=n):
            store.setdefault(n, []).append(out.detach().clone())
        handles.append(mods[n].register_forward_hook(hook))
    per_sample: dict[str, list[np.ndarray]] = {}
    try:
        with torch.no_grad():
            for s in range(x.shape[0]):
                store.clear()
                y = _forward_seq(built, torch.from_numpy(x[s:s + 1]))
                for n, outs in store.items():
                    # 's': one (1, *shape) call per step; 'm': one (T, 1, *shape) call per sample
                    a = torch.stack([o[0] for o in outs], 0) if built.step_mode == "s" else outs[-1][:, 0]
                    per_sample.setdefault(n, []).append(a.numpy())
                per_sample.setdefault("output", []).append(y[0].numpy())
    finally:
        for h in handles:
            h.remove()
    return {n: np.stack(v, 0) for n, v in per_sample.items()}


# Named variants of the grid --------------------------------------------------------------

#: model variants: name -> build() kwargs
MODELS: dict[str, dict] = {
    "SMLP": {"template": "SMLP"},
    "SCNN1d": {"template": "SCNN", "dims": 1},
    "SCNN1d-bn": {"template": "SCNN", "dims": 1, "batch_norm": True},
    "SCNN1d-gsp": {"template": "SCNN", "dims": 1, "gsp": True},
    "SCNN2d": {"template": "SCNN", "dims": 2},
    "SCNN2d-bn": {"template": "SCNN", "dims": 2, "batch_norm": True},
    "SCNN2d-gsp": {"template": "SCNN", "dims": 2, "gsp": True},
    "SResNet1d": {"template": "SResNet", "dims": 1},
    "SResNet2d": {"template": "SResNet", "dims": 2},
}

#: neuron variants: name -> build() kwargs.  ``LIF-qin>qv`` forces q_v = bits - 6 (2 at 8 bits, 10 at 16) so
#: that the neurons' calibrated q_in exceeds it; :func:`neuron_kwargs` fills in the bits.
NEURONS: dict[str, dict] = {
    "LIF-soft": {"kind": "LIF", "soft_reset": True, "decay_input": True},
    "LIF-hard": {"kind": "LIF", "soft_reset": False, "decay_input": True},
    "LIF-soft-nodecay": {"kind": "LIF", "soft_reset": True, "decay_input": False},
    "LIF-hard-nodecay": {"kind": "LIF", "soft_reset": False, "decay_input": False},
    "LIF-tau3": {"kind": "LIF", "soft_reset": True, "tau": 3.0},
    "LIF-qin>qv": {"kind": "LIF", "soft_reset": True, "overrides": {"v": {"force_q": None}}},
    "IF-soft": {"kind": "IF", "soft_reset": True},
    "IF-hard": {"kind": "IF", "soft_reset": False},
    "ATIF": {"kind": "ATIF"},
}


def neuron_kwargs(name: str, bits: int) -> dict:
    """build() kwargs of the neuron variant ``name`` at ``bits``."""
    if name not in NEURONS:
        raise ModelConfigError(f"neuron variant must be one of {list(NEURONS)}, got {name!r}")
    kw = copy.deepcopy(NEURONS[name])
    if name == "LIF-qin>qv":
        kw["overrides"] = {"v": {"force_q": int(bits) - 6}}
    return kw


def configs(models=None, neurons=None, bits=(8, 16), step_modes=("s",), seeds=(0,)) -> list[tuple[str, dict]]:
    """The grid as ``[(label, build_kwargs), ...]``; ``build(**kwargs)`` builds one entry.

    Defaults: every model of :data:`MODELS` x every neuron of :data:`NEURONS` x 8/16 bits,
    step mode 's', seed 0.  The label reads ``model/neuron/<bits>b/<step_mode>/s<seed>``.
    """
    out = []
    for mname, nname, b, sm, sd in itertools.product(models or list(MODELS), neurons or list(NEURONS), bits,
                                                     step_modes, seeds):
        kw = {**MODELS[mname], **neuron_kwargs(nname, b), "bits": b, "step_mode": sm, "seed": sd}
        out.append((f"{mname}/{nname}/{b}b/{sm}/s{sd}", kw))
    return out
