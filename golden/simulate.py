"""The public simulation API: ``simulate``, ``Trace`` and the per-cycle ``Simulator``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import datapath, kernels
from .errors import GoldenError
from .spec import STAGES, Spec, SpecError


@dataclass
class Trace:
    """What a layer did, step by step. Arrays are (T, *shape), raw integers in the spec's formats."""

    spec: Spec
    out: np.ndarray  # raw outputs (fmt_out)
    v: np.ndarray  # raw potentials after each step (fmt_v)
    spikes: np.ndarray  # bool
    overflow: dict  # stage -> number of neuron-steps whose narrowing saturated or wrapped there

    @property
    def spike_rate(self) -> float:
        return float(self.spikes.mean()) if self.spikes.size else 0.0


class SimulationOverflow(GoldenError, OverflowError):
    """A strict overflow policy was violated; names the stage(s), step and neuron (flat index)."""

    def __init__(self, stages: list, t: int, neuron: int):
        super().__init__(f"strict overflow at stage {'/'.join(stages)}, step t={t}, neuron {neuron}")
        self.stages, self.stage, self.t, self.neuron = stages, stages[0], t, neuron


def check_raw(x, fmt, name: str = "x") -> np.ndarray:
    """Refuse anything but integers inside ``fmt``: floats, bools, out-of-range values."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise SpecError(f"{name}: expected raw integers, got dtype {x.dtype} (quantize real values with spec.quantize_input)")
    bits = 8 * x.dtype.itemsize - (x.dtype.kind == "i")  # no scan when the dtype itself cannot leave the format
    lo, hi = -(1 << bits) if x.dtype.kind == "i" else 0, (1 << bits) - 1
    if x.size and (lo < fmt.min or hi > fmt.max) and (x.min() < fmt.min or x.max() > fmt.max):
        bad = x[(x < fmt.min) | (x > fmt.max)].flat[0]
        raise SpecError(f"{name}: raw value {bad} is outside the input format {fmt} ({fmt.min}..{fmt.max})")
    return x


class Runner:
    """A spec bound to its compiled kernel: the one place kernels are called from."""

    def __init__(self, spec: Spec):
        if not isinstance(spec, Spec):
            raise SpecError(f"spec: expected a golden.Spec, got {type(spec).__name__}")
        self.spec = spec
        if "kernel" not in spec._cache:  # a spec is frozen: its mode code and constants never change
            spec._cache["kernel"] = datapath.encode(spec), datapath.constants(spec)
        self.code, self.consts = spec._cache["kernel"]

    def run(self, x2: np.ndarray, v: np.ndarray, t0: int = 0, parallel: bool | None = None):
        """Advance state ``v`` (N,) in place over ``x2`` (T, N); returns out, v trace, spikes, counts.

        ``v`` is int64 or the potential format's dtype (which the fast kernels hold: no conversion).
        """
        spec = self.spec
        T, n = x2.shape
        if x2.dtype.itemsize > 4 or not x2.flags.c_contiguous:
            x2 = np.ascontiguousarray(x2, dtype=spec.fmt_in.dtype)
        out = np.empty((T, n), spec.fmt_out.dtype)
        vt = np.empty((T, n), spec.fmt_v.dtype)
        spikes = np.empty((T, n), np.bool_)
        counts = np.zeros(len(STAGES), np.int64)
        err = np.full(3, -1, np.int64)
        kernels.pick(self.code, self.consts, n, T, parallel)(x2, v, out, vt, spikes, counts, err, t0)
        if err[0] >= 0:
            raise SimulationOverflow([k for i, k in enumerate(STAGES) if err[0] >> i & 1], int(err[1]), int(err[2]))
        return out, vt, spikes, counts


def load_npy(path, what: str = "input") -> np.ndarray:
    """A saved array, refusing a missing file or anything that is not a plain .npy (no pickles)."""
    if not Path(path).is_file():
        raise SpecError(f"{what} file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise SpecError(f"{path}: not a .npy array ({e})") from None


def _initial_v(spec: Spec, v0, shape) -> np.ndarray:
    if v0 is None:
        return np.full(int(np.prod(shape, dtype=np.int64)), spec.v_start, np.int64)
    v0 = check_raw(v0, spec.fmt_v, "v0")
    return np.ascontiguousarray(np.broadcast_to(v0, shape).reshape(-1), dtype=np.int64)


def simulate(spec: Spec, x, v0=None, *, parallel: bool | None = None) -> Trace:
    """Run raw inputs ``x`` of shape (T, *shape) through the layer that ``spec`` describes.

    ``v0`` (raw, broadcastable to ``shape``) overrides the spec's initial potential.
    """
    runner = Runner(spec)
    x = check_raw(x, spec.fmt_in)
    if x.ndim < 2:
        raise SpecError(f"x: expected shape (T, *neurons), got rank {x.ndim}")
    shape = x.shape[1:]
    v = _initial_v(spec, v0, shape)
    out, vt, spikes, counts = runner.run(x.reshape(x.shape[0], -1), v, parallel=parallel)
    full = x.shape
    return Trace(spec, out.reshape(full), vt.reshape(full), spikes.reshape(full), dict(zip(STAGES, counts.tolist())))


class Simulator:
    """Per-cycle use (cocotb testbenches): ``step(x_t)`` advances every neuron by one time step."""

    def __init__(self, spec: Spec, shape):
        self._runner = Runner(spec)
        self.spec = spec
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.reset()

    def reset(self, v0=None) -> None:
        """Back to the initial potential (the spec's, or ``v0``) and t = 0."""
        self._v = _initial_v(self.spec, v0, self.shape)
        self.t = 0
        self.spikes = np.zeros(self.shape, bool)
        self.overflow = dict.fromkeys(STAGES, 0)

    @property
    def v(self) -> np.ndarray:
        """Raw potentials now, shape ``shape``."""
        return self._v.reshape(self.shape).copy()

    def step(self, x_t) -> np.ndarray:
        """One time step on raw inputs of shape ``shape``; returns the raw outputs."""
        x_t = check_raw(x_t, self.spec.fmt_in, "x_t")
        if x_t.shape != self.shape:
            raise SpecError(f"x_t: expected shape {self.shape}, got {x_t.shape}")
        out, _, spikes, counts = self._runner.run(x_t.reshape(1, -1), self._v, t0=self.t, parallel=False)
        self.t += 1
        self.spikes = spikes.reshape(self.shape)
        for k, c in zip(STAGES, counts.tolist()):
            self.overflow[k] += c
        return out.reshape(self.shape)
