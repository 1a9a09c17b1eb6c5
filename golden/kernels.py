"""The kernel family: loops over time and neurons around :mod:`golden.datapath`'s step.

Inputs are time-major ``(T, N)``. Neurons are processed in blocks: a block's
state stays in L2 while t advances over it, and each row of a block is one
vectorised loop over neurons.

One loop body (:func:`_columns`) makes two kinds of kernel:

- :func:`specialised` compiles a closure that freezes one spec's ``code`` (a
  compile-time literal) and constants, holding the state in the potential
  format's dtype. Every mode test and every overflow check the constants rule
  out folds away and the rest vectorises, as C written for that spec would.
  It costs about 1.5 s of CPU to compile, once per spec: Numba caches it on disk,
  keyed by the frozen values, in :func:`cache_dir` (never inside the
  installed package).
- the generic kernels (:data:`run_generic_int`, :data:`run_generic_f32`: one per half of the datapath, so a
  command compiles only the half its specs use) read ``code`` and ``c`` at run time, on int32 inputs, int64
  state and int64 outputs, so that one compile per lane type serves every spec: small runs, property tests
  (which so check the lane types too), small per-cycle testbenches.

Which of the two a run takes is decided before it starts, from its own size and what this process has
already compiled (:func:`pick`), never from what ran before it: no call pauses to compile because earlier
calls added up.

Both compute in the spec's lane type ``c.W`` (int16, int32 or int64), the
narrowest that :func:`golden.datapath.lane_type`'s range analysis proves holds
every exact intermediate value, and count overflows in ``c.K``, no wider: an
int8 spec's kernel runs in 16-bit vector lanes, an int16 spec's in 32-bit ones.

Every kernel also closes over :data:`SOURCE`, a hash of this file and the
datapath: Numba watches only the file a function is defined in, so without it
an edited datapath could load a stale cached kernel.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
from numba import njit
from numba.core.caching import CompileResultCacheImpl, FunctionCache, NullCache, UserProvidedCacheLocator

from .datapath import CHARGE, FLOAT32, LEAK, RESET, STOP, STRICT_MASK, VSTAGE, step_f32, step_int, wadd

SOURCE = hashlib.sha256(b"".join((Path(__file__).parent / f).read_bytes()
                                 for f in ("datapath.py", "kernels.py", "spec.py"))).hexdigest()
BLOCK_BYTES = 1 << 18  # state bytes per block of neurons: it stays in L2 while t advances over the block
SPECIALISE_AT = 1 << 20  # neuron-steps of one run from which it compiles its spec's specialised kernel (~1.5 s, once)
CHUNK = 1 << 14  # neurons of a row counted at once: the counts fit int16 counters
PARALLEL_AT = 1 << 15  # neurons from which a layer is split over threads
THREADS = int(os.environ.get("GOLDEN_THREADS", 0)) or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                        else os.cpu_count() or 1)  # threads for wide layers


# ------------------------------------------------------------------ the disk cache
def cache_dir() -> Path:
    """Where golden's compiled kernels are cached: ``$GOLDEN_CACHE_DIR``, else the platform's per-user cache.

    Linux and other Unixes: ``$XDG_CACHE_HOME/golden`` (default ``~/.cache/golden``); macOS:
    ``~/Library/Caches/golden``; Windows: ``%LOCALAPPDATA%\\golden\\Cache``. Never the installed package,
    which may be read-only, and whose leftover ``__pycache__`` would shadow a later editable install.
    """
    env = os.environ.get("GOLDEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "golden" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "golden"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "golden"


class _Locator(UserProvidedCacheLocator):
    """Numba's cache of golden's kernels, in :func:`cache_dir` (one subdirectory per source directory)."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(cache_dir() / self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.exists(py_file):
            return None
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:  # an unwritable cache directory: no disk cache, compile in memory
            return None
        return self


class _Impl(CompileResultCacheImpl):
    _locator_classes = [_Locator]  # only golden's kernels; Numba's own default for everything else


class _Cache(FunctionCache):
    _impl_class = _Impl


def jit(**options):
    """``@jit(...)``: ``njit(**options)`` with its disk cache in :func:`cache_dir` (none if it cannot be written):
    the decorator of every cached golden kernel, the network kernels' too. Numba's own ``cache=True`` would write
    beside the source, inside the installed package; this sets the cache of these dispatchers only, rather than
    ``NUMBA_CACHE_DIR``, which would move the cache of every other Numba user in the process too."""
    def wrap(fn):
        dispatcher = njit(**options)(fn)
        try:
            dispatcher._cache = _Cache(dispatcher.py_func)
        except RuntimeError:  # no locator: the cache directory cannot be created or written
            dispatcher._cache = NullCache()
        return dispatcher
    return wrap


def compile_kernel(fn, cache: bool = True):
    """``njit(nogil=True)(fn)``, its disk cache in :func:`cache_dir` (or none: ``cache=False``): a kernel of golden's
    neuron family (the stimuli's too)."""
    return jit(nogil=True)(fn) if cache else njit(nogil=True)(fn)


@njit(inline="always")  # pasted into each kernel, where a specialised kernel's constants are visible
def _columns(stepper, code, c, x, v, out, vt, spikes, counts, err, t0, lo, hi):
    """Neurons lo..hi over every step, block by block; overflow counts added to ``counts``.

    A row is counted in chunks of :data:`CHUNK` neurons, in counters of type c.K (int16 with int16
    lanes): counters as narrow as the lanes keep the vector loop in them.
    A strict policy stops at the first overflow it governs, in (t, neuron) order: it runs time-major
    in one block, and a row where one happened is replayed from its saved state to find the neuron
    (err = the stages it overflowed strictly at, t, n).
    """
    strict = code & STRICT_MASK
    block = max(hi - lo, 1) if strict else BLOCK_BYTES // v.itemsize
    prev = np.empty(block if strict else 0, v.dtype)
    zero = c.K(0)
    for b in range(lo, hi, block):
        m = min(b + block, hi) - b
        for t in range(x.shape[0]):
            if strict:
                for n in range(m):
                    prev[n] = v[b + n]
            seen = 0
            for j in range(b, b + m, CHUNK):
                e = min(j + CHUNK, b + m)
                # Row slices indexed from 0: the index is provably >= 0, so no wraparound test blocks vectorising.
                xt, vb, ot, vtt, st = x[t, j:e], v[j:e], out[t, j:e], vt[t, j:e], spikes[t, j:e]
                k0 = k1 = k2 = k3 = k4 = zero
                for n in range(e - j):
                    v1, s, ovf = stepper(code, c, vb[n], xt[n])
                    vb[n] = v1
                    vtt[n] = v1
                    ot[n] = c.spike_out if s else 0
                    st[n] = s
                    seen |= ovf
                    k0 = wadd(k0, ovf & 1)
                    k1 = wadd(k1, (ovf >> LEAK) & 1)
                    k2 = wadd(k2, (ovf >> CHARGE) & 1)
                    k3 = wadd(k3, (ovf >> RESET) & 1)
                    k4 = wadd(k4, (ovf >> VSTAGE) & 1)
                counts[0] += k0
                counts[1] += k1
                counts[2] += k2
                counts[3] += k3
                counts[4] += k4
            if strict and seen >> STOP:
                xt = x[t, b:b + m]
                for n in range(m):
                    ovf = stepper(code, c, prev[n], xt[n])[2] >> STOP
                    if ovf:
                        err[0], err[1], err[2] = ovf, t0 + t, b + n
                        return


def _generic(float32: bool):
    source = SOURCE
    if float32:
        def run_generic_f32(code, c, x, v, out, vt, spikes, counts, err, t0, lo, hi):
            """Neurons lo..hi of a float32 spec; ``code`` and ``c`` read at run time."""
            source  # noqa: B018  (part of the cache key)
            _columns(step_f32, code, c, x, v, out, vt, spikes, counts, err, t0, lo, hi)

        return compile_kernel(run_generic_f32)

    def run_generic_int(code, c, x, v, out, vt, spikes, counts, err, t0, lo, hi):
        """Neurons lo..hi of an integer spec; ``code`` and ``c`` read at run time."""
        source  # noqa: B018  (part of the cache key)
        _columns(step_int, code, c, x, v, out, vt, spikes, counts, err, t0, lo, hi)

    return compile_kernel(run_generic_int)


# The generic kernel, one per datapath half: a command compiles only the half its specs use (an integer spec never
# waits for the float32 step's compile), once per lane type.
run_generic_int, run_generic_f32 = _generic(False), _generic(True)
_entries: dict = {}  # id(c) -> (c, the generic kernel's compiled entry point for c's type)


def generic_kernel(code: int):
    """The generic kernel (a Numba dispatcher) that runs specs of mode ``code``: the integer or the float32 one."""
    return run_generic_f32 if code & FLOAT32 else run_generic_int


def call_generic(code: int, c, x32, v64, o64, t64, spikes, counts, err, t0: int, lo: int, hi: int) -> None:
    """The generic kernel on int32 ``x32`` (T, N), int64 ``v64`` (N,), int64 ``o64``/``t64`` and bool ``spikes``
    (T, N), every array C-contiguous (the callers make them so).

    Numba's dispatcher types each argument on every call, and typing ``c`` (a tuple of fourteen numbers and a
    type) costs ~50 µs: most of a small run. After the first call with a given ``c``, this calls the compiled
    overload for its types directly (the arrays' types are fixed by the contract above).
    """
    hit = _entries.get(id(c))
    if (hit is not None and hit[0] is c and x32.flags.c_contiguous and v64.flags.c_contiguous
            and o64.flags.c_contiguous and t64.flags.c_contiguous and spikes.flags.c_contiguous):
        return hit[1](code, c, x32, v64, o64, t64, spikes, counts, err, t0, lo, hi)
    args = (code, c, x32, v64, o64, t64, spikes, counts, err, t0, lo, hi)
    kernel = generic_kernel(code)
    kernel(*args)  # the dispatcher: compiles, or checks the types
    overload = kernel.overloads.get(tuple(kernel.typeof_pyval(a) for a in args))
    if overload is not None and all(a.flags.c_contiguous for a in args[2:9]):
        _entries[id(c)] = (c, overload.entry_point)


def generic(code: int, c):
    """``f(x, v, out, vt, spikes, counts, err, t0)`` on the generic kernel, any dtypes (converted around it)."""
    def run(x, v, out, vt, spikes, counts, err, t0):
        x32 = np.ascontiguousarray(x, np.int32)
        v64 = v if v.dtype == np.int64 else v.astype(np.int64)
        o64, t64 = np.empty(out.shape, np.int64), np.empty(vt.shape, np.int64)
        call_generic(code, c, x32, v64, o64, t64, spikes, counts, err, t0, 0, x.shape[1])
        out[...], vt[...] = o64, t64
        if v64 is not v:
            v[:] = v64

    return run


_made: dict = {}  # (code, c) -> the specialised kernel this process has made
_by_id: dict = {}  # id(c) -> (c, kernel): the same lookup without hashing c's fifteen numbers each run


def specialised(code: int, c):
    """``f(x, v, out, vt, spikes, counts, err, t0, lo, hi)`` compiled for this spec's code and constants.

    ``v`` is in the potential format's dtype, ``out`` and ``vt`` in the output and potential formats'.
    Each compiles only the half of the datapath its spec uses (two closures: the cache key must hold
    nothing but plain values).
    """
    kernel = _made.get((code, c))
    if kernel is None:
        kernel = _made[code, c] = _specialise(code, c)
    _by_id[id(c)] = (c, kernel)
    return kernel


def has_specialised(code: int, c) -> bool:
    """Whether this process has made the specialised kernel of (code, c) (so taking it costs no compile)."""
    return _made_for(code, c) is not None


def _made_for(code: int, c):
    """The specialised kernel of (code, c) if this process has made it, else None."""
    hit = _by_id.get(id(c))
    if hit is not None and hit[0] is c:
        return hit[1]
    kernel = _made.get((code, c))
    if kernel is not None:
        _by_id[id(c)] = (c, kernel)
    return kernel


def _specialise(code: int, c, cache: bool = True):
    source = SOURCE
    if code & FLOAT32:
        def run_float32(x, v, out, vt, spikes, counts, err, t0, lo, hi):
            source  # noqa: B018
            _columns(step_f32, code, c, x, v, out, vt, spikes, counts, err, t0, lo, hi)

        return compile_kernel(run_float32, cache)

    def run_int(x, v, out, vt, spikes, counts, err, t0, lo, hi):
        source  # noqa: B018
        _columns(step_int, code, c, x, v, out, vt, spikes, counts, err, t0, lo, hi)

    return compile_kernel(run_int, cache)


def uncached(code: int, c):
    """A freshly compiled specialised kernel of (code, c), never read from or written to the disk cache
    (to inspect its machine code, or to time its compile)."""
    return _specialise(code, c, cache=False)


_pool = None


def _pool_for(threads: int):
    """The process's worker threads (created on first use)."""
    global _pool
    if _pool is None or _pool._max_workers < threads:
        _pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="golden")
    return _pool


def _threaded(kernel, parts):
    """``kernel`` on ``parts`` column ranges at once (it releases the GIL); overflow counts summed."""
    pool = _pool_for(parts)

    def run(x, v, out, vt, spikes, counts, err, t0):
        n = x.shape[1]
        cuts = [n * i // parts for i in range(parts + 1)]
        partial = np.zeros((parts, counts.shape[0]), np.int64)
        jobs = [pool.submit(kernel, x, v, out, vt, spikes, partial[i], err, t0, cuts[i], cuts[i + 1])
                for i in range(1, parts)]
        kernel(x, v, out, vt, spikes, partial[0], err, t0, cuts[0], cuts[1])
        for j in jobs:
            j.result()
        counts += partial.sum(axis=0)

    return run


def _native(kernel):
    """``kernel`` with the state converted to the potential format's dtype (that of ``vt``) and back."""
    def run(x, v, out, vt, spikes, counts, err, t0):
        state = v if v.dtype == vt.dtype else v.astype(vt.dtype)
        kernel(x, state, out, vt, spikes, counts, err, t0)
        if state is not v:
            v[:] = state

    return run


def pick(code: int, c, n_neurons: int, n_steps: int, parallel: bool | None = None, threads: int | None = None):
    """The kernel for a run, as ``f(x, v, out, vt, spikes, counts, err, t0)``; ``v`` of any integer dtype.

    Specialised when the run is large enough to pay for its compile, or when this process already
    has the spec's specialised kernel; generic otherwise (a property campaign's many small specs).
    Split over threads for wide layers (never under a strict policy, which stops in time order).
    ``parallel`` forces the choice: True = specialised and threaded, False = the generic kernel.
    ``threads``: how many threads a wide layer is split over (default :data:`THREADS`).
    """
    threads = THREADS if threads is None else threads
    if parallel is False:
        return generic(code, c)
    kernel = _made_for(code, c)
    if kernel is None:
        if parallel is None and n_neurons * n_steps < SPECIALISE_AT:
            return generic(code, c)
        kernel = specialised(code, c)
    if (parallel or n_neurons >= PARALLEL_AT) and threads > 1 and not (code & STRICT_MASK):
        return _native(_threaded(kernel, threads))
    return _native(lambda x, *a: kernel(x, *a, 0, x.shape[1]))
