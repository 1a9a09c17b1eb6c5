"""A whole calibrated Qualia quantized SNN -> its torch-eval :class:`golden.network.Network`.

The graph comes from ``torch.fx`` with every layer a leaf (so nothing of Qualia's quantizers is traced):
sequential templates and the residual ``QuantizedAdd`` alike. Each leaf is read by its registered torch reader
(:mod:`golden.qualia.readers`).

Step modes: the model runs in its neurons' step mode. An elementwise layer's own step mode changes nothing it
computes (Qualia builds every 'm' SResNet with its ``QuantizedAdd`` left in 's': on a (T, B, ...) tensor the 's'
add is the same elementwise sum), so only the other layers must agree.

``meta["scale_one"]`` lists every quantizer that torch runs with scale 1 because its ``global_max`` stayed 0
(e.g. a layer that never spiked while calibrated): torch-eval follows torch (q = 0) while the exporter, hence the
deployed C, uses ``fractional_bits`` (see :mod:`golden.qualia.quantizers`).
"""

from __future__ import annotations

import warnings

from ..network.graph import INPUT, Network, Node
from ..network.layers import NetworkError
from .quantizers import enabled, scale_one
from .stack import stack

_QUANTIZER_ATTRS = ("quantizer_input", "quantizer_input_a", "quantizer_input_b", "quantizer_act", "quantizer_v",
                    "quantizer_w", "quantizer_bias")


def _readers():
    from . import readers  # imports the Qualia stack: only when a model is read

    return readers


def _is_leaf(m) -> bool:
    s = stack()
    if isinstance(m, s.neuron.BaseNode) or hasattr(m, "quantizer_act") or hasattr(m, "quantizer_input"):
        return True
    return not any(True for _ in m.children()) or isinstance(m, (s.torch.nn.Dropout, s.sjlayer.Dropout))


def graph(model):
    """[(qualified name, module, [producer names])] in execution order, and the output's name (torch.fx)."""
    s = stack()
    from torch import fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return _is_leaf(m)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = Tracer().trace(model)
    except Exception as e:
        raise NetworkError(f"model: torch.fx cannot trace its forward into a static layer graph "
                           f"({type(e).__name__}: {e})") from None
    mods = dict(model.named_modules())
    alias, out, result = {}, [], None
    for node in g.nodes:
        if node.op == "placeholder":
            alias[node.name] = INPUT
        elif node.op == "call_module":
            m = mods[node.target]
            srcs = [alias[a.name] for a in node.args if isinstance(a, fx.Node)]
            if isinstance(m, (s.torch.nn.Dropout, s.sjlayer.Dropout)):
                alias[node.name] = srcs[0]  # eval: identity
                continue
            alias[node.name] = node.target
            out.append((node.target, m, srcs))
        elif node.op == "output":
            result = alias.get(node.args[0].name) if isinstance(node.args[0], fx.Node) else None
        else:
            raise NetworkError(f"model: unsupported operation {node.op} {getattr(node.target, '__name__', node.target)}"
                               f" in its forward (only layer modules are supported)")
    return out, result


def _input_format(order):
    """The network input's format: the first enabled quantizer its raw input meets (Flatten has none)."""
    s = stack()
    r = _readers()
    fed = {INPUT}
    for name, m, srcs in order:
        if not set(srcs) <= fed:
            continue
        if isinstance(m, (s.torch.nn.Flatten, s.sjlayer.Flatten)):
            fed.add(name)
            continue
        if isinstance(m, s.core.QuantizedAdd):
            break
        attr = "quantizer_act" if isinstance(m, s.core.QuantizedIdentity) else "quantizer_input"
        if not enabled(m, attr):
            raise NetworkError(f"{name} ({type(m).__name__}).{attr}: quant_enable=False on the layer that takes the "
                               f"model's input, so the input stays float and no fixed-point format describes it; "
                               f"enable that quantizer (or put a QuantizedIdentity first, as SCNN/SResNet do)")
        return r.fmt(m, attr, f"{name} ({type(m).__name__})")
    raise NetworkError("model: its input reaches no input quantizer, so its raw input is undefined")


def step_mode(model) -> str:
    """The model's step mode: every step-mode-sensitive layer's; elementwise layers (QuantizedAdd) may differ."""
    s = stack()
    modes = {m.step_mode for m in model.modules() if isinstance(getattr(m, "step_mode", None), str)
             and not isinstance(m, s.core.QuantizedAdd)}
    if len(modes) > 1:
        raise NetworkError(f"model: layers in different step modes {sorted(modes)}; use spikingjelly's "
                           f"functional.set_step_mode(model, 's' or 'm')")
    return modes.pop() if modes else "s"


def scale_one_notes(order) -> str:
    """';'-joined '<layer>.<quantizer>: scale 1 (q=0) while fractional_bits=<n>' for :data:`meta['scale_one']`."""
    notes = []
    for name, m, _ in order:
        for attr in _QUANTIZER_ATTRS:
            note = scale_one(m, attr)
            if note is not None:
                notes.append(f"{name}.{note}")
    return ";".join(notes)


def torch_input_shape(model) -> tuple:
    """One sample at one step, channels-first: the Qualia SNN template's ``input_shape`` (timesteps, *channels-last)
    with its channel axis moved first."""
    shp = getattr(model, "input_shape", None)
    if shp is None:
        raise NetworkError("input_shape: the model does not record it; pass input_shape=(C, ...) channels-first")
    shp = tuple(int(a) for a in shp)[1:]
    return shp if len(shp) < 2 else (shp[-1], *shp[:-1])


def network_from_module(model, input_shape=None) -> Network:
    """The :class:`Network` a calibrated quantized Qualia model computes in ``.eval()`` (see the module doc).

    ``input_shape``: one sample at one step, channels-first; default: the Qualia template's ``input_shape``
    (channels-last) with its channel axis moved first.
    """
    r = _readers()
    s = stack()
    input_shape = torch_input_shape(model) if input_shape is None else tuple(int(a) for a in input_shape)
    was = model.training
    model.eval()
    try:
        order, result = graph(model)
        if not order:
            raise NetworkError("model: no layer found")
        fmt_input, round_input = _input_format(order)
        built = {INPUT: (input_shape, fmt_input)}
        nodes, params = [], {}
        for name, m, srcs in order:
            shapes = [built[src][0] for src in srcs]
            fmts = [built[src][1] for src in srcs]
            if len(set(map(tuple, shapes))) > 1:
                raise NetworkError(f"{name} ({type(m).__name__}): shapes do not chain: its inputs have shapes "
                                   f"{shapes}")
            layer_src = fmts if isinstance(m, s.core.QuantizedAdd) else fmts[0]
            try:
                layer, p = r.read_layer(name, m, tuple(shapes[0]), layer_src)
            except NetworkError as e:
                raise NetworkError(str(e) if str(e).startswith(name) else f"{name} ({type(m).__name__}): {e}") \
                    from None
            nodes.append(Node(name, layer, tuple(srcs)))
            if p:
                params[name] = p
            built[name] = (layer.out_shape, layer.fmt_out)
        meta = {"source": type(model).__name__, "profile": "torch-eval", "step_mode": step_mode(model)}
        notes = scale_one_notes(order)
        if notes:
            meta["scale_one"] = notes
        return Network(input_shape, fmt_input, nodes, params, round_input, result, meta)
    finally:
        model.train(was)
