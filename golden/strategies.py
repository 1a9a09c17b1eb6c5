"""Hypothesis strategies for golden specs and stimuli: fuzz your own RTL with them.

``specs()`` draws arbitrary datapaths (every kind, reset, rounding mode,
overflow policy, step order and arithmetic); ``stimuli(spec)`` draws input
sequences that aim at exact ties, full scale and the saturation and wrap
boundaries.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .spec import (ARITHS, CHARGE_FORMS, KINDS, LEAK_SHIFTS, ORDERS, OVERFLOWS, ROUND_MODES, V_INITS, QFormat, Spec,
                   SpecError)


@st.composite
def qformats(draw, min_bits=2, max_bits=32, frac=st.integers(-4, 20)):
    return QFormat(draw(st.integers(min_bits, max_bits)), draw(frac))


@st.composite
def specs(draw, arith=st.sampled_from(ARITHS), kinds=st.sampled_from(KINDS)):
    """Any valid spec. Hyperparameters favour the edges: 1 LSB, full scale, and the middle."""
    a = draw(arith)
    kind = draw(kinds)
    maxb = 24 if a == "float32" else 32
    fv = draw(qformats(max_bits=maxb, frac=st.integers(-2, 20)))
    fin = QFormat(draw(st.integers(2, maxb)), fv.frac + draw(st.integers(-4, 4)))
    fout = draw(qformats(max_bits=maxb))
    reset = "soft" if kind == "ATIF" else draw(st.sampled_from(["hard", "soft"]))
    edge = lambda lo, hi: st.one_of(st.sampled_from([lo, hi, (lo + hi) // 2]), st.integers(lo, hi))  # noqa: E731
    vth = draw(edge(1, fv.max))
    vr = 0 if reset == "soft" else draw(edge(fv.min, fv.max))
    rtau = draw(edge(1, fv.max)) if kind == "LIF" else 0
    acc_ovf = draw(st.sampled_from(OVERFLOWS))
    lo_acc = max(fin.bits, fv.bits)
    hi_acc = (64 if acc_ovf == "wrap" else 63) - fv.bits
    if hi_acc < lo_acc:
        acc_ovf, hi_acc = "wrap", 64
    acc_bits = 64 if acc_ovf == "wrap" and draw(st.booleans()) else draw(st.integers(lo_acc, hi_acc))
    try:
        return Spec(kind=kind, fmt_in=fin, fmt_v=fv, fmt_out=fout, reset=reset,
                    decay_input=draw(st.booleans()), v_threshold=vth, v_reset=vr, reciprocal_tau=rtau,
                    spike_out=draw(edge(fout.min, fout.max)), round=draw(st.sampled_from(ROUND_MODES)),
                    v_overflow=draw(st.sampled_from(OVERFLOWS)), acc_bits=acc_bits,
                    acc_overflow=acc_ovf, order=draw(st.sampled_from(ORDERS)), arith=a,
                    leak_shift=draw(st.sampled_from(LEAK_SHIFTS)), charge_form=draw(st.sampled_from(CHARGE_FORMS)),
                    v_init=draw(st.sampled_from(V_INITS)))
    except SpecError as e:
        from hypothesis import reject
        del e
        reject()


def raw_values(fmt: QFormat):
    """Raw integers of a format, weighted toward 0, +-1, +-full scale and powers of two."""
    specials = sorted({0, 1, -1, fmt.min, fmt.max, fmt.min + 1, fmt.max - 1, 1 << (fmt.bits - 2), -(1 << (fmt.bits - 2))})
    return st.one_of(st.sampled_from(specials), st.integers(fmt.min, fmt.max))


@st.composite
def stimuli(draw, spec: Spec, max_steps=12, max_neurons=6):
    """A (T, N) raw input array for ``spec``; some neurons hold one value (ramps to saturation, exact ties)."""
    t = draw(st.integers(1, max_steps))
    n = draw(st.integers(1, max_neurons))
    cols = []
    for _ in range(n):
        if draw(st.booleans()):
            cols.append([draw(raw_values(spec.fmt_in))] * t)
        else:
            cols.append(draw(st.lists(raw_values(spec.fmt_in), min_size=t, max_size=t)))
    return np.array(cols, dtype=np.int64).T.copy()
