"""QuantizedATIF as models hold it: a learned threshold off the q_v grid, reproduced, not refused.

The layer (qualia-plugin-snn 2.6, with its missing ``vp_th`` read as ``v_threshold``)
steps ``v = Qv(Qv(v) + x)``, fires on ``Qv(v - vth) >= 0`` with the *unquantized*
float32 threshold, resets to ``Qv(v - vth)`` and outputs ``Qact(z * Qv(vth))``.

On the integer potential V (v = V * 2**-q) the fire test and the reset are one
integer threshold ``C``: ``Qv(v - vth) = V - C`` whenever it is >= 0, and < 0
exactly when ``V < C``. :func:`atif_threshold` finds C by evaluating the float32
expression on every V of the format (so float32 rounding of ``v - vth`` is
honoured, not assumed away) and checks that it is that affine map. Writing
theta = vth * 2**q (off the grid: not an integer), float32-exact:

- 'nearest': C = ceil(theta - 1/2), output value Qv(vth) = floor(theta + 1/2);
  they differ (by one LSB) exactly when theta sits on a tie (theta - 1/2 integer);
- 'floor':   C = ceil(theta),       output floor(theta): always one LSB apart;
- 'ceil':    C = floor(theta) (ceil(V - theta) >= 0 iff V > theta - 1), output ceil(theta):
  one LSB apart off the grid.

Integer hardware for such a layer holds two constants: the fire/reset threshold C
and the graded output Qact(Qv(vth)); the golden spec is the ATIF spec with
``v_threshold = C`` and ``spike_out = Qact(Qv(vth))`` (built by :mod:`golden.qualia.neurons`).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import TorchBridgeError
from ..spec import QFormat, quantize_real


def atif_threshold(vth: float, fmt_v: QFormat, rnd: str) -> tuple[int, int]:
    """(C, Qv(vth) raw): the fire/reset threshold on raw potentials, and the quantized threshold."""
    V = np.arange(fmt_v.min, fmt_v.max + 1, dtype=np.int64)
    v = V.astype(np.float32) * np.float32(math.ldexp(1.0, -fmt_v.frac))
    d = (v - np.float32(vth)).astype(np.float32)
    f = quantize_real(d, fmt_v, rnd)
    fired = f >= 0
    if not fired.any():
        raise TorchBridgeError(f"v_threshold {vth!r}: no potential in {fmt_v} ever fires it")
    c = int(V[fired].min())
    if c <= 0:
        raise TorchBridgeError(f"v_threshold {vth!r}: fires at potential {c} <= 0 in {fmt_v}; it must be positive")
    if not np.array_equal(fired, V >= c) or not np.array_equal(f[fired], V[fired] - c):
        raise TorchBridgeError(f"v_threshold {vth!r}: float32 rounding of v - v_threshold in {fmt_v} makes the reset "
                           f"non-affine; no integer threshold reproduces it")
    return c, int(quantize_real(np.float32(vth), fmt_v, rnd))


def closed_form(theta: float, roundtype: str) -> tuple[int, int]:
    """The same two integers in closed form (float32 exactness assumed), for the documentation and tests."""
    if roundtype == "nearest":
        return math.ceil(theta - 0.5), math.floor(theta + 0.5)
    if roundtype == "floor":
        return math.ceil(theta), math.floor(theta)
    return math.floor(theta), math.ceil(theta)
