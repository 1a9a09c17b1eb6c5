"""The kernel family: loops over time and neurons around :func:`golden.datapath.step`.

There is one family. For large runs, ``literally(code)`` makes Numba compile
(and cache on disk) one machine-code specialisation per spec's choices; the
serial and parallel kernels share the same blocked loop body. Small runs use
the generic kernel, which reads ``code`` at run time, so that one compile
serves every spec (property tests, per-cycle testbenches). Inputs are
time-major ``(T, N)``; state is ``O(N)``.
"""

from __future__ import annotations

import numpy as np
from numba import literally, njit, prange

from .datapath import step

BLOCK = 4096  # neurons per block: a block's state stays in L1/L2 while t advances
STRICT_MASK = (2 << 11) | (2 << 13)  # v_overflow or acc_overflow == strict
ACC_STAGES, V_STAGE = 0b01111, 0b10000  # overflow-stage bits governed by acc_overflow and by v_overflow


@njit
def _block(code, c, x, v, out, vt, spikes, counts, err, lo, hi, t0, strict):
    """Neurons lo..hi over every step. ``strict``: the stage bits whose overflow stops the run (err = bits, t, n)."""
    for t in range(x.shape[0]):
        for n in range(lo, hi):
            v1, s, ovf = step(code, c, np.int64(v[n]), np.int64(x[t, n]))
            v[n] = v1
            out[t, n] = c.spike_out if s else 0
            vt[t, n] = v1
            spikes[t, n] = s
            if ovf != 0:
                for k in range(counts.shape[0]):
                    counts[k] += (ovf >> k) & 1
                if ovf & strict:
                    err[0], err[1], err[2] = ovf & strict, t0 + t, n
                    return


@njit
def _serial(code, c, x, v, out, vt, spikes, counts, err, t0):
    # Strict policies stop at the first overflow in time order, so they run time-major in one block.
    strict = ACC_STAGES * (((code >> 13) & 3) == 2) | V_STAGE * (((code >> 11) & 3) == 2)
    n = x.shape[1]
    block = max(n, 1) if strict else BLOCK
    for lo in range(0, n, block):
        _block(code, c, x, v, out, vt, spikes, counts, err, lo, min(lo + block, n), t0, strict)
        if err[0] >= 0:
            return


@njit(cache=True, nogil=True)
def run_serial(code, c, x, v, out, vt, spikes, counts, err, t0):
    """All neurons, block by block, on one thread; ``code`` read at run time (one compile serves every spec).

    Stops at the first overflow of a strict policy (err = stage, t, neuron).
    """
    _serial(code, c, x, v, out, vt, spikes, counts, err, t0)


@njit(cache=True, nogil=True)
def run_serial_specialised(code, c, x, v, out, vt, spikes, counts, err, t0):
    """The same, compiled (and cached on disk) for this ``code``: every mode test folds away."""
    literally(code)
    _serial(code, c, x, v, out, vt, spikes, counts, err, t0)


@njit(cache=True, nogil=True, parallel=True)
def run_parallel(code, c, x, v, out, vt, spikes, counts, err, t0):
    """Specialised for ``code``; blocks of neurons spread over threads, overflow counts summed per block."""
    literally(code)
    n = x.shape[1]
    nblocks = (n + BLOCK - 1) // BLOCK
    partial = np.zeros((nblocks, counts.shape[0]), np.int64)
    for b in prange(nblocks):
        lo = b * BLOCK
        _block(code, c, x, v, out, vt, spikes, partial[b], err, lo, min(lo + BLOCK, n), t0, 0)
    for b in range(nblocks):
        for k in range(counts.shape[0]):
            counts[k] += partial[b, k]


SPECIALISE_AT = 1 << 20  # neuron-steps: above this, a ~1 s specialising compile (cached on disk) pays off


def pick(n_neurons: int, n_steps: int, code: int):
    """The kernel for a run: generic when small, specialised when large, threaded for large layers."""
    if n_neurons >= 32 * BLOCK and not (code & STRICT_MASK):
        return run_parallel
    if n_neurons * n_steps >= SPECIALISE_AT:
        return run_serial_specialised
    return run_serial
