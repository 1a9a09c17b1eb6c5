"""What a deployment holds, per C layer: the converter's integers, Q formats, widths and rounding, beside torch's.

Read from the deployment objects of :func:`golden.qualia.deployment.deploy` (the converter's ModelGraph after
``quantize_modelgraph``) and from the calibrated quantized torch modules' own quantizers (eval mode), brought to the
C layout. Golden's codegen Network (:mod:`golden.qualia.creaders`) and the export checks of ``prove_network`` read
it; nothing of Qualia (AGPL-3.0) is copied here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DeployError
from .deployment import CLayer, Deployed

__all__ = ["LayerParams", "deployment_params", "flatten_perm"]


@dataclass(frozen=True, eq=False)
class LayerParams:
    """One C layer as the converter deployed it, next to what the quantized torch module holds.

    ``ints``: the converter's integer arrays (``node.layer.weights`` after ``quantize_modelgraph``), in the
    C layout (Conv kernels ``(O, K, I)`` / ``(O, KH, KW, I)``; a Dense after a Flatten has its input
    columns in channels-last order; BatchNorm ``kernel``/``bias`` are the fused alpha/beta; neurons hold
    ``v_threshold``, ``reciprocal_tau`` (LIF), ``v_reset`` (hard reset) at ``q_weights`` = q_v).
    ``torch_ints``: the same quantities from the quantized torch module's own quantizers (eval mode),
    brought to the same layout; ``differs``: name -> number of differing entries (-1: no torch counterpart
    of that shape).  Measured: 0 everywhere on the default grid except a LIF whose ``tau`` is not a power of
    two: the converter quantizes the float twin's float32(1/tau) at the final q_v while the calibrated module
    holds tau re-quantized at an earlier q_v (e.g. reciprocal_tau 5 vs 6 for tau=3 at q_v=4).
    ``attrs``: layer hyperparameters the C templates take (strides, padding, pool_size, soft_reset...).
    """

    c_name: str
    torch_name: str | None
    ctype: str
    width: int
    long_width: int
    q_in: tuple[int | None, ...]  # output_scale_factor of each input node
    q_out: int | None
    q_weights: int | None
    q_bias: int | None  # None: biases at q_weights
    round_out: str | None
    round_weights: str | None
    ints: dict[str, np.ndarray]
    torch_ints: dict[str, np.ndarray]
    differs: dict[str, int]
    attrs: dict[str, Any]


_ATTRS = ("strides", "padding", "pool_size", "kernel_size", "groups", "use_bias", "soft_reset", "decay_input",
          "epsilon", "units", "filters")


def _raw(t, q: int, where: str) -> np.ndarray:
    a = t.detach().double().numpy() * 2.0 ** q
    r = np.round(a)
    if not np.array_equal(a, r):
        raise DeployError(f"{where}: torch value off the q={q} grid (the deployment's q for it)")
    return r.astype(np.int64)


def flatten_perm(src_shape: tuple[int, ...]) -> np.ndarray:
    """C (channels-last) flat index j -> torch (channels-first) flat index."""
    n = int(np.prod(src_shape))
    nd = len(src_shape)
    cf_shape = (src_shape[-1], *src_shape[:-1])
    return np.arange(n).reshape(cf_shape).transpose(*range(1, nd), 0).ravel()


def _weights_and_bias(m, w, b):
    """(quantized weight, quantized bias) as the layer's forward makes them: a separate bias quantizer
    (``bias.quant_enable = true``) quantizes the bias alone, otherwise quantizer_w quantizes both together."""
    if b is None:
        return m.quantizer_w(w), None
    if getattr(m, "quantizer_bias", None) is not None:
        return m.quantizer_w(w), m.quantizer_bias(b)
    return m.quantizer_w(w, bias_tensor=b)


def _torch_ints(m, la: CLayer, prev: CLayer | None) -> dict[str, np.ndarray]:
    import torch

    qw = la.q_weights
    qb = la.q_bias if la.q_bias is not None else qw
    where = f"{la.torch_name} ({la.ctype})"
    with torch.no_grad():
        if la.ctype in ("TDenseLayer", "TConv1DLayer", "TConv2DLayer"):
            w, b = _weights_and_bias(m, m.weight, m.bias)
            k = _raw(w, qw, f"{where} weight")
            if la.ctype == "TConv1DLayer":
                k = k.transpose(0, 2, 1)
            elif la.ctype == "TConv2DLayer":
                k = k.transpose(0, 2, 3, 1)
            elif prev is not None and prev.ctype == "TFlattenLayer" and len(prev.in_c_shapes[0]) >= 2:
                k = k[:, flatten_perm(prev.in_c_shapes[0])]
            out = {"kernel": k}
            if b is not None:
                out["bias"] = _raw(b, qb, f"{where} bias")
            return out
        if la.ctype.startswith("TBatchNormalization"):
            alpha, beta = m.compute_fused_params(weight=m.weight, bias=m.bias, mean=m.running_mean,
                                                 var=m.running_var, eps=m.eps)
            a, b = _weights_and_bias(m, alpha, beta)
            return {"kernel": _raw(a, qw, f"{where} alpha").reshape(-1),
                    "bias": _raw(b, qb, f"{where} beta").reshape(-1)}
        if la.ctype in ("TLifLayer", "TIfLayer"):
            if getattr(m, "quantizer_v", None) is None:  # a float node (spikingjelly ParametricLIFNode): torch holds
                return {}  # no integers; the converter's are the deployment's
            hp = m.get_hyperparams_tensor(device=torch.device("cpu"), dtype=torch.float32)
            _, q = m.quantizer_v(torch.zeros(1), bias_tensor=hp)
            raw = _raw(q, qw, f"{where} hyperparameters")
            names = ["v_threshold"] + (["reciprocal_tau"] if la.ctype == "TLifLayer" else [])
            names += [] if m.v_reset is None else ["v_reset"]
            return {n: raw[i].reshape(()) for i, n in enumerate(names)}
    return {}


def deployment_params(dep: Deployed) -> tuple[LayerParams, ...]:
    """Per C layer: the integers, Q formats, widths and rounding the deployment uses, and torch's view of them."""
    mods = dict(dep.model.named_modules())
    by_c = {la.c_name: la for la in dep.layers}
    out = []
    prev: CLayer | None = None
    for node, la in zip(dep.modelgraph.nodes, dep.layers):
        ints = {k: np.asarray(v).astype(np.int64) for k, v in node.layer.weights.items()}
        m = mods.get(la.torch_name) if la.torch_name else None
        tints = _torch_ints(m, la, prev) if m is not None and ints else {}
        differs = {k: int(np.sum(ints[k] != tints[k])) if k in tints and ints[k].shape == tints[k].shape else -1
                   for k in ints}
        attrs = {a: getattr(node.layer, a) for a in _ATTRS if hasattr(node.layer, a)}
        out.append(LayerParams(
            la.c_name, la.torch_name, la.ctype, la.width, la.long_width,
            tuple(by_c[i].q_out for i in la.innodes), la.q_out, la.q_weights, la.q_bias, la.round_out,
            la.round_weights, ints, tints, differs, attrs))
        prev = la
    return tuple(out)
