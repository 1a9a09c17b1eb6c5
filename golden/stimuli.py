"""Deterministic stimuli: raw input blocks that depend only on (spec, N, seed), on any machine and NumPy.

The generators (``uniform``, ``poisson``, ``ties``, ``edges``, ``mixed``) are specified in
``vectors/README.md``; test-vector bundles, ``golden diff`` and the demo can all draw from here.
"""

from __future__ import annotations

import numpy as np

from .simulate import Runner, _initial_v
from .spec import Spec, SpecError

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


def _tie_probes(spec: Spec) -> list:
    """Spec pairs whose step results differ exactly where a candidate input is interesting.

    RND and RND_MIN_INF agree except on an exact tie, in any rounding of the
    step (leak, rescale, float32 quantization); v_threshold and v_threshold+1
    disagree only when the potential lands on the threshold. Probes never stop
    on overflow (strict becomes saturate).
    """
    quiet = {k: "saturate" for k in ("v_overflow", "acc_overflow") if getattr(spec, k) == "strict"}
    base = spec.replace(**quiet)
    pairs = [(base.replace(round="RND"), base.replace(round="RND_MIN_INF"))]
    if spec.v_threshold < spec.fmt_v.max:
        pairs.append((base, base.replace(v_threshold=spec.v_threshold + 1)))
    return [(Runner(a), Runner(b)) for a, b in pairs]


class _TieSeeker:
    """Closed-loop 'ties' stimulus: inputs that put a rounding on an exact tie or the potential on the threshold.

    Whether a candidate does is asked of golden's own kernel (:func:`_tie_probes`), so the stimulus needs no
    second model of the datapath.
    """

    MAX_CANDIDATES = 4096

    def __init__(self, spec: Spec, n: int):
        self.spec, self.n = spec, n
        self.runner = Runner(spec)
        self.probes = _tie_probes(spec)
        self.v = _initial_v(spec, None, (n,))
        f = spec.fmt_in
        self.full = f.max - f.min + 1 <= self.MAX_CANDIDATES

    def _candidates(self, rng: _Rng) -> np.ndarray:
        f = self.spec.fmt_in
        if self.full:
            c = np.arange(f.min, f.max + 1, dtype=np.int64)
            return np.broadcast_to(c, (self.n, c.size))
        extra = np.array([f.min, f.min + 1, -1, 0, 1, f.max - 1, f.max], np.int64)
        # values aligned to rescale / leak half-LSBs at several scales
        s = np.arange(1, min(f.bits - 1, 20), dtype=np.int64)
        halves = np.concatenate([(np.int64(1) << s) >> 1, -((np.int64(1) << s) >> 1), (np.int64(3) << s) >> 1])
        structured = np.concatenate([extra, halves[(halves >= f.min) & (halves <= f.max)]])
        rand = rng.ints(f.min, f.max, (self.n, self.MAX_CANDIDATES - structured.size))
        return np.concatenate([np.broadcast_to(structured, (self.n, structured.size)), rand], axis=1)

    def _hits(self, cand: np.ndarray) -> np.ndarray:
        """(N, K): candidate k of neuron n makes some probe pair disagree on this step."""
        n, k = cand.shape
        x = np.ascontiguousarray(cand.reshape(1, -1)).astype(self.spec.fmt_in.dtype)
        hit = np.zeros(n * k, bool)
        v = np.repeat(self.v, k)
        # parallel=None: the spec's specialised kernel once n*k is large (the same numbers, proven equal to the
        # generic one); 5.7x faster at N = 1024 with 4096 candidates (33.2 s -> 5.8 s for 16 steps)
        for a, b in self.probes:
            _, va, sa, _ = a.run(x, v.copy(), parallel=None)
            _, vb, sb, _ = b.run(x, v.copy(), parallel=None)
            hit |= (va[0] != vb[0]) | (sa[0] != sb[0])
        return hit.reshape(n, k)

    def block(self, rng: _Rng, rows: int) -> np.ndarray:
        s, n = self.spec, self.n
        out = np.empty((rows, n), np.int64)
        for t in range(rows):
            cand = self._candidates(rng)
            k = cand.shape[1]
            score = self._hits(cand)
            # a random pick among the candidates that hit a tie; one neuron-step in eight picks freely
            key = (rng.raw((n, k)) >> np.uint64(40)).astype(np.int64)
            free = rng.unit(n) < 0.125
            score = np.where(free[:, None], 0, score.astype(np.int64))
            pick = np.argmax(score * (np.int64(1) << 24) + key, axis=1)
            x = cand[np.arange(n), pick]
            out[t] = x
            self.runner.run(x.reshape(1, -1).astype(s.fmt_in.dtype), self.v, parallel=False)
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
                self.state[g] = _TieSeeker(spec, c.size)

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
