"""Deterministic stimuli: raw input blocks that depend only on (spec, N, seed), on any machine and NumPy.

The generators (``uniform``, ``poisson``, ``ties``, ``edges``, ``mixed``) are specified in
``vectors/README.md``; test-vector bundles, ``golden diff`` and the demo can all draw from here.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit

from . import kernels
from .datapath import FLOAT32, charge_f32, charge_int, constants, encode, step_f32, step_int
from .simulate import initial_v
from .spec import Arith, Spec, SpecError

BLOCK = 1024  # time steps per stimulus block: block k draws from its own stream, so chunking never matters
STIMULI = ("uniform", "poisson", "ties", "edges", "mixed")
BASE_STIMULI = STIMULI[:4]


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def check_dims(steps, neurons) -> None:
    for name, v in (("steps", steps), ("neurons", neurons)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SpecError(f"{name}: expected a positive integer, got {v!r}")


class _Rng:
    """PCG64 raw 64-bit outputs mapped by integer multiply-shift: the same numbers on any machine and NumPy."""

    def __init__(self, seed: int, key: tuple):
        self.bg = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key))

    def raw(self, shape) -> np.ndarray:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = int(np.prod(shape, dtype=np.int64))
        return np.asarray(self.bg.random_raw(n), np.uint64).reshape(shape)

    def ints(self, lo: int, hi: int, shape) -> np.ndarray:
        """Integers in lo..hi inclusive (span <= 2**32)."""
        return _ints(self.raw(shape), lo, hi)

    def unit(self, shape) -> np.ndarray:
        """float64 in [0, 1): the top 53 bits times 2**-53."""
        return _unit(self.raw(shape))


def _ints(raw: np.ndarray, lo: int, hi: int) -> np.ndarray:
    span = np.uint64(hi - lo + 1)
    return (((raw >> np.uint64(32)) * span) >> np.uint64(32)).astype(np.int64) + np.int64(lo)


def _unit(raw: np.ndarray) -> np.ndarray:
    return (raw >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


# ------------------------------------------------------------------ ties
# Per neuron-step, the 'ties' kernel proposes a few inputs found from the current potential (the least input that
# fires, the input that puts the final rescale on a half LSB, the one that puts the decay_input leak on a half
# LSB, the one that leads a no-decay leak to a tie at the next step) and golden's own step decides which of them
# qualify (the probe codes below), so a wrong proposal costs a hit, never a wrong definition.
TieParams = namedtuple("TieParams", "fmin fmax span sh_in sh_v S e VR th1 flt use_f use_l use_n slope W "
                                     "halvings")
WORDS = 2  # raw words per neuron-step: w0 (free pick: its top 53 bits; choice: its low 32 bits), w1 (the anchor)
RAW_CHUNK = 1 << 18  # neuron-steps whose raw words are drawn at once (any value gives the same stimulus)
SPECIALISE_NEURONS = 256  # from this many 'ties' neurons a stimulus compiles the spec's own ties kernel (once)


def tie_probes(spec: Spec):
    """(code, code_rnd, code_min, c, c1, params) of the 'ties' kernel.

    ``code`` is the spec with its strict overflow policies quiet (saturate: the stimulus never stops); RND and
    RND_MIN_INF (``code_rnd``, ``code_min``) agree except on an exact tie, in any rounding of the step (leak,
    rescale, float32 quantization); ``c`` and ``c1`` (v_threshold + 1) disagree only when the potential lands
    on the threshold.
    """
    quiet = {k: "saturate" for k in ("v_overflow", "acc_overflow") if getattr(spec, k) == "strict"}
    base = spec.replace(**quiet)
    code, c = encode(base), constants(base)
    code_rnd, code_min = encode(base.replace(round="RND")), encode(base.replace(round="RND_MIN_INF"))
    th1 = spec.v_threshold < spec.fmt_v.max
    c1 = constants(base.replace(v_threshold=spec.v_threshold + 1)) if th1 else c
    f, lif, flt = spec.fmt_in, spec.kind.has_leak, spec.arith == Arith.FLOAT32
    # the leak product's shift: float32 quantizes (X - d) * rtau * 2**-T (in y = h * 2**q_v) to an integer
    S, rtau = (spec.work_frac if flt else spec.leak_s), spec.reciprocal_tau
    e = (rtau & -rtau).bit_length() - 1 if rtau else 0  # reciprocal_tau = odd * 2**e
    span = f.max - f.min + 1
    # d(charge)/dx, for the estimates: 2**(T - q_in) at frac T (int) or 2**(q_v - q_in) in y (float32), times
    # the leak's rtau * 2**-S (int) or 1/tau (float32) where the input is divided by tau
    slope = 2.0 ** (spec.fmt_v.frac - f.frac if flt else spec.shift_in)
    if lif and spec.decay_input:
        slope *= spec.fmt_v.real(rtau) if flt else rtau * 2.0 ** -spec.leak_s
    W = min(span, math.ceil(1.0 / slope) + 2)  # the guess is off by about one LSB of the charge
    p = TieParams(
        f.min, f.max, span, spec.shift_in, spec.shift_v, S, e, spec.aligned(spec.v_reset),
        int(th1), int(flt),
        int(flt or spec.shift_v > 0),  # a final rescale / float32 quantization that can sit on a half LSB
        int(lif and spec.decay_input and 0 <= e < S),  # decay_input: X - d = 2**(S-1-e) mod 2**(S-e) ties the leak
        int(not flt and lif and not spec.decay_input and spec.shift_v <= S - 1 - e),  # no-decay leak tie next step
        slope,
        W, max(1, (2 * W - 1).bit_length()),  # the threshold's window: the guess +- W, halved until 1 apart
    )
    return code, code_rnd, code_min, c, c1, p


@njit(inline="always")
def _differ(stepper, code_a, ca, code_b, cb, v, x):
    a, b = stepper(code_a, ca, v, x), stepper(code_b, cb, v, x)
    return (a[0] != b[0]) | (a[1] != b[1])


@njit(inline="always")
def _qualifies(stepper, code, cr, cm, c, c1, p, v, x, threshold):
    """Input x puts the potential on the threshold (``threshold``: v_threshold and v_threshold + 1 differ) or this
    step's rounding on a tie (RND and RND_MIN_INF differ); an x outside fmt_in (fmax + 1: no proposal) never
    qualifies. Branch-free, so that a row of neurons vectorises."""
    xc = min(x, p.fmax)
    if threshold:
        return (p.th1 == 1) & _differ(stepper, code, c, code, c1, v, xc) & (x <= p.fmax)
    return _differ(stepper, cr, c, cm, c, v, xc) & (x <= p.fmax)


@njit
def _charge(code, c, v, x):
    """The value the step rounds, as float64: H at frac T (int) or y = h * 2**q_v (float32)."""
    if code & FLOAT32:
        return np.float64(np.float32(charge_f32(code, c, v, x) * c.inv_sc_v))
    return np.float64(charge_int(code, c, v, x)[0])


@njit
def _toward(p, xa, dist):
    """xa + round(dist / slope), or fmax + 1 (none) when it leaves fmt_in."""
    z = dist / p.slope
    if not -4.0 * p.span < z < 4.0 * p.span:
        return p.fmax + 1
    x = xa + np.int64(np.floor(z + 0.5))
    return x if p.fmin <= x <= p.fmax else p.fmax + 1


@njit
def _guess(p, xa, dist):
    """xa + round(dist / slope), held inside fmt_in."""
    z = min(max(dist / p.slope, -2.0 * p.span), 2.0 * p.span)
    return min(max(xa + np.int64(np.floor(z + 0.5)), p.fmin), p.fmax)


@njit(inline="always")
def _first_spike(stepper, code, c, p, v, guess):
    """The least input that makes the neuron spike, galloping from ``guess`` then bisecting; fmax + 1 if the
    input cannot decide it (it spikes at fmin, or not at fmax)."""
    g = min(max(guess, p.fmin), p.fmax)
    d = 1
    if stepper(code, c, v, g)[1]:
        b = g
        while True:  # down until no spike: then no spike at a, a spike at b
            if b == p.fmin:
                return p.fmax + 1
            a = max(b - d, p.fmin)
            if not stepper(code, c, v, a)[1]:
                break
            b = a
            d *= 2
    else:
        a = g
        while True:
            if a == p.fmax:
                return p.fmax + 1
            b = min(a + d, p.fmax)
            if stepper(code, c, v, b)[1]:
                break
            a = b
            d *= 2
    while b - a > 1:
        m = (a + b) >> 1
        if stepper(code, c, v, m)[1]:
            b = m
        else:
            a = m
    return b


@njit
def _modular(p, xa, big_xa, target, mod):
    """The input x >= xa nearest xa (else below it) whose aligned input X = x << sh_in is target mod ``mod``
    (a power of two), given X(xa) = ``big_xa``; fmax + 1 if none."""
    delta = (target - big_xa) & (mod - 1)
    if delta & ((np.int64(1) << p.sh_in) - 1):
        return p.fmax + 1
    x = xa + (delta >> p.sh_in)
    if x > p.fmax:
        x -= mod >> p.sh_in
    return x if p.fmin <= x <= p.fmax else p.fmax + 1


@njit(inline="always")
def _ties_rows(stepper, code, cr, cm, c, c1, p, v, raw, out, s):
    """Rows of the 'ties' stimulus: out[t, n] from raw[t, n, :WORDS] and the potential v[n], which it advances.

    Each row goes in passes over the neurons (``s``: scratch rows), so that the step evaluations vectorise:
    proposals, the threshold's window bisected (a scalar gallop only where it missed), the qualifying tests,
    the choice and the step. Every loop indexes from 0 (no wraparound test to block vectorising).
    """
    one = np.int64(1)
    x0s, xth, xf, xl, xn, ok, qual = s[0], s[1], s[2], s[3], s[4], s[5], s[6]
    none = p.fmax + 1
    for t in range(out.shape[0]):
        rt = raw[t]
        for n in range(out.shape[1]):  # the anchor x0, the charge there, and the proposals
            x0 = p.fmin + np.int64(((rt[n, 1] >> np.uint64(32)) * np.uint64(p.span)) >> np.uint64(32))
            x0s[n] = x0
            vn = v[n]
            h_int = np.int64(0) if code & FLOAT32 else np.int64(charge_int(code, c, vn, x0)[0])
            ha = _charge(code, c, vn, x0) if code & FLOAT32 else np.float64(h_int)
            target = np.float64(c.vth) if code & FLOAT32 else np.float64(c.VT)
            xth[n] = _guess(p, x0, target - ha)
            xf[n] = xl[n] = xn[n] = none
            if p.use_f:  # the final rescale (or float32 quantization) on a half LSB
                if p.flt:
                    dist = 0.5 - (ha - np.floor(ha))
                    dist = dist + 1.0 if dist < 0.0 else dist
                    below = dist - 1.0
                else:
                    mod = one << p.sh_v
                    dist = np.float64(((mod >> 1) - h_int) & (mod - 1))
                    below = dist - np.float64(mod)
                x = _toward(p, x0, dist)
                xf[n] = x if x <= p.fmax else _toward(p, x0, below)
            if p.use_l:  # decay_input: the leak R((X - d) * rtau, S) on a half LSB
                d = (vn << p.sh_v) - p.VR
                xl[n] = _modular(p, x0, x0 << p.sh_in, d + (one << (p.S - 1 - p.e)), one << (p.S - p.e))
            if p.use_n:  # no decay_input: the input whose potential ties the next step's leak
                xn[n] = _modular(p, x0, h_int, p.VR + (one << (p.S - 1 - p.e)), one << (p.S - p.e))
        for n in range(out.shape[1]):  # the least input that fires: bisection in a window around the guess
            vn, g = v[n], xth[n]
            a, b = max(g - p.W, p.fmin), min(g + p.W, p.fmax)
            ok[n] = (not stepper(code, c, vn, a)[1]) & stepper(code, c, vn, b)[1]
            for _ in range(p.halvings):  # branch-free, so that the row vectorises
                m = (a + b) >> 1
                fires = stepper(code, c, vn, m)[1]
                a = a if fires else m
                b = m if fires else b
            xth[n] = b if ok[n] else g
        for n in range(out.shape[1]):
            if not ok[n]:  # outside the window: galloping from the guess, if fmt_in decides the spike at all
                decided = (not stepper(code, c, v[n], p.fmin)[1]) and stepper(code, c, v[n], p.fmax)[1]
                xth[n] = _first_spike(stepper, code, c, p, v[n], xth[n]) if decided else none
        for n in range(out.shape[1]):  # which proposals qualify: bits 0..3 = threshold, rescale, leak, next
            q = _qualifies(stepper, code, cr, cm, c, c1, p, v[n], xth[n], True) * one
            if p.use_f:
                q |= _qualifies(stepper, code, cr, cm, c, c1, p, v[n], xf[n], False) * 2
            if p.use_l:
                q |= _qualifies(stepper, code, cr, cm, c, c1, p, v[n], xl[n], False) * 4
            if p.use_n:
                q |= _qualifies(stepper, code, cr, cm, c, c1, p, v[n], xn[n], False) * 8
                xc = min(xn[n], p.fmax)  # none qualifies: xn, if the next step's leak then ties
                q |= (_differ(stepper, cr, c, cm, c, np.int64(stepper(code, c, v[n], xc)[0]), np.int64(0))
                      & (xn[n] <= p.fmax)) * 16
            qual[n] = q
        for n in range(out.shape[1]):  # the choice, and the step
            q = qual[n]
            count = (q & 1) + ((q >> 1) & 1) + ((q >> 2) & 1) + ((q >> 3) & 1)
            j = np.int64(((rt[n, 0] & np.uint64(0xFFFFFFFF)) * np.uint64(count)) >> np.uint64(32))
            x = xn[n] if q & 16 else x0s[n]
            for i, xi in enumerate((xth[n], xf[n], xl[n], xn[n])):
                if (q >> i) & 1:
                    if j == 0:
                        x = xi
                    j -= 1
            if (rt[n, 0] >> np.uint64(11)) < np.uint64(1 << 50):  # one neuron-step in eight: unit(w0) < 1/8
                x = x0s[n]
            out[t, n] = x
            v[n] = stepper(code, c, v[n], x)[0]


def _generic_kernel(float32: bool):
    source = kernels.SOURCE
    if float32:
        def ties_generic_f32(code, cr, cm, c, c1, p, v, raw, out, scratch):
            source  # noqa: B018  (part of the cache key)
            _ties_rows(step_f32, code, cr, cm, c, c1, p, v, raw, out, scratch)

        return kernels.compile_kernel(ties_generic_f32)

    def ties_generic_int(code, cr, cm, c, c1, p, v, raw, out, scratch):
        source  # noqa: B018  (part of the cache key)
        _ties_rows(step_int, code, cr, cm, c, c1, p, v, raw, out, scratch)

    return kernels.compile_kernel(ties_generic_int)


# the generic ties kernel, one per datapath half (a spec compiles only the half it uses)
ties_generic_int, ties_generic_f32 = _generic_kernel(False), _generic_kernel(True)
_specialised: dict = {}


def ties_kernel(probes, specialise: bool):
    """``f(v, raw, out, scratch)``: the generic ties kernel, or one compiled for these
    probes (constants frozen, only the half of the datapath the spec uses: two closures, as in kernels.py)."""
    if not specialise:
        generic = ties_generic_f32 if probes[0] & FLOAT32 else ties_generic_int
        return lambda *a: generic(*probes, *a)
    kernel = _specialised.get(probes)
    if kernel is None:
        source = kernels.SOURCE
        code, cr, cm, c, c1, p = probes
        if code & FLOAT32:
            def ties_float32(v, raw, out, scratch):
                source  # noqa: B018
                _ties_rows(step_f32, code, cr, cm, c, c1, p, v, raw, out, scratch)

            kernel = kernels.compile_kernel(ties_float32)
        else:
            def ties_int(v, raw, out, scratch):
                source  # noqa: B018
                _ties_rows(step_int, code, cr, cm, c, c1, p, v, raw, out, scratch)

            kernel = kernels.compile_kernel(ties_int)
        _specialised[probes] = kernel
    return kernel


class _Ties:
    """Closed-loop 'ties' stimulus (see vectors/README.md): per neuron-step, an input among those that put a
    rounding on an exact tie or the potential on the threshold, as golden's own step decides; the state
    advanced by golden's step."""

    def __init__(self, spec: Spec, n: int, specialise: bool | None = None):
        self.n = n
        self.probes = tie_probes(spec)
        self.v = initial_v(spec, None, (n,))
        self.specialise = n >= SPECIALISE_NEURONS if specialise is None else specialise
        self.scratch = np.empty((7, n), np.int64)

    def block(self, rng: _Rng, rows: int) -> np.ndarray:
        n = self.n
        out = np.empty((rows, n), np.int64)
        kernel = ties_kernel(self.probes, self.specialise)
        chunk = max(1, RAW_CHUNK // n)  # rows drawn at once, so their memory stays small
        for t in range(0, rows, chunk):
            kernel(self.v, rng.raw((min(chunk, rows - t), n, WORDS)), out[t:t + chunk], self.scratch)
        return out


def _edges_kernel():
    def edges_rows(values, raw, out):
        """'edges': neuron n at step t holds values[idx] of its last change; idx is the integer in
        0..len(values)-1 of raw[t, n, 0], a change is unit(raw[t, n, 1]) < 1/8 (raw < 2**61), row 0 always."""
        span = np.uint64(values.size)
        for t in range(out.shape[0]):
            for n in range(out.shape[1]):
                i = np.int64(((raw[t, n, 0] >> np.uint64(32)) * span) >> np.uint64(32))
                if t == 0 or raw[t, n, 1] < np.uint64(1 << 61):
                    out[t, n] = values[i]
                else:
                    out[t, n] = out[t - 1, n]

    return kernels.compile_kernel(edges_rows)


edges_rows = _edges_kernel()


class Stimulus:
    """Blocks of raw inputs for ``generator`` (see README): deterministic in (spec, N, seed), independent of
    chunking."""

    def __init__(self, spec: Spec, neurons: int, seed: int, generator: str):
        if generator not in STIMULI:
            raise SpecError(f"stimulus: unknown generator {generator!r} (expected one of: {', '.join(STIMULI)})")
        check_seed(seed)
        self.spec, self.seed = spec, seed
        cols = np.arange(neurons)
        if generator == "mixed":
            self.parts = [(g, cols[cols % 4 == i]) for i, g in enumerate(BASE_STIMULI)]
            self.parts = [(g, c) for g, c in self.parts if c.size]
        else:
            self.parts = [(generator, cols)]
        self.neurons = neurons
        self.state = {}
        f = spec.fmt_in
        for g, c in self.parts:
            gi = BASE_STIMULI.index(g)
            if g == "poisson":
                p = _Rng(seed, (gi,))
                rate = p.unit(c.size) * 0.5
                amp = p.ints(f.min // 4, f.max, c.size)
                self.state[g] = (rate, np.where(amp == 0, f.max, amp))
            elif g == "ties":
                self.state[g] = _Ties(spec, c.size)

    def block(self, k: int, rows: int) -> np.ndarray:
        f = self.spec.fmt_in
        x = np.empty((rows, self.neurons), np.int64)
        for g, c in self.parts:
            rng = _Rng(self.seed, (BASE_STIMULI.index(g), k))
            n = c.size
            if g == "uniform":
                x[:, c] = rng.ints(f.min, f.max, (rows, n))
            elif g == "poisson":
                rate, amp = self.state[g]
                x[:, c] = np.where(rng.unit((rows, n)) < rate, amp, 0)
            elif g == "edges":
                values = np.array([f.min, f.min, f.min + 1, -1, 0, 1, f.max - 1, f.max, f.max], np.int64)
                out = np.empty((rows, n), np.int64)
                edges_rows(values, rng.raw((rows, n, 2)), out)  # step by step: a longer run extends a shorter one
                x[:, c] = out
            else:
                x[:, c] = self.state[g].block(rng, rows)
        return x.astype(f.dtype)


def stimulus(spec: Spec, steps: int, neurons: int, seed: int, generator: str) -> np.ndarray:
    """The whole (T, N) raw input a bundle of this stimulus holds (in memory; generate() streams it)."""
    check_dims(steps, neurons)
    st = Stimulus(spec, neurons, seed, generator)
    return np.concatenate([st.block(k, min(BLOCK, steps - k * BLOCK)) for k in range(-(-steps // BLOCK))])
