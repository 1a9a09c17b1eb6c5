"""Layer specs of a whole network: frozen, validated, hashable; raw integer weights live beside them.

Every layer is three integer stages over raw values (``R(n, s)``: shift right
by ``s`` with the layer's rounding, left by ``-s`` when ``s < 0``)::

    x  = N_in(R(x_src, q_src - q_in))      the layer's input quantizer (always saturates: Qualia clamps)
    acc = A(core(x, weights))               exact integer at frac F, narrowed to acc_bits (acc_overflow)
    out = N_out(R(acc, F - q_out))          the layer's output quantizer (out_overflow)

``round_in`` / ``round_out`` are Qualia's roundtypes in Xilinx names (RND =
'nearest' = floor(y + 1/2), TRN = 'floor', TRN_INF = 'ceil'). What each
Qualia layer computes in float32 is stated in its class docstring; the integer
stages above equal it while float32 holds every partial sum exactly, which
``float32_bound`` states (and :mod:`golden.network.graph` checks per value).

The knobs the generated C (profile "codegen", :mod:`golden.network.codegen`) needs are fields of the
same specs: ``acc_bits`` + ``acc_overflow = wrap`` (LONG_NUMBER_T: the accumulator of Linear/Conv/
BatchNorm/Add/GlobalSumPool, and the output stage's rounding addend / left shift, number.hh ``scale``),
``tmp_frac`` (TMP_SCALE_FACTOR), ``round_out`` (OUTPUT_ROUND_MODE), ``out_overflow`` (``clamp_to``
NUMBER_T); layouts stay channels-first here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..spec import QFormat, Spec, SpecError

ROUNDS = ("TRN", "TRN_INF", "RND")  # Qualia floor, ceil, nearest
QUALIA_ROUNDS = {"floor": "TRN", "ceil": "TRN_INF", "nearest": "RND"}
OUT_OVERFLOWS = ("saturate", "wrap")
ACC_OVERFLOWS = ("wrap", "strict")
F32_EXACT = 1 << 24  # float32 holds every integer up to 2**24 exactly


class NetworkError(SpecError):
    """A network or layer golden refuses; the message names the layer (and the fix). A GoldenError."""


def _shape(name, value, rank=None) -> tuple:
    if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise NetworkError(f"{name}: expected a tuple of ints, got {value!r}")
    if rank is not None and len(value) != rank:
        raise NetworkError(f"{name}: expected {rank} values, got {value!r}")
    return value


def _pos(name, value, lo=1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise NetworkError(f"{name}: expected an int >= {lo}, got {value!r}")


def _choice(name, value, options) -> None:
    if value not in options:
        raise NetworkError(f"{name}: {value!r} is not one of {', '.join(options)}")


@dataclass(frozen=True, kw_only=True)
class Layer:
    """What every layer states: its input shape (one sample, one step, channels-first) and formats.

    ``fmt_src`` is the format the raw input arrives in (the producer's output);
    ``fmt_in`` the layer's input quantizer; ``fmt_out`` its output quantizer.
    """

    TYPE: ClassVar[str] = "Layer"
    PARAMS: ClassVar[tuple] = ()  # names of the raw integer arrays beside the spec
    in_shape: tuple
    fmt_src: QFormat
    fmt_in: QFormat
    fmt_out: QFormat
    round_in: str = "RND"
    round_out: str = "RND"
    out_overflow: str = "saturate"
    acc_bits: int = 64
    acc_overflow: str = "wrap"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _shape("in_shape", self.in_shape)
        if not self.in_shape or min(self.in_shape) < 1:
            raise NetworkError(f"in_shape: every dimension must be >= 1, got {self.in_shape}")
        for name in ("fmt_src", "fmt_in", "fmt_out"):
            if not isinstance(getattr(self, name), QFormat):
                raise NetworkError(f"{name}: expected a QFormat")
            if getattr(self, name).bits > 24:
                raise NetworkError(f"{name}: {getattr(self, name)} is wider than 24 bits (float32 cannot hold it)")
        _choice("round_in", self.round_in, ROUNDS)
        _choice("round_out", self.round_out, ROUNDS)
        _choice("out_overflow", self.out_overflow, OUT_OVERFLOWS)
        _choice("acc_overflow", self.acc_overflow, ACC_OVERFLOWS)
        _pos("acc_bits", self.acc_bits, 2)
        if self.acc_bits > 64:
            raise NetworkError(f"acc_bits: {self.acc_bits} > 64")
        self.validate()

    def validate(self) -> None:
        """Type-specific checks."""

    @property
    def out_shape(self) -> tuple:
        return self.in_shape

    @property
    def acc_frac(self) -> int:
        """F: the frac of the exact accumulator."""
        return self.fmt_in.frac

    def param_specs(self) -> dict:
        """name -> (shape, QFormat) of every raw array this layer needs."""
        return {}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    def describe(self) -> str:
        return (f"{type_name(self)} {self.in_shape}->{self.out_shape} in={self.fmt_in} out={self.fmt_out} "
                f"round={self.round_in}/{self.round_out}")


@dataclass(frozen=True, kw_only=True)
class _Weighted(Layer):
    """A layer with raw integer weights W at ``fmt_w`` and an optional bias B at ``fmt_b``."""

    fmt_w: QFormat
    fmt_b: QFormat | None = None
    tmp_frac: int | None = None

    def validate(self) -> None:
        if not isinstance(self.fmt_w, QFormat) or not (self.fmt_b is None or isinstance(self.fmt_b, QFormat)):
            raise NetworkError("fmt_w / fmt_b: expected QFormat (fmt_b None: no bias)")
        if self.tmp_frac is not None:
            _pos("tmp_frac", self.tmp_frac, self.fmt_w.frac)
            if self.tmp_frac - self.fmt_w.frac > 40:
                raise NetworkError(f"tmp_frac: {self.tmp_frac} is too far above q_w {self.fmt_w.frac}")
        if self.fmt_b is not None and abs(self.fmt_b.frac - self.fmt_in.frac - self.fmt_w.frac) > 40:
            raise NetworkError(f"fmt_b: frac {self.fmt_b.frac} is too far from q_in + q_w")

    @property
    def acc_frac(self) -> int:
        """F = max(q_in + q_w, q_b): products and bias meet there exactly; with ``tmp_frac``: q_in + tmp_frac.

        ``tmp_frac`` is qualia-codegen's TMP_SCALE_FACTOR (max(q_w, q_b), q_w without a bias scale): the C
        shifts the product sum left by tmp_frac - q_w and brings the bias to q_in + tmp_frac with
        ``scale(bias, q_b - tmp_frac - q_in)``, which rounds (``round_out``) when that shift is positive.
        """
        if self.tmp_frac is not None:
            return self.fmt_in.frac + self.tmp_frac
        f = self.fmt_in.frac + self.fmt_w.frac
        return f if self.fmt_b is None else max(f, self.fmt_b.frac)

    @property
    def has_bias(self) -> bool:
        return self.fmt_b is not None

    def _params(self, w_shape, b_len) -> dict:
        p = {"weight": (w_shape, self.fmt_w)}
        if self.fmt_b is not None:
            p["bias"] = ((b_len,), self.fmt_b)
        return p

    def describe(self) -> str:
        b = f" b={self.fmt_b}" if self.fmt_b else " no bias"
        t = "" if self.tmp_frac is None else f" tmp_frac={self.tmp_frac}"
        return f"{super().describe()} w={self.fmt_w}{b} acc={self.acc_bits}b/{self.acc_overflow}{t}"


@dataclass(frozen=True, kw_only=True)
class Linear(_Weighted):
    """QuantizedLinear: ``Qact(linear(Qi(x), Qw(W), Qb(B)))``.

    In float32 (``.eval()``): the input, weight and bias quantizers quantize
    (floor(y*2^q + 1/2) in float32 for 'nearest', clamped to the bits); the
    bias has its own quantizer when quant_params hold 'bias', else it shares
    quantizer_w's scale; ``torch.nn.functional.linear`` accumulates in
    float32 in an order of its choosing; quantizer_act rounds and clamps.
    Integers: ``acc = sum_j W[o,j] x[j] + (B[o] << (F - q_b))`` at F =
    max(q_in + q_w, q_b), exact while float32_bound <= 2**24.
    """

    TYPE: ClassVar[str] = "Linear"
    PARAMS: ClassVar[tuple] = ("weight", "bias")
    in_features: int
    out_features: int

    def validate(self) -> None:
        super().validate()
        _pos("in_features", self.in_features)
        _pos("out_features", self.out_features)
        if self.in_shape != (self.in_features,):
            raise NetworkError(f"in_shape: Linear takes ({self.in_features},), got {self.in_shape}")

    @property
    def out_shape(self) -> tuple:
        return (self.out_features,)

    def param_specs(self) -> dict:
        return self._params((self.out_features, self.in_features), self.out_features)


@dataclass(frozen=True, kw_only=True)
class Conv(_Weighted):
    """QuantizedConv1d / QuantizedConv2d (dims 1 / 2; dilation 1, groups 1): the Linear's stages, per window.

    Float32 as for Linear (``torch.nn.functional.conv{dims}d``, zero padding).
    Integers: ``acc[o, p] = sum_{c,k} W[o,c,k] x[c, p*stride + k - padding] + (B[o] << (F - q_b))``.
    """

    TYPE: ClassVar[str] = "Conv"
    PARAMS: ClassVar[tuple] = ("weight", "bias")
    dims: int
    in_channels: int
    out_channels: int
    kernel: tuple
    stride: tuple
    padding: tuple

    @property
    def type_name(self) -> str:
        return f"Conv{self.dims}d"

    def validate(self) -> None:
        super().validate()
        _choice("dims", self.dims, (1, 2))
        _pos("in_channels", self.in_channels)
        _pos("out_channels", self.out_channels)
        for name in ("kernel", "stride"):
            _shape(name, getattr(self, name), self.dims)
            if min(getattr(self, name)) < 1:
                raise NetworkError(f"{name}: expected values >= 1, got {getattr(self, name)}")
        _shape("padding", self.padding, self.dims)
        if min(self.padding) < 0:
            raise NetworkError(f"padding: expected values >= 0, got {self.padding}")
        if len(self.in_shape) != self.dims + 1 or self.in_shape[0] != self.in_channels:
            raise NetworkError(f"in_shape: Conv{self.dims}d takes ({self.in_channels}, *{self.dims} spatial), "
                               f"got {self.in_shape}")
        if min(self.out_shape[1:]) < 1:
            raise NetworkError(f"kernel: {self.kernel} does not fit the padded input {self.in_shape}")

    @property
    def out_shape(self) -> tuple:
        sp = tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(self.in_shape[1:], self.padding, self.kernel,
                                                                    self.stride))
        return (self.out_channels, *sp)

    def param_specs(self) -> dict:
        return self._params((self.out_channels, self.in_channels, *self.kernel), self.out_channels)


@dataclass(frozen=True, kw_only=True)
class BatchNorm(_Weighted):
    """QuantizedBatchNorm1d / 2d in ``.eval()``, fused: ``Qact(Qi(x) * Qw(alpha) + Qb(beta))`` per channel.

    Float32: ``alpha = weight / sqrt(running_var + eps)``, ``beta = bias -
    weight * running_mean / sqrt(running_var + eps)`` (the module computes them
    each call); quantizer_w quantizes alpha, quantizer_bias (or quantizer_w's
    scale) beta; then ``x * alpha + beta`` as two float32 operations.
    Integers: the raw ``weight`` is Qw(alpha), ``bias`` Qb(beta);
    ``acc = x * W[c] + (B[c] << (F - q_b))``.
    """

    TYPE: ClassVar[str] = "BatchNorm"
    PARAMS: ClassVar[tuple] = ("weight", "bias")
    dims: int
    num_features: int

    @property
    def type_name(self) -> str:
        return f"BatchNorm{self.dims}d"

    def validate(self) -> None:
        super().validate()
        _choice("dims", self.dims, (1, 2))
        _pos("num_features", self.num_features)
        if len(self.in_shape) != self.dims + 1 or self.in_shape[0] != self.num_features:
            raise NetworkError(f"in_shape: BatchNorm{self.dims}d takes ({self.num_features}, *{self.dims} spatial), "
                               f"got {self.in_shape}")

    def param_specs(self) -> dict:
        return self._params((self.num_features,), self.num_features)


@dataclass(frozen=True, kw_only=True)
class MaxPool(Layer):
    """QuantizedMaxPool1d / 2d: ``Qact(max_pool(Qi(x)))`` (padding with -inf); the max is exact in any format."""

    TYPE: ClassVar[str] = "MaxPool"
    dims: int
    kernel: tuple
    stride: tuple
    padding: tuple

    @property
    def type_name(self) -> str:
        return f"MaxPool{self.dims}d"

    def validate(self) -> None:
        _choice("dims", self.dims, (1, 2))
        for name in ("kernel", "stride", "padding"):
            _shape(name, getattr(self, name), self.dims)
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise NetworkError(f"kernel/stride/padding: {self.kernel}/{self.stride}/{self.padding} out of range")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise NetworkError(f"padding: {self.padding} exceeds half the kernel {self.kernel} (torch refuses it)")
        if len(self.in_shape) != self.dims + 1:
            raise NetworkError(f"in_shape: MaxPool{self.dims}d takes (channels, *{self.dims} spatial), "
                               f"got {self.in_shape}")
        if min(self.out_shape[1:]) < 1:
            raise NetworkError(f"kernel: {self.kernel} does not fit the input {self.in_shape}")

    @property
    def out_shape(self) -> tuple:
        sp = tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(self.in_shape[1:], self.padding, self.kernel,
                                                                    self.stride))
        return (self.in_shape[0], *sp)


@dataclass(frozen=True, kw_only=True)
class Add(Layer):
    """QuantizedAdd (the residual): ``Qact(Qa(a) + Qb(b))``; a and b have their own input quantizers.

    Float32: one addition of two quantized values. Integers at F = max(q_a, q_b):
    ``acc = (a << (F - q_a)) + (b << (F - q_b))``.
    """

    TYPE: ClassVar[str] = "Add"
    fmt_src_b: QFormat
    fmt_in_b: QFormat

    def validate(self) -> None:
        for name in ("fmt_src_b", "fmt_in_b"):
            if not isinstance(getattr(self, name), QFormat):
                raise NetworkError(f"{name}: expected a QFormat")

    @property
    def acc_frac(self) -> int:
        return max(self.fmt_in.frac, self.fmt_in_b.frac)


@dataclass(frozen=True, kw_only=True)
class GlobalSumPool(Layer):
    """QuantizedGlobalSumPool1d / 2d: ``Qact(Qi(x).sum(spatial))`` -> (channels,). Integers: the exact sum."""

    TYPE: ClassVar[str] = "GlobalSumPool"
    dims: int

    @property
    def type_name(self) -> str:
        return f"GlobalSumPool{self.dims}d"

    def validate(self) -> None:
        _choice("dims", self.dims, (1, 2))
        if len(self.in_shape) != self.dims + 1:
            raise NetworkError(f"in_shape: GlobalSumPool{self.dims}d takes (channels, *{self.dims} spatial), "
                               f"got {self.in_shape}")

    @property
    def out_shape(self) -> tuple:
        return (self.in_shape[0],)


@dataclass(frozen=True, kw_only=True)
class Flatten(Layer):
    """spikingjelly's Flatten: a reshape to (prod(in_shape),); no quantizer (fmt_src = fmt_in = fmt_out)."""

    TYPE: ClassVar[str] = "Flatten"

    def validate(self) -> None:
        if not self.fmt_src == self.fmt_in == self.fmt_out:
            raise NetworkError("fmt_in / fmt_out: Flatten has no quantizer; both must equal fmt_src")

    @property
    def out_shape(self) -> tuple:
        return (math.prod(self.in_shape),)


@dataclass(frozen=True, kw_only=True)
class Identity(Layer):
    """QuantizedIdentity: ``Qact(x)`` (its quantizer_input *is* quantizer_act): fmt_in = fmt_out."""

    TYPE: ClassVar[str] = "Identity"

    def validate(self) -> None:
        if self.fmt_in != self.fmt_out or self.round_in != self.round_out:
            raise NetworkError("fmt_in / round_in: QuantizedIdentity has one quantizer; they must equal fmt_out / "
                               "round_out")


@dataclass(frozen=True, kw_only=True)
class Neuron(Layer):
    """A spiking neuron layer (QuantizedLIFNode / QuantizedIFNode / QuantizedATIF): the existing :class:`Spec`.

    ``fmt_in``, ``fmt_out`` and ``round_in`` repeat the spec's (checked); the input
    quantizer runs on the raw arrivals, then the spec's datapath over all steps.
    """

    TYPE: ClassVar[str] = "Neuron"
    spec: Spec

    def validate(self) -> None:
        if not isinstance(self.spec, Spec):
            raise NetworkError("spec: expected a golden.Spec")
        if (self.fmt_in, self.fmt_out) != (self.spec.fmt_in, self.spec.fmt_out):
            raise NetworkError(f"fmt_in / fmt_out: {self.fmt_in} / {self.fmt_out} differ from the spec's "
                               f"{self.spec.fmt_in} / {self.spec.fmt_out}")
        if self.round_in != self.spec.round_in:
            raise NetworkError(f"round_in: {self.round_in} differs from the spec's {self.spec.round_in}")

    @classmethod
    def of(cls, spec: Spec, in_shape: tuple, fmt_src: QFormat) -> Neuron:
        rnd = spec.round_in if spec.round_in in ROUNDS else None
        if rnd is None:
            raise NetworkError(f"spec.round_in: {spec.round_in} is not a Qualia roundtype ({', '.join(ROUNDS)})")
        return cls(in_shape=in_shape, fmt_src=fmt_src, fmt_in=spec.fmt_in, fmt_out=spec.fmt_out, round_in=rnd,
                   spec=spec)

    def describe(self) -> str:
        return f"Neuron {self.in_shape}: {self.spec.describe()}"


TYPES = {"Linear": Linear, "Conv1d": Conv, "Conv2d": Conv, "BatchNorm1d": BatchNorm, "BatchNorm2d": BatchNorm,
         "MaxPool1d": MaxPool, "MaxPool2d": MaxPool, "Add": Add, "GlobalSumPool1d": GlobalSumPool,
         "GlobalSumPool2d": GlobalSumPool, "Flatten": Flatten, "Identity": Identity, "Neuron": Neuron}


def type_name(layer: Layer) -> str:
    return getattr(layer, "type_name", layer.TYPE)


def float32_bound(layer: Layer, params: dict, x_max: int | None = None) -> int:
    """The largest |partial sum| torch's float32 may form, in units of 2**-F, plus the output's half LSB.

    Worst case over every input in ``fmt_in`` (or ``|x| <= x_max``), any summation
    order. While it is <= 2**24, float32 holds every partial sum and the final
    ``y * 2**q_out + 1/2`` exactly, so the float32 module equals the integers.
    """
    xm = max(-layer.fmt_in.min, layer.fmt_in.max) if x_max is None else x_max
    F = layer.acc_frac
    half = 1 << (F - layer.fmt_out.frac - 1) if F > layer.fmt_out.frac else 0
    if isinstance(layer, _Weighted):
        import numpy as np
        w = np.abs(np.asarray(params["weight"], np.int64)).reshape(np.shape(params["weight"])[0], -1)
        per = w.sum(axis=1) * xm << (F - layer.fmt_in.frac - layer.fmt_w.frac)
        if layer.has_bias:
            per = per + (np.abs(np.asarray(params["bias"], np.int64)) << (F - layer.fmt_b.frac))
        return int(per.max()) + half
    if isinstance(layer, Add):
        xb = max(-layer.fmt_in_b.min, layer.fmt_in_b.max)
        return (xm << (F - layer.fmt_in.frac)) + (xb << (F - layer.fmt_in_b.frac)) + half
    if isinstance(layer, GlobalSumPool):
        return xm * math.prod(layer.in_shape[1:]) + half
    return 0
