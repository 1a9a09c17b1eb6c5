"""Torch readers: one function per Qualia module class, registered with ``@torch_reader(QuantizedConv2d)``.

Importing this module imports the Qualia stack (registration needs the classes); golden imports it only when a
torch model is read (:func:`readers`). A reader takes ``(module, where, in_shape, fmt_src)`` and returns the golden
layer spec and its raw parameters; the supported list in every refusal is :data:`TORCH_READERS`'s names.

Formats come from :func:`golden.qualia.quantizers.quantizer_format`. A disabled input quantizer
(``quant_enable = false``, every GSC and CIFAR int config) passes its producer's quantized output through
unchanged, so the layer's input format is its producer's (``fmt_in = fmt_src``). Raw weights are what the module's
own quantizers make of its parameters in ``.eval()`` (a quantizer has no side effect there), read back as integers:
the values the float32 forward multiplies, exactly. With a separate bias quantizer (``bias.quant_enable = true``)
the bias has its own format.

Nothing of Qualia (AGPL-3.0) is copied here.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import profiles
from ..errors import TorchBridgeError
from ..network.layers import (
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
from ..registry import Registry
from ..spec import QFormat
from .neurons import spec_from_module
from .quantizers import enabled, quantizer_format
from .stack import stack

TORCH_READERS = Registry("torch reader")
torch_reader = TORCH_READERS.register

_S = stack()
torch, core, snn, sjneuron, sjlayer = _S.torch, _S.core, _S.snn, _S.neuron, _S.sjlayer


def supported() -> str:
    """The registered module classes, for messages."""
    return ", ".join(n for n in TORCH_READERS.names() if n != "BaseNode")


def fmt(m, attr: str, where: str):
    """(QFormat, golden round) of ``m.<attr>``, or a NetworkError naming the layer."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Qualia's torch.tensor(tensor) UserWarning
            bits, q, rnd = quantizer_format(m, attr, "torch-eval")
    except TorchBridgeError as e:
        raise NetworkError(f"{where}: {e}") from None
    return QFormat(bits, q), profiles.qualia_round(attr, rnd)


def fmt_in(m, attr: str, where: str, fmt_src: QFormat):
    """An input quantizer's format; a disabled one passes its producer's values unchanged: the producer's format."""
    if getattr(m, attr, None) is not None and not enabled(m, attr):
        return fmt_src, profiles.qualia_round(attr, "nearest")  # on the grid already: no rounding ever happens
    return fmt(m, attr, where)


def _raw(values, f: QFormat, where: str) -> np.ndarray:
    """Quantized float32 values -> raw integers at ``f`` (each must be an exact integer multiple of 2**-frac)."""
    real = values.detach().to(torch.float64).numpy() * 2.0 ** f.frac
    raw = np.rint(real)
    if not np.all(np.isfinite(real)) or np.any(raw != real) or raw.min(initial=0) < f.min or \
            raw.max(initial=0) > f.max:
        raise NetworkError(f"{where}: the quantizer's output is not on {f}")
    return raw.astype(np.int64)


def quantized_weights(m, w, b, where: str):
    """(fmt_w, fmt_b, {'weight', 'bias'}) through the module's quantizers, as its forward applies them."""
    fmt_w, _ = fmt(m, "quantizer_w", where)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if b is None:
            qw, qb, fmt_b = m.quantizer_w(w), None, None
        elif separate_bias(m):
            fmt_b, _ = fmt(m, "quantizer_bias", where)
            qw, qb = m.quantizer_w(w), m.quantizer_bias(b)
        else:
            qw, qb = m.quantizer_w(w, bias_tensor=b)
            fmt_b = fmt_w  # the bias shares quantizer_w's scale and bits
    params = {"weight": _raw(qw, fmt_w, f"{where}.weight")}
    if qb is not None:
        params["bias"] = _raw(qb, fmt_b, f"{where}.bias")
    return fmt_w, fmt_b, params


def separate_bias(m) -> bool:
    """Whether the bias has its own quantizer (``bias.quant_enable = true``), as the layer's forward decides."""
    return getattr(m, "quantizer_bias", None) is not None


def _tuple(v, dims):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * dims


def _io(m, where, in_shape, fmt_src) -> dict:
    fi, ri = fmt_in(m, "quantizer_input", where, fmt_src)
    fo, ro = fmt(m, "quantizer_act", where)
    return {"in_shape": in_shape, "fmt_src": fmt_src, "fmt_in": fi, "fmt_out": fo, "round_in": ri, "round_out": ro}


# ------------------------------------------------------------------ the readers
@torch_reader(snn.QuantizedLIFNode, snn.QuantizedIFNode, snn.QuantizedATIF)
def _neuron(m, where, in_shape, fmt_src):
    over = {}
    if not enabled(m, "quantizer_input"):
        over = {"bits_in": fmt_src.bits, "q_in": fmt_src.frac, "round_in": "nearest"}
    try:
        spec = spec_from_module(m, "torch-eval", **over)
    except (TorchBridgeError, NetworkError) as e:
        raise NetworkError(f"{where}: {e}") from None
    return Neuron.of(spec, in_shape, fmt_src), {}


@torch_reader(sjneuron.BaseNode)
def _float_neuron(m, where, in_shape, fmt_src):
    raise NetworkError(f"{where}: an unquantized SpikingJelly node computes in float; use Qualia's quantized neurons")


@torch_reader(sjlayer.Flatten, torch.nn.Flatten)
def _flatten(m, where, in_shape, fmt_src):
    if m.start_dim != 1 or m.end_dim != -1:
        raise NetworkError(f"{where}: only Flatten(start_dim=1) is supported")
    return Flatten(in_shape=in_shape, fmt_src=fmt_src, fmt_in=fmt_src, fmt_out=fmt_src), {}


@torch_reader(core.QuantizedIdentity)
def _identity(m, where, in_shape, fmt_src):
    fo, ro = fmt(m, "quantizer_act", where)
    return Identity(in_shape=in_shape, fmt_src=fmt_src, fmt_in=fo, fmt_out=fo, round_in=ro, round_out=ro), {}


@torch_reader(core.QuantizedAdd)
def _add(m, where, in_shape, fmt_src):
    fa, ra = fmt_in(m, "quantizer_input_a", where, fmt_src[0])
    fb, rb = fmt_in(m, "quantizer_input_b", where, fmt_src[1])
    fo, ro = fmt(m, "quantizer_act", where)
    if ra != rb and enabled(m, "quantizer_input_a") and enabled(m, "quantizer_input_b"):
        raise NetworkError(f"{where}: the two input quantizers round differently ({ra}, {rb})")
    if not enabled(m, "quantizer_input_a"):
        ra = rb
    return Add(in_shape=in_shape, fmt_src=fmt_src[0], fmt_in=fa, fmt_out=fo, round_in=ra, round_out=ro,
               fmt_src_b=fmt_src[1], fmt_in_b=fb), {}


@torch_reader(core.QuantizedLinear)
def _linear(m, where, in_shape, fmt_src):
    fw, fb, p = quantized_weights(m, m.weight, m.bias, where)
    return Linear(**_io(m, where, in_shape, fmt_src), fmt_w=fw, fmt_b=fb, in_features=int(m.in_features),
                  out_features=int(m.out_features)), p


@torch_reader(core.QuantizedConv1d, core.QuantizedConv2d)
def _conv(m, where, in_shape, fmt_src):
    dims = 1 if isinstance(m, core.QuantizedConv1d) else 2
    if isinstance(m.padding, str) or m.padding_mode != "zeros" or set(m.dilation) != {1}:
        raise NetworkError(f"{where}: only zero padding given as numbers and dilation=1 are supported")
    fw, fb, p = quantized_weights(m, m.weight, m.bias, where)
    return Conv(**_io(m, where, in_shape, fmt_src), fmt_w=fw, fmt_b=fb, dims=dims, in_channels=int(m.in_channels),
                out_channels=int(m.out_channels), kernel=_tuple(m.kernel_size, dims), stride=_tuple(m.stride, dims),
                padding=_tuple(m.padding, dims), groups=int(m.groups)), p


@torch_reader(core.QuantizedBatchNorm1d, core.QuantizedBatchNorm2d)
def _batchnorm(m, where, in_shape, fmt_src):
    if not (m.affine and m.track_running_stats):
        raise NetworkError(f"{where}: needs affine=True and track_running_stats=True (eval uses running stats)")
    with torch.no_grad():
        alpha, beta = m.compute_fused_params(weight=m.weight, bias=m.bias, mean=m.running_mean, var=m.running_var,
                                             eps=m.eps)
    fw, fb, p = quantized_weights(m, alpha, beta, where)
    dims = 1 if isinstance(m, core.QuantizedBatchNorm1d) else 2
    return BatchNorm(**_io(m, where, in_shape, fmt_src), fmt_w=fw, fmt_b=fb, dims=dims,
                     num_features=int(m.num_features), arith="float32"), p  # torch's two float32 operations


@torch_reader(core.QuantizedMaxPool1d, core.QuantizedMaxPool2d)
def _maxpool(m, where, in_shape, fmt_src):
    dims = 1 if isinstance(m, core.QuantizedMaxPool1d) else 2
    if m.ceil_mode or set(_tuple(m.dilation, dims)) != {1}:
        raise NetworkError(f"{where}: ceil_mode and dilation are not supported")
    k = _tuple(m.kernel_size, dims)
    return MaxPool(**_io(m, where, in_shape, fmt_src), dims=dims, kernel=k, stride=_tuple(m.stride or k, dims),
                   padding=_tuple(m.padding, dims)), {}


@torch_reader(core.QuantizedGlobalSumPool1d, core.QuantizedGlobalSumPool2d)
def _gsp(m, where, in_shape, fmt_src):
    dims = 1 if isinstance(m, core.QuantizedGlobalSumPool1d) else 2
    return GlobalSumPool(**_io(m, where, in_shape, fmt_src), dims=dims), {}


def read_layer(name, m, in_shape, fmt_src):
    """The layer spec (and raw params) of one leaf module, by its registered reader."""
    where = f"{name} ({type(m).__name__})"
    if getattr(m, "activation", None) is not None:
        raise NetworkError(f"{where}: a fused activation {type(m.activation).__name__} is not supported")
    reader = TORCH_READERS.find(type(m))
    if reader is None:
        raise NetworkError(f"{where}: unsupported layer type; golden describes {supported()} and Dropout (eval)")
    return reader(m, where, in_shape, fmt_src)
