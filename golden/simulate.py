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


def check_raw(x, fmt, name: str = "x", what: str = "input") -> np.ndarray:
    """Refuse anything but integers inside ``fmt`` (the ``what`` format): floats, bools, out-of-range values.

    Any integer dtype is accepted (a non-native byte order is converted); the caller casts to its own.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise SpecError(f"{name}: expected raw integers, got dtype {x.dtype} "
                        "(quantize real values with spec.quantize_input)")
    if not x.dtype.isnative:  # e.g. '>i2' from another machine: the kernels take native integers
        x = x.astype(x.dtype.newbyteorder("="))
    bits = 8 * x.dtype.itemsize - (x.dtype.kind == "i")  # no scan when the dtype itself cannot leave the format
    lo, hi = -(1 << bits) if x.dtype.kind == "i" else 0, (1 << bits) - 1
    if x.size and (lo < fmt.min or hi > fmt.max) and (x.min() < fmt.min or x.max() > fmt.max):
        bad = x[(x < fmt.min) | (x > fmt.max)].flat[0]
        raise SpecError(f"{name}: raw value {bad} is outside the {what} format {fmt} ({fmt.min}..{fmt.max})")
    return x


def layer_shape(shape) -> tuple:
    """A layer's neuron shape: a positive int or a tuple of them, as Python ints."""
    dims = (shape,) if isinstance(shape, (int, np.integer, bool, np.bool_)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        dims = None
    if not dims or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims):
        raise SpecError(f"shape: expected a positive number of neurons or a tuple of them, got {shape!r}")
    return tuple(int(d) for d in dims)


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
    """A saved array, refusing (naming the cause) a missing or unreadable file, anything that is not a plain
    .npy (a .npz, a pickle, a truncated file), and a header that declares more data than the file holds
    (checked before anything is allocated)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{what} file not found: {path}")
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            if magic.startswith(b"PK\x03\x04"):
                raise SpecError(f"{what} file {path}: this is a .npz archive; expected a .npy array (numpy.save)")
            if magic != b"\x93NUMPY":
                why = "empty file" if not magic else "no .npy magic"
                raise SpecError(f"{what} file {path}: not a .npy array ({why})")
            f.seek(0)
            version = fmt.read_magic(f)
            header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = header(f)
            if dtype.hasobject:
                raise SpecError(f"{what} file {path}: holds Python objects (a pickle); expected raw integers")
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            have = path.stat().st_size - f.tell()
            if need > have:
                raise SpecError(f"{what} file {path}: its header declares shape {shape} ({need} bytes), "
                                f"but the file holds {have} bytes")
            f.seek(0)
            return fmt.read_array(f, allow_pickle=False)
    except OSError as e:
        raise SpecError(f"{what} file {path}: cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise SpecError(f"{what} file {path}: not a valid .npy array ({e})") from None


def _initial_v(spec: Spec, v0, shape) -> np.ndarray:
    if v0 is None:
        return np.full(int(np.prod(shape, dtype=np.int64)), spec.v_start, np.int64)
    v0 = check_raw(v0, spec.fmt_v, "v0", "potential")
    try:
        v0 = np.broadcast_to(v0, shape)
    except ValueError:
        raise SpecError(f"v0: shape {v0.shape} does not broadcast to the layer's neurons {tuple(shape)}") from None
    return np.array(v0.reshape(-1), dtype=np.int64)  # a writable copy (the state); in range, the cast is exact


def simulate(spec: Spec, x, v0=None, *, parallel: bool | None = None) -> Trace:
    """Run raw inputs ``x`` of shape (T, *shape) through the layer that ``spec`` describes.

    ``v0`` (raw, broadcastable to ``shape``) overrides the spec's initial potential.
    """
    runner = Runner(spec)
    x = check_raw(x, spec.fmt_in)
    if x.ndim < 2:
        raise SpecError(f"x: expected shape (T, *neurons), got rank {x.ndim}")
    if x.shape[0] == 0 or x.size == 0:
        raise SpecError(f"x: shape {x.shape} holds no neuron-step; expected (T, *neurons) with T >= 1 and neurons")
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
        self.shape = layer_shape(shape)
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
