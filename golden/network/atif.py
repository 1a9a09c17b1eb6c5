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
``v_threshold = C`` and ``spike_out = Qact(Qv(vth))``.
"""

from __future__ import annotations

import math

import numpy as np

from ..spec import QFormat, quantize_real
from .layers import QUALIA_ROUNDS, NetworkError


def atif_threshold(vth: float, fmt_v: QFormat, rnd: str) -> tuple[int, int]:
    """(C, Qv(vth) raw): the fire/reset threshold on raw potentials, and the quantized threshold."""
    V = np.arange(fmt_v.min, fmt_v.max + 1, dtype=np.int64)
    v = V.astype(np.float32) * np.float32(math.ldexp(1.0, -fmt_v.frac))
    d = (v - np.float32(vth)).astype(np.float32)
    f = quantize_real(d, fmt_v, rnd)
    fired = f >= 0
    if not fired.any():
        raise NetworkError(f"v_threshold {vth!r}: no potential in {fmt_v} ever fires it")
    c = int(V[fired].min())
    if c <= 0:
        raise NetworkError(f"v_threshold {vth!r}: fires at potential {c} <= 0 in {fmt_v}; it must be positive")
    if not np.array_equal(fired, V >= c) or not np.array_equal(f[fired], V[fired] - c):
        raise NetworkError(f"v_threshold {vth!r}: float32 rounding of v - v_threshold in {fmt_v} makes the reset "
                           f"non-affine; no integer threshold reproduces it")
    return c, int(quantize_real(np.float32(vth), fmt_v, rnd))


def closed_form(theta: float, roundtype: str) -> tuple[int, int]:
    """The same two integers in closed form (float32 exactness assumed), for the documentation and tests."""
    if roundtype == "nearest":
        return math.ceil(theta - 0.5), math.floor(theta + 0.5)
    if roundtype == "floor":
        return math.ceil(theta), math.floor(theta)
    return math.floor(theta), math.ceil(theta)


def neuron_spec(m, where: str, profile: str = "torch-eval"):
    """The :class:`golden.Spec` of a Qualia quantized neuron module; ATIF with its threshold as held."""
    from ..torch_bridge import TorchBridgeError, _kind, _quantizer_format, from_torch

    try:
        if _kind(m) != "ATIF":
            return from_torch(m, profile)
        bits, q_v, rv = _quantizer_format(m, "quantizer_v", profile)
        bits_o, q_o, ro = _quantizer_format(m, "quantizer_act", profile)
        if m.v_threshold.numel() != 1:
            raise NetworkError(f"{where}: v_threshold holds {m.v_threshold.numel()} values; golden needs one")
        vth = float(m.v_threshold.detach().reshape(()))
        fmt_v = QFormat(bits, q_v)
        c, qvth = atif_threshold(vth, fmt_v, QUALIA_ROUNDS[rv])
        spec = from_torch(m, profile, v_threshold=fmt_v.real(c))
        out = int(quantize_real(fmt_v.real(qvth), QFormat(bits_o, q_o), QUALIA_ROUNDS[ro]))
        return spec.replace(spike_out=out)
    except (TorchBridgeError, NetworkError) as e:
        msg = str(e)
        raise NetworkError(msg if msg.startswith(where) else f"{where}: {msg}") from None
