"""The whole datapath of one neuron for one time step, as Numba scalar code.

``step(code, c, v, x)`` is all a kernel calls. ``code`` packs the spec's
choices into one integer that the kernels pass as a compile-time literal, so
every ``if`` on a mode below is folded away and each spec gets its own
straight-line machine code; ``c`` holds the spec's numbers (:func:`constants`).
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
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from .reference import aligned
from .spec import CHARGE_FORMS, KINDS, OVERFLOWS, ROUND_MODES, STAGES, Spec

# ---------------------------------------------------------------- mode code
_KIND_BITS, _ROUND_SHIFT, _VOVF_SHIFT, _AOVF_SHIFT = 0, 8, 11, 13
SOFT, DECAY, ROUND_FIRST, FLOAT32, MAX_Q, RESET0 = 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7
IF, LIF, ATIF = range(3)
TRN, TRN_ZERO, TRN_INF, RND, RND_ZERO, RND_MIN_INF, RND_INF, RND_CONV = range(8)
SAT, WRAP, STRICT = range(3)
ALIGN, LEAK, CHARGE, RESET, VSTAGE = range(len(STAGES))


def encode(spec: Spec) -> int:
    """Pack a spec's choices into the kernels' literal mode code."""
    code = KINDS.index(spec.kind)
    code |= SOFT * (spec.reset == "soft") | DECAY * spec.decay_input
    code |= ROUND_FIRST * (spec.order == "round_then_fire") | FLOAT32 * (spec.arith == "float32")
    code |= MAX_Q * (spec.leak_shift == "max_q") | RESET0 * (spec.charge_form == CHARGE_FORMS[1])
    code |= ROUND_MODES.index(spec.round) << _ROUND_SHIFT
    code |= OVERFLOWS.index(spec.v_overflow) << _VOVF_SHIFT
    code |= OVERFLOWS.index(spec.acc_overflow) << _AOVF_SHIFT
    return code


Consts = namedtuple("Consts", "sh_in sh_v leak_s acc_bits v_bits vth vr rtau spike_out VT VR "
                              "sc_in sc_v inv_sc_v vth_f vr_f tau_f decay_f")


def constants(spec: Spec) -> Consts:
    """The spec's numbers as the kernels read them (VT, VR: thresholds aligned to T, narrowed to the accumulator)."""
    f32 = np.float32
    VT, VR = (aligned(spec, raw) for raw in (spec.v_threshold, spec.v_reset))
    sc_v = f32(2.0 ** -spec.fmt_v.frac)
    return Consts(
        np.int64(spec.shift_in), np.int64(spec.shift_v), np.int64(spec.leak_s), np.int64(spec.acc_bits),
        np.int64(spec.fmt_v.bits), np.int64(spec.v_threshold), np.int64(spec.v_reset),
        np.int64(spec.reciprocal_tau), np.int64(spec.spike_out), np.int64(VT), np.int64(VR),
        f32(2.0 ** -spec.fmt_in.frac), sc_v, f32(2.0 ** spec.fmt_v.frac),
        f32(spec.v_threshold) * sc_v, f32(spec.v_reset) * sc_v, spec.tau_f32, spec.decay_f32,
    )


# ------------------------------------------------------------- primitives
@njit
def narrow(n, bits, policy):
    """n narrowed to a signed ``bits``-wide integer; returns (value, overflowed)."""
    if bits >= 64:
        return n, np.int64(0)
    hi = (np.int64(1) << (bits - 1)) - 1
    lo = -hi - 1
    if policy == WRAP:
        sh = 64 - bits
        w = (n << sh) >> sh
        return w, np.int64(w != n)
    if n > hi:
        return hi, np.int64(1)
    if n < lo:
        return lo, np.int64(1)
    return n, np.int64(0)


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
def shift_round(n, s, mode, acc_bits, acc_pol):
    """R(n, s): n * 2**-s rounded by ``mode``; RND adds the half LSB in the accumulator, as hardware does."""
    if s <= 0:
        return narrow(n << -s, acc_bits, acc_pol)
    if mode == RND:
        m, o = narrow(n + (np.int64(1) << (s - 1)), acc_bits, acc_pol)
        return m >> s, o
    q = n >> s
    rem = n - (q << s)
    half = np.int64(1) << (s - 1)
    return q + round_up(mode, rem > half, rem == half, rem != 0, n < 0, (q & 1) == 1), np.int64(0)


@njit
def quantize_f32(h, inv_scale, mode, bits, pol):
    """Qualia's quantizer on a float32 potential: y = h * 2**q, floor(y + 0.5) in float32 for RND."""
    y = np.float32(h * inv_scale)
    if mode == RND:
        r = np.floor(np.float32(y + np.float32(0.5)))
    else:
        yd = np.float64(y)
        f = np.floor(yd)
        rem = yd - f
        r = f + round_up(mode, rem > 0.5, rem == 0.5, rem != 0.0, yd < 0.0, (f % 2.0) == 1.0)
    r = min(max(np.float64(r), -4.0e18), 4.0e18)
    return narrow(np.int64(r), bits, pol)


# ------------------------------------------------------------------ step
@njit
def charge_int(code, c, v, x):
    """H, the charged potential at frac T, and the overflow stages it hit."""
    rmode = (code >> _ROUND_SHIFT) & 7
    acc = (code >> _AOVF_SHIFT) & 3
    P, o1 = narrow(v << c.sh_v, c.acc_bits, acc)
    X, o2 = narrow(x << c.sh_in, c.acc_bits, acc)
    ovf = (o1 | o2) << ALIGN
    if (code & 3) != LIF:
        H, o = narrow(P + X, c.acc_bits, acc)
        return H, ovf | (o << CHARGE)
    d, o3 = narrow(P - c.VR, c.acc_bits, acc)
    if code & DECAY:
        d, o4 = narrow(X - d, c.acc_bits, acc)
        o3 |= o4
    m, o5 = narrow(d * c.rtau, c.acc_bits, acc)
    leak, o6 = shift_round(m, c.leak_s, rmode, c.acc_bits, acc)
    ovf |= (o5 | o6) << LEAK
    if code & DECAY:
        H, o7 = narrow(P + leak, c.acc_bits, acc)
    else:
        H, o7 = narrow(P - leak, c.acc_bits, acc)
        H, o8 = narrow(H + X, c.acc_bits, acc)
        o7 |= o8
    return H, ovf | ((o3 | o7) << CHARGE)


@njit
def charge_f32(code, c, v, x):
    """h, the charged potential in float32, by spikingjelly's formulas."""
    vf = np.float32(v) * c.sc_v
    xf = np.float32(x) * c.sc_in
    if (code & 3) != LIF:
        return np.float32(vf + xf)
    if code & DECAY:
        if code & RESET0:
            return np.float32(vf + np.float32(np.float32(xf - vf) / c.tau_f))
        return np.float32(vf + np.float32(np.float32(xf - np.float32(vf - c.vr_f)) / c.tau_f))
    if code & RESET0:
        return np.float32(np.float32(vf * c.decay_f) + xf)
    return np.float32(np.float32(vf - np.float32(np.float32(vf - c.vr_f) / c.tau_f)) + xf)


@njit
def step(code, c, v, x):
    """One neuron, one step: (new raw potential, spike, overflow-stage bitmask)."""
    rmode = (code >> _ROUND_SHIFT) & 7
    vpol = (code >> _VOVF_SHIFT) & 3
    acc = (code >> _AOVF_SHIFT) & 3
    if code & FLOAT32:
        h = charge_f32(code, c, v, x)
        if code & ROUND_FIRST:
            v1, o = quantize_f32(h, c.inv_sc_v, rmode, c.v_bits, vpol)
        else:
            spike = h >= c.vth_f
            if spike and not (code & SOFT):
                return c.vr, True, np.int64(0)
            if spike:
                h = np.float32(h - c.vth_f)
            v1, o = quantize_f32(h, c.inv_sc_v, rmode, c.v_bits, vpol)
            return v1, spike, o << VSTAGE
        ovf = o << VSTAGE
    else:
        H, ovf = charge_int(code, c, v, x)
        if not (code & ROUND_FIRST):
            spike = H >= c.VT
            if spike and not (code & SOFT):
                return c.vr, True, ovf
            if spike:
                H, o = narrow(H - c.VT, c.acc_bits, acc)
                ovf |= o << RESET
            H, o = shift_round(H, c.sh_v, rmode, c.acc_bits, acc)
            v1, o2 = narrow(H, c.v_bits, vpol)
            return v1, spike, ovf | ((o | o2) << VSTAGE)
        H, o = shift_round(H, c.sh_v, rmode, c.acc_bits, acc)
        v1, o2 = narrow(H, c.v_bits, vpol)
        ovf |= (o | o2) << VSTAGE
    # round_then_fire: the spike test on the rounded potential.
    spike = v1 >= c.vth
    if not spike:
        return v1, False, ovf
    if not (code & SOFT):
        return c.vr, True, ovf
    v2, o = narrow(v1 - c.vth, c.v_bits, vpol)
    return v2, True, ovf | (o << VSTAGE)
