"""A whole Qualia quantized SNN -> :class:`Network`: its graph, every quantizer's format, every raw weight.

The graph comes from ``torch.fx`` with every layer a leaf (so nothing of Qualia's
quantizers is traced): sequential templates and the residual ``QuantizedAdd`` alike.
Formats are read by :func:`golden.torch_bridge._quantizer_format` (calibrated q or
force_q; LSQ, asymmetric, non-fxp and uncalibrated quantizers refused). Raw weights
are what the module's own quantizers make of its parameters in ``.eval()`` (a
quantizer has no side effect there), read back as integers: the values the float32
forward multiplies, exactly.

Only torch, spikingjelly and qualia are imported, lazily; nothing of Qualia is copied.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..spec import QFormat
from .graph import INPUT, Network, Node
from .layers import (
    QUALIA_ROUNDS,
    Add,
    BatchNorm,
    Conv,
    Flatten,
    GlobalSumPool,
    Identity,
    Linear,
    MaxPool,
    NetworkError,
    Neuron,
)

_CORE = "qualia_core.learningmodel.pytorch.layers"
SUPPORTED = ("QuantizedLinear, QuantizedConv1d/2d, QuantizedBatchNorm1d/2d, QuantizedMaxPool1d/2d, QuantizedAdd, "
             "QuantizedGlobalSumPool1d/2d, QuantizedIdentity, Flatten, Dropout (eval) and the quantized LIF/IF/ATIF "
             "neurons")


def _classes():
    import importlib

    from ..torch_bridge import _stack

    torch, snn_layers, neuron, _ = _stack()
    core = importlib.import_module(f"{_CORE}.quantized_layers")
    from spikingjelly.activation_based import layer as sjlayer

    return torch, core, snn_layers, neuron, sjlayer


def _fmt(module, attr, name):
    from ..torch_bridge import TorchBridgeError, _quantizer_format

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Qualia's torch.tensor(tensor) UserWarning
            bits, q, rnd = _quantizer_format(module, attr, "torch-eval")
    except TorchBridgeError as e:
        raise NetworkError(f"{name}: {e}") from None
    return QFormat(bits, q), QUALIA_ROUNDS[rnd]


def _raw(torch, values, fmt: QFormat, where: str) -> np.ndarray:
    """Quantized float32 values -> raw integers at ``fmt`` (each must be an exact integer multiple of 2**-frac)."""
    real = values.detach().to(torch.float64).numpy() * 2.0 ** fmt.frac
    raw = np.rint(real)
    if not np.all(np.isfinite(real)) or np.any(raw != real) or raw.min(initial=0) < fmt.min or \
            raw.max(initial=0) > fmt.max:
        raise NetworkError(f"{where}: the quantizer's output is not on {fmt}")
    return raw.astype(np.int64)


def _weights(torch, m, w, b, name):
    """(fmt_w, fmt_b, {'weight', 'bias'}) through the module's quantizers, as its forward applies them."""
    fmt_w, _ = _fmt(m, "quantizer_w", name)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if b is None:
            qw, qb, fmt_b = m.quantizer_w(w), None, None
        elif getattr(m, "quantizer_bias", None) is not None:
            fmt_b, _ = _fmt(m, "quantizer_bias", name)
            qw, qb = m.quantizer_w(w), m.quantizer_bias(b)
        else:
            qw, qb = m.quantizer_w(w, bias_tensor=b)
            fmt_b = fmt_w  # the bias shares quantizer_w's scale and bits
    params = {"weight": _raw(torch, qw, fmt_w, f"{name}.weight")}
    if qb is not None:
        params["bias"] = _raw(torch, qb, fmt_b, f"{name}.bias")
    return fmt_w, fmt_b, params


def _tuple(v, dims):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * dims


def _layer(ctx, name, m, in_shape, fmt_src):
    """The layer spec (and raw params) of one leaf module."""
    torch, core, snn_layers, neuron, sjlayer = ctx
    where = f"{name} ({type(m).__name__})"
    if getattr(m, "activation", None) is not None:
        raise NetworkError(f"{where}: a fused activation {type(m.activation).__name__} is not supported")
    if isinstance(m, (snn_layers.QuantizedLIFNode, snn_layers.QuantizedIFNode, snn_layers.QuantizedATIF)):
        from .atif import neuron_spec

        return Neuron.of(neuron_spec(m, where), in_shape, fmt_src), {}
    if isinstance(m, neuron.BaseNode):
        raise NetworkError(f"{where}: an unquantized SpikingJelly node computes in float; use Qualia's quantized "
                           f"neurons")
    if isinstance(m, (sjlayer.Flatten, torch.nn.Flatten)):
        if m.start_dim != 1 or m.end_dim != -1:
            raise NetworkError(f"{where}: only Flatten(start_dim=1) is supported")
        return Flatten(in_shape=in_shape, fmt_src=fmt_src, fmt_in=fmt_src, fmt_out=fmt_src), {}
    if isinstance(m, core.QuantizedIdentity):
        fo, ro = _fmt(m, "quantizer_act", where)
        return Identity(in_shape=in_shape, fmt_src=fmt_src, fmt_in=fo, fmt_out=fo, round_in=ro, round_out=ro), {}
    if isinstance(m, core.QuantizedAdd):
        fa, ra = _fmt(m, "quantizer_input_a", where)
        fb, rb = _fmt(m, "quantizer_input_b", where)
        fo, ro = _fmt(m, "quantizer_act", where)
        if ra != rb:
            raise NetworkError(f"{where}: the two input quantizers round differently ({ra}, {rb})")
        return Add(in_shape=in_shape, fmt_src=fmt_src[0], fmt_in=fa, fmt_out=fo, round_in=ra, round_out=ro,
                   fmt_src_b=fmt_src[1], fmt_in_b=fb), {}
    known = (core.QuantizedLinear, core.QuantizedConv1d, core.QuantizedConv2d, core.QuantizedBatchNorm1d,
             core.QuantizedBatchNorm2d, core.QuantizedMaxPool1d, core.QuantizedMaxPool2d,
             core.QuantizedGlobalSumPool1d, core.QuantizedGlobalSumPool2d)
    if not isinstance(m, known):
        raise NetworkError(f"{where}: unsupported layer type; golden describes {SUPPORTED}")
    fi, ri = _fmt(m, "quantizer_input", where)
    fo, ro = _fmt(m, "quantizer_act", where)
    io = {"in_shape": in_shape, "fmt_src": fmt_src, "fmt_in": fi, "fmt_out": fo, "round_in": ri, "round_out": ro}
    if isinstance(m, core.QuantizedLinear):
        fw, fb, p = _weights(torch, m, m.weight, m.bias, where)
        return Linear(**io, fmt_w=fw, fmt_b=fb, in_features=int(m.in_features),
                      out_features=int(m.out_features)), p
    if isinstance(m, (core.QuantizedConv1d, core.QuantizedConv2d)):
        dims = 1 if isinstance(m, core.QuantizedConv1d) else 2
        if isinstance(m.padding, str) or m.padding_mode != "zeros" or m.groups != 1 or set(m.dilation) != {1}:
            raise NetworkError(f"{where}: only zero padding given as numbers, groups=1 and dilation=1 are supported")
        fw, fb, p = _weights(torch, m, m.weight, m.bias, where)
        return Conv(**io, fmt_w=fw, fmt_b=fb, dims=dims, in_channels=int(m.in_channels),
                    out_channels=int(m.out_channels),
                    kernel=_tuple(m.kernel_size, dims), stride=_tuple(m.stride, dims),
                    padding=_tuple(m.padding, dims)), p
    if isinstance(m, (core.QuantizedBatchNorm1d, core.QuantizedBatchNorm2d)):
        if not (m.affine and m.track_running_stats):
            raise NetworkError(f"{where}: needs affine=True and track_running_stats=True (eval uses running stats)")
        with torch.no_grad():
            alpha, beta = m.compute_fused_params(weight=m.weight, bias=m.bias, mean=m.running_mean,
                                                 var=m.running_var, eps=m.eps)
        fw, fb, p = _weights(torch, m, alpha, beta, where)
        dims = 1 if isinstance(m, core.QuantizedBatchNorm1d) else 2
        return BatchNorm(**io, fmt_w=fw, fmt_b=fb, dims=dims, num_features=int(m.num_features)), p
    if isinstance(m, (core.QuantizedMaxPool1d, core.QuantizedMaxPool2d)):
        dims = 1 if isinstance(m, core.QuantizedMaxPool1d) else 2
        if m.ceil_mode or set(_tuple(m.dilation, dims)) != {1}:
            raise NetworkError(f"{where}: ceil_mode and dilation are not supported")
        k = _tuple(m.kernel_size, dims)
        return MaxPool(**io, dims=dims, kernel=k, stride=_tuple(m.stride or k, dims),
                       padding=_tuple(m.padding, dims)), {}
    dims = 1 if isinstance(m, core.QuantizedGlobalSumPool1d) else 2
    return GlobalSumPool(**io, dims=dims), {}


def _is_leaf(ctx, m) -> bool:
    torch, _, _, neuron, sjlayer = ctx
    if isinstance(m, neuron.BaseNode) or hasattr(m, "quantizer_act") or hasattr(m, "quantizer_input"):
        return True
    return not any(True for _ in m.children()) or isinstance(m, (torch.nn.Dropout, sjlayer.Dropout))


def graph(model):
    """[(qualified name, module, [producer names])] in execution order, from torch.fx with every layer a leaf."""
    ctx = _classes()
    torch = ctx[0]
    from torch import fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return _is_leaf(ctx, m)

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
            args = [a for a in node.args if isinstance(a, fx.Node)]
            srcs = [alias[a.name] for a in args]
            if isinstance(m, (torch.nn.Dropout, ctx[4].Dropout)):
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


def _input_format(ctx, order):
    """The network input's format: the input quantizer of the first layer that has one (Flatten has none)."""
    fed = {INPUT}
    for name, m, srcs in order:
        if not set(srcs) <= fed:
            continue
        if isinstance(m, (ctx[0].nn.Flatten, ctx[4].Flatten)):
            fed.add(name)
            continue
        if isinstance(m, ctx[1].QuantizedAdd):
            break
        return _fmt(m, "quantizer_act" if isinstance(m, ctx[1].QuantizedIdentity) else "quantizer_input",
                    f"{name} ({type(m).__name__})")
    raise NetworkError("model: its input reaches no input quantizer, so its raw input is undefined")


def network_from_torch(model, input_shape=None) -> Network:
    """The :class:`Network` a calibrated quantized model computes in ``.eval()`` (see the module doc).

    ``input_shape``: one sample at one step, channels-first; default: the Qualia
    template's ``input_shape`` (channels-last) with its channel axis moved first.
    """
    ctx = _classes()
    if input_shape is None:
        shp = getattr(model, "input_shape", None)
        if shp is None:
            raise NetworkError("input_shape: the model does not record it; pass input_shape=(C, ...) channels-first")
        shp = tuple(int(a) for a in shp)[1:]  # Qualia SNN: (timesteps, *channels-last)
        input_shape = shp if len(shp) < 2 else (shp[-1], *shp[:-1])
    input_shape = tuple(int(a) for a in input_shape)
    was = model.training
    model.eval()
    try:
        order, result = graph(model)
        if not order:
            raise NetworkError("model: no layer found")
        fmt_input, round_input = _input_format(ctx, order)
        built = {INPUT: (input_shape, fmt_input)}
        nodes, params = [], {}
        for name, m, srcs in order:
            shapes = [built[s][0] for s in srcs]
            fmts = [built[s][1] for s in srcs]
            if len(set(map(tuple, shapes))) > 1:
                raise NetworkError(f"{name} ({type(m).__name__}): shapes do not chain: its inputs have shapes "
                                   f"{shapes}")
            layer_src = fmts if isinstance(m, ctx[1].QuantizedAdd) else fmts[0]
            try:
                layer, p = _layer(ctx, name, m, tuple(shapes[0]), layer_src)
            except NetworkError as e:
                raise NetworkError(str(e) if str(e).startswith(name) else f"{name} ({type(m).__name__}): {e}") \
                    from None
            nodes.append(Node(name, layer, tuple(srcs)))
            if p:
                params[name] = p
            built[name] = (layer.out_shape, layer.fmt_out)
        meta = {"source": type(model).__name__, "profile": "torch-eval",
                "step_mode": _step_mode(model)}
        return Network(input_shape, fmt_input, nodes, params, round_input, result, meta)
    finally:
        model.train(was)


def _step_mode(model) -> str:
    modes = {m.step_mode for m in model.modules() if hasattr(m, "step_mode")
             and isinstance(m.step_mode, str)}
    if len(modes) > 1:
        raise NetworkError(f"model: layers in different step modes {sorted(modes)}; use functional.set_step_mode")
    return modes.pop() if modes else "s"

