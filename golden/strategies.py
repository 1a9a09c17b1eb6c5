"""Hypothesis strategies for golden specs and stimuli: fuzz your own RTL with them.

``specs()`` draws arbitrary datapaths (every kind, reset, rounding mode,
overflow policy, step order and arithmetic); ``stimuli(spec)`` draws input
sequences that aim at exact ties, full scale and the saturation and wrap
boundaries.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .spec import (
    ARITHS,
    CHARGE_FORMS,
    LEAK_SHIFTS,
    ORDERS,
    OVERFLOWS,
    ROUND_MODES,
    V_INITS,
    Kind,
    QFormat,
    Spec,
    SpecError,
)


@st.composite
def qformats(draw, min_bits=2, max_bits=32, frac=st.integers(-4, 20)):
    return QFormat(draw(st.integers(min_bits, max_bits)), draw(frac))


@st.composite
def specs(draw, arith=st.sampled_from(ARITHS), kinds=st.sampled_from(Kind.values())):
    """Any valid spec. Hyperparameters favour the edges: 1 LSB, full scale, and the middle."""
    a = draw(arith)
    kind = draw(kinds)
    maxb = 24 if a == "float32" else 32
    fv = draw(qformats(max_bits=maxb, frac=st.integers(-2, 20)))
    fin = QFormat(draw(st.integers(2, maxb)), fv.frac + draw(st.integers(-4, 4)))
    fout = draw(qformats(max_bits=maxb))
    reset = "soft" if Kind(kind).soft_reset_only else draw(st.sampled_from(["hard", "soft"]))
    edge = lambda lo, hi: st.one_of(st.sampled_from([lo, hi, (lo + hi) // 2]), st.integers(lo, hi))  # noqa: E731
    vth = draw(edge(1, fv.max))
    if not Kind(kind).graded_spike and draw(st.integers(0, 15)) == 0:
        vth = 0  # a threshold quantized to 0 (a low-bit Qualia model): the neuron fires whenever v >= 0
    vr = 0 if reset == "soft" else draw(edge(fv.min, fv.max))
    rtau = draw(edge(1, fv.max)) if Kind(kind).has_leak else 0
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
    quarter = 1 << (fmt.bits - 2)
    specials = sorted({0, 1, -1, fmt.min, fmt.max, fmt.min + 1, fmt.max - 1, quarter, -quarter})
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


# ---------------------------------------------------------------- Qualia level
# Configurations of the real Qualia layers (QuantizedLIFNode / QuantizedIFNode /
# QuantizedATIF) and raw input sequences for them. A config is a plain dict with
# the keys of ``golden/refs/torch_ref.make_module`` (kind, bits_in, q_in, bits_v,
# q_v, bits_out, q_out, round_in, round_v, round_out, tau, v_threshold, v_reset,
# decay_input); :func:`profile_params` turns it into the keyword arguments of
# golden.torch_eval / golden.torch_train. Every drawn config builds a valid
# torch profile (and so a module that does not raise: Qv(1/tau) > 0).

QUALIA_ROUNDS = ("nearest", "floor", "ceil")
POW2_TAUS = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
OTHER_TAUS = (1.25, 1.5, 3.0, 7.5, 64 / 7, 100 / 3, 1.1)


def profile_params(config: dict) -> dict:
    """A Qualia config's keyword arguments for ``golden.torch_eval`` / ``golden.torch_train`` (kind excluded)."""
    c = config
    return dict(bits=c["bits_v"], q_v=c["q_v"], q_in=c["q_in"], q_out=c["q_out"], bits_in=c["bits_in"],
                bits_out=c["bits_out"], tau=c["tau"] if Kind(c["kind"]).has_leak else None,
                v_threshold=c["v_threshold"], v_reset=c["v_reset"], decay_input=c.get("decay_input", True),
                round=c["round_v"], round_in=c["round_in"], round_out=c["round_out"])


def _off_grid(draw, raw: int, q: int, on_grid: bool) -> float:
    """raw * 2**-q, optionally moved off the grid: an exact half LSB (a tie), a hair off it, or anywhere."""
    if on_grid:
        return float(np.float32(raw * 2.0 ** -q))
    off = draw(st.sampled_from([0.0, 0.5, -0.5, 0.49999997, 0.25, -0.25]) | st.floats(-0.499, 0.499))
    return float(np.float32((raw + off) * 2.0 ** -q))


@st.composite
def qualia_configs(draw, kinds=st.sampled_from(("LIF", "IF", "ATIF")), bits=st.integers(4, 16)):
    """A config of a real Qualia quantized neuron that golden's torch profiles accept.

    Covers bits 4..16 per tensor, q_in below / equal to / above q_v, tau both a
    power of two and not, v_reset 0, non-zero (on and off the grid) and None,
    decay_input both ways, every Qualia roundtype per quantizer (mostly one
    roundtype for all three), thresholds from 1 LSB to full scale (off the grid
    for LIF/IF; on it for ATIF, whose spec requires it), and q_out from
    saturating (bits_out - 1) to negative.
    """
    from .profiles import torch_eval  # here: profiles imports nothing from strategies, but keep the module light

    kind = draw(kinds)
    bits_v = draw(bits)
    q_v = draw(st.integers(bits_v - 8, bits_v + 1))
    bits_in = draw(st.one_of(st.just(bits_v), bits))
    q_in = q_v + draw(st.sampled_from([0, -1, 1]) | st.integers(-3, 3))
    bits_out = draw(st.one_of(st.just(bits_v), bits))
    q_out = draw(st.sampled_from([q_v, bits_out - 1, bits_out - 2, 0]) | st.integers(-2, bits_out))
    if draw(st.booleans()):
        round_in = round_v = round_out = draw(st.sampled_from(QUALIA_ROUNDS))
    else:
        round_in, round_v, round_out = (draw(st.sampled_from(QUALIA_ROUNDS)) for _ in range(3))
    vmax = (1 << (bits_v - 1)) - 1
    vth_raw = draw(st.sampled_from([vmax, vmax - 1, vmax // 2, 1 << (bits_v - 2), 1]) | st.integers(1, vmax))
    vth = _off_grid(draw, vth_raw, q_v, on_grid=Kind(kind).graded_spike or draw(st.booleans()))
    v_reset = None
    if not Kind(kind).soft_reset_only:
        choice = draw(st.sampled_from(["none", "zero", "nonzero"]))
        if choice == "zero":
            v_reset = 0.0
        elif choice == "nonzero":
            vr_raw = draw(st.sampled_from([1, -1, vth_raw // 2, -vmax, vmax]) | st.integers(-vmax - 1, vmax))
            v_reset = _off_grid(draw, vr_raw, q_v, on_grid=draw(st.booleans()))
    tau = None
    if Kind(kind).has_leak:
        tau = draw(st.sampled_from(POW2_TAUS) | st.sampled_from(OTHER_TAUS) | st.floats(1.01, 100.0))
    config = dict(kind=kind, bits_in=bits_in, q_in=q_in, bits_v=bits_v, q_v=q_v, bits_out=bits_out, q_out=q_out,
                  round_in=round_in, round_v=round_v, round_out=round_out, tau=tau, v_threshold=vth,
                  v_reset=v_reset, decay_input=draw(st.booleans()) if Kind(kind).has_leak else True)
    try:
        torch_eval(kind, **profile_params(config))
    except SpecError:
        from hypothesis import reject
        reject()
    return config


def _input_columns(rng: np.random.Generator, config: dict, T: int, n: int) -> np.ndarray:
    """n raw input columns of T steps at q_in, each of one random style aimed at an edge of the datapath."""
    bits_in, q_in, q_v = config["bits_in"], config["q_in"], config["q_v"]
    lo, hi = -(1 << (bits_in - 1)), (1 << (bits_in - 1)) - 1
    d = q_in - q_v
    vth_in = int(round(config["v_threshold"] * 2.0 ** q_in))  # the threshold, seen at the input's scale
    specials = np.array(sorted({0, 1, -1, lo, hi, lo + 1, hi - 1, 1 << (bits_in - 2), -(1 << (bits_in - 2)),
                                *(min(max(vth_in + k, lo), hi) for k in (-1, 0, 1)),
                                min(max(vth_in // 2, lo), hi), min(max(2 * vth_in, lo), hi)}), np.int64)
    style = rng.integers(0, 7, n)
    x = np.empty((T, n), np.int64)
    for s in range(7):
        cols = np.flatnonzero(style == s)
        k = cols.size
        if not k:
            continue
        if s == 0:  # anything
            x[:, cols] = rng.integers(lo, hi + 1, (T, k))
        elif s == 1:  # one special value held: ramps to the threshold and to saturation
            x[:, cols] = rng.choice(specials, k)[None, :]
        elif s == 2:  # special values in any order
            x[:, cols] = rng.choice(specials, (T, k))
        elif s == 3:  # small values: the leak's rounding ties dominate
            x[:, cols] = np.clip(rng.integers(-6, 7, (T, k)) << max(d, 0), lo, hi)
        elif s == 4:  # exact half-LSB ties of the potential's grid (q_in > q_v), else odd multiples of the grid
            half = 1 << (d - 1) if d > 0 else 1
            odd = 2 * rng.integers(-(hi // (2 * half)) - 1, hi // (2 * half) + 1, (T, k)) + 1
            x[:, cols] = np.clip(odd * half, lo, hi)
        elif s == 5:  # saturation bursts: runs of full scale, either sign
            sign = np.where(rng.random((T, k)) < 0.5, lo, hi)
            x[:, cols] = np.where(rng.random((T, k)) < 0.8, np.repeat(sign[:1], T, 0), sign)
        else:  # sparse: mostly zero, now and then a large kick
            x[:, cols] = np.where(rng.random((T, k)) < 0.15, rng.choice(specials, (T, k)), 0)
    return x


@st.composite
def qualia_inputs(draw, config: dict, min_steps=1, max_steps=50, min_neurons=1, max_neurons=64, explicit=4):
    """A (T, N) int64 array of raw inputs at q_in for a Qualia config.

    Up to ``explicit`` columns are drawn value by value (they shrink to a
    minimal example); the rest come from a drawn seed, each column in a style
    aimed at exact ties, the threshold, saturation, or anything.
    """
    T = draw(st.integers(min_steps, max_steps))
    n = draw(st.integers(min_neurons, max_neurons))
    k = min(n, draw(st.integers(0, explicit)))
    fmt = QFormat(config["bits_in"], config["q_in"])
    cols = [draw(st.lists(raw_values(fmt), min_size=T, max_size=T)) for _ in range(k)]
    head = np.array(cols, dtype=np.int64).T.reshape(T, k)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return np.ascontiguousarray(np.concatenate([head, _input_columns(rng, config, T, n - k)], axis=1))
