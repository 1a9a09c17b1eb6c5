"""The public simulation API: ``simulate``, ``Trace`` and the per-cycle ``Simulator``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import datapath, kernels
from .errors import SimulationOverflow, SpecError
from .spec import STAGES, Spec

SPECIALISE_NEURONS = 4096  # neurons from which a Simulator takes its spec's specialised kernel on construction


@dataclass
class Trace:
    """What a layer did, step by step. Arrays are (T, *shape), raw integers in the spec's formats."""

    spec: Spec
    out: np.ndarray  # raw outputs (fmt_out)
    v: np.ndarray  # raw potentials after each step (fmt_v)
    spikes: np.ndarray  # bool
    overflow: dict  # stage -> number of neuron-steps whose narrowing saturated or wrapped there

    @classmethod
    def empty(cls, spec: Spec, shape) -> Trace:
        """A Trace to fill: ``simulate(spec, x, out=Trace.empty(spec, x.shape))``; shape is (T, *neurons)."""
        if not isinstance(spec, Spec):
            raise SpecError(f"spec: expected a golden.Spec, got {type(spec).__name__}")
        dims = layer_shape(shape)
        if len(dims) < 2:
            raise SpecError(f"shape: expected (T, *neurons), got {dims}")
        return cls(spec, np.empty(dims, spec.fmt_out.dtype), np.empty(dims, spec.fmt_v.dtype),
                   np.empty(dims, np.bool_), dict.fromkeys(STAGES, 0))

    @property
    def spike_rate(self) -> float:
        return float(self.spikes.mean()) if self.spikes.size else 0.0




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


@functools.lru_cache(maxsize=256)
def kernel_args(spec: Spec) -> tuple:
    """(mode code, constants) the kernels take for ``spec``: a frozen spec's never change, so they are computed once
    per distinct spec (equal specs share them)."""
    return datapath.encode(spec), datapath.constants(spec)


class Runner:
    """A spec bound to its compiled kernel: the one place kernels are called from."""

    def __init__(self, spec: Spec):
        if not isinstance(spec, Spec):
            raise SpecError(f"spec: expected a golden.Spec, got {type(spec).__name__}")
        self.spec = spec
        self.code, self.consts = kernel_args(spec)

    def run(self, x2: np.ndarray, v: np.ndarray, t0: int = 0, parallel: bool | None = None, into=None):
        """Advance state ``v`` (N,) in place over ``x2`` (T, N); returns out, v trace, spikes, counts.

        ``v`` is int64 or the potential format's dtype (which the fast kernels hold: no conversion).
        ``into``: (out, vt, spikes) arrays of shape (T, N) to write the trace into (checked by the caller).
        """
        spec = self.spec
        T, n = x2.shape
        if x2.dtype.itemsize > 4 or not x2.flags.c_contiguous:
            x2 = np.ascontiguousarray(x2, dtype=spec.fmt_in.dtype)
        if into is None:
            out = np.empty((T, n), spec.fmt_out.dtype)
            vt = np.empty((T, n), spec.fmt_v.dtype)
            spikes = np.empty((T, n), np.bool_)
        else:
            out, vt, spikes = into
        counts = np.zeros(len(STAGES), np.int64)
        err = np.full(3, -1, np.int64)
        kernels.pick(self.code, self.consts, n, T, parallel)(x2, v, out, vt, spikes, counts, err, t0)
        if err[0] >= 0:
            raise SimulationOverflow([k for i, k in enumerate(STAGES) if err[0] >> i & 1], int(err[1]), int(err[2]))
        return out, vt, spikes, counts


def _bad_buffer(name: str, a, shape: tuple, dtype) -> None:
    """Raise the SpecError that says why ``a`` cannot receive results of ``shape`` and ``dtype``."""
    if not isinstance(a, np.ndarray):
        why = f"expected a numpy array, got {type(a).__name__}"
    elif a.shape != tuple(shape):
        why = f"expected shape {tuple(shape)}, got {a.shape}"
    elif a.dtype != dtype:
        why = f"expected dtype {np.dtype(dtype)}, got {a.dtype}"
    elif not a.flags.writeable:
        why = "the array is read-only"
    elif not a.flags.c_contiguous:
        why = "expected a C-contiguous array (np.ascontiguousarray), got a strided view"
    else:
        return
    raise SpecError(f"{name}: cannot hold the results: {why}")


def _buffers(out, spec: Spec, shape: tuple) -> tuple:
    """The (out, v, spikes) arrays of a reused Trace ``out``, checked against the run's shape and formats."""
    if not isinstance(out, Trace):
        raise SpecError(f"out: expected a golden.Trace to reuse (a previous result, or Trace.empty), "
                        f"got {type(out).__name__}")
    if out.spec != spec:
        raise SpecError("out: this Trace was made for another spec; reuse it with the spec it was made for")
    for name, a, dtype in (("out.out", out.out, spec.fmt_out.dtype), ("out.v", out.v, spec.fmt_v.dtype),
                           ("out.spikes", out.spikes, np.bool_)):
        if not (type(a) is np.ndarray and a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
                and a.flags.writeable):
            _bad_buffer(name, a, shape, dtype)
    if np.shares_memory(out.out, out.v) or np.shares_memory(out.out, out.spikes) or np.shares_memory(out.v, out.spikes):
        raise SpecError("out: its out, v and spikes arrays overlap; give each its own memory")
    return out.out, out.v, out.spikes


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


def initial_v(spec: Spec, v0, shape) -> np.ndarray:
    if v0 is None:
        return np.full(int(np.prod(shape, dtype=np.int64)), spec.v_start, np.int64)
    v0 = check_raw(v0, spec.fmt_v, "v0", "potential")
    try:
        v0 = np.broadcast_to(v0, shape)
    except ValueError:
        raise SpecError(f"v0: shape {v0.shape} does not broadcast to the layer's neurons {tuple(shape)}") from None
    return np.array(v0.reshape(-1), dtype=np.int64)  # a writable copy (the state); in range, the cast is exact


def simulate(spec: Spec, x, v0=None, *, parallel: bool | None = None, out: Trace | None = None) -> Trace:
    """Run raw inputs ``x`` of shape (T, *shape) through the layer that ``spec`` describes.

    ``v0`` (raw, broadcastable to ``shape``) overrides the spec's initial potential.
    ``out``: a Trace to write into and return (a previous result of the same spec and shape, or
    ``Trace.empty(spec, x.shape)``), so that a sweep allocates its trace once.
    """
    runner = Runner(spec)
    x = check_raw(x, spec.fmt_in)
    if x.ndim < 2:
        raise SpecError(f"x: expected shape (T, *neurons), got rank {x.ndim}")
    if x.shape[0] == 0 or x.size == 0:
        raise SpecError(f"x: shape {x.shape} holds no neuron-step; expected (T, *neurons) with T >= 1 and neurons")
    full = x.shape
    into = None if out is None else _buffers(out, spec, full)
    v = initial_v(spec, v0, full[1:])
    flat = None if into is None else tuple(a.reshape(full[0], -1) for a in into)
    o, vt, spikes, counts = runner.run(x.reshape(full[0], -1), v, parallel=parallel, into=flat)
    overflow = dict(zip(STAGES, counts.tolist()))
    if out is not None:
        out.overflow = overflow
        return out
    return Trace(spec, o.reshape(full), vt.reshape(full), spikes.reshape(full), overflow)


class Simulator:
    """Per-cycle use (cocotb testbenches, whole networks): ``step(x_t)`` advances every neuron by one time step.

    The kernel is chosen once, on construction, for the Simulator's lifetime, so no step ever pauses to compile:
    a wide layer (at least :data:`SPECIALISE_NEURONS` neurons), or a spec this process already has the
    specialised kernel of, gets that kernel (compiled now, once per spec and machine, then loaded from the disk
    cache); a narrow one the generic kernel (so a campaign of many small specs compiles nothing per spec).
    ``specialise``: True takes the specialised kernel whatever the width (a long per-cycle run of a narrow
    layer: about 2x less per-call time), False the generic one.
    A step runs on one thread: one row of even a wide layer is shorter than a thread hand-off pays for.
    """

    def __init__(self, spec: Spec, shape, specialise: bool | None = None):
        self._runner = Runner(spec)
        self.spec = spec
        self.shape = layer_shape(shape)
        if specialise not in (None, True, False):
            raise SpecError(f"specialise: expected True, False or None (choose by width), got {specialise!r}")
        self._n = int(np.prod(self.shape, dtype=np.int64))
        self._kernel = None  # the specialised kernel, if chosen
        self._in_dtype = np.dtype(spec.fmt_in.dtype)
        self._out_dtype = np.dtype(spec.fmt_out.dtype)
        bits = 8 * self._in_dtype.itemsize - (self._in_dtype.kind == "i")
        self._in_free = spec.fmt_in.min <= -(1 << bits) and spec.fmt_in.max >= (1 << bits) - 1  # no range scan
        self._err = np.full(3, -1, np.int64)
        r = self._runner
        if specialise is None:
            specialise = self._n >= SPECIALISE_NEURONS or kernels.has_specialised(r.code, r.consts)
        if specialise:
            self._kernel = kernels.specialised(r.code, r.consts)
            self._vt = np.empty((1, self._n), self.spec.fmt_v.dtype)
        self.reset()

    @property
    def specialised(self) -> bool:
        """Whether this Simulator steps on its spec's specialised kernel (else the generic one), for its lifetime."""
        return self._kernel is not None

    def reset(self, v0=None) -> None:
        """Back to the initial potential (the spec's, or ``v0``) and t = 0."""
        v = initial_v(self.spec, v0, self.shape)
        self._v = v if self._kernel is None else v.astype(self.spec.fmt_v.dtype)
        self.t = 0
        self.spikes = np.zeros(self.shape, bool)
        self._counts = np.zeros(len(STAGES), np.int64)

    @property
    def overflow(self) -> dict:
        """Stage -> neuron-steps since the last reset whose narrowing saturated or wrapped there."""
        return dict(zip(STAGES, self._counts.tolist()))

    @property
    def v(self) -> np.ndarray:
        """Raw potentials now, shape ``shape``."""
        return self._v.reshape(self.shape).copy()

    def step(self, x_t, out=None) -> np.ndarray:
        """One time step on raw inputs of shape ``shape``; returns the raw outputs.

        ``out``: a C-contiguous, writable array of shape ``shape`` in the output format's dtype to write
        them into (and return), instead of a new array each step.
        """
        if not (type(x_t) is np.ndarray and x_t.dtype == self._in_dtype and self._in_free
                and x_t.shape == self.shape):
            x_t = check_raw(x_t, self.spec.fmt_in, "x_t")
            if x_t.shape != self.shape:
                raise SpecError(f"x_t: expected shape {self.shape}, got {x_t.shape}")
        if out is None:
            out = np.empty(self.shape, self._out_dtype)
        elif not (type(out) is np.ndarray and out.dtype == self._out_dtype and out.shape == self.shape
                  and out.flags.c_contiguous and out.flags.writeable):
            _bad_buffer("out", out, self.shape, self._out_dtype)
        spikes = np.empty(self.shape, np.bool_)
        n = self._n
        kernel, err = self._kernel, self._err
        if kernel is not None:
            x2 = x_t.reshape(1, n)
            if x2.dtype != self._in_dtype or not x2.flags.c_contiguous:
                x2 = np.ascontiguousarray(x2, self._in_dtype)
            kernel(x2, self._v, out.reshape(1, n), self._vt, spikes.reshape(1, n), self._counts, err, self.t, 0, n)
        else:
            r = self._runner
            x2 = np.ascontiguousarray(x_t.reshape(1, n), np.int32)
            o64, v64 = np.empty((1, n), np.int64), np.empty((1, n), np.int64)
            kernels.call_generic(r.code, r.consts, x2, self._v, o64, v64, spikes.reshape(1, n), self._counts, err,
                                 self.t, 0, n)
            out.reshape(1, n)[...] = o64
        if err[0] >= 0:
            stages, t, neuron = [k for i, k in enumerate(STAGES) if err[0] >> i & 1], int(err[1]), int(err[2])
            err[:] = -1
            raise SimulationOverflow(stages, t, neuron)
        self.t += 1
        self.spikes = spikes
        return out
