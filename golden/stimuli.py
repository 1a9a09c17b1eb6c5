"""Deterministic stimuli: raw input blocks that depend only on (spec, N, seed), on any machine and NumPy.

The generators (``uniform``, ``poisson``, ``ties``, ``edges``, ``mixed``) are specified in
``vectors/README.md``; test-vector bundles, ``golden diff`` and the demo can all draw from here.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from . import kernels
from .datapath import FLOAT32, charge_f32, charge_int, constants, encode, step
from .simulate import _initial_v
from .spec import Arith, Kind, Spec, SpecError

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
TieParams = namedtuple("TieParams", "fmin fmax span D sh_in sh_v S e VR th1 flt use_f use_l use_n")
WORDS = 3  # raw words per neuron-step: the free-pick draw, the anchor value, the choice among qualifying inputs
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
    f, lif, flt = spec.fmt_in, spec.kind == Kind.LIF, spec.arith == Arith.FLOAT32
    # the leak product's shift: float32 quantizes (X - d) * rtau * 2**-T (in y = h * 2**q_v) to an integer
    S, rtau = (spec.work_frac if flt else spec.leak_s), spec.reciprocal_tau
    e = (rtau & -rtau).bit_length() - 1 if rtau else 0  # reciprocal_tau = odd * 2**e
    span = f.max - f.min + 1
    p = TieParams(
        f.min, f.max, span, max(1, min(64, span // 4)), spec.shift_in, spec.shift_v, S, e, spec.aligned(spec.v_reset),
        int(th1), int(flt),
        int(flt or spec.shift_v > 0),  # a final rescale / float32 quantization that can sit on a half LSB
        int(lif and spec.decay_input and 0 <= e < S),  # decay_input: X - d = 2**(S-1-e) mod 2**(S-e) ties the leak
        int(not flt and lif and not spec.decay_input and spec.shift_v <= S - 1 - e),  # no-decay leak tie next step
    )
    return code, code_rnd, code_min, c, c1, p


@njit
def _differ(code_a, ca, code_b, cb, v, x):
    a, b = step(code_a, ca, v, x), step(code_b, cb, v, x)
    return a[0] != b[0] or a[1] != b[1]


@njit
def _qualifies(code, cr, cm, c, c1, p, v, x):
    """Input x puts this step on a rounding tie (RND and RND_MIN_INF differ) or on the threshold."""
    if _differ(cr, c, cm, c, v, x):
        return True
    return p.th1 == 1 and _differ(code, c, code, c1, v, x)


@njit
def _charge(code, c, v, x):
    """The value the step rounds, as float64: H at frac T (int) or y = h * 2**q_v (float32)."""
    if code & FLOAT32:
        return np.float64(np.float32(charge_f32(code, c, v, x) * c.inv_sc_v))
    return np.float64(charge_int(code, c, v, x)[0])


@njit
def _toward(p, xa, dist, slope):
    """xa + round(dist / slope), or fmax + 1 (none) when it leaves fmt_in or the slope is not positive."""
    if not slope > 0.0:
        return p.fmax + 1
    z = dist / slope
    if not -4.0 * p.span < z < 4.0 * p.span:
        return p.fmax + 1
    x = xa + np.int64(np.floor(z + 0.5))
    return x if p.fmin <= x <= p.fmax else p.fmax + 1


@njit
def _first_spike(code, c, p, v, guess):
    """The least input that makes the neuron spike, galloping from ``guess`` then bisecting; fmax + 1 if the
    input cannot decide it (it spikes at fmin, or not at fmax)."""
    g = min(max(guess, p.fmin), p.fmax)
    d = 1
    if step(code, c, v, g)[1]:
        b = g
        while True:  # down until no spike: then no spike at a, a spike at b
            if b == p.fmin:
                return p.fmax + 1
            a = max(b - d, p.fmin)
            if not step(code, c, v, a)[1]:
                break
            b = a
            d *= 2
    else:
        a = g
        while True:
            if a == p.fmax:
                return p.fmax + 1
            b = min(a + d, p.fmax)
            if step(code, c, v, b)[1]:
                break
            a = b
            d *= 2
    while b - a > 1:
        m = (a + b) >> 1
        if step(code, c, v, m)[1]:
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
def _ties_rows(code, cr, cm, c, c1, p, v, raw, out, cand):
    """Rows of the 'ties' stimulus: out[t, n] from raw[t, n, :WORDS] and the potential v[n], which it advances."""
    one = np.int64(1)
    for t in range(out.shape[0]):
        for n in range(out.shape[1]):
            w0, w1, w2 = raw[t, n, 0], raw[t, n, 1], raw[t, n, 2]
            x0 = p.fmin + np.int64(((w1 >> np.uint64(32)) * np.uint64(p.span)) >> np.uint64(32))
            vn = v[n]
            x = x0
            if (w0 >> np.uint64(11)) >= np.uint64(1 << 50):  # seven neuron-steps in eight: unit(w0) >= 1/8
                xa = min(x0, p.fmax - p.D)  # the anchor, and a second point: the charge's slope
                ha, hb = _charge(code, c, vn, xa), _charge(code, c, vn, xa + p.D)
                slope = (hb - ha) / p.D
                h_int = np.int64(0) if code & FLOAT32 else np.int64(charge_int(code, c, vn, xa)[0])
                k = 0
                target = np.float64(c.vth) if code & FLOAT32 else np.float64(c.VT)
                cand[k] = _first_spike(code, c, p, vn, _toward(p, xa, target - ha, slope))
                k += 1
                if p.use_f:  # the final rescale (or float32 quantization) on a half LSB
                    if p.flt:
                        dist = 0.5 - (ha - np.floor(ha))
                        dist = dist + 1.0 if dist < 0.0 else dist
                    else:
                        mod = one << p.sh_v
                        dist = np.float64(((mod >> 1) - h_int) & (mod - 1))
                    cand[k] = _toward(p, xa, dist, slope)
                    if cand[k] > p.fmax:
                        cand[k] = _toward(p, xa, dist - (1.0 if p.flt else np.float64(one << p.sh_v)), slope)
                    k += 1
                if p.use_l:  # decay_input: the leak R((X - d) * rtau, S) on a half LSB
                    d = (vn << p.sh_v) - p.VR
                    cand[k] = _modular(p, xa, xa << p.sh_in, d + (one << (p.S - 1 - p.e)), one << (p.S - p.e))
                    k += 1
                xn = p.fmax + 1
                if p.use_n:  # no decay_input: the input whose potential ties the next step's leak
                    xn = _modular(p, xa, h_int, p.VR + (one << (p.S - 1 - p.e)), one << (p.S - p.e))
                    cand[k] = xn
                    k += 1
                cand[k] = x0
                k += 1
                nq = 0
                for i in range(k):  # keep the qualifying ones, in order
                    if cand[i] <= p.fmax and _qualifies(code, cr, cm, c, c1, p, vn, cand[i]):
                        cand[nq] = cand[i]
                        nq += 1
                if nq:
                    x = cand[np.int64(((w2 >> np.uint64(32)) * np.uint64(nq)) >> np.uint64(32))]
                elif xn <= p.fmax:  # none qualifies: xn, if it leads the next step's leak onto a tie
                    if _differ(cr, c, cm, c, np.int64(step(code, c, vn, xn)[0]), np.int64(0)):
                        x = xn
            out[t, n] = x
            v[n] = step(code, c, vn, x)[0]


def _generic_kernel():
    source = kernels.SOURCE

    def ties_generic(code, cr, cm, c, c1, p, v, raw, out, cand):
        source  # noqa: B018  (part of the cache key)
        _ties_rows(code, cr, cm, c, c1, p, v, raw, out, cand)

    return kernels._compile(ties_generic)


ties_generic = _generic_kernel()
_specialised: dict = {}


def ties_kernel(probes, specialise: bool):
    """``f(v, raw, out, cand)``: the generic ties kernel, or one compiled for these probes (frozen constants)."""
    if not specialise:
        return lambda *a: ties_generic(*probes, *a)
    kernel = _specialised.get(probes)
    if kernel is None:
        source = kernels.SOURCE
        code, cr, cm, c, c1, p = probes

        def ties_specialised(v, raw, out, cand):
            source  # noqa: B018
            _ties_rows(code, cr, cm, c, c1, p, v, raw, out, cand)

        kernel = _specialised[probes] = kernels._compile(ties_specialised)
    return kernel


class _Ties:
    """Closed-loop 'ties' stimulus (see vectors/README.md): per neuron-step, an input among those that put a
    rounding on an exact tie or the potential on the threshold, as golden's own step decides; the state
    advanced by golden's step."""

    def __init__(self, spec: Spec, n: int, specialise: bool | None = None):
        self.n = n
        self.probes = tie_probes(spec)
        self.v = _initial_v(spec, None, (n,))
        self.specialise = n >= SPECIALISE_NEURONS if specialise is None else specialise
        self.cand = np.empty(8, np.int64)

    def block(self, rng: _Rng, rows: int) -> np.ndarray:
        out = np.empty((rows, self.n), np.int64)
        kernel = ties_kernel(self.probes, self.specialise)
        chunk = max(1, RAW_CHUNK // self.n)  # rows drawn at once, so their memory stays small
        for t in range(0, rows, chunk):
            m = min(chunk, rows - t)
            kernel(self.v, rng.raw((m, self.n, WORDS)), out[t:t + m], self.cand)
        return out


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
                raw = rng.raw((rows, n, 2))  # step by step, so a longer run extends a shorter one
                idx = _ints(raw[:, :, 0], 0, values.size - 1)
                change = _unit(raw[:, :, 1]) < 0.125
                change[0] = True
                last = np.maximum.accumulate(np.where(change, np.arange(rows)[:, None], 0), axis=0)
                x[:, c] = values[np.take_along_axis(idx, last, axis=0)]
            else:
                x[:, c] = self.state[g].block(rng, rows)
        return x.astype(f.dtype)


def stimulus(spec: Spec, steps: int, neurons: int, seed: int, generator: str) -> np.ndarray:
    """The whole (T, N) raw input a bundle of this stimulus holds (in memory; generate() streams it)."""
    check_dims(steps, neurons)
    st = Stimulus(spec, neurons, seed, generator)
    return np.concatenate([st.block(k, min(BLOCK, steps - k * BLOCK)) for k in range(-(-steps // BLOCK))])
