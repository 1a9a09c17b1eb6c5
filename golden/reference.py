"""The executable reference: golden's semantics in plain Python, one function per step.

This is the spec a hardware engineer reads. It is written independently of
the Numba kernels (:mod:`golden.datapath`): rounding is defined on exact
rationals (:class:`fractions.Fraction`), narrowing by modular arithmetic, and
float32 arithmetic with numpy float32 scalars. The property tests assert
``golden.simulate == golden.reference.simulate`` for arbitrary specs and inputs.
It is slow on purpose: clarity first.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import quant
from .spec import STAGES, Spec

F32 = np.float32


class Overflow(Exception):
    """A narrowing overflowed under the 'strict' policy."""

    def __init__(self, stage: str):
        super().__init__(stage)
        self.stage = stage


# ------------------------------------------------------- narrowing, rescaling
# The arithmetic is golden.quant's (the one plain-Python requantization primitive); what is the neuron's here is
# where each narrowing happens (its stage) and what a strict policy does (stop the run).
round_rational = quant.round_rational


def narrow(n: int, bits: int, policy: str, stage: str, events: set) -> int:
    """Fit n into a signed ``bits``-wide integer: saturate, wrap (two's complement), or raise."""
    m, hit = quant.narrow(n, bits, policy)
    if not hit or (bits == 64 and policy == "wrap"):  # a 64-bit wrap is the machine's own; golden cannot see it
        return m
    events.add(stage)
    if policy == "strict":
        raise Overflow(stage)
    return m


def rescale(spec: Spec, n: int, s: int, stage: str, events: set) -> int:
    """R(n, s): n * 2**-s rounded by spec.round, in the accumulator. RND is 'add half an LSB, then floor'."""
    return quant.rescale(n, s, spec.round, lambda m: narrow(m, spec.acc_bits, spec.acc_overflow, stage, events))


# -------------------------------------------------------------- int datapath
def charge_int(spec: Spec, v: int, x: int, events: set) -> int:
    """The charged potential H at frac T = max(q_in, q_v)."""
    acc = lambda m, stage: narrow(m, spec.acc_bits, spec.acc_overflow, stage, events)  # noqa: E731
    P = acc(v * 2 ** spec.shift_v, "align")
    X = acc(x * 2 ** spec.shift_in, "align")
    if not spec.kind.has_leak:
        return acc(P + X, "charge")
    VR = aligned(spec, spec.v_reset)
    rtau = spec.reciprocal_tau
    if spec.decay_input:  # v + (x - (v - v_reset)) / tau
        d = acc(X - acc(P - VR, "charge"), "charge")
        leak = rescale(spec, acc(d * rtau, "leak"), spec.leak_s, "leak", events)
        return acc(P + leak, "charge")
    # v - (v - v_reset) / tau + x
    leak = rescale(spec, acc(acc(P - VR, "charge") * rtau, "leak"), spec.leak_s, "leak", events)
    return acc(acc(P - leak, "charge") + X, "charge")


def aligned(spec: Spec, raw: int) -> int:
    """A potential-format constant moved to frac T and narrowed to the accumulator."""
    policy = "wrap" if spec.acc_overflow == "wrap" else "saturate"
    return narrow(raw * 2 ** spec.shift_v, spec.acc_bits, policy, "align", set())


def to_v(spec: Spec, H: int, events: set) -> int:
    """Back from frac T to the potential format: round, then narrow."""
    return narrow(rescale(spec, H, spec.shift_v, "v", events), spec.fmt_v.bits, spec.v_overflow, "v", events)


# ----------------------------------------------------------- float32 datapath
def charge_float32(spec: Spec, v: int, x: int) -> F32:
    """spikingjelly's charge, evaluated in float32 exactly as PyTorch does (no fused ops)."""
    vf = F32(v) * F32(2.0 ** -spec.fmt_v.frac)
    xf = F32(x) * F32(2.0 ** -spec.fmt_in.frac)
    if not spec.kind.has_leak:
        return F32(vf + xf)
    tau = spec.tau_f32
    vr = F32(spec.v_reset) * F32(2.0 ** -spec.fmt_v.frac)
    if spec.decay_input:
        if spec.charge_form == "reset0":
            return F32(vf + F32(F32(xf - vf) / tau))
        return F32(vf + F32(F32(xf - F32(vf - vr)) / tau))
    if spec.charge_form == "reset0":
        return F32(F32(vf * spec.decay_f32) + xf)
    return F32(F32(vf - F32(F32(vf - vr) / tau)) + xf)


def quantize_float32(spec: Spec, h: F32, events: set) -> int:
    """Qualia's quantizer: y = h * 2**q_v in float32; RND is floor(y + 0.5) with a float32 addition."""
    y = F32(h * F32(2.0 ** spec.fmt_v.frac))
    if spec.round == "RND":
        r = math.floor(F32(y + F32(0.5)))
    else:
        r = round_rational(Fraction(float(y)), spec.round)
    return narrow(r, spec.fmt_v.bits, spec.v_overflow, "v", events)


# --------------------------------------------------------------------- step
def step(spec: Spec, v: int, x: int) -> tuple[int, bool, set]:
    """One neuron, one time step: (new raw potential, spike, overflow stages hit)."""
    events: set = set()
    vth = spec.v_threshold
    if spec.arith == "float32":
        h = charge_float32(spec, v, x)
        if spec.order == "fire_then_round":
            vth_f = F32(vth) * F32(2.0 ** -spec.fmt_v.frac)
            spike = bool(h >= vth_f)
            if spike and spec.reset == "hard":
                return spec.v_reset, True, events
            if spike:
                h = F32(h - vth_f)
            return quantize_float32(spec, h, events), spike, events
        v1 = quantize_float32(spec, h, events)
    else:
        H = charge_int(spec, v, x, events)
        if spec.order == "fire_then_round":
            spike = H >= aligned(spec, vth)
            if spike and spec.reset == "hard":
                return spec.v_reset, True, events
            if spike:
                H = narrow(H - aligned(spec, vth), spec.acc_bits, spec.acc_overflow, "reset", events)
            return to_v(spec, H, events), spike, events
        v1 = to_v(spec, H, events)
    # round_then_fire
    if v1 < vth:
        return v1, False, events
    if spec.reset == "hard":
        return spec.v_reset, True, events
    return narrow(v1 - vth, spec.fmt_v.bits, spec.v_overflow, "v", events), True, events


def simulate(spec: Spec, x, v0=None) -> dict:
    """Run ``x`` (T, *shape) raw inputs; returns out, v, spikes (arrays) and overflow counts per stage."""
    x = np.asarray(x)
    T = x.shape[0]
    flat = x.reshape(T, -1)
    n = flat.shape[1]
    v = [spec.v_start] * n if v0 is None else [int(a) for a in np.broadcast_to(v0, x.shape[1:]).reshape(-1)]
    out = np.zeros((T, n), np.int64)
    vs = np.zeros((T, n), np.int64)
    spikes = np.zeros((T, n), bool)
    counts = dict.fromkeys(STAGES, 0)
    for t in range(T):
        for i in range(n):
            try:
                v[i], s, events = step(spec, v[i], int(flat[t, i]))
            except Overflow as e:
                e.t, e.neuron = t, i
                raise
            out[t, i] = spec.spike_out if s else 0
            vs[t, i], spikes[t, i] = v[i], s
            for e in events:
                counts[e] += 1
    shape = x.shape
    return {"out": out.reshape(shape), "v": vs.reshape(shape), "spikes": spikes.reshape(shape), "overflow": counts}
