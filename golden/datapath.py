"""The whole datapath of one neuron for one time step, as Numba scalar code.

``step(code, c, v, x)`` (or its half, ``step_int`` or ``step_f32``) is all a kernel
calls. ``code`` packs everything that shapes the machine code: the spec's choices, its widths and its shifts;
``c`` holds the spec's numbers (:func:`constants`). A specialised kernel passes
``code`` as a compile-time literal and freezes ``c``, so every ``if`` below
folds away and each spec gets its own straight-line, vectorised machine code.
:mod:`golden.reference` is the same semantics written independently in plain
Python; the property tests hold the two equal.

Integer datapath (``arith = int``), at frac ``T = max(q_in, q_v)``, where
``A(.)`` narrows to the accumulator (acc_overflow) and ``N(.)`` to the
potential format (v_overflow), ``R(n, s)`` shifts right by ``s`` with the
spec's rounding (left by ``-s`` when ``s < 0``)::

    P = A(v << (T - q_v))          X = A(x << (T - q_in))
    LIF decay_input:  H = A(P + R(A(A(X - A(P - VR)) * rtau), S))
    LIF otherwise:    H = A(A(P - R(A(A(P - VR) * rtau), S)) + X)
    IF, ATIF:         H = A(P + X)
    fire_then_round:  spike = H >= VT;  v' = vr | N(R(A(H - VT), T - q_v)) | N(R(H, T - q_v))
    round_then_fire:  v1 = N(R(H, T - q_v));  spike = v1 >= vth;  v' = vr | N(v1 - vth) | v1

``S`` is q_v (exact) or T (qualia-codegen's TMP_SCALE_FACTOR). ``arith =
float32`` evaluates spikingjelly's charge formulas in float32 instead and
quantizes with Qualia's float32 ``floor(y + 0.5)``.

Every value is exact: ``A`` and ``N`` see the true result of each operation.
They hold it, and return it, in ``c.W``: the narrowest of int16/int32/int64
that a range analysis of this spec (:func:`lane_type`) proves holds every
such result. Every operation is one of the lane operations below, which
compute in ``c.W`` itself (Numba would widen each to int64, and LLVM would
then keep the whole step in 64-bit vector lanes): that is what lets the
compiler use 16- or 32-bit vector lanes.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .spec import STAGES, Arith, ChargeForm, Kind, LeakShift, Order, Overflow, Reset, Round, Spec, SpecError

# ---------------------------------------------------------------- mode code
# Low to high: kind | the six flags below | round | v_overflow | acc_overflow | T - q_in | T - q_v | S + 64 |
# acc_bits | v bits | c.W's bits. Each option field is as wide as its enum needs (Option.width).
_FLAGS = Kind.width()
SOFT, DECAY, ROUND_FIRST, FLOAT32, MAX_Q, RESET0 = (1 << (_FLAGS + i) for i in range(6))
_ROUND = _FLAGS + 6
_VOVF = _ROUND + Round.width()
_AOVF = _VOVF + Overflow.width()
_SH_IN = _AOVF + Overflow.width()
_SH_V = _SH_IN + 6
_LEAK_S = _SH_V + 6
_ACC_BITS = _LEAK_S + 7
_V_BITS = _ACC_BITS + 7
_W_BITS = _V_BITS + 6
assert _W_BITS + 7 <= 63, "the mode code no longer fits a signed 64-bit integer"
KIND_MASK, ROUND_MASK, OVF_MASK = (1 << Kind.width()) - 1, (1 << Round.width()) - 1, (1 << Overflow.width()) - 1
IF, LIF, ATIF = (k.code for k in Kind)
TRN, TRN_ZERO, TRN_INF, RND, RND_ZERO, RND_MIN_INF, RND_INF, RND_CONV = (m.code for m in Round)
SAT, WRAP, STRICT = (o.code for o in Overflow)
# STRICT_MASK tests "either overflow policy is strict" with one AND: strict must be the only code with its top bit.
assert [o.code >> (Overflow.width() - 1) for o in Overflow] == [0, 0, 1]
STRICT_MASK = 1 << (_VOVF + Overflow.width() - 1) | 1 << (_AOVF + Overflow.width() - 1)
ALIGN, LEAK, CHARGE, RESET, VSTAGE = range(len(STAGES))
STOP = len(STAGES)  # an overflow under a strict policy at stage k sets bit k and bit STOP + k


def encode(spec: Spec, lanes=None) -> int:
    """Pack a spec's choices, widths and shifts into the kernels' mode code.

    ``lanes``: force the lane type c.W (as :func:`constants` must too), e.g. :func:`working_type`'s
    wider one, the lanes golden used before :func:`lane_type`; never narrower than lane_type.
    """
    code = spec.kind.code
    code |= SOFT * (spec.reset == Reset.SOFT) | DECAY * spec.decay_input
    code |= ROUND_FIRST * (spec.order == Order.ROUND_THEN_FIRE) | FLOAT32 * (spec.arith == Arith.FLOAT32)
    code |= MAX_Q * (spec.leak_shift == LeakShift.MAX_Q) | RESET0 * (spec.charge_form == ChargeForm.RESET0)
    code |= spec.round.code << _ROUND
    code |= spec.v_overflow.code << _VOVF | spec.acc_overflow.code << _AOVF
    code |= spec.shift_in << _SH_IN | spec.shift_v << _SH_V | (spec.leak_s + 64) << _LEAK_S
    code |= spec.acc_bits << _ACC_BITS | spec.fmt_v.bits << _V_BITS
    return code | 8 * np.dtype(_lanes(spec, lanes)).itemsize << _W_BITS


Consts = namedtuple("Consts", "vth vr rtau spike_out VT VR sc_in sc_v inv_sc_v vth_f vr_f tau_f decay_f W K")
R_LIM = 2.0 ** 62  # where the float32 quantizer clamps before an int64 conversion


def working_type(spec: Spec):
    """The narrowest integer type that holds every exact value the datapath narrows or converts."""
    bv, bi, a = spec.fmt_v.bits, spec.fmt_in.bits, spec.acc_bits
    if spec.arith == Arith.FLOAT32:  # a bound on |y| = |h| * 2**q_v, the float32 potential the quantizer converts
        vmax, xmax = 2.0 ** (bv - 1 - spec.fmt_v.frac), 2.0 ** (bi - 1 - spec.fmt_in.frac)
        inv_tau = spec.fmt_v.real(spec.reciprocal_tau)
        h = 3 * vmax + xmax + (xmax + 3 * vmax) * inv_tau
        return np.int32 if 4 * h * 2.0 ** spec.fmt_v.frac < 2 ** 30 else np.int64
    if a == 64:
        return np.int64
    # shifted inputs, the leak product (a + bv, which covers sums: a + 1), R's shifts and half LSB
    s = (spec.leak_s, spec.shift_v)
    need = max(bv + spec.shift_v, bi + spec.shift_in, a + bv, *(a - min(k, 0) for k in s), *(max(a, k) + 1 for k in s))
    return np.int16 if need <= 16 else np.int32 if need <= 32 else np.int64


def exact_ranges(spec: Spec) -> list:
    """Every exact value the integer datapath forms, as (lo, hi) intervals over every v in fmt_v and x in fmt_in.

    The step's formulas above, evaluated on intervals: each value before ``A``/``N`` narrows it, each
    constant the step reads, the half LSBs and remainders of ``R``. ``A`` passes an interval that fits the
    accumulator unchanged, clamps one under saturate/strict, and gives the whole accumulator under wrap.
    Both branches of every spike test are taken (a vector lane computes both).
    """
    a, ovf, rnd = spec.acc_bits, spec.acc_overflow, spec.round == Round.RND
    amin, amax = -(1 << (a - 1)), (1 << (a - 1)) - 1
    seen = []

    def exact(lo, hi):
        seen.append((lo, hi))
        return lo, hi

    def acc(iv):
        lo, hi = exact(*iv)
        if amin <= lo and hi <= amax:
            return lo, hi
        return (amin, amax) if ovf == Overflow.WRAP else (max(lo, amin), min(hi, amax))

    def add(p, q):
        return p[0] + q[0], p[1] + q[1]

    def sub(p, q):
        return p[0] - q[1], p[1] - q[0]

    def const(k):
        return exact(k, k)

    def shift_round(iv, s):  # R(n, s)
        if s <= 0:
            return acc((iv[0] << -s, iv[1] << -s))
        half = const(1 << (s - 1))
        if rnd:
            m = acc(add(iv, half))
            return m[0] >> s, m[1] >> s
        q = exact(iv[0] >> s, iv[1] >> s)
        exact(q[0] << s, q[1] << s)
        exact(0, (1 << s) - 1)  # the remainder
        return exact(q[0], q[1] + 1)

    def to_v(iv):  # N(n), n in the accumulator: what it returns
        lo, hi = exact(*iv)
        f = spec.fmt_v
        if f.min <= lo and hi <= f.max:
            return lo, hi
        return (f.min, f.max) if spec.v_overflow == Overflow.WRAP else (max(lo, f.min), min(hi, f.max))

    V, X = exact(spec.fmt_v.min, spec.fmt_v.max), exact(spec.fmt_in.min, spec.fmt_in.max)
    P = acc((V[0] << spec.shift_v, V[1] << spec.shift_v))
    X = acc((X[0] << spec.shift_in, X[1] << spec.shift_in))
    VT, VR = (const(spec.aligned(raw)) for raw in (spec.v_threshold, spec.v_reset))
    const(spec.v_threshold), const(spec.v_reset)
    if not spec.kind.has_leak:
        H = acc(add(P, X))
    else:
        d = acc(sub(P, VR))
        if spec.decay_input:
            d = acc(sub(X, d))
        m = acc((min(d[0] * spec.reciprocal_tau, d[1] * spec.reciprocal_tau),
                 max(d[0] * spec.reciprocal_tau, d[1] * spec.reciprocal_tau)))
        const(spec.reciprocal_tau)
        leak = shift_round(m, spec.leak_s)
        H = acc(add(P, leak)) if spec.decay_input else acc(add(acc(sub(P, leak)), X))
    if spec.order == Order.ROUND_THEN_FIRE:
        v1 = to_v(shift_round(H, spec.shift_v))
        to_v(sub(v1, (spec.v_threshold, spec.v_threshold)))
    else:
        to_v(shift_round(acc(sub(H, VT)), spec.shift_v))
        to_v(shift_round(H, spec.shift_v))
    return seen


def lane_type(spec: Spec):
    """The narrowest of int16/int32/int64 holding every exact value of :func:`exact_ranges`: the kernels' c.W.

    Every shift the step makes must also be shorter than the type. The float32 datapath keeps
    :func:`working_type`'s bound; a 64-bit wrapping accumulator whose values leave int64 wraps as the
    machine does (int64).
    """
    if spec.arith == Arith.FLOAT32:
        return working_type(spec)
    ranges = exact_ranges(spec)
    shift = max(abs(spec.shift_v), abs(spec.shift_in), abs(spec.leak_s))
    for t in (np.int16, np.int32):
        bits = 8 * np.dtype(t).itemsize
        if shift < bits and all(-(1 << (bits - 1)) <= lo and hi < 1 << (bits - 1) for lo, hi in ranges):
            return t
    return np.int64


def _lanes(spec: Spec, lanes):
    """c.W: :func:`lane_type`, or ``lanes`` if given and at least as wide."""
    narrow = lane_type(spec)
    if lanes is None:
        return narrow
    if lanes not in (np.int16, np.int32, np.int64) or np.dtype(lanes).itemsize < np.dtype(narrow).itemsize:
        raise SpecError(f"lanes: expected np.int16, np.int32 or np.int64, at least {np.dtype(narrow).name} "
                         f"for {spec.describe()}, got {lanes!r}")
    return lanes


def constants(spec: Spec, lanes=None) -> Consts:
    """The spec's numbers as the kernels read them (VT, VR: thresholds aligned to T, narrowed to the accumulator).

    ``lanes``: as for :func:`encode`.
    """
    f32 = np.float32
    VT, VR = (spec.aligned(raw) for raw in (spec.v_threshold, spec.v_reset))
    W = _lanes(spec, lanes)
    sc_v = f32(2.0 ** -spec.fmt_v.frac)
    return Consts(
        np.int64(spec.v_threshold), np.int64(spec.v_reset), np.int64(spec.reciprocal_tau), np.int64(spec.spike_out),
        np.int64(VT), np.int64(VR), f32(2.0 ** -spec.fmt_in.frac), sc_v, f32(2.0 ** spec.fmt_v.frac),
        f32(spec.v_threshold) * sc_v, f32(spec.v_reset) * sc_v, spec.tau_f32, spec.decay_f32, W,
        np.int16 if W is np.int16 else np.int32,  # K: the kernels' overflow counters, no wider than the lanes
    )


# ------------------------------------------------------------- lane operations
def _lane_op(name: str):
    """``f(a, b)``: a <name> b computed in a's integer type (b converted to it first), wrapping, as one LLVM
    instruction. Numba's own operators widen every integer operation to int64."""
    @intrinsic
    def op(typingctx, a, b):
        if not (isinstance(a, types.Integer) and isinstance(b, (types.Integer, types.Boolean))):
            return None
        t = types.unliteral(a)

        def codegen(context, builder, sig, args):
            x = context.cast(builder, args[0], sig.args[0], t)
            return getattr(builder, name)(x, context.cast(builder, args[1], sig.args[1], t))

        return t(a, b), codegen

    op.__name__ = op.__qualname__ = f"lane_{name}"
    return op


wadd, wsub, wmul, wshl, wshr = (_lane_op(n) for n in ("add", "sub", "mul", "shl", "ashr"))


# ------------------------------------------------------------- primitives
# narrow, A, N, round_up, shift_round and fire_rounded are small plain functions: LLVM inlines them into
# their callers, where (in a specialised kernel) ``code`` is a constant, so every shift folds to a constant and
# every result is converted to c.W right where it is formed. Numba's IR-level inlining (inline="always") gave the
# same machine code at twice the compile time (each call site re-typed): 3.1 s -> 1.4 s for a specialised kernel.
@njit
def narrow(c, n, bits, policy, w_bits):
    """The exact n (held in c.W, ``w_bits`` wide) narrowed to a signed ``bits``-wide integer; (value, overflowed).

    ``overflowed`` is 0, 1, or ``1 | 1 << STOP`` under the strict policy (the run stops there).

    Every operation stays within c.W (the wrap shifts within it): that is what lets the compiler
    keep the whole datapath in c.W-sized vector lanes. A type no wider than ``bits`` cannot overflow it.
    """
    if bits >= w_bits:
        return n, np.int64(0)
    lo, hi = c.W(-(1 << (bits - 1))), c.W((1 << (bits - 1)) - 1)
    if policy == WRAP:
        w = wshr(wshl(n, w_bits - bits), w_bits - bits)
        return w, np.int64(w != n)
    w = min(max(n, lo), hi)  # saturate; strict saturates too, and stops the run
    o = np.int64(w != n)
    return w, o | (o << STOP) * (policy == STRICT)


@njit
def A(code, c, n):
    """A(n): the exact n narrowed to the accumulator (acc_bits, acc_overflow); (value, overflowed)."""
    return narrow(c, c.W(n), (code >> _ACC_BITS) & 127, (code >> _AOVF) & OVF_MASK, code >> _W_BITS)


@njit
def N(code, c, n):
    """N(n): the exact n narrowed to the potential format (v bits, v_overflow); (value, overflowed)."""
    return narrow(c, c.W(n), (code >> _V_BITS) & 63, (code >> _VOVF) & OVF_MASK, code >> _W_BITS)


@njit
def round_up(mode, above, tie, inexact, negative, odd):
    """Whether rounding goes one step up from floor, given how the discarded part compares to one half."""
    if mode == TRN:
        return False
    if mode == TRN_INF:
        return inexact
    if mode == TRN_ZERO:
        return inexact and negative
    if mode == RND:
        return above or tie
    if mode == RND_ZERO:
        return above or (tie and negative)
    if mode == RND_MIN_INF:
        return above
    if mode == RND_INF:
        return above or (tie and not negative)
    return above or (tie and odd)  # RND_CONV


@njit
def shift_round(code, c, n, s):
    """R(n, s): n * 2**-s rounded by the spec's mode; RND adds the half LSB in the accumulator, as hardware does."""
    mode = (code >> _ROUND) & ROUND_MASK
    if s <= 0:
        return A(code, c, wshl(n, -s))
    half = wshl(c.W(1), s - 1)
    if mode == RND:
        m, o = A(code, c, wadd(n, half))
        return wshr(m, s), o
    q = wshr(n, s)
    rem = wsub(n, wshl(q, s))
    return wadd(q, round_up(mode, rem > half, rem == half, rem != 0, n < 0, (q & 1) == 1)), np.int64(0)


@njit
def quantize_f32(code, c, h):
    """Qualia's quantizer on a float32 potential: y = h * 2**q, floor(y + 0.5) in float32 for RND.

    r, an integer-valued float, goes to c.W. With a 32-bit c.W, |y| < 2**30 for every input
    (working_type); with int64, r is clamped to 2**62: beyond it every float32 is a multiple of
    2**39, which any v format (<= 24 bits) wraps to 0, just as it wraps 2**62.
    """
    mode = (code >> _ROUND) & ROUND_MASK
    y = np.float32(h * c.inv_sc_v)
    if mode == RND:
        r = np.floor(np.float32(y + np.float32(0.5)))
        if code >> _W_BITS == 64:
            r = min(max(r, np.float32(-R_LIM)), np.float32(R_LIM))
        return N(code, c, c.W(r))
    yd = np.float64(y)
    f = np.floor(yd)
    rem = yd - f
    r = f + round_up(mode, rem > 0.5, rem == 0.5, rem != 0.0, yd < 0.0, (f % 2.0) == 1.0)
    if code >> _W_BITS == 64:
        r = min(max(r, -R_LIM), R_LIM)
    return N(code, c, c.W(r))


# ------------------------------------------------------------------ step
@njit
def charge_int(code, c, v, x):
    """H, the charged potential at frac T, and the overflow stages it hit."""
    P, o1 = A(code, c, wshl(c.W(v), (code >> _SH_V) & 63))
    X, o2 = A(code, c, wshl(c.W(x), (code >> _SH_IN) & 63))
    ovf = (o1 | o2) << ALIGN
    if (code & KIND_MASK) != LIF:
        H, o = A(code, c, wadd(P, X))
        return H, ovf | (o << CHARGE)
    d, o3 = A(code, c, wsub(P, c.VR))
    if code & DECAY:
        d, o4 = A(code, c, wsub(X, d))
        o3 |= o4
    m, o5 = A(code, c, wmul(d, c.rtau))
    leak, o6 = shift_round(code, c, m, ((code >> _LEAK_S) & 127) - 64)
    ovf |= (o5 | o6) << LEAK
    if code & DECAY:
        H, o7 = A(code, c, wadd(P, leak))
    else:
        H, o7 = A(code, c, wsub(P, leak))
        H, o8 = A(code, c, wadd(H, X))
        o7 |= o8
    return H, ovf | ((o3 | o7) << CHARGE)


@njit
def charge_f32(code, c, v, x):
    """h, the charged potential in float32, by spikingjelly's formulas."""
    vf = np.float32(v) * c.sc_v
    xf = np.float32(x) * c.sc_in
    if (code & KIND_MASK) != LIF:
        return np.float32(vf + xf)
    if code & DECAY:
        if code & RESET0:
            return np.float32(vf + np.float32(np.float32(xf - vf) / c.tau_f))
        return np.float32(vf + np.float32(np.float32(xf - np.float32(vf - c.vr_f)) / c.tau_f))
    if code & RESET0:
        return np.float32(np.float32(vf * c.decay_f) + xf)
    return np.float32(np.float32(vf - np.float32(np.float32(vf - c.vr_f) / c.tau_f)) + xf)


@njit
def fire_rounded(code, c, v1, ovf):
    """round_then_fire: the spike test on the rounded potential v1; (v', spike, overflow stages)."""
    if v1 < c.vth:
        return v1, False, ovf
    if not (code & SOFT):
        return c.W(c.vr), True, ovf
    v2, o = N(code, c, wsub(v1, c.vth))
    return v2, True, ovf | (o << VSTAGE)


@njit
def step_int(code, c, v, x):
    """One neuron, one step of the integer datapath: (new raw potential, spike, overflow-stage bitmask)."""
    H, ovf = charge_int(code, c, v, x)
    sh_v = (code >> _SH_V) & 63
    if code & ROUND_FIRST:
        H, o = shift_round(code, c, H, sh_v)
        v1, o2 = N(code, c, H)
        return fire_rounded(code, c, v1, ovf | ((o | o2) << VSTAGE))
    spike = H >= c.VT
    if spike and not (code & SOFT):
        return c.W(c.vr), True, ovf
    if spike:
        H, o = A(code, c, wsub(H, c.VT))
        ovf |= o << RESET
    H, o = shift_round(code, c, H, sh_v)
    v1, o2 = N(code, c, H)
    return v1, spike, ovf | ((o | o2) << VSTAGE)


@njit
def step_f32(code, c, v, x):
    """One neuron, one step of the float32 datapath: (new raw potential, spike, overflow-stage bitmask)."""
    h = charge_f32(code, c, v, x)
    if code & ROUND_FIRST:
        v1, o = quantize_f32(code, c, h)
        return fire_rounded(code, c, v1, o << VSTAGE)
    spike = h >= c.vth_f
    if spike and not (code & SOFT):
        return c.W(c.vr), True, np.int64(0)
    if spike:
        h = np.float32(h - c.vth_f)
    v1, o = quantize_f32(code, c, h)
    return v1, spike, o << VSTAGE


@njit
def step(code, c, v, x):
    """One neuron, one step: (new raw potential, spike, overflow-stage bitmask: bit k, and STOP + k if strict)."""
    if code & FLOAT32:
        return step_f32(code, c, v, x)
    return step_int(code, c, v, x)
