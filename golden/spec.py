"""The datapath spec: one frozen, validated, hashable description of a neuron layer.

Every number a datapath uses is stored here as a raw two's-complement integer
in a stated Q format; every choice a datapath makes (rounding, overflow, step
order, how the leak is computed, ...) is a named knob. Profiles
(:mod:`golden.profiles`) are presets of this one spec; the kernels
(:mod:`golden.datapath`) and the executable reference (:mod:`golden.reference`)
both read nothing but a :class:`Spec`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from .errors import SpecError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SCHEMA = 1


class Option(str, Enum):
    """One value of an option set: its value is the TOML string, its ``code`` what the kernels pack.

    A ``str`` enum, so that ``spec.kind == "LIF"`` and ``"{}".format(spec.round)`` read as the string does.
    """

    def __new__(cls, value: str, code: int, doc: str = ""):
        member = str.__new__(cls, value)
        member._value_ = value
        member.code = code
        member.doc = doc
        return member

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__

    def __repr__(self) -> str:
        return repr(self.value)

    def __hash__(self) -> int:
        return str.__hash__(self)

    @classmethod
    def parse(cls, value, name: str | None = None, *, any_case: bool = False):
        """The member named by ``value`` (a member or its exact string; any case if ``any_case``, as the
        command line takes it); SpecError naming the field ``name`` otherwise."""
        try:
            return cls(value)
        except ValueError:
            pass
        if any_case and isinstance(value, str):
            for m in cls:
                if m.value.lower() == value.lower():
                    return m
        raise SpecError(f"{name or cls.__name__.lower()}: unknown value {value!r} "
                        f"(expected one of: {', '.join(cls.values())})")

    @classmethod
    def values(cls) -> tuple:
        return tuple(m.value for m in cls)

    @classmethod
    def width(cls) -> int:
        """Bits the kernels' mode code gives this option: enough for every member's code."""
        return max(m.code for m in cls).bit_length()


class Kind(Option):
    IF = "IF", 0, "integrate and fire"
    LIF = "LIF", 1, "leaky integrate and fire"
    ATIF = "ATIF", 2, "adaptive-threshold IF: graded spike, soft reset only"

    @property
    def has_leak(self) -> bool:
        """Has a time constant (``reciprocal_tau``, ``decay_input``)."""
        return self is Kind.LIF

    @property
    def graded_spike(self) -> bool:
        """Outputs the quantized threshold rather than Qact(1.0)."""
        return self is Kind.ATIF

    @property
    def soft_reset_only(self) -> bool:
        """Resets by subtracting the threshold, never to v_reset."""
        return self is Kind.ATIF


class Reset(Option):
    HARD = "hard", 0, "v <- v_reset"
    SOFT = "soft", 1, "v <- v - v_threshold"


class Round(Option):
    """Rounding modes, with the Xilinx fixed-point names, plus TRN_INF (ceil), which Qualia offers as "ceil"."""

    TRN = "TRN", 0, "floor (truncate toward -inf)"
    TRN_ZERO = "TRN_ZERO", 1, "truncate toward zero"
    TRN_INF = "TRN_INF", 2, "ceil (toward +inf)"
    RND = "RND", 3, "nearest, ties toward +inf (Qualia 'nearest': floor(x + 1/2))"
    RND_ZERO = "RND_ZERO", 4, "nearest, ties toward zero"
    RND_MIN_INF = "RND_MIN_INF", 5, "nearest, ties toward -inf"
    RND_INF = "RND_INF", 6, "nearest, ties away from zero"
    RND_CONV = "RND_CONV", 7, "nearest, ties to even (convergent)"


class Overflow(Option):
    SATURATE = "saturate", 0, "clamp to the format"
    WRAP = "wrap", 1, "two's-complement wrap"
    STRICT = "strict", 2, "saturate and stop: SimulationOverflow names stage, step and neuron"


class Order(Option):
    FIRE_THEN_ROUND = "fire_then_round", 0, "spike test on the unrounded potential"
    ROUND_THEN_FIRE = "round_then_fire", 1, "spike test on the rounded potential"


class Arith(Option):
    INT = "int", 0, "integers at frac max(q_in, q_v)"
    FLOAT32 = "float32", 1, "spikingjelly's charge in float32"


class LeakShift(Option):
    Q_V = "q_v", 0, "exact"
    MAX_Q = "max_q", 1, "shift the leak product by max(q_in, q_v) (qualia-codegen)"


class ChargeForm(Option):
    GENERAL = "general", 0, "spikingjelly's general formulas"
    RESET0 = "reset0", 1, "spikingjelly's v_reset = 0 formulas"


class VInit(Option):
    ZERO = "zero", 0, "v starts at 0"
    RESET = "reset", 1, "v starts at v_reset"


# Each option field of a Spec and its set.
OPTIONS = {"kind": Kind, "reset": Reset, "round": Round, "round_in": Round, "v_overflow": Overflow,
           "acc_overflow": Overflow, "order": Order, "arith": Arith, "leak_shift": LeakShift,
           "charge_form": ChargeForm, "v_init": VInit}
# The value tuples, for callers that list them (the neuron kinds per profile: golden.profiles.KINDS).
ROUND_MODES, RESETS, OVERFLOWS = Round.values(), Reset.values(), Overflow.values()
ORDERS, ARITHS, LEAK_SHIFTS, CHARGE_FORMS, V_INITS = (o.values() for o in (Order, Arith, LeakShift, ChargeForm, VInit))
# The one Qualia round table: Qualia's roundtype name -> the Round member it computes.
QUALIA_ROUND = {"floor": Round.TRN, "nearest": Round.RND, "ceil": Round.TRN_INF}
QUALIA_NAME = {mode: name for name, mode in QUALIA_ROUND.items()}  # its inverse: Round member -> Qualia roundtype

# Overflow stages, in the order Trace.overflow reports them.
STAGES = ("align", "leak", "charge", "reset", "v")




def _int(name: str, value) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SpecError(f"{name}: expected an integer, got {value!r}")


def _as_ints(obj, *names) -> None:
    """Store each (already checked) integer field as a Python int: a numpy scalar would keep its own width
    (np.uint8(16) - 17 wraps) while comparing equal to the int."""
    for name in names:
        object.__setattr__(obj, name, int(getattr(obj, name)))


@dataclass(frozen=True)
class QFormat:
    """Signed two's-complement fixed point: ``raw * 2**-frac``, ``bits`` wide.

    ``frac`` may be negative or larger than ``bits`` (Qualia's
    ``bits - 2 - floor(log2(max))`` produces both).
    """

    bits: int
    frac: int

    def __post_init__(self) -> None:
        _int("bits", self.bits)
        _int("frac", self.frac)
        _as_ints(self, "bits", "frac")
        if not 2 <= self.bits <= 32:
            raise SpecError(f"bits: {self.bits} is out of range (2..32)")
        if not -48 <= self.frac <= 48:
            raise SpecError(f"frac: {self.frac} is out of range (-48..48)")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def dtype(self) -> np.dtype:
        """The narrowest numpy integer dtype that holds every raw value."""
        return np.dtype(np.int8 if self.bits <= 8 else np.int16 if self.bits <= 16 else np.int32)

    def real(self, raw: int) -> float:
        return math.ldexp(int(raw), -self.frac)

    def __str__(self) -> str:
        return f"Q{self.bits}.{self.frac}"


def quantize_real(value, fmt: QFormat, round: str = "RND", *, saturate: bool = True) -> np.ndarray:
    """Quantize real values to raw integers exactly as Qualia's ``Quantizer`` does.

    Qualia computes ``y = float32(x) / float32(2**-frac)`` and then
    ``floor(y + 0.5)`` *in float32* for "nearest" (so the addition itself can
    round: 0.49999997 * 2**-frac quantizes to 1), ``floor(y)`` or ``ceil(y)``,
    and clamps to the format. The other Xilinx modes are applied exactly to
    ``y``. NaN and inf are refused.
    """
    round = Round.parse(round, "round")
    x = np.asarray(value)
    if x.dtype.kind not in "fiub":
        raise SpecError(f"expected real numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise SpecError("real input holds NaN or inf")
    with np.errstate(over="ignore", invalid="ignore"):  # |y| may overflow to inf: it clamps like Qualia's
        y = (x / np.float32(math.ldexp(1.0, -fmt.frac))).astype(np.float32)
        if round == "RND":
            r = np.floor((y + np.float32(0.5)).astype(np.float32)).astype(np.float64)
        else:
            yd = y.astype(np.float64)
            f = np.floor(yd)
            r = np.where(np.isfinite(yd), f + _bump_array(round, yd - f, yd, f), yd)
    # Unsaturated, a value beyond +-2**62 (far outside any format) is held at +-2**62: an int64 cannot hold it.
    r = np.clip(r, fmt.min, fmt.max) if saturate else np.clip(r, -2.0 ** 62, 2.0 ** 62)
    return r.astype(np.int64)


def _bump_array(mode: str, rem, y, f):
    """1 where rounding ``y = f + rem`` (0 <= rem < 1) goes up from ``f``, else 0."""
    above, tie, nonzero = rem > 0.5, rem == 0.5, rem > 0
    odd = np.mod(f, 2) == 1
    bump = {
        "TRN": np.zeros_like(nonzero),
        "TRN_INF": nonzero,
        "TRN_ZERO": nonzero & (y < 0),
        "RND": above | tie,
        "RND_ZERO": above | (tie & (y < 0)),
        "RND_MIN_INF": above,
        "RND_INF": above | (tie & (y >= 0)),
        "RND_CONV": above | (tie & odd),
    }[mode]
    return bump.astype(np.float64)


@dataclass(frozen=True)
class Spec:
    """A neuron layer's datapath, bit for bit. See ``docs`` in README and ``to_toml``."""

    kind: Kind  # each option field takes its Option member or that member's string
    fmt_in: QFormat
    fmt_v: QFormat
    fmt_out: QFormat
    reset: str
    decay_input: bool
    v_threshold: int  # raw, fmt_v
    v_reset: int  # raw, fmt_v; 0 for a soft reset
    reciprocal_tau: int  # raw, fmt_v; 1/tau, LIF only (0 otherwise)
    spike_out: int  # raw, fmt_out: what a spiking neuron outputs
    round: str = "RND"
    v_overflow: str = "saturate"
    acc_bits: int = 64
    acc_overflow: str = "wrap"
    order: str = "fire_then_round"
    arith: str = "int"
    leak_shift: str = "q_v"
    charge_form: str = "general"
    v_init: str = "zero"
    round_in: str = "RND"
    profile: str = "custom"

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        for name, option in OPTIONS.items():  # each choice stored as its Option member
            object.__setattr__(self, name, option.parse(getattr(self, name), name))
        for name in ("fmt_in", "fmt_v", "fmt_out"):
            if not isinstance(getattr(self, name), QFormat):
                raise SpecError(f"{name}: expected a QFormat")
        if not isinstance(self.decay_input, bool):
            raise SpecError(f"decay_input: expected true or false, got {self.decay_input!r}")
        for name in ("v_threshold", "v_reset", "reciprocal_tau", "spike_out", "acc_bits"):
            _int(name, getattr(self, name))
        _as_ints(self, "v_threshold", "v_reset", "reciprocal_tau", "spike_out", "acc_bits")
        if isinstance(self.decay_input, np.bool_):
            object.__setattr__(self, "decay_input", bool(self.decay_input))
        if not isinstance(self.profile, str):
            raise SpecError("profile: expected a string")
        v, o = self.fmt_v, self.fmt_out
        lo = 1 if self.kind.graded_spike else 0  # 0: fires whenever v >= 0 (a 4-bit Qualia model can hold it)
        if not lo <= self.v_threshold <= v.max:
            raise SpecError(f"v_threshold: raw {self.v_threshold} must be in {lo}..{v.max} ({v})")
        if not v.min <= self.v_reset <= v.max:
            raise SpecError(f"v_reset: raw {self.v_reset} is outside {v}")
        if self.reset == Reset.SOFT and self.v_reset != 0:
            raise SpecError("v_reset: a soft reset subtracts the threshold; v_reset must be 0")
        if self.kind.has_leak:
            if not 0 < self.reciprocal_tau <= v.max:
                raise SpecError(f"reciprocal_tau: raw {self.reciprocal_tau} must be in 1..{v.max} ({v})")
        elif self.reciprocal_tau != 0:
            raise SpecError(f"reciprocal_tau: {self.kind} has no leak; it must be 0")
        if self.kind.soft_reset_only and self.reset != Reset.SOFT:
            raise SpecError(f"reset: {self.kind} resets by subtraction; it must be 'soft'")
        if not o.min <= self.spike_out <= o.max:
            raise SpecError(f"spike_out: raw {self.spike_out} is outside {o}")
        if self.arith == Arith.FLOAT32:
            for name in ("fmt_in", "fmt_v", "fmt_out"):
                if getattr(self, name).bits > 24:
                    raise SpecError(f"{name}: the float32 datapath is exact only up to 24 bits")
        else:
            narrowest = max(self.fmt_in.bits, v.bits)
            if not narrowest <= self.acc_bits <= 64:
                raise SpecError(f"acc_bits: {self.acc_bits} must be in {narrowest}..64")
            if max(self.fmt_in.bits + self.shift_in, v.bits + self.shift_v) > 63:
                raise SpecError(f"fmt_in.frac: q_in - q_v = {self.fmt_in.frac - v.frac} is too far apart for a "
                                "64-bit datapath")
            room = 63 if self.acc_overflow != Overflow.WRAP else 64  # a leak product must fit the 64-bit machine word
            if self.acc_bits < 64 and self.acc_bits + v.bits > room:
                raise SpecError(f"acc_bits: {self.acc_overflow} needs acc_bits + v bits <= {room}, or a 64-bit "
                                "wrapping accumulator")
            if self.acc_bits == 64 and self.acc_overflow != Overflow.WRAP:
                raise SpecError(f"acc_bits: a 64-bit accumulator can only wrap, not {self.acc_overflow}")
            for name in ("v_threshold", "v_reset"):
                wide = getattr(self, name) << self.shift_v
                half = 1 << (self.acc_bits - 1)
                if self.acc_overflow != Overflow.WRAP and not -half <= wide < half:
                    raise SpecError(f"{name}: aligned to frac {self.work_frac} it overflows the {self.acc_bits}-bit "
                                    "accumulator")
            if self.leak_s > 62 or self.leak_s < -62:
                raise SpecError(f"fmt_v.frac: the leak shift {self.leak_s} is out of range")

    # ----------------------------------------------------------- derived values
    @property
    def work_frac(self) -> int:
        """T: the frac of the integer working domain, max(q_in, q_v)."""
        return max(self.fmt_in.frac, self.fmt_v.frac)

    @property
    def shift_in(self) -> int:
        return self.work_frac - self.fmt_in.frac

    @property
    def shift_v(self) -> int:
        return self.work_frac - self.fmt_v.frac

    @property
    def leak_s(self) -> int:
        """Right shift applied to the leak product (frac T + q_v): q_v is exact, max_q is the C's TMP_SCALE_FACTOR."""
        return self.fmt_v.frac if self.leak_shift == LeakShift.Q_V else self.work_frac

    def aligned(self, raw: int) -> int:
        """A potential-format constant moved to frac T and narrowed to the accumulator (wrapped if it wraps,
        else saturated: the validation above refuses a threshold that would saturate)."""
        n, b = int(raw) << self.shift_v, self.acc_bits
        lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
        if self.acc_overflow == Overflow.WRAP:
            return (n - lo) % (1 << b) + lo
        return min(max(n, lo), hi)

    @property
    def tau(self) -> float:
        """tau as PyTorch holds it after re-quantization: 1 / q(1/tau), a double."""
        return 1.0 / self.fmt_v.real(self.reciprocal_tau) if self.reciprocal_tau else math.inf

    @property
    def tau_f32(self) -> np.float32:
        return np.float32(self.tau)

    @property
    def decay_f32(self) -> np.float32:
        """float32(1 - 1/tau), with 1 - 1/tau evaluated in double (spikingjelly's reset0 no-decay charge)."""
        return np.float32(1.0 - 1.0 / self.tau)

    @property
    def v_start(self) -> int:
        return self.v_reset if self.v_init == VInit.RESET else 0

    def quantize_input(self, x_float) -> np.ndarray:
        """Raw input integers, exactly as this profile's input quantizer makes them."""
        return quantize_real(x_float, self.fmt_in, self.round_in).astype(self.fmt_in.dtype)

    def replace(self, **changes) -> Spec:
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- TOML
    def to_toml(self) -> str:
        """The canonical, commented TOML form (round-trips through :meth:`from_toml`)."""
        r = self.fmt_v.real
        lines = [
            "# golden datapath spec: raw integers are two's complement, value = raw * 2**-frac.",
            f"schema = {SCHEMA}",
            f'profile = "{self.profile}"',
            f'kind = "{self.kind}"  # IF | LIF | ATIF',
            f'reset = "{self.reset}"  # hard: v <- v_reset; soft: v <- v - v_threshold',
            f"decay_input = {'true' if self.decay_input else 'false'}  # LIF: the input is divided by tau too",
            "",
            "[format.input]",
            f"bits = {self.fmt_in.bits}",
            f"frac = {self.fmt_in.frac}",
            "[format.v]  # membrane potential and every hyperparameter",
            f"bits = {self.fmt_v.bits}",
            f"frac = {self.fmt_v.frac}",
            "[format.out]",
            f"bits = {self.fmt_out.bits}",
            f"frac = {self.fmt_out.frac}",
            "",
            "[params]  # raw integers",
            f"v_threshold = {self.v_threshold}  # {r(self.v_threshold)!r}",
            f"v_reset = {self.v_reset}  # {r(self.v_reset)!r}",
            f"reciprocal_tau = {self.reciprocal_tau}  # 1/tau = {r(self.reciprocal_tau)!r}",
            f"spike_out = {self.spike_out}  # output of a spiking neuron = {self.fmt_out.real(self.spike_out)!r}",
            "",
            "[datapath]",
            f'round = "{self.round}"  # {" | ".join(ROUND_MODES)}: {self.round.doc}',
            f'round_in = "{self.round_in}"  # rounding of quantize_input (real -> raw input)',
            f'v_overflow = "{self.v_overflow}"  # saturate | wrap | strict, narrowing to format.v',
            f"acc_bits = {self.acc_bits}  # integer accumulator width (arith = int)",
            f'acc_overflow = "{self.acc_overflow}"  # saturate | wrap | strict, every accumulator result',
            f'order = "{self.order}"  # fire_then_round: spike test on the unrounded potential',
            f'arith = "{self.arith}"  # int: integers at frac max(q_in, q_v); float32: PyTorch float32 charge',
            f'leak_shift = "{self.leak_shift}"  # q_v: exact; max_q: shift the leak product by max(q_in, q_v) '
            '(qualia-codegen)',
            f'charge_form = "{self.charge_form}"  # float32 only: general | reset0 (spikingjelly v_reset=0 formulas)',
            f'v_init = "{self.v_init}"  # initial potential: zero | reset (v_reset)',
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text_or_path) -> Spec:
        """Parse a spec; unknown or missing keys, and wrong types, raise SpecError naming the key."""
        t = text_or_path
        if isinstance(t, Path) or (isinstance(t, str) and "\n" not in t and t.endswith(".toml")):
            text = read_spec_text(Path(text_or_path))
        else:
            text = text_or_path
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"malformed TOML: {e}") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: dict) -> Spec:
        doc = dict(doc)
        top = {"schema", "profile", "kind", "reset", "decay_input", "format", "params", "datapath"}
        _keys("", doc, top, top - {"profile"})
        if doc["schema"] != SCHEMA:
            raise SpecError(f"schema: unsupported version {doc['schema']!r} (this golden reads {SCHEMA})")
        fmts = doc["format"]
        _keys("format.", fmts, {"input", "v", "out"}, {"input", "v", "out"})
        formats = {}
        for name in ("input", "v", "out"):
            _keys(f"format.{name}.", fmts[name], {"bits", "frac"}, {"bits", "frac"})
            try:
                formats[name] = QFormat(**fmts[name])
            except SpecError as e:
                raise SpecError(f"format.{name}.{e}") from None
        params = doc["params"]
        pkeys = {"v_threshold", "v_reset", "reciprocal_tau", "spike_out"}
        _keys("params.", params, pkeys, pkeys)
        dp = doc["datapath"]
        dkeys = {"round", "round_in", "v_overflow", "acc_bits", "acc_overflow", "order", "arith", "leak_shift",
                 "charge_form", "v_init"}
        _keys("datapath.", dp, dkeys, set())
        return cls(kind=doc["kind"], fmt_in=formats["input"], fmt_v=formats["v"], fmt_out=formats["out"],
                   reset=doc["reset"], decay_input=doc["decay_input"], profile=doc.get("profile", "custom"),
                   **params, **dp)

    def digest(self) -> str:
        """sha256 of the canonical TOML: the identity of a datapath."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()

    def describe(self) -> str:
        v = self.fmt_v
        extra = f", tau={self.tau:g}" if self.kind.has_leak else ""
        return (f"{self.profile} {self.kind} {self.reset}-reset in={self.fmt_in} v={v} out={self.fmt_out} "
                f"vth={v.real(self.v_threshold):g}{extra} round={self.round} order={self.order} arith={self.arith}")


def read_spec_text(path: Path) -> str:
    """A spec file's text, refusing (one line, naming the cause) a missing, unreadable or binary file."""
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"spec file {path}: cannot read it ({e.strerror})") from None
    if data.startswith(b"\x93NUMPY"):
        raise SpecError(f"spec file {path}: this is a .npy array; --spec takes a TOML spec (golden spec new)")
    if data.startswith(b"PK\x03\x04"):
        raise SpecError(f"spec file {path}: this is a zip/.npz archive; --spec takes a TOML spec (golden spec new)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"spec file {path}: not UTF-8 text (byte {e.start}); a spec is a TOML file") from None


def _keys(prefix: str, table, allowed: set, required: set) -> None:
    if not isinstance(table, dict):
        raise SpecError(f"{prefix.rstrip('.') or 'spec'}: expected a table")
    for k in table:
        if k not in allowed:
            raise SpecError(f"{prefix}{k}: unknown key (allowed: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in table:
            raise SpecError(f"{prefix}{k}: missing")
