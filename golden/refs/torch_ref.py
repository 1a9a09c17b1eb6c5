"""Thin driver of the real Qualia quantized spiking neurons, for comparison tests.

This module only *imports and calls* qualia-plugin-snn 2.6.0 / qualia-core 2.6.0
(AGPL-3.0; none of their code is copied here).  It builds one real layer
(``QuantizedLIFNode``, ``QuantizedIFNode`` or ``QuantizedATIF``) with fixed-point
quantizers whose ``q`` is forced per tensor type, feeds it raw integer inputs one
time step at a time, and converts what the layer holds back to raw integers.

Quantization setup (see :func:`make_module`)::

    quant_params = {
        'quant_enable': True, 'LSQ': False, 'quantype': 'fxp',
        'range_setting': 'minmax', 'is_asymmetric': False,
        'bits': bits_v, 'roundtype': round_v,
        'input': {'bits': bits_in,  'force_q': q_in,  'roundtype': round_in},
        'v':     {'bits': bits_v,   'force_q': q_v,   'roundtype': round_v},
        'act':   {'bits': bits_out, 'force_q': q_out, 'roundtype': round_out},
    }

``force_q`` fixes the scale at ``2**-q`` whatever the running ``global_max``
(it is still ``-inf`` in an uncalibrated eval-mode module).  One exception,
from Qualia's ``Quantizer.compute_scale_and_offset``: when ``global_max == 0``
(train mode, everything the quantizer has seen so far was exactly zero) the
scale is 1 and ``force_q`` is ignored.  Every value is then 0 anyway, so the
result does not change.

ATIF workaround (the only patch applied to a Qualia object):
    qualia-plugin-snn 2.6.0's ``QuantizedATIF.ifsrl_fn`` reads ``self.vp_th``,
    an attribute that ``ATIF`` never creates (it only has the Parameter
    ``v_threshold``).  Every forward call raises ``AttributeError``.
    :func:`make_module` aliases it with ``module.vp_th = module.v_threshold``.
    ``nn.Module.__setattr__`` then registers the *same* Parameter object under
    a second name, so ``module.vp_th is module.v_threshold`` holds.
    ``module.parameters()`` still yields it once (duplicates are removed);
    ``state_dict()`` lists it under both keys.  Nothing else is changed: the
    class, its methods and the quantizers are the released code.
    The threshold Parameter is set to ``float32(v_threshold)`` exactly: the
    uniform init bounds are 1.0/1.0 and the value is then written with ``fill_``.

Raw conversions done by :func:`run_module`:
    input float  = float32(x_raw * 2**-q_in)   (checked to be exact)
    out raw      = out_float * 2**q_out        (checked to be an integer)
    v raw        = module.v  * 2**q_v          (checked to be an integer)
    spikes       = out_raw != 0

Mind the last line.  For LIF/IF the output is ``quantizer_act(spike)``.  If
``Qact(1.0)`` rounds to 0 (e.g. q_out < 0 with round 'nearest'), a spike reads
as "no spike".  For ATIF the output is ``Qact(z * Qv(vth))``.

In train mode Qualia does not re-quantize v after the reset (the next step
starts with Qv(v)).  The value returned is ``module.v`` as it is.  It is
always on the q_v grid, but it can leave the ``bits_v`` range.  Example: a
soft reset with a negative threshold, where vth=-0.5 and v=120 raw gives
152 raw.

Qualia itself raises ``ZeroDivisionError`` on the first step of a LIF whose
Qv(1/tau) is 0 (e.g. tau=200 at q_v=6).  That error is not caught here.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

__all__ = ["initial_v", "make_module", "run_module", "step_module", "torch_available"]

_KINDS = ("LIF", "IF", "ATIF")
_ROUNDS = ("nearest", "floor", "ceil")
_LAYERS_MODULE = "qualia_plugin_snn.learningmodel.pytorch.layers.quantized_SNN_layers"


@functools.lru_cache(maxsize=1)
def _import_stack() -> tuple[Any, Any, Any] | None:
    """Import torch, the Qualia SNN layers and spikingjelly's functional; None if impossible."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import importlib

            import torch

            layers = importlib.import_module(_LAYERS_MODULE)
            from spikingjelly.activation_based import functional
    except Exception:  # ImportError, but also e.g. torchvision's "operator torchvision::nms does not exist"
        return None
    return torch, layers, functional


def torch_available() -> bool:
    """True when torch, spikingjelly and the Qualia quantized SNN layers all import."""
    return _import_stack() is not None


def _stack() -> tuple[Any, Any, Any]:
    stack = _import_stack()
    if stack is None:
        raise RuntimeError(
            f"the torch reference stack is not importable (torch + spikingjelly 0.0.0.0.14 + {_LAYERS_MODULE})"
        )
    return stack


def _check_round(name: str, value: str) -> None:
    if value not in _ROUNDS:
        raise ValueError(f"{name} must be one of {_ROUNDS}, got {value!r}")


def make_module(
    *,
    kind: str,
    bits_in: int,
    q_in: int,
    bits_v: int,
    q_v: int,
    bits_out: int,
    q_out: int,
    round_in: str,
    round_v: str,
    round_out: str,
    tau: float | None,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool = True,
):
    """Build the real Qualia module with every quantizer's q forced.

    kind: "LIF" (QuantizedLIFNode), "IF" (QuantizedIFNode) or "ATIF" (QuantizedATIF).
    quant_params use quantype='fxp', non-LSQ, symmetric, and 'input'/'v'/'act'
    sub-dicts that set bits, force_q and roundtype per tensor type.  So
    calibration cannot move q (see the module docstring for the global_max == 0
    corner).  The hyperparameters (v_threshold, 1/tau, v_reset) go through
    quantizer_v, as Qualia does.

    tau is required for LIF and ignored for IF and ATIF.  decay_input only
    applies to LIF.  v_reset=None means soft reset (subtract v_threshold).  A
    float means hard reset to that value.  ATIF is soft-reset only, so v_reset
    must be None.  ATIF gets its threshold Parameter set to
    float32(v_threshold) exactly and the ``vp_th`` alias (see the module
    docstring).  The module is in single-step mode ('s').
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    for name, value in (("round_in", round_in), ("round_v", round_v), ("round_out", round_out)):
        _check_round(name, value)
    torch, layers, _ = _stack()

    quant_params = {
        "quant_enable": True,
        "LSQ": False,
        "quantype": "fxp",
        "range_setting": "minmax",
        "is_asymmetric": False,
        "bits": int(bits_v),
        "roundtype": round_v,
        "input": {"bits": int(bits_in), "force_q": int(q_in), "roundtype": round_in},
        "v": {"bits": int(bits_v), "force_q": int(q_v), "roundtype": round_v},
        "act": {"bits": int(bits_out), "force_q": int(q_out), "roundtype": round_out},
    }
    vr = None if v_reset is None else float(v_reset)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "LIF":
            if tau is None:
                raise ValueError("LIF needs tau")
            module = layers.QuantizedLIFNode(
                quant_params=quant_params,
                tau=float(tau),
                decay_input=bool(decay_input),
                v_threshold=float(v_threshold),
                v_reset=vr,
                detach_reset=False,
                step_mode="s",
                backend="torch",
            )
        elif kind == "IF":
            module = layers.QuantizedIFNode(
                quant_params=quant_params,
                v_threshold=float(v_threshold),
                v_reset=vr,
                detach_reset=False,
                step_mode="s",
                backend="torch",
            )
        else:
            if vr is not None:
                raise ValueError("ATIF is soft-reset only: v_reset must be None")
            module = layers.QuantizedATIF(
                quant_params=quant_params,
                v_threshold=float(v_threshold),
                vth_init_l=1.0,
                vth_init_h=1.0,
                alpha=1.0,
                device="cpu",
            )
            with torch.no_grad():
                module.v_threshold.fill_(float(v_threshold))
            # The one allowed workaround: qualia-plugin-snn 2.6.0 reads self.vp_th, which does
            # not exist; alias it to the real threshold Parameter (same object).
            module.vp_th = module.v_threshold
            if module.vp_th is not module.v_threshold:  # pragma: no cover - would mean nn.Module changed
                raise RuntimeError("vp_th alias is not the v_threshold Parameter")
    return module


def _to_raw(values: Any, q: int, what: str, step: int) -> np.ndarray:
    """float tensor -> exact int64 raw values at q (raises if not integral)."""
    arr = values.detach().cpu().numpy().astype(np.float64)  # a fresh float64 copy: exact for float16/32/64
    arr *= 2.0**q  # a power of two: exact
    if arr.size and not (np.isfinite(arr.min()) and np.isfinite(arr.max())):  # min/max carry a NaN or an inf
        raise AssertionError(f"{what} at step {step} is not finite: {arr!r}")
    rounded = np.rint(arr)
    if not np.array_equal(rounded, arr):
        raise AssertionError(f"{what} at step {step} is not an integer at q={q}: {arr!r}")
    return rounded.astype(np.int64)


def run_module(module, x_raw: np.ndarray, *, q_in: int, mode: str) -> dict:
    """Run the module step by step on raw inputs and return raw integers.

    x_raw: int array (T, N) of raw inputs at q_in.  Each step t feeds
    float32(x_raw[t] * 2**-q_in), shape (N,), through the module's single-step
    forward.  Before that it resets the state (spikingjelly's
    functional.reset_net, which calls module.reset()), puts the module in
    eval() or train() mode and runs everything under torch.no_grad().

    Returns {"out": int64 (T, N) = out_float * 2**q_out,
             "v": int64 (T, N) = module.v * 2**q_v after each step,
             "spikes": bool (T, N) = out != 0}.
    q_v and q_out are read from the module's quantizers (force_q).

    The quantizers' running global_max is not reset between calls.  With
    force_q it does not matter (apart from the all-zero corner described in
    the module docstring).  Build a fresh module for each independent run
    anyway.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    torch, _, functional = _stack()

    x = np.asarray(x_raw)
    if x.ndim != 2:
        raise ValueError(f"x_raw must be 2-D (T, N), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"x_raw must be an integer array, got {x.dtype}")
    x = x.astype(np.int64)

    q_in_mod = module.quantizer_input.force_q
    if q_in_mod is not None and int(q_in_mod) != int(q_in):
        raise ValueError(f"q_in={q_in} but the module's input quantizer has force_q={q_in_mod}")
    q_v = module.quantizer_v.force_q
    q_out = module.quantizer_act.force_q
    if q_v is None or q_out is None:
        raise ValueError("module quantizers must have force_q set (build it with make_module)")
    q_v, q_out = int(q_v), int(q_out)

    xf64 = x.astype(np.float64) * (2.0 ** -int(q_in))
    xf32 = xf64.astype(np.float32)
    if not np.array_equal(xf32.astype(np.float64), xf64):
        raise ValueError("x_raw * 2**-q_in is not exactly representable in float32")
    xt = torch.from_numpy(xf32)

    if getattr(module, "step_mode", "s") != "s":
        raise ValueError("module must be in single-step mode ('s')")

    T, N = x.shape
    out = np.zeros((T, N), dtype=np.int64)
    v = np.zeros((T, N), dtype=np.int64)

    module.train(mode == "train")
    functional.reset_net(module)
    with torch.no_grad(), warnings.catch_warnings():
        # Qualia's Quantizer calls torch.tensor(tensor) (UserWarning); silence only here.
        warnings.simplefilter("ignore", UserWarning)
        for t in range(T):
            y = module(xt[t])
            out[t] = _to_raw(y, q_out, "output", t)
            vt = module.v
            if not torch.is_tensor(vt):  # pragma: no cover - v becomes a tensor on the first step
                vt = torch.full((N,), float(vt))
            v[t] = np.broadcast_to(_to_raw(vt, q_v, "v", t), (N,))
    return {"out": out, "v": v, "spikes": out != 0}


def initial_v(module, *, mode: str) -> np.ndarray:
    """The module's potential right after spikingjelly's ``functional.reset_net``, as raw integers at q_v."""
    torch, _, functional = _stack()
    module.train(mode == "train")
    functional.reset_net(module)
    v = module.v
    v = v if torch.is_tensor(v) else torch.tensor(float(v))
    return _to_raw(v.reshape(-1), int(module.quantizer_v.force_q), "initial v", 0)


def step_module(module, x_raw: np.ndarray, v_raw: np.ndarray | None, *, q_in: int, mode: str) -> dict:
    """One forward call on a batch of neurons, each starting from its own potential.

    ``v_raw`` (N,) raw at q_v: the module is reset (``functional.reset_net``) and its ``v`` set to
    ``float32(v_raw * 2**-q_v)`` before the call; None continues from the potential the module holds (for the
    two-step check of ``golden prove``). ``x_raw`` (N,) raw at q_in. Returns {"out", "v"}: int64 (N,) raw,
    exactly as :func:`run_module` converts them.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    torch, _, functional = _stack()
    q_v, q_out = int(module.quantizer_v.force_q), int(module.quantizer_act.force_q)
    x = np.asarray(x_raw, dtype=np.int64)
    xd = x * 2.0 ** -int(q_in)  # float64: exact for |x| < 2**53
    xf = xd.astype(np.float32)
    if not np.array_equal(xf, xd):  # compared as float64: exact
        raise ValueError("x_raw * 2**-q_in is not exactly representable in float32")
    module.train(mode == "train")
    if v_raw is not None:
        functional.reset_net(module)
        vf = (np.asarray(v_raw, dtype=np.int64).astype(np.float64) * 2.0 ** -q_v).astype(np.float32)
        module.v = torch.from_numpy(vf)
    threads = torch.get_num_threads()
    try:  # elementwise ops on <= 1M values: one thread is 5-15x faster than torch's pool on a loaded machine
        if len(x) <= 1 << 20:
            torch.set_num_threads(1)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Qualia's torch.tensor(tensor)
            y = module(torch.from_numpy(xf))
    finally:
        torch.set_num_threads(threads)
    v = module.v if torch.is_tensor(module.v) else torch.full((len(x),), float(module.v))
    return {"out": _to_raw(y, q_out, "output", 0), "v": np.broadcast_to(_to_raw(v, q_v, "v", 0), (len(x),)).copy()}
