"""``golden.prove_network``: a certificate that a whole network equals its reference on EVERY input sequence.

By composition of per-layer proofs, each checked on the real reference:

- a feed-forward layer (Linear, Conv, BatchNorm, MaxPool, Add, GlobalSumPool, Flatten, Identity) is a function
  of its inputs at one (sample, step). It is proven equal to the reference on every input tuple its producers
  can send: the reachable values are propagated from the network input (every value of ``fmt_input``)
  through the layers (a neuron outputs 0 or its ``spike_out``; any other layer at most the image of its
  output quantizer on the domain enumerated for it), a superset of what the layer can receive;
- a neuron layer is a state machine; each distinct spec is proven by :func:`golden.prove.prove`'s one-step
  exhaustion and induction (its preconditions checked on the reference);
- then by induction over the layers in execution order and over the steps, every layer's output equals the
  reference's on every input sequence of the input format, of any length.

Against the C (``codegen``) a weighted layer is ``scale_and_clamp_to(wrap_L(scale(wrap_L(sum w*x), q_w - TMP)
+ scale(b, q_b - TMP - q_in)), q_in + TMP - q_out)`` in LONG_NUMBER_T (L bits): the accumulation is exact by
modular arithmetic (two's-complement wrap is a ring homomorphism Z -> Z/2^L, so the C's wrapped sum equals
golden's exact sum wrapped), and the two primitives of the **installed** ``number.hh`` are run on every value
of their domain against golden's requantization (:mod:`golden.netprove_c`). Against torch-eval a layer is proven
when the float32 bound holds (every partial sum an integer multiple of 2**-F below 2**24, so exact in float32
in any order) and the real ``Quantizer`` equals golden's on every reachable sum (:mod:`golden.netprove_torch`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np

from .errors import NetProveError
from .network import kernels

__all__ = ["AGAINST", "KIND", "NetProveError", "check_out", "prove_network", "summary", "to_json", "write_certificate"]

AGAINST = ("torch-eval", "codegen")
KIND = "golden-network-certificate"
MAX_VALUES = 1 << 25  # values enumerated per check (a 16-bit LONG is 1 << 16; float32's exact sums 1 << 25)
NEURON_PAIRS = 1 << 24  # above this a neuron spec is not run here (the 16-bit plane: 1 << 32)
F32_EXACT = 1 << 24
_MODE = {"TRN": kernels.TRN, "TRN_INF": kernels.TRN_INF, "RND": kernels.RND}
# the installed qualia-codegen-core 2.6.0 files the C argument was read from (sha256): a changed file voids it
TEMPLATES = {
    "include/number.hh": "3ce6eed4c7ce3571830078ddb04eb2c9c49dfa8e96361aa19e927c3b216d3f1f",
    "layers/fc.cc": "7fb717cc5910f4e4bff9fec0c167de06255098346cb81c1d0dd5bbab27a55846",
    "layers/conv1d.cc": "dcd333ccdfb0244b8de322ad21aa17530836b96f1943ed8d3cb8f7ce68414fd9",
    "layers/conv2d.cc": "1dabdbca3fe188af50213a51ad609b81162127d076554187f623b17e6a3b9581",
    "layers/batchnorm1d.cc": "2d6918c248ec15da5f651d2e1d0962bafd4bb98e8b0fbd52012bb975487d09c1",
    "layers/batchnorm2d.cc": "4bad19eccdffe3193da6df11fed9513f4b21cf80e81a8cc7d64259c411bdbf6f",
    "layers/add.cc": "2272ebf8e6dc3b38de4ac9f1a779fda9efe1e1ebaa3933d3455a160616377314",
    "layers/sum.cc": "92b99660c3aa613675ab87ac79e4a04e35907c5b36ba30eb1699e67aa57f0774",
    "layers/maxpool1d.cc": "33b85482eb22ded962d664c8ccf5efa98fe1f366ff27492c19d7586db688f56a",
    "layers/maxpool2d.cc": "fcee63c0dc14ebe83bb851c5ae607e057bdacab917a5920dc00e1391404e35f1",
    "layers/flatten.cc": "1fc1535854780521d9420b94d1e7d433984798c5f9edf441a313e902239d9b1c",
}
BASE = {"Conv1d": "Conv", "Conv2d": "Conv", "BatchNorm1d": "BatchNorm", "BatchNorm2d": "BatchNorm",
        "MaxPool1d": "MaxPool", "MaxPool2d": "MaxPool", "GlobalSumPool1d": "GlobalSumPool",
        "GlobalSumPool2d": "GlobalSumPool"}  # saved-network type -> the proof that covers it
_TEMPLATE_OF = {"Linear": "layers/fc.cc", "Conv1d": "layers/conv1d.cc", "Conv2d": "layers/conv2d.cc",
                "BatchNorm1d": "layers/batchnorm1d.cc", "BatchNorm2d": "layers/batchnorm2d.cc",
                "Add": "layers/add.cc", "GlobalSumPool1d": "layers/sum.cc", "GlobalSumPool2d": "layers/sum.cc",
                "MaxPool1d": "layers/maxpool1d.cc", "MaxPool2d": "layers/maxpool2d.cc", "Flatten": "layers/flatten.cc"}

COMPOSITION = ("every feed-forward layer equals the reference on every input tuple its producers can send (a "
               "superset is enumerated, propagated from every value of the input format); every neuron spec "
               "equals it on one step from every (v, x), from the same v0, with no hidden state (golden prove); "
               "by induction over the layers in execution order and over the steps, every layer's output equals "
               "the reference's on every input sequence of the input format, of any length (every neuron starts each "
               "sample from v0 in both: spikingjelly's reset_net, the C's reset())")
C_SEMANTICS = [
    "gcc converts an out-of-range value to a signed integer type modulo 2^N (GCC manual, 'Integers implementation')",
    "gcc's >> of a negative signed value is arithmetic (sign-extending) (same section)",
    "gcc does not treat signed << as undefined beyond overflow (same section); the primitives were run on every "
    "value of their domain, negatives included",
    "the primitives' driver is built with gcc -O2 with the shift and rounding mode as compile-time constants, as the "
    "layer templates' #defines make them in the deployed model",
]
RING = ("two's-complement wrap to L bits is the ring homomorphism Z -> Z/2^L: wrap(a + b) = wrap(wrap(a) + "
        "wrap(b)), wrap(a * b) = wrap(wrap(a) * wrap(b)), wrap(a << k) = wrap(wrap(a) << k); so the C's LONG "
        "sum, however it wraps along the way, equals golden's exact sum wrapped once (golden sums in int64: "
        "should that ever wrap, it wraps modulo 2^64, and 2^L divides 2^64)")


# ------------------------------------------------------------------------------------------------ helpers
def _rname(r) -> str:
    """A rounding field as its TOML name, whether a str or a str enum member."""
    return str(getattr(r, "value", r))


def _type(layer) -> str:
    """The saved-network type name (Linear, Conv1d, ..., Neuron): stable, it is the TOML format."""
    return getattr(layer, "type_name", None) or layer.TYPE


@dataclass(frozen=True, eq=False)
class Values:
    """A superset of the raw values a layer output can hold: exactly ``vals`` (sorted, unique) when given, else
    every integer of ``lo..hi``."""

    lo: int
    hi: int
    vals: np.ndarray | None = None

    @classmethod
    def of(cls, arr) -> Values:
        u = np.unique(np.asarray(arr, np.int64))
        return cls(int(u[0]), int(u[-1]), u)

    @classmethod
    def fmt(cls, fmt) -> Values:
        return cls(fmt.min, fmt.max)

    @property
    def absmax(self) -> int:
        return max(abs(self.lo), abs(self.hi))

    @property
    def size(self) -> int:
        return len(self.vals) if self.vals is not None else self.hi - self.lo + 1

    @property
    def step(self) -> int:
        """The gcd of the values (every value is a multiple of it); 1 for an interval."""
        if self.vals is None:
            return 1
        return int(np.gcd.reduce(np.abs(self.vals))) or 1

    def array(self) -> np.ndarray:
        return self.vals if self.vals is not None else np.arange(self.lo, self.hi + 1, dtype=np.int64)

    def describe(self) -> str:
        if self.vals is not None and len(self.vals) <= 8:
            return "{" + ", ".join(map(str, self.vals.tolist())) + "}"
        kind = "values" if self.vals is not None and self.size != self.hi - self.lo + 1 else "consecutive values"
        return f"{self.size} {kind} in {self.lo}..{self.hi}"


def _progressions(lo, hi, step, offset, max_values: int) -> Values | None:
    """The union over rows of ``{offset + m * step : lo <= m * step <= hi}`` (with step 1 everywhere: the hull of
    the intervals, a superset); None when larger than max_values."""
    lo, hi, step, offset = (np.asarray(a, np.int64) for a in (lo, hi, step, offset))
    m_lo, m_hi = -((-lo) // step), hi // step
    n = int(np.maximum(m_hi - m_lo + 1, 0).sum())
    if n > max_values:
        return None
    if np.all(step == 1):  # intervals: their hull (a superset, kept implicit)
        hull = Values(int((lo + offset).min()), int((hi + offset).max()))
        return hull if hull.size <= max_values else None
    parts = [np.arange(a, b + 1, dtype=np.int64) * s + o for a, b, s, o in zip(m_lo, m_hi, step, offset)]
    return Values.of(np.concatenate(parts))


def requant(x, shift: int, mode: str, bits: int, saturate: bool, pre_bits: int = 64) -> np.ndarray:
    """golden's quantizer stage (the network kernels' ``requant``) on raw values."""
    pol = kernels.SAT if saturate else kernels.WRAP
    return kernels.requant(np.ascontiguousarray(x, np.int64), int(shift), _MODE[mode], int(bits), pol,
                           int(pre_bits))[0]


class _Entry:
    """One layer's part of the certificate, filled by the layer's proof."""

    def __init__(self, name, node, method, argument):
        layer = node.layer
        self.d = {"name": name, "type": _type(layer), "inputs": list(node.inputs), "describe": layer.describe(),
                  "method": method, "argument": argument, "checks": [], "preconditions": [], "notes": []}
        self.why: list = []

    def pre(self, name: str, holds: bool, detail: str) -> bool:
        self.d["preconditions"].append({"name": name, "holds": bool(holds), "detail": detail})
        if not holds:
            self.why.append(f"{name}: {detail}")
        return bool(holds)

    def check(self, what: str, reference: str, domain: str, inputs, golden, ref) -> np.ndarray:
        """Record golden vs the reference on every value of a domain; returns golden's results."""
        golden, ref = np.asarray(golden, np.int64), np.asarray(ref, np.int64)
        bad = np.nonzero(golden != ref)[0]
        first = [{"input": int(inputs[i]), "golden": int(golden[i]), "reference": int(ref[i])} for i in bad[:5]]
        self.d["checks"].append({"what": what, "reference": reference, "domain": domain, "values": int(len(golden)),
                                 "mismatches": int(len(bad)), "first": first})
        if len(bad):
            self.why.append(f"{what}: {len(bad)} of {len(golden)} values differ (first: input {first[0]['input']}, "
                            f"golden {first[0]['golden']}, reference {first[0]['reference']})")
        return golden

    def fail(self, reason: str) -> None:
        self.why.append(reason)

    def finish(self) -> dict:
        """Close the entry: call it after every check of the layer has run."""
        d = self.d
        d["values"] = sum(c["values"] for c in d["checks"])
        d["mismatches"] = sum(c["mismatches"] for c in d["checks"])
        d["proven"] = not self.why
        d["result"] = "proven" if not self.why else "not proven: " + "; ".join(self.why)
        return d


# ------------------------------------------------------------------------------------------------ the C side
def _c_check(e: _Entry, what: str, primitive: str, *, width, long_width, shift, mode, dom: Values, golden_fn):
    """number.hh's primitive on every value of ``dom`` vs ``golden_fn(values)``; golden's results."""
    from . import netprove_c

    vals = dom.array()
    got = netprove_c.run_primitive(primitive, width=width, long_width=long_width, shift=shift, mode=mode,
                                   values=vals)
    return e.check(what, f"number.hh {primitive}(int{width}_t, n, {shift}, ROUND_MODE_{netprove_c.C_MODES[mode]}) "
                         f"in int{long_width}_t", dom.describe(), vals, golden_fn(vals), got)


def _no_ub(e: _Entry, L: int, bound: int, what: str) -> bool:
    """A 16-bit LONG computes in int and converts back modulo 2^16 (gcc defines it): no undefined behaviour.
    An int32/int64 LONG overflows undefined: every intermediate must stay inside it."""
    if L <= 16:
        return e.pre("no undefined behaviour", True, f"LONG is int{L}_t: every operation runs in int (no overflow "
                                                     f"at these magnitudes) and converts back modulo 2^{L} (gcc "
                                                     f"defines the conversion)")
    lim = 1 << (L - 1)
    return e.pre("no undefined behaviour", bound < lim,
                 f"{what}: every partial sum (any subset, any order), shifted sum, aligned bias, accumulator and "
                 f"rounding addend is at most {bound} = 2^{math.log2(max(bound, 1)):.2f} in magnitude, "
                 f"{'within' if bound < lim else 'OUTSIDE'} int{L}_t (a signed overflow there is undefined "
                 f"behaviour: no result to compare)" + ("" if bound < lim else _widen(bound, L)))


def _widen(bound: int, L: int) -> str:
    """The fix for an accumulator that can overflow its LONG: the width that holds the bound, or narrower inputs."""
    fits = [w for w in (32, 64) if w > L and bound < 1 << (w - 1)]
    if fits:
        return (f"; fix: deploy with QualiaCodeGen long_width={fits[0]} (LONG_NUMBER_T int{fits[0]}_t), or narrow "
                f"the layer's input range or weights so that the bound stays below 2^{L - 1}")
    return f"; fix: narrow the layer's input range or weights so that the bound stays below 2^{L - 1}"


def _shifts_defined(e: _Entry, L: int, shifts: dict) -> bool:
    """number.hh's scale: ``1 << (s - 1)`` is an int (s <= 31), ``n >> s`` needs s below the promoted width, and
    with a 16-bit LONG ``n << k`` runs in int on |n| <= 2^15 (k <= 15); wider LONGs are bounded by the values."""
    width = max(L, 32)
    bad = {k: s for k, s in shifts.items() if (s > 0 and (s > 31 or s >= width))
           or (s <= 0 and (-s >= width or (L <= 16 and -s > 15)))}
    return e.pre("shift amounts defined", not bad,
                 "every scale / scale_and_clamp_to shift is one C defines at int" + str(L) + "_t (" +
                 ", ".join(f"{k} {s}" for k, s in shifts.items()) + ")" + (f"; undefined: {bad}" if bad else ""))


def _all_long(L: int) -> Values:
    return Values(-(1 << (L - 1)), (1 << (L - 1)) - 1)


def _templates(e: _Entry, ctype: str) -> None:
    from . import netprove_c

    for rel in ("include/number.hh", _TEMPLATE_OF.get(ctype)):
        if rel is None:
            continue
        got = netprove_c.template_sha256(rel)
        e.pre(f"template {rel}", got == TEMPLATES[rel],
              f"the installed qualia-codegen-core {rel} is the file this argument was read from (sha256 "
              f"{TEMPLATES[rel][:16]}...)" + ("" if got == TEMPLATES[rel] else f"; installed: {got}"))


# ------------------------------------------------------------------------------------------------ weighted
def _weighted_ranges(layer, params, X: Values, mode: str, L: int | None) -> dict:
    """Per output o, for inputs in X: the product sum S_o lies in G_o * Z within [s_lo, s_hi] (G_o: gcd of the
    row's weights times X's step); every partial sum over any subset of the products lies in [p_lo, p_hi];
    the accumulator is (S_o << k) + b'_o, with b' golden's aligned bias (the C's scale when tmp_frac is set)."""
    w = np.asarray(params["weight"], np.int64).reshape(np.shape(params["weight"])[0], -1)
    F = layer.acc_frac
    k = F - layer.fmt_in.frac - layer.fmt_w.frac
    if layer.has_bias:  # golden's bias alignment (network.ops): the C's scale(b, q_b - F) when tmp_frac is set
        b = np.asarray(params["bias"], np.int64)
        b = requant(b, layer.fmt_b.frac - F, mode, L, False, L) if layer.tmp_frac is not None \
            else b << (F - layer.fmt_b.frac)
    else:
        b = np.zeros(w.shape[0], np.int64)
    lo_p, hi_p = w * X.lo, w * X.hi
    g = np.gcd.reduce(np.abs(w), axis=1) * X.step
    return {"k": k, "b": b, "G": np.where(g == 0, 1, g),
            "s_lo": np.minimum(lo_p, hi_p).sum(axis=1), "s_hi": np.maximum(lo_p, hi_p).sum(axis=1),
            "p_lo": np.minimum(np.minimum(lo_p, hi_p), 0).sum(axis=1),
            "p_hi": np.maximum(np.maximum(lo_p, hi_p), 0).sum(axis=1)}


def _shifted(r: dict, max_values: int) -> Values | None:
    k = r["k"]
    return _progressions(r["s_lo"] << k, r["s_hi"] << k, r["G"] << k, r["b"], max_values)


def _weighted_c(e, layer, params, X, max_values):
    W, L, mode = layer.fmt_out.bits, layer.acc_bits, _rname(layer.round_out)
    F, qo = layer.acc_frac, layer.fmt_out.frac
    if layer.tmp_frac is None:
        e.fail("tmp_frac: the layer has no TMP_SCALE_FACTOR, so it is not the C's datapath (use a codegen network)")
        return None
    if not e.pre("C widths", W in (8, 16, 32) and L in (16, 32, 64) and L > W and layer.fmt_w.bits == W
                 and (layer.fmt_b is None or layer.fmt_b.bits == W),
                 f"NUMBER_T int{W}_t holds the output, weights and bias; LONG_NUMBER_T int{L}_t is wider"):
        return None
    r = _weighted_ranges(layer, params, X, mode, L)
    k = r["k"]
    shifts = {"product sum": -k, "output": F - qo}
    if layer.has_bias:
        shifts["bias"] = layer.fmt_b.frac - F
    if not _shifts_defined(e, L, shifts):
        return None
    half = 1 << (F - qo - 1) if F > qo else 0
    acc_lo, acc_hi = (r["s_lo"] << k) + r["b"], (r["s_hi"] << k) + r["b"]
    bound = max(int((np.maximum(-r["p_lo"], r["p_hi"]) << k).max()), int(np.abs(r["b"]).max()),
                int(np.maximum(-acc_lo, acc_hi + half).max()))
    if not _no_ub(e, L, bound, f"inputs {X.describe()}, the layer's weights and bias"):
        return None
    if L <= 16:
        sdom = dom = _all_long(L)
    else:
        sdom = _progressions(r["s_lo"], r["s_hi"], r["G"], np.zeros_like(r["b"]), max_values)
        dom = _shifted(r, max_values)
        if sdom is None or dom is None:
            e.fail(f"enumeration limit: the reachable LONG values exceed max_values = {max_values}")
            return None
    _c_check(e, "product sum to TMP (scale)", "scale", width=W, long_width=L, shift=-k, mode=mode, dom=sdom,
             golden_fn=lambda v: requant(v, -k, mode, L, False, L))
    if layer.has_bias:
        qb = layer.fmt_b.frac
        _c_check(e, "bias to q_in + TMP (scale)", "scale", width=W, long_width=L, shift=qb - F, mode=mode,
                 dom=Values.fmt(layer.fmt_b), golden_fn=lambda v: requant(v, qb - F, mode, L, False, L))
    out = _c_check(e, "output requantization (scale_and_clamp_to)", "scale_and_clamp_to", width=W, long_width=L,
                   shift=F - qo, mode=mode, dom=dom, golden_fn=lambda v: requant(v, F - qo, mode, W, _sat(layer), L))
    if L <= 16:  # the image over every LONG value is no bound on the outputs: use the reachable accumulators
        reach = _shifted(r, max_values)
        return None if reach is None else Values.of(requant(_wrap(reach.array(), L), F - qo, mode, W, _sat(layer), L))
    return Values.of(out)


def _sat(layer) -> bool:
    """golden's output stage saturates (as Qualia's Quantizer clamps and the C's clamp_to does) or wraps."""
    return _rname(layer.out_overflow) == "saturate"


def _wrap(v, L: int) -> np.ndarray:
    """Exact accumulators as golden's LONG holds them: wrapped to L bits."""
    return requant(v, 0, "TRN", L, False, 64)


def _weighted_torch(e, name, layer, params, X, bounds, max_values):
    from .network import float32_bound

    mode, F = _rname(layer.round_out), layer.acc_frac
    fb = float32_bound(layer, params, X.absmax)
    e.d["float32_bound"] = {"format": int(bounds[name]), "reachable": int(fb), "limit": F32_EXACT}
    if not e.pre("float32 accumulation exact", fb <= F32_EXACT,
                 f"every partial sum (products, bias, in any order) plus the output's half LSB is an integer "
                 f"multiple of 2^-{F} of magnitude at most {fb} = 2^{math.log2(max(fb, 1)):.2f} "
                 f"{'<=' if fb <= F32_EXACT else '>'} 2^24 (inputs {X.describe()}; over the whole input format: "
                 f"2^{math.log2(max(bounds[name], 1)):.2f})"):
        e.why[-1] = (f"float32 accumulation can round: {name}'s float32 bound 2^{math.log2(fb):.2f} exceeds 2^24 "
                     f"(float32's exact integers)")
        return None
    if layer.has_bias and layer.tmp_frac is not None and layer.fmt_b.frac > F:
        e.fail(f"bias alignment: golden rounds the bias to 2^-{F} (tmp_frac, the C's datapath); torch adds it exactly")
        return None
    r = _weighted_ranges(layer, params, X, mode, layer.acc_bits)
    half = 1 << (F - layer.fmt_out.frac - 1) if F > layer.fmt_out.frac else 0
    acc_lo, acc_hi = (r["s_lo"] << r["k"]) + r["b"], (r["s_hi"] << r["k"]) + r["b"]
    if not _golden_exact(e, layer, int(np.maximum(-acc_lo, acc_hi + half).max())):
        return None
    return _torch_out(e, layer, _shifted(r, max_values), F, mode, max_values)


def _batchnorm_torch(e, layer, params, X: Values, max_values: int):
    """A float32 BatchNorm (``arith = float32``) is elementwise per channel: golden's kernel against the real
    QuantizedBatchNorm holding the layer's raw alpha and beta, on every (channel, reachable input) pair."""
    from dataclasses import replace

    from . import netprove_torch

    C, vals = layer.num_features, X.array()
    if vals.size * C > max_values:
        e.fail(f"enumeration limit: {C} channels x {vals.size} reachable inputs exceed max_values = {max_values}")
        return None
    one = replace(layer, in_shape=(C,) + (1,) * layer.dims)  # every channel at one position: each row one input
    x = np.ascontiguousarray(np.broadcast_to(vals.reshape(-1, 1, *(1,) * layer.dims), (vals.size, *one.in_shape)))
    acc, _ = one.core(kernels, params, [x])
    out, _ = one.out_stage(kernels, acc)
    golden = out.reshape(vals.size, C).T.ravel()  # (C, n), as the module returns it
    ref = netprove_torch.run_batchnorm(layer, params, vals).ravel()
    e.check("float32 BatchNorm", f"qualia_core QuantizedBatchNorm1d in .eval() holding the layer's raw alpha and beta "
            f"({layer.round_out} output, {layer.fmt_out})", f"{C} channels x {X.describe()}",
            np.tile(vals, C), golden, ref)
    return Values.of(golden)


def _golden_exact(e: _Entry, layer, bound: int) -> bool:
    """torch never wraps: golden's accumulator (acc_bits, and the output's rounding addend in it) must not either."""
    L = layer.acc_bits
    return e.pre("golden's accumulator exact", L >= 64 or bound < (1 << (L - 1)),
                 f"every reachable accumulator plus the rounding half is at most {bound} in magnitude; golden "
                 f"holds it in acc_bits = {L} (torch's float32 never wraps)")


def _torch_out(e, layer, dom: Values | None, F: int, mode: str, max_values: int):
    from . import netprove_torch

    W, qo = layer.fmt_out.bits, layer.fmt_out.frac
    if dom is None or dom.size > max_values:
        e.fail(f"enumeration limit: the reachable sums exceed max_values = {max_values}")
        return None
    vals = dom.array()
    got = netprove_torch.run_quantizer(frac=F, bits=W, q=qo, mode=mode, values=vals)
    out = e.check("output quantizer", f"qualia_core Quantizer(bits={W}, force_q={qo}, roundtype="
                  f"{netprove_torch.QUALIA_ROUND[mode]}) on float32(n * 2^-{F})", dom.describe(), vals,
                  requant(vals, F - qo, mode, W, _sat(layer), layer.acc_bits), got)
    return Values.of(out)


def _torch_in(e, fmt_src, fmt_in, rnd, X: Values, what="input quantizer") -> Values:
    """The layer's input quantizer on every reachable producer value, against the real Quantizer, and its
    idempotence on every value of its format (a quantized value quantized again is itself)."""
    from . import netprove_torch

    vals = X.array()
    qz = f"qualia_core Quantizer(bits={fmt_in.bits}, force_q={fmt_in.frac}, roundtype=" \
         f"{netprove_torch.QUALIA_ROUND.get(rnd, rnd)})"
    if rnd not in netprove_torch.QUALIA_ROUND:
        e.fail(f"{what}: round {rnd} is not a Qualia roundtype")
        return Values.fmt(fmt_in)
    got = netprove_torch.run_quantizer(frac=fmt_src.frac, bits=fmt_in.bits, q=fmt_in.frac, mode=rnd, values=vals)
    out = e.check(what, f"{qz} on float32(n * 2^-{fmt_src.frac})", X.describe(), vals,
                  requant(vals, fmt_src.frac - fmt_in.frac, rnd, fmt_in.bits, True), got)
    own = Values.fmt(fmt_in).array()
    e.check(f"{what}: idempotent", f"{qz} on its own grid", Values.fmt(fmt_in).describe(), own, own,
            netprove_torch.run_quantizer(frac=fmt_in.frac, bits=fmt_in.bits, q=fmt_in.frac, mode=rnd, values=own))
    return Values.of(out)


def _c_in(e, layer, X: Values) -> bool:
    return e.pre("no input quantizer", layer.fmt_src == layer.fmt_in,
                 f"a C layer takes its producer's output as it is: fmt_in {layer.fmt_in} must be fmt_src "
                 f"{layer.fmt_src}")


# ------------------------------------------------------------------------------------------------ per type
_ARG = {
    "weighted-codegen": "the C accumulates w*x in LONG_NUMBER_T (int{L}_t), shifts the sum to TMP with scale, adds "
                        "the bias brought to q_in + TMP by scale, and narrows with scale_and_clamp_to; " + RING +
                        "; the two scale calls and scale_and_clamp_to are run on every value of their domain",
    "batchnorm-float32": "torch computes x * alpha + beta per channel as two float32 operations, then its output "
                         "quantizer in float32; golden reproduces both roundings in integers (round_f32). Elementwise: "
                         "checked on every (channel, reachable input) against the real module",
    "weighted-torch": "torch computes Qact(op(Qi(x), Qw(W)) + Qb(B)) in float32: every product and partial sum is "
                      "an integer multiple of 2^-F, exact in float32 while below 2^24 in magnitude (the float32 "
                      "bound), so any summation order gives the exact sum (assumed: torch evaluates sums of products, "
                      "as its CPU GEMM / direct convolution kernels do, not a transform-domain algorithm such as "
                      "Winograd or FFT); the input quantizer is checked on every reachable input and the output "
                      "quantizer on every reachable sum",
    "maxpool": "the max of values on one grid is exact in any arithmetic (it selects one of them; padding cells are "
               "ignored: torch pads with -inf, the C does not pad); both then apply the output quantizer to that "
               "value, checked on every value the max can take",
    "add-codegen": "the C aligns each input to ACC = max(q_a, q_b) with scale (a left shift), sums in LONG and "
                   "narrows with scale_and_clamp_to; " + RING + "; each scale on every input value, "
                   "scale_and_clamp_to on every reachable sum",
    "add-torch": "torch adds the two quantized inputs in float32: one addition of integers multiple of 2^-F, exact "
                 "below 2^24; the input quantizers on every reachable input, the output quantizer on every sum",
    "sum-codegen": "the C sums every spatial value in LONG and narrows with scale_and_clamp_to; " + RING,
    "sum-torch": "torch sums in float32: exact while every partial sum is below 2^24 in magnitude (the float32 "
                 "bound); the output quantizer on every reachable sum",
    "flatten": "a reshape: no arithmetic. torch flattens channels-first as golden does; the C flattens "
               "channels-last and the converter permutes the next Dense's columns (checked against the "
               "deployment when one is given)",
    "identity-torch": "QuantizedIdentity applies its one quantizer: checked on every reachable input, and idempotent",
    "neuron": "golden prove: one step from every (v, x) of the formats against the real reference, the same v0, no "
              "hidden state, frozen hyperparameters; by induction equal on every input sequence",
}


def _prove_layer(node, net, against, X, bounds, neuron_proofs, neuron_pairs, max_values,
                 neuron_prover=None) -> tuple[dict, Values | None]:
    layer, name, t = node.layer, node.name, _type(node.layer)
    base = BASE.get(t, t)
    torch = against == "torch-eval"
    params = net.params.get(name, {})
    if torch and base == "BatchNorm" and layer.float32_reproduced:
        e = _Entry(name, node, "batchnorm: torch's float32 reproduced, every value", _ARG["batchnorm-float32"])
        xin = _torch_in(e, layer.fmt_src, layer.fmt_in, _rname(layer.round_in), X[0])
        return e.finish(), _batchnorm_torch(e, layer, params, xin, max_values)
    if base in ("Linear", "Conv", "BatchNorm"):
        method = "weighted: float32 bound + quantizers" if torch else "weighted: modular LONG + number.hh"
        e = _Entry(name, node, method,
                   _ARG["weighted-torch" if torch else "weighted-codegen"].format(L=layer.acc_bits))
        if torch:
            xin = _torch_in(e, layer.fmt_src, layer.fmt_in, _rname(layer.round_in), X[0])
            out = _weighted_torch(e, name, layer, params, xin, bounds, max_values)
            return e.finish(), out
        _templates(e, t)
        out = _weighted_c(e, layer, params, X[0], max_values) if _c_in(e, layer, X[0]) else None
        return e.finish(), out
    if base == "MaxPool":
        e = _Entry(name, node, "maxpool: exact max + output quantizer", _ARG["maxpool"])
        mode, F, qo, W = _rname(layer.round_out), layer.fmt_in.frac, layer.fmt_out.frac, layer.fmt_out.bits
        if torch:
            xin = _torch_in(e, layer.fmt_src, layer.fmt_in, _rname(layer.round_in), X[0])
            out = _torch_out(e, layer, xin, F, mode, max_values)
            return e.finish(), out
        _templates(e, t)
        out = None
        if _c_in(e, layer, X[0]) and e.pre("no padding", not any(layer.padding),
                                           f"the C's maxpool has no padding; the layer has {layer.padding}") \
                and _shifts_defined(e, layer.acc_bits, {"output": F - qo}):
            res = _c_check(e, "output requantization (scale_and_clamp_to)", "scale_and_clamp_to", width=W,
                           long_width=layer.acc_bits, shift=F - qo, mode=mode, dom=X[0],
                           golden_fn=lambda v: requant(v, F - qo, mode, W, _sat(layer), layer.acc_bits))
            out = Values.of(res)
        return e.finish(), out
    if base in ("Add", "GlobalSumPool"):
        return _sum_like(node, base, torch, X, bounds, max_values)
    if base == "Flatten":
        e = _Entry(name, node, "flatten: a permutation", _ARG["flatten"])
        e.pre("no quantizer", layer.fmt_src == layer.fmt_in == layer.fmt_out, "fmt_src = fmt_in = fmt_out")
        if not torch:
            _templates(e, t)
        return e.finish(), X[0]
    if base == "Identity":
        e = _Entry(name, node, "identity: one quantizer", _ARG["identity-torch"])
        if not torch:
            e.fail("qualia-codegen has no C node for QuantizedIdentity; the codegen network leaves it out")
            return e.finish(), None
        out = _torch_in(e, layer.fmt_src, layer.fmt_out, _rname(layer.round_out), X[0])
        return e.finish(), out
    if base == "Neuron":
        return _neuron(node, against, X, neuron_proofs, neuron_pairs, neuron_prover)
    e = _Entry(name, node, "none", "")
    e.fail(f"no network proof for layer type {t}")
    return e.finish(), None


def _sum_like(node, base, torch, X, bounds, max_values):
    layer, name = node.layer, node.name
    mode, W, F, qo, L = (_rname(layer.round_out), layer.fmt_out.bits, layer.acc_frac, layer.fmt_out.frac,
                         layer.acc_bits)
    key = ("add" if base == "Add" else "sum") + ("-torch" if torch else "-codegen")
    e = _Entry(name, node, f"{base.lower()}: {'float32 bound + quantizers' if torch else 'modular LONG + number.hh'}",
               _ARG[key])
    srcs = [(layer.fmt_src, layer.fmt_in, X[0])]
    if base == "Add":
        srcs.append((layer.fmt_src_b, layer.fmt_in_b, X[1]))
    ins = []
    for i, (fs, fi, xv) in enumerate(srcs):
        if torch:
            ins.append(_torch_in(e, fs, fi, _rname(layer.round_in), xv, f"input quantizer {'ab'[i]}"))
        elif e.pre(f"no input quantizer {'ab'[i]}", fs == fi, f"the C takes its producer's output as it is: "
                                                               f"{fi} must be {fs}"):
            ins.append(xv)
    if len(ins) != len(srcs):
        return e.finish(), None
    half = 1 << (F - qo - 1) if F > qo else 0
    if base == "Add":
        sh = [F - layer.fmt_in.frac, F - layer.fmt_in_b.frac]
        lo, hi = sum(v.lo << s for v, s in zip(ins, sh)), sum(v.hi << s for v, s in zip(ins, sh))
        partial = sum(v.absmax << s for v, s in zip(ins, sh))
        if all(v.vals is not None for v in ins) and ins[0].size * ins[1].size <= max_values:
            dom = Values.of(np.add.outer(ins[0].vals << sh[0], ins[1].vals << sh[1]))
        else:
            dom = _progressions([lo], [hi], [math.gcd(ins[0].step << sh[0], ins[1].step << sh[1])], [0], max_values)
    else:
        n = math.prod(layer.in_shape[1:])
        lo, hi = n * ins[0].lo, n * ins[0].hi
        partial = n * ins[0].absmax
        dom = _progressions([lo], [hi], [ins[0].step], [0], max_values)
    bound = max(partial, -lo, hi + half)
    if torch:
        e.d["float32_bound"] = {"format": int(bounds[name]), "reachable": int(bound), "limit": F32_EXACT}
        if not e.pre("float32 accumulation exact", bound <= F32_EXACT,
                     f"every partial sum and the sum plus the half LSB is at most {bound} units of 2^-{F}, "
                     f"{'<=' if bound <= F32_EXACT else '>'} 2^24"):
            e.why[-1] = f"float32 accumulation can round: {name}'s float32 bound 2^{math.log2(bound):.2f} exceeds 2^24"
            return e.finish(), None
        out = _torch_out(e, layer, dom, F, mode, max_values) if _golden_exact(e, layer, max(-lo, hi + half)) \
            else None
        return e.finish(), out
    _templates(e, _type(layer))
    if not e.pre("C widths", W in (8, 16, 32) and L in (16, 32, 64) and L > W,
                 f"NUMBER_T int{W}_t, LONG_NUMBER_T int{L}_t wider"):
        return e.finish(), None
    shifts = {"output": F - qo} if base != "Add" else {"a": -sh[0], "b": -sh[1], "output": F - qo}
    if not _shifts_defined(e, L, shifts) or not _no_ub(e, L, bound, f"inputs {', '.join(v.describe() for v in ins)}"):
        return e.finish(), None
    cdom = _all_long(L) if L <= 16 else dom
    if cdom is None:
        e.fail(f"enumeration limit: the reachable LONG values exceed max_values = {max_values}")
        return e.finish(), None
    if base == "Add":
        for i, (v, s) in enumerate(zip(ins, sh)):
            _c_check(e, f"input {'ab'[i]} aligned to ACC (scale)", "scale", width=W, long_width=L, shift=-s,
                     mode=mode, dom=_all_long(L) if L <= 16 else v,
                     golden_fn=lambda x, s=s: requant(x, -s, mode, L, False, L))
    _c_check(e, "output requantization (scale_and_clamp_to)", "scale_and_clamp_to", width=W, long_width=L,
             shift=F - qo, mode=mode, dom=cdom, golden_fn=lambda v: requant(v, F - qo, mode, W, _sat(layer), L))
    out = None if dom is None else Values.of(requant(_wrap(dom.array(), L), F - qo, mode, W, _sat(layer), L))
    return e.finish(), out


def _neuron(node, against, X, proofs, neuron_pairs, neuron_prover=None):
    from .prove import ProveError, prove

    layer, name = node.layer, node.name
    spec = layer.spec
    e = _Entry(name, node, "neuron: golden prove (exhaustive one step + induction)", _ARG["neuron"])
    e.d["spec_sha256"] = spec.digest()
    if against == "torch-eval":
        _torch_in(e, layer.fmt_src, layer.fmt_in, _rname(layer.round_in), X[0])
    else:
        _c_in(e, layer, X[0])
    pairs = 1 << (spec.fmt_v.bits + spec.fmt_in.bits)
    key = (spec, against)
    if key not in proofs:
        if pairs > neuron_pairs and neuron_prover is None:
            bv, bx = spec.fmt_v.bits, spec.fmt_in.bits
            plane = f"{bv}-bit plane" if bv == bx else f"{bv}x{bx}-bit plane"
            proofs[key] = {"proven": False, "pairs": pairs, "result":
                           f"not proven: {plane} (2^{bv + bx} pairs) needs the distributed engine (not run here: "
                           f"pass --scheduler local|ADDRESS to golden prove --network, or raise neuron_pairs / "
                           f"--neuron-pairs to 2^{bv + bx} to run it in this process)"}
        else:
            try:
                c = prove(spec, against) if pairs <= neuron_pairs else neuron_prover(spec, against)
                proofs[key] = {"proven": c.proven, "pairs": c.pairs, "compared": c.compared,
                               "differences": c.differences, "undefined": c.undefined["count"],
                               "preconditions": c.preconditions, "result": c.result,
                               "differing_pairs": c.differing[:5], "reference": c.reference["name"],
                               "versions": c.reference["versions"]}
            except ProveError as err:
                proofs[key] = {"proven": False, "pairs": pairs, "result": f"not proven: {err}"}
    p = proofs[key]
    e.d["proof"] = p
    if not p["proven"]:
        e.fail(f"neuron spec {spec.digest()[:12]}: {p['result']}")
    d = e.finish()
    d["mismatches"] += p.get("differences", 0) + p.get("undefined", 0)
    return d, Values.of([0, spec.spike_out])


# ------------------------------------------------------------------------------------------------ entry point
def prove_network(network, against: str = "codegen", *, deployment=None, neuron_pairs: int = NEURON_PAIRS,
                  max_values: int = MAX_VALUES, neuron_prover=None) -> dict:
    """A certificate (dict, deterministic JSON via :func:`to_json`) that ``network`` equals ``against`` on every
    input sequence of its input format, or names each layer it cannot prove and why; see the module docstring.

    ``deployment``: a :class:`golden.qualia.deployment.Deployed` the network was read from: its weights, biases,
    shifts and channels-last layout are then checked equal to what the converter exported. ``neuron_pairs``: the
    largest (v, x) plane a neuron proof runs here (default 2^24: the 16-bit plane, 2^32, is stated not proven).
    ``max_values``: the largest domain one layer check enumerates. ``neuron_prover``: a callable
    ``(spec, against) -> golden.prove.Certificate`` that proves the planes above ``neuron_pairs`` elsewhere (``golden
    prove --network --scheduler``: on the distributed engine, resumable); each distinct spec is handed to it once.
    """
    from .netprove_export import export_checks
    from .network import Network

    if not isinstance(network, Network):
        raise NetProveError(f"network: expected a golden.network.Network, got {type(network).__name__}")
    if against not in AGAINST:
        raise NetProveError(f"against: {against!r} is not one of {', '.join(AGAINST)}")
    if neuron_prover is not None and not callable(neuron_prover):
        raise NetProveError(f"neuron_prover: expected a callable (spec, against) -> Certificate, got "
                            f"{type(neuron_prover).__name__}")
    if deployment is not None and against != "codegen":
        raise NetProveError("deployment: the converter's export is compared only when proving against codegen")
    _available(against)
    t0 = time.perf_counter()
    bounds = network.float32_bounds()
    exports = export_checks(network, deployment) if deployment is not None else {}
    proofs: dict = {}  # (spec, against) -> the one-step proof's summary: each distinct spec proven once
    reach = {"input": Values.fmt(network.fmt_input)}
    layers = []
    for node in network.nodes:
        X = [reach[i] if reach.get(i) is not None else Values.fmt(_fmt_of(network, i)) for i in node.inputs]
        d, out = _prove_layer(node, network, against, X, bounds, proofs, int(neuron_pairs), max_values,
                              neuron_prover)
        d["reachable_inputs"] = [x.describe() for x in X]
        for pname, holds, detail in exports.get(node.name, []):
            d["preconditions"].append({"name": f"export: {pname}", "holds": bool(holds), "detail": detail})
            if not holds:
                d["proven"] = False
                d["result"] = ("not proven: " if d["result"] == "proven" else d["result"] + "; ") + \
                    f"export: {pname}: {detail}"
        reach[node.name] = out
        layers.append(d)
    users: dict = {}
    for d in layers:
        if "spec_sha256" in d:
            users.setdefault(d["spec_sha256"], []).append(d["name"])
    neuron_specs = [{"spec_sha256": spec.digest(), "describe": spec.describe(), "layers": users[spec.digest()], **p}
                    for (spec, _a), p in proofs.items()]
    proven = all(d["proven"] for d in layers)
    failing = [d["name"] for d in layers if not d["proven"]]
    return {
        "kind": KIND, "schema": 1, "against": against, "network_sha256": network.digest(),
        "input": {"shape": list(network.input_shape), "format": str(network.fmt_input)},
        "versions": _versions(against),
        "composition": COMPOSITION,
        **({"c_semantics": C_SEMANTICS} if against == "codegen" else {}),
        "deployment": ("checked: every layer's integers, shifts, widths, rounding and the channels-last layout "
                       "equal the converter's export" if deployment is not None else
                       "not given: the proof is of this network's own integers against the reference's arithmetic"),
        "layers": layers, "neuron_specs": neuron_specs,
        "counts": {"layers": len(layers), "proven": len(layers) - len(failing),
                   "values": sum(d["values"] for d in layers), "mismatches": sum(d["mismatches"] for d in layers),
                   "neuron_specs": len(neuron_specs),
                   "neuron_pairs": sum(p.get("compared", 0) for p in neuron_specs)},
        "proven": proven,
        "result": "proven" if proven else "not proven: " + ", ".join(failing),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _available(against: str) -> None:
    if against == "codegen":
        from .refs import codegen_c

        if not codegen_c.c_available():
            raise NetProveError("against codegen: gcc or the qualia-codegen-core / qualia-codegen-plugin-snn packages "
                                "are not available; install gcc and the test extras")
    else:
        from .refs import torch_ref

        if not torch_ref.torch_available():
            raise NetProveError("against torch-eval: the torch reference stack (torch 2.13 CPU, spikingjelly "
                                "0.0.0.0.14, qualia-plugin-snn 2.6, no torchvision) does not import; install the "
                                "test extras")


def _fmt_of(net, name):
    return net.fmt_input if name == "input" else net[name].layer.fmt_out


def _versions(against: str) -> dict:
    from .prove import versions

    names = ["golden"] + (["torch", "spikingjelly", "qualia-core", "qualia-plugin-snn"] if against == "torch-eval"
                          else ["qualia-codegen-core", "qualia-codegen-plugin-snn"])
    out = {}
    if against == "codegen":
        from .netprove_c import compiler_id

        out["gcc"] = compiler_id()
    return {**out, **versions(*names)}


def to_json(cert: dict) -> str:
    """Deterministic JSON (sorted keys; the wall time left out)."""
    return json.dumps({k: v for k, v in cert.items() if k != "seconds"}, sort_keys=True, indent=1) + "\n"


def summary(cert: dict) -> str:
    """One line per layer: name, type, method, values checked, mismatches, result."""
    lines = [f"golden prove --network: {len(cert['layers'])} layers against {cert['against']} "
             f"(network {cert['network_sha256'][:12]})"]
    for d in cert["layers"]:
        pairs = d.get("proof", {}).get("compared")
        what = f"{d['values']:>10} values" if pairs is None else f"{pairs:>10} pairs "
        lines.append(f"  {d['name']:<24} {d['type']:<16} {what} {d['mismatches']:>4} differ  {d['result']}")
    c = cert["counts"]
    lines.append(f"  {c['values']} layer values and {c['neuron_pairs']} neuron pairs compared on the reference, "
                 f"{c['mismatches']} mismatches; {c['proven']} of {c['layers']} layers proven")
    lines.append(f"  result: {cert['result'].upper() if cert['proven'] else cert['result']}")
    return "\n".join(lines)


def check_out(path, *, force: bool = False) -> None:
    """Refuse, before any work, an output the certificate must not be written to: golden's one rule
    (:func:`golden.fileio.check_new_file`: never a symlink, a directory or a device; an existing file only
    with ``force`` and only if golden wrote it)."""
    from .fileio import check_new_file

    check_new_file(path, "--out", force=force)


def write_certificate(cert: dict, path, *, force: bool = False):
    """Write the certificate (JSON) atomically. A file that is not a golden network certificate is the user's:
    refused unless ``force``; a symlink, directory or device is always refused."""
    from pathlib import Path

    from .fileio import write_atomic

    check_out(path, force=force)
    data = to_json(cert).encode()
    return write_atomic(Path(path), lambda f: f.write(data), force=force)
