"""Layer specs of a whole network: frozen, validated, hashable; raw integer weights live beside them.

Every layer is three integer stages over raw values (``R(n, s)``: shift right
by ``s`` with the layer's rounding, left by ``-s`` when ``s < 0``)::

    x  = N_in(R(x_src, q_src - q_in))      the layer's input quantizer (always saturates: Qualia clamps)
    acc = A(core(x, weights))               exact integer at frac F, narrowed to acc_bits (acc_overflow)
    out = N_out(R(acc, F - q_out))          the layer's output quantizer (out_overflow)

``round_in`` / ``round_out`` are :class:`~golden.spec.Round` members, the Qualia roundtypes
(``QUALIA_ROUND``: RND = 'nearest' = floor(y + 1/2), TRN = 'floor', TRN_INF = 'ceil'); the
overflow policies are :class:`~golden.spec.Overflow` members. Constructors also take their TOML
strings ("RND", "saturate"). What each
Qualia layer computes in float32 is stated in its class docstring; the integer
stages above equal it while float32 holds every partial sum exactly, which
``float32_bound`` states (and :mod:`golden.network.graph` checks per value).

The knobs the generated C (profile "codegen", :mod:`golden.qualia.creaders`) needs are fields of the
same specs: ``acc_bits`` + ``acc_overflow = wrap`` (LONG_NUMBER_T: the accumulator of Linear/Conv/
BatchNorm/Add/GlobalSumPool, and the output stage's rounding addend / left shift, number.hh ``scale``),
``tmp_frac`` (TMP_SCALE_FACTOR), ``round_out`` (OUTPUT_ROUND_MODE), ``out_overflow`` (``clamp_to``
NUMBER_T); layouts stay channels-first here.

The layer protocol: each class states its validation (``validate``), ``out_shape``, raw arrays
(``param_specs``), its inputs (``sources``), its kernel call (``core``: the exact accumulator on a
kernel family, :mod:`golden.network.kernels` or :mod:`golden.network.reference`), its float32 bound
and its description, and registers under its TOML type name(s) in :data:`LAYERS`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import NetworkError
from ..registry import Registry
from ..spec import QUALIA_ROUND, Arith, Overflow, QFormat, Round, Spec
from . import gemm, kernels

ROUNDS = (Round.TRN, Round.TRN_INF, Round.RND)  # the Round members a layer takes: QUALIA_ROUND's (floor, ceil, nearest)
QUALIA_ROUNDS = QUALIA_ROUND  # the same table under its former name (golden.spec.QUALIA_ROUND is the one to use)
OUT_OVERFLOWS = (Overflow.SATURATE, Overflow.WRAP)
ACC_OVERFLOWS = (Overflow.WRAP, Overflow.STRICT)
F32_EXACT = 1 << 24  # float32 holds every integer up to 2**24 exactly
F32_SIGNIFICAND = 24  # float32's significant bits: what round_f32 keeps
assert set(ROUNDS) == set(QUALIA_ROUND.values())

LAYERS = Registry("layer type")  # TOML type name -> layer class: the supported list is LAYERS.names()
register = LAYERS.register


def layer_class(tname: str) -> type:
    """The layer class of a TOML type name; NetworkError listing the known ones otherwise."""
    cls = LAYERS.get(tname)
    if cls is None:
        raise NetworkError(f"unknown layer type {tname!r} (known: {', '.join(LAYERS.names())})")
    return cls


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
        raise NetworkError(f"{name}: {value!r} is not one of {', '.join(map(str, options))}")


def _member(obj, name: str, options: tuple) -> None:
    """Store field ``name`` as the member of ``options`` it names (a member or its TOML string)."""
    value = getattr(obj, name)
    for m in options:
        if isinstance(value, str) and value == m:
            object.__setattr__(obj, name, m)
            return
    raise NetworkError(f"{name}: {value!r} is not one of {', '.join(options)}")


def _wrap_acc(impl, acc, bits: int):
    """An exact sum narrowed to the accumulator (wrap: LONG_NUMBER_T); (values, number wrapped)."""
    return impl.requant(acc, 0, Round.TRN.code, bits, Overflow.WRAP.code, 64) if bits < 64 else (acc, 0)


@dataclass(frozen=True, kw_only=True)
class Layer:
    """What every layer states: its input shape (one sample, one step, channels-first) and formats.

    ``fmt_src`` is the format the raw input arrives in (the producer's output);
    ``fmt_in`` the layer's input quantizer; ``fmt_out`` its output quantizer.
    """

    TYPE: ClassVar[str] = "Layer"
    PARAMS: ClassVar[tuple] = ()  # names of the raw integer arrays beside the spec
    QUANTIZED: ClassVar[bool] = True  # False: a pure reshape (no quantizer, nothing narrowed)
    SUMS: ClassVar[bool] = False  # its float32 forms sums that may round (bounded by float32_bound)
    OPTIONAL: ClassVar[tuple] = ()  # fields saved only when they differ from their default (added later: older
    # network.toml files, and their digests, stay byte-identical)
    in_shape: tuple
    fmt_src: QFormat
    fmt_in: QFormat
    fmt_out: QFormat
    round_in: Round = Round.RND
    round_out: Round = Round.RND
    out_overflow: Overflow = Overflow.SATURATE
    acc_bits: int = 64
    acc_overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        _shape("in_shape", self.in_shape)
        if not self.in_shape or min(self.in_shape) < 1:
            raise NetworkError(f"in_shape: every dimension must be >= 1, got {self.in_shape}")
        for name in ("fmt_src", "fmt_in", "fmt_out"):
            if not isinstance(getattr(self, name), QFormat):
                raise NetworkError(f"{name}: expected a QFormat")
            if getattr(self, name).bits > 24:
                raise NetworkError(f"{name}: {getattr(self, name)} is wider than 24 bits (float32 cannot hold it)")
        _member(self, "round_in", ROUNDS)
        _member(self, "round_out", ROUNDS)
        _member(self, "out_overflow", OUT_OVERFLOWS)
        _member(self, "acc_overflow", ACC_OVERFLOWS)
        _pos("acc_bits", self.acc_bits, 2)
        if self.acc_bits > 64:
            raise NetworkError(f"acc_bits: {self.acc_bits} > 64")
        self.validate()

    def validate(self) -> None:
        """Type-specific checks."""

    @property
    def type_name(self) -> str:
        """The TOML type name this layer is saved under (a class with ``dims`` has one per dims)."""
        return self.TYPE

    @property
    def out_shape(self) -> tuple:
        return self.in_shape

    def sources(self) -> tuple:
        """(fmt_src, fmt_in) of each input, in the order of the node's inputs: its input quantizer(s)."""
        return ((self.fmt_src, self.fmt_in),)

    @property
    def acc_frac(self) -> int:
        """F: the frac of the exact accumulator."""
        return self.fmt_in.frac

    def param_specs(self) -> dict:
        """name -> (shape, QFormat) of every raw array this layer needs."""
        return {}

    def core(self, impl, params: dict, xs: list, acc_bits: int | None = None):
        """The kernel call: (exact accumulator (R, *out_shape) at frac ``acc_frac``, number of values narrowed).

        ``impl``: the kernel family (:mod:`golden.network.kernels` or :mod:`golden.network.reference`);
        ``xs``: the quantized inputs, one (R, *in_shape) int64 array per source; ``acc_bits``: the accumulator
        width (None: the layer's). The base class: the identity (a quantizer alone).
        """
        return xs[0].reshape(xs[0].shape[0], *self.out_shape), 0

    def out_stage(self, impl, acc):
        """The output quantizer on the accumulator (R, *out_shape) at frac F: (raw values at ``fmt_out``, number
        narrowed). ``N_out(R(acc, F - q_out))``, the rounding addend / left shift in ``acc_bits`` (number.hh
        ``scale`` in LONG_NUMBER_T; 64: exact)."""
        return impl.requant(acc, self.acc_frac - self.fmt_out.frac, self.round_out.code, self.fmt_out.bits,
                            self.out_overflow.code, self.acc_bits)

    @property
    def float32_reproduced(self) -> bool:
        """True when golden computes this layer's float32 arithmetic exactly as torch does, every rounding
        included (a BatchNorm with ``arith = float32``): its values then carry no float32-accumulation caveat,
        whatever :meth:`float32_bound` says. False: golden's integers equal torch while the bound holds."""
        return False

    def float32_bound(self, params: dict, x_max: int | None = None) -> int:
        """The largest |partial sum| torch's float32 may form, in units of 2**-F, plus the output's half LSB.

        Worst case over every input in ``fmt_in`` (or ``|x| <= x_max``), any summation order. While it is
        <= 2**24, float32 holds every partial sum and the final ``y * 2**q_out + 1/2`` exactly, so the float32
        module equals the integers. 0: the layer forms no sum (its float32 is exact).
        """
        return 0

    def acc_extremes(self, params: dict) -> tuple | None:
        """(lo, hi): what the accumulator may hold at frac F over every input of ``fmt_in``, from the layer's
        real parameters, the output stage's rounding addend included (the C's ``scale`` adds it in LONG too);
        None when the layer forms no sum. Exact for weighted layers; the symmetric float32 bound otherwise."""
        if not self.SUMS:
            return None
        b = self.float32_bound(params)
        return -b, b

    def long_bits(self, params: dict) -> int | None:
        """The narrowest two's-complement width that holds :meth:`acc_extremes`: a LONG_NUMBER_T at least this
        wide never wraps on any input of the layer's format. None when the layer forms no sum."""
        ext = self.acc_extremes(params)
        if ext is None:
            return None
        lo, hi = ext
        return max((-lo - 1).bit_length(), hi.bit_length()) + 1

    def input_max(self, x_max: int | None = None) -> int:
        """The largest |x| an input may have: ``x_max``, or full scale of ``fmt_in``."""
        return max(-self.fmt_in.min, self.fmt_in.max) if x_max is None else x_max

    def half_lsb(self) -> int:
        """Half an output LSB at frac F: what ``y * 2**q_out + 1/2`` adds."""
        F, q = self.acc_frac, self.fmt_out.frac
        return 1 << (F - q - 1) if F > q else 0

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    def describe(self) -> str:
        return (f"{self.type_name} {self.in_shape}->{self.out_shape} in={self.fmt_in} out={self.fmt_out} "
                f"round={self.round_in}/{self.round_out}")


@dataclass(frozen=True, kw_only=True)
class Weighted(Layer):
    """A layer with raw integer weights W at ``fmt_w`` and an optional bias B at ``fmt_b``.

    Its kernel call is :meth:`accumulate` on the prepared weights (:meth:`weights`).
    """

    SUMS: ClassVar[bool] = True
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

    def weights(self, impl, params: dict) -> tuple:
        """(w, b, b_shift, p_shift): the raw arrays as int64 and the shifts that bring products and bias to F.

        With ``tmp_frac`` the bias is the C's ``scale(bias, q_b - F)``: rounded by ``round_out`` when that shifts
        right, in LONG_NUMBER_T (``acc_bits``, wrapping).
        """
        w = np.ascontiguousarray(params["weight"], np.int64)
        b = np.ascontiguousarray(params["bias"], np.int64) if self.has_bias else np.zeros(0, np.int64)
        F = self.acc_frac
        p_shift = F - self.fmt_in.frac - self.fmt_w.frac
        b_shift = F - self.fmt_b.frac if self.has_bias else 0
        if self.tmp_frac is not None and b.size:
            b, _ = impl.requant(b, -b_shift, self.round_out.code, self.acc_bits, Overflow.WRAP.code, self.acc_bits)
            b_shift = 0
        return w, b, b_shift, p_shift

    def core(self, impl, params: dict, xs: list, acc_bits: int | None = None):
        w, b, b_shift, p_shift = self.weights(impl, params)
        return self.accumulate(self.family(impl, w), xs[0], w, b, b_shift, p_shift,
                               self.acc_bits if acc_bits is None else acc_bits)

    GEMM: ClassVar[str | None] = None  # the kind gemm.choose knows this type as ("linear", "conv"), or None

    def family(self, impl, w):
        """The kernel family that runs this layer: ``impl``, except that the Numba family hands a Linear or Conv
        large enough, whose every sum float64 (or float32) provably holds exactly, to the exact-GEMM route
        (:func:`golden.network.gemm.choose`, from the real weights and the input format). The oracle
        (:mod:`golden.network.reference`) is never replaced."""
        if impl is not kernels or self.GEMM is None:
            return impl
        return gemm.choose(w, self.fmt_in, self.GEMM, macs=math.prod(self.out_shape) * math.prod(w.shape[1:])).impl

    def accumulate(self, impl, x, w, b, b_shift: int, p_shift: int, bits: int):
        """The type's kernel on prepared weights: (acc, number wrapped to ``bits``)."""
        raise NotImplementedError  # pragma: no cover

    def float32_bound(self, params: dict, x_max: int | None = None) -> int:
        F = self.acc_frac
        w = np.abs(np.asarray(params["weight"], np.int64)).reshape(np.shape(params["weight"])[0], -1)
        per = w.sum(axis=1) * self.input_max(x_max) << (F - self.fmt_in.frac - self.fmt_w.frac)
        if self.has_bias:
            per = per + (np.abs(np.asarray(params["bias"], np.int64)) << (F - self.fmt_b.frac))
        return int(per.max()) + self.half_lsb()

    def acc_extremes(self, params: dict) -> tuple:
        """Exact: per output, each product at its extreme over ``[fmt_in.min, fmt_in.max]`` (by the weight's
        sign), plus the bias at F (rounded outwards when the C shifts it right), plus the rounding addend."""
        F = self.acc_frac
        w = np.asarray(params["weight"], np.int64)
        w = w.reshape(w.shape[0], -1)
        a, c = w * self.fmt_in.min, w * self.fmt_in.max
        shift = F - self.fmt_in.frac - self.fmt_w.frac
        lo, hi = np.minimum(a, c).sum(axis=1) << shift, np.maximum(a, c).sum(axis=1) << shift
        if self.has_bias:
            b, s = np.asarray(params["bias"], np.int64), F - self.fmt_b.frac
            lo = lo + (b << s if s >= 0 else b >> -s)
            hi = hi + (b << s if s >= 0 else -((-b) >> -s))
        return int(lo.min()), int(hi.max()) + self.half_lsb()

    def describe(self) -> str:
        b = f" b={self.fmt_b}" if self.fmt_b else " no bias"
        t = "" if self.tmp_frac is None else f" tmp_frac={self.tmp_frac}"
        return f"{super().describe()} w={self.fmt_w}{b} acc={self.acc_bits}b/{self.acc_overflow}{t}"


@register("Linear")
@dataclass(frozen=True, kw_only=True)
class Linear(Weighted):
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
    GEMM: ClassVar[str] = "linear"
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

    def accumulate(self, impl, x, w, b, b_shift, p_shift, bits):
        return impl.linear(x, w, b, b_shift, p_shift, bits)


@register("Conv1d", "Conv2d")
@dataclass(frozen=True, kw_only=True)
class Conv(Weighted):
    """QuantizedConv1d / QuantizedConv2d (dims 1 / 2; dilation 1): the Linear's stages, per window.

    Float32 as for Linear (``torch.nn.functional.conv{dims}d``, zero padding).
    Integers: ``acc[o, p] = sum_{c,k} W[o,c,k] x[c, p*stride + k - padding] + (B[o] << (F - q_b))``.

    ``groups`` (depthwise-separable and grouped convolutions; torch's and qualia-codegen's ``groups``): the
    channels split into ``groups`` equal blocks; output channel ``o`` sums over its block ``o // (out_channels /
    groups)`` of ``in_channels / groups`` input channels only, so ``weight`` is ``(out_channels, in_channels /
    groups, *kernel)``. golden runs each group as an independent convolution on its channel slice (the same kernel
    family, the same exact sums): depthwise is ``groups = in_channels``.
    """

    TYPE: ClassVar[str] = "Conv"
    GEMM: ClassVar[str] = "conv"
    PARAMS: ClassVar[tuple] = ("weight", "bias")
    OPTIONAL: ClassVar[tuple] = ("groups",)
    dims: int
    in_channels: int
    out_channels: int
    kernel: tuple
    stride: tuple
    padding: tuple
    groups: int = 1

    @property
    def type_name(self) -> str:
        return f"Conv{self.dims}d"

    def validate(self) -> None:
        super().validate()
        _choice("dims", self.dims, (1, 2))
        _pos("in_channels", self.in_channels)
        _pos("out_channels", self.out_channels)
        _pos("groups", self.groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise NetworkError(f"groups: {self.groups} must divide in_channels {self.in_channels} and out_channels "
                               f"{self.out_channels} (each group takes an equal block of both)")
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
        return self._params((self.out_channels, self.in_channels // self.groups, *self.kernel), self.out_channels)

    def lanes(self, impl, w):
        """``w`` as int32 when the family has 32-bit lanes and every sum provably fits 32 bits (|x| <=
        2**(bits-1), so |sum| <= that times the largest sum of |w| over a filter): the Numba kernel then sums
        in 32-bit lanes, twice as many per vector, with the same exact sums. Otherwise int64."""
        if not getattr(impl, "INT32_LANES", False) or not w.size:
            return w
        bound = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max()) << (self.fmt_in.bits - 1)
        return w.astype(np.int32) if bound < 1 << 31 else w

    def accumulate(self, impl, x, w, b, b_shift, p_shift, bits):
        w = self.lanes(impl, w)
        if self.groups == 1:
            return self.conv(impl, x, w, b, b_shift, p_shift, bits)
        ci, co = self.in_channels // self.groups, self.out_channels // self.groups
        accs, hits = [], 0
        for g in range(self.groups):  # each group: an independent convolution on its block of channels
            out = slice(g * co, (g + 1) * co)
            acc, h = self.conv(impl, np.ascontiguousarray(x[:, g * ci:(g + 1) * ci]), np.ascontiguousarray(w[out]),
                               np.ascontiguousarray(b[out]) if b.size else b, b_shift, p_shift, bits)
            accs.append(acc)
            hits += h
        return np.concatenate(accs, axis=1), hits

    def conv(self, impl, x, w, b, b_shift, p_shift, bits):
        """One dense convolution (groups 1) on the kernel family: (acc, number wrapped)."""
        if self.dims == 1:  # a 1-D conv is a 2-D one of height 1
            acc, h = impl.conv2d(x[:, :, None, :], w[:, :, None, :], b, b_shift, p_shift, bits, 1, self.stride[0],
                                 0, self.padding[0])
            return acc[:, :, 0, :], h
        (sh, sw), (ph, pw) = self.stride, self.padding
        return impl.conv2d(x, w, b, b_shift, p_shift, bits, sh, sw, ph, pw)

    def describe(self) -> str:
        return super().describe() + (f" groups={self.groups}" if self.groups != 1 else "")


@register("BatchNorm1d", "BatchNorm2d")
@dataclass(frozen=True, kw_only=True)
class BatchNorm(Weighted):
    """QuantizedBatchNorm1d / 2d in ``.eval()``, fused: ``Qact(Qi(x) * Qw(alpha) + Qb(beta))`` per channel.

    What the module computes (qualia-core 2.6 ``QuantizedBatchNorm.forward``, not
    ``torch.nn.functional.batch_norm``): ``alpha = weight / sqrt(running_var + eps)``,
    ``beta = bias - weight * running_mean / sqrt(running_var + eps)`` in float32, each call;
    quantizer_w quantizes alpha, quantizer_bias (or quantizer_w's scale) beta; then
    ``y = x * alpha + beta`` as two float32 operations (a product rounded to float32, then a
    sum rounded to float32; no fused multiply-add), then quantizer_act on y in float32:
    ``floor(float32(y * 2**q_out + 1/2))`` ('nearest'), ``floor`` / ``ceil`` of ``y * 2**q_out``.
    The raw ``weight`` is Qw(alpha), ``bias`` Qb(beta); golden reads them through the module's
    own quantizers, so alpha and beta are the module's bit for bit.

    ``arith = "int"`` (the generated C, profile codegen): ``acc = x * W[c] << (F - q_in - q_w) +
    (B[c] << (F - q_b))``, exact (LONG_NUMBER_T: ``acc_bits``, wrapping), then the output stage.

    ``arith = "float32"`` (profile torch-eval): torch's two float32 operations and its float32
    quantizer, reproduced in integers: every value is an integer multiple of 2**-F, and float32
    rounding of such a value is rounding the integer to 24 significant bits, ties to even
    (:func:`round_f32` of the kernel family; exact while no value is subnormal, which ``validate``
    guarantees)::

        P = round_f32(x * W[c])                                   at q_in + q_w (the float32 product)
        Y = round_f32(P << (F - q_in - q_w) + B[c] << (F - q_b))  at F          (the float32 sum)
        out = clamp(floor(round_f32(Y << (t - s) + 2**(t-1)) / 2**t))   'nearest', s = F - q_out, t = max(s, 1)
              clamp(floor / ceil(Y / 2**s))                             'floor' / 'ceil' (exact in float32)

    Bit-exact against the real module at every width (tests/test_network_batchnorm.py): its
    values carry no float32-accumulation caveat (:attr:`float32_reproduced`).
    """

    TYPE: ClassVar[str] = "BatchNorm"
    PARAMS: ClassVar[tuple] = ("weight", "bias")
    OPTIONAL: ClassVar[tuple] = ("arith",)
    dims: int
    num_features: int
    arith: Arith = Arith.INT

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
        _member(self, "arith", (Arith.INT, Arith.FLOAT32))
        if self.arith == Arith.FLOAT32:
            self._validate_float32()

    def _validate_float32(self) -> None:
        """torch's datapath: no LONG (it never wraps), no TMP_SCALE_FACTOR, a clamping quantizer; every value a
        normal float32 (F <= 126) and every integer of the reproduction inside int64."""
        if self.acc_bits != 64 or self.tmp_frac is not None or self.out_overflow != Overflow.SATURATE:
            raise NetworkError("arith: float32 is torch's datapath: it takes acc_bits = 64, no tmp_frac and "
                               "out_overflow = saturate (the C's knobs go with arith = int)")
        F, s = self.acc_frac, self.acc_frac - self.fmt_out.frac
        p_shift = F - self.fmt_in.frac - self.fmt_w.frac
        mag = self.fmt_in.bits + self.fmt_w.bits - 2 + p_shift
        if self.fmt_b is not None:
            mag = max(mag, self.fmt_b.bits - 1 + F - self.fmt_b.frac) + 1
        if not (-60 <= F <= 126 and -60 <= s <= 62 and mag + max(1 - s, 0) <= 61):
            raise NetworkError(f"arith: float32 with F = {F} and output shift {s}: outside what golden reproduces "
                               f"(-60 <= F <= 126, -60 <= F - q_out <= 62, every value below 2**61); use "
                               f"formats closer to one another")

    @property
    def float32_reproduced(self) -> bool:
        return self.arith == Arith.FLOAT32

    def param_specs(self) -> dict:
        return self._params((self.num_features,), self.num_features)

    def accumulate(self, impl, x, w, b, b_shift, p_shift, bits):
        acc, h = impl.batchnorm(x.reshape(x.shape[0], self.num_features, -1), w, b, b_shift, p_shift, bits)
        return acc.reshape(x.shape), h

    def core(self, impl, params: dict, xs: list, acc_bits: int | None = None):
        if self.arith != Arith.FLOAT32:
            return super().core(impl, params, xs, acc_bits)
        w, b, b_shift, p_shift = self.weights(impl, params)
        x = xs[0].reshape(xs[0].shape[0], self.num_features, -1)
        prod, _ = impl.batchnorm(x, w, np.zeros(0, np.int64), 0, 0, 64)  # x * W exactly, at q_in + q_w
        y = impl.round_f32(prod) << p_shift  # the float32 product, at F
        if b.size:
            y = impl.round_f32(y + (b[None, :, None] << b_shift))  # the float32 sum
        return y.reshape(xs[0].shape), 0

    def out_stage(self, impl, acc):
        if self.arith != Arith.FLOAT32 or self.round_out != Round.RND:
            return super().out_stage(impl, acc)  # floor / ceil of y * 2**q_out: exact in float32
        s = self.acc_frac - self.fmt_out.frac
        t = max(s, 1)
        half_up = impl.round_f32((acc << (t - s)) + (1 << (t - 1)))  # float32(y * 2**q_out + 1/2), at frac t
        return impl.requant(half_up, t, Round.TRN.code, self.fmt_out.bits, Overflow.SATURATE.code, 64)

    def describe(self) -> str:
        f32 = " arith=float32 (torch's float32 ops, reproduced)" if self.arith == Arith.FLOAT32 else ""
        return super().describe() + f32


@register("MaxPool1d", "MaxPool2d")
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

    def core(self, impl, params, xs, acc_bits=None):
        x = xs[0]
        if self.dims == 1:
            return impl.maxpool2d(x[:, :, None, :], 1, self.kernel[0], 1, self.stride[0], 0,
                                  self.padding[0])[:, :, 0, :], 0
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return impl.maxpool2d(x, kh, kw, sh, sw, ph, pw), 0


@register("Add")
@dataclass(frozen=True, kw_only=True)
class Add(Layer):
    """QuantizedAdd (the residual): ``Qact(Qa(a) + Qb(b))``; a and b have their own input quantizers.

    Float32: one addition of two quantized values. Integers at F = max(q_a, q_b):
    ``acc = (a << (F - q_a)) + (b << (F - q_b))``.
    """

    TYPE: ClassVar[str] = "Add"
    SUMS: ClassVar[bool] = True
    fmt_src_b: QFormat
    fmt_in_b: QFormat

    def validate(self) -> None:
        for name in ("fmt_src_b", "fmt_in_b"):
            if not isinstance(getattr(self, name), QFormat):
                raise NetworkError(f"{name}: expected a QFormat")

    @property
    def acc_frac(self) -> int:
        return max(self.fmt_in.frac, self.fmt_in_b.frac)

    def sources(self) -> tuple:
        return ((self.fmt_src, self.fmt_in), (self.fmt_src_b, self.fmt_in_b))

    def core(self, impl, params, xs, acc_bits=None):
        F = self.acc_frac
        acc = impl.add(xs[0], xs[1], F - self.fmt_in.frac, F - self.fmt_in_b.frac)
        return _wrap_acc(impl, acc, self.acc_bits if acc_bits is None else acc_bits)

    def float32_bound(self, params, x_max=None) -> int:
        F = self.acc_frac
        xb = max(-self.fmt_in_b.min, self.fmt_in_b.max)
        return (self.input_max(x_max) << (F - self.fmt_in.frac)) + (xb << (F - self.fmt_in_b.frac)) + self.half_lsb()


@register("GlobalSumPool1d", "GlobalSumPool2d")
@dataclass(frozen=True, kw_only=True)
class GlobalSumPool(Layer):
    """QuantizedGlobalSumPool1d / 2d: ``Qact(Qi(x).sum(spatial))`` -> (channels,). Integers: the exact sum."""

    TYPE: ClassVar[str] = "GlobalSumPool"
    SUMS: ClassVar[bool] = True
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

    def core(self, impl, params, xs, acc_bits=None):
        acc = impl.sumpool(xs[0].reshape(xs[0].shape[0], self.in_shape[0], -1))
        return _wrap_acc(impl, acc, self.acc_bits if acc_bits is None else acc_bits)

    def float32_bound(self, params, x_max=None) -> int:
        return self.input_max(x_max) * math.prod(self.in_shape[1:]) + self.half_lsb()


@register("Flatten")
@dataclass(frozen=True, kw_only=True)
class Flatten(Layer):
    """spikingjelly's Flatten: a reshape to (prod(in_shape),); no quantizer (fmt_src = fmt_in = fmt_out)."""

    TYPE: ClassVar[str] = "Flatten"
    QUANTIZED: ClassVar[bool] = False

    def validate(self) -> None:
        if not self.fmt_src == self.fmt_in == self.fmt_out:
            raise NetworkError("fmt_in / fmt_out: Flatten has no quantizer; both must equal fmt_src")

    @property
    def out_shape(self) -> tuple:
        return (math.prod(self.in_shape),)


@register("Identity")
@dataclass(frozen=True, kw_only=True)
class Identity(Layer):
    """QuantizedIdentity: ``Qact(x)`` (its quantizer_input *is* quantizer_act): fmt_in = fmt_out."""

    TYPE: ClassVar[str] = "Identity"

    def validate(self) -> None:
        if self.fmt_in != self.fmt_out or self.round_in != self.round_out:
            raise NetworkError("fmt_in / round_in: QuantizedIdentity has one quantizer; they must equal fmt_out / "
                               "round_out")


@register("Neuron")
@dataclass(frozen=True, kw_only=True)
class Neuron(Layer):
    """A spiking neuron layer (QuantizedLIFNode / QuantizedIFNode / QuantizedATIF): the existing :class:`Spec`.

    ``fmt_in``, ``fmt_out`` and ``round_in`` repeat the spec's (checked); the input
    quantizer runs on the raw arrivals, then the spec's datapath over all steps: the one
    stateful layer, run by :mod:`golden.network.graph` (its state spans the step axis), not by ``core``.
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
        if spec.round_in not in ROUNDS:
            raise NetworkError(f"spec.round_in: {spec.round_in} is not a Qualia roundtype ({', '.join(ROUNDS)})")
        return cls(in_shape=in_shape, fmt_src=fmt_src, fmt_in=spec.fmt_in, fmt_out=spec.fmt_out,
                   round_in=spec.round_in, spec=spec)

    def core(self, impl, params, xs, acc_bits=None):
        raise NetworkError("a Neuron layer runs over the step axis: Network.simulate runs it, not ops.core")

    def describe(self) -> str:
        return f"Neuron {self.in_shape}: {self.spec.describe()}"


def type_name(layer: Layer) -> str:
    """The TOML type name of ``layer`` (``layer.type_name``)."""
    return layer.type_name


def float32_reproduced(layer: Layer) -> bool:
    """Whether golden reproduces ``layer``'s float32 arithmetic exactly, roundings included (``layer.
    float32_reproduced``): True for a BatchNorm with ``arith = float32`` (what :mod:`golden.qualia.readers` builds
    for torch-eval). Such a layer equals torch on every value: no float32-accumulation flag applies to it."""
    return layer.float32_reproduced


def float32_bound(layer: Layer, params: dict, x_max: int | None = None) -> int:
    """``layer.float32_bound(params, x_max)``: see :meth:`Layer.float32_bound`."""
    return layer.float32_bound(params, x_max)
