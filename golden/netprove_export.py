"""The network against what qualia-codegen's converter exported: integers, shifts, widths, rounding, layout.

:func:`export_checks` reads the deployment's own objects (:func:`golden.qualia.deployparams.deployment_params`:
``node.layer.weights`` after the converter quantized them, the scale factors and round modes it rendered) and
compares each layer of a golden network with them, independently of how golden read the network: the Conv
kernels' C layout ``(O, *K, I)``, and the columns of a Dense after a Flatten in the C's channels-last order
(column ``j`` of the C is torch's flat index ``t(j)`` of the flattened ``(C, *spatial)``).
"""

from __future__ import annotations

import math

import numpy as np


def _rname(r) -> str:
    return str(getattr(r, "value", r))


_ROUNDS = {"nearest": "RND", "floor": "TRN", "none": "TRN"}  # OUTPUT_ROUND_MODE -> golden


def export_checks(net, dep) -> dict:
    """Per layer name: [(name, holds, detail)] comparing the network with what the converter exported."""
    from .qualia.deployparams import deployment_params

    by_c = {la.c_name: la for la in dep.layers}
    out: dict = {}
    for i, lp in enumerate(deployment_params(dep)[1:], 1):
        name = lp.torch_name or lp.c_name
        res = out.setdefault(name, [])
        try:
            layer = net[name].layer
        except KeyError:
            res.append(("exported layer present", False, f"the C node {lp.c_name} ({lp.ctype}) has no layer here"))
            continue
        srcs = [layer.fmt_src] + ([layer.fmt_src_b] if hasattr(layer, "fmt_src_b") else [])
        res.append(("input formats", list(lp.q_in) == [f.frac for f in srcs],
                    f"C INPUT_SCALE_FACTOR(s) {list(lp.q_in)}; network fmt_src {[str(f) for f in srcs]}"))
        res.append(("output format", lp.q_out == layer.fmt_out.frac and lp.width == layer.fmt_out.bits,
                    f"C: int{lp.width}_t at q {lp.q_out}; network: {layer.fmt_out}"))
        if lp.ctype in ("TLifLayer", "TIfLayer"):
            res += _neuron(lp, layer.spec)
            continue
        res.append(("rounding", _ROUNDS.get(lp.round_out or "nearest") == _rname(layer.round_out),
                    f"C OUTPUT_ROUND_MODE {lp.round_out}; network round_out {_rname(layer.round_out)}"))
        if lp.ctype != "TFlattenLayer":
            res.append(("LONG width", lp.long_width == layer.acc_bits,
                        f"C int{lp.long_width}_t; network acc_bits {layer.acc_bits}"))
        geometry = _geometry(lp, layer)
        if geometry is not None:
            res.append(("geometry", *geometry))
        if "kernel" in lp.ints:
            res += _weighted(lp, layer, net.params.get(name, {}), by_c[dep.layers[i].innodes[0]])
    for node in net.nodes:
        if node.name not in out:
            out[node.name] = [("exported layer present", False, "no C node of the deployment is this layer")]
    return out


def _neuron(lp, s) -> list:
    ints = {k: int(np.asarray(v)) for k, v in lp.ints.items()}
    want = {"v_threshold": s.v_threshold}
    if "v_reset" in ints:
        want["v_reset"] = s.v_reset
    if "reciprocal_tau" in ints:
        want["reciprocal_tau"] = s.reciprocal_tau
    decay = bool(lp.attrs.get("decay_input", False)) if "reciprocal_tau" in ints else None
    return [("LONG width", lp.long_width == s.acc_bits, f"C int{lp.long_width}_t; network spec acc_bits {s.acc_bits}"),
            ("rounding", _ROUNDS.get(lp.round_weights or "nearest") == _rname(s.round)
             and (decay is None or decay == bool(s.decay_input)),
             f"C round mode {lp.round_weights}, decay_input {decay}; network round {_rname(s.round)}, decay_input "
             f"{s.decay_input if decay is not None else None}"),
            ("neuron integers", lp.q_weights == s.fmt_v.frac and all(ints[k] == v for k, v in want.items())
             and bool(lp.attrs.get("soft_reset")) == (_rname(s.reset) == "soft"),
             f"C: q_v {lp.q_weights}, {ints}, soft_reset {lp.attrs.get('soft_reset')}; network: q_v "
             f"{s.fmt_v.frac}, {want}, reset {_rname(s.reset)}")]


def _weighted(lp, layer, p, prev) -> list:
    """Shifts (WEIGHTS / BIASES / TMP scale factors), the kernel in the C's layout, the bias."""
    qw = lp.q_weights
    qb = lp.q_bias if lp.q_bias is not None else qw
    tmp = max(qw, lp.q_bias) if lp.q_bias is not None else qw
    same_b = layer.fmt_b is None or qb == layer.fmt_b.frac
    res = [("shifts", qw == layer.fmt_w.frac and tmp == layer.tmp_frac and same_b,
            f"C: WEIGHTS {qw}, BIASES {qb}, TMP {tmp}; network: q_w {layer.fmt_w.frac}, q_b "
            f"{None if layer.fmt_b is None else layer.fmt_b.frac}, tmp_frac {layer.tmp_frac}")]
    wc, wt = np.asarray(lp.ints["kernel"], np.int64), np.asarray(p["weight"], np.int64)
    how = "C kernel == network weight"
    if lp.ctype == "TDenseLayer":
        if prev.ctype == "TFlattenLayer" and len(prev.in_c_shapes[0]) >= 2:
            cl = prev.in_c_shapes[0]  # channels-last (*spatial, C); torch flattens (C, *spatial)
            idx = np.moveaxis(np.arange(math.prod(cl)).reshape(cl[-1], *cl[:-1]), 0, -1).ravel()
            wt = wt[:, idx]
            how = f"C kernel[:, j] == network weight[:, t(j)], t = the channels-last order of the flattened {tuple(cl)}"
    elif lp.ctype in ("TConv1DLayer", "TConv2DLayer"):
        wt = np.moveaxis(wt, 1, -1)
        how = "C kernel (O, *K, I) == network weight (O, I, *K) with I moved last"
    elif wt.size == wc.size:
        wt = wt.reshape(wc.shape)
    same = wc.shape == wt.shape and bool(np.array_equal(wc, wt))
    res.append(("weights", same, f"{how}: {'equal' if same else 'DIFFER'} ({wc.size} values)"))
    if "bias" in lp.ints or layer.has_bias:
        bc, bt = np.asarray(lp.ints.get("bias", []), np.int64), np.asarray(p.get("bias", []), np.int64)
        same = bc.shape == bt.shape and bool(np.array_equal(bc, bt))
        res.append(("bias", same, f"C bias == network bias: {'equal' if same else 'DIFFER'} ({bc.size} values)"))
    return res


def _geometry(lp, layer):
    """(holds, detail) for the strides / padding / pool size the C was rendered with, or None."""
    def tup(v, n):
        v = tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),)
        return v * n if len(v) == 1 else v

    if lp.ctype in ("TConv1DLayer", "TConv2DLayer"):
        n = layer.dims
        pad = lp.attrs.get("padding", "valid")
        pad = (0,) * n if pad == "valid" else tuple(int(p[0]) if isinstance(p, (tuple, list)) else int(p)
                                                      for p in (pad if n == 2 else (tuple(pad),)))
        c = (tup(lp.attrs.get("strides", 1), n), pad)
        return c == (layer.stride, layer.padding), f"C strides/padding {c}; network {(layer.stride, layer.padding)}"
    if lp.ctype in ("TMaxPooling1DLayer", "TMaxPooling2DLayer"):
        n = layer.dims
        c = (tup(lp.attrs["pool_size"], n), tup(lp.attrs["strides"], n))
        return c == (layer.kernel, layer.stride), f"C pool_size/strides {c}; network {(layer.kernel, layer.stride)}"
    return None
