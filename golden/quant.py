"""The requantization primitive in plain Python, on exact integers: wrap, narrow, round, rescale.

Every quantizer golden models is ``N(R(n, s))``: ``R`` moves a raw value ``n`` from frac ``F`` to
``F - s`` (a rounding right shift for ``s > 0``, a left shift for ``s <= 0``), ``N`` fits it into a
signed width (saturate or wrap). This module states both once, from the definitions (Python ints and
:class:`fractions.Fraction`, no shifts of negative numbers to reason about), for the two executable
references: :mod:`golden.reference` (a neuron layer) and :mod:`golden.network.reference` (a network
layer). The fast paths state the same in Numba, each specialised to its engine:
:mod:`golden.network.kernels` (int64 rows) and :mod:`golden.datapath` (lane-typed neuron state); the
property tests hold each equal to these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

from .spec import Overflow, Round


def wrap(n: int, bits: int) -> int:
    """``n`` wrapped to a signed ``bits``-wide integer (two's complement)."""
    lo = -(1 << (bits - 1))
    return (n - lo) % (1 << bits) + lo


def narrow(n: int, bits: int, policy: Overflow) -> tuple[int, bool]:
    """(``n`` fitted into a signed ``bits``-wide integer, whether it had to be).

    ``saturate`` and ``strict`` clamp (strict: the caller stops the run), ``wrap`` wraps.
    """
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lo <= n <= hi:
        return n, False
    if policy == Overflow.WRAP:
        return wrap(n, bits), True
    return min(max(n, lo), hi), True


def round_rational(q: Fraction, mode: Round) -> int:
    """An exact rational rounded to an integer by a Xilinx-named mode."""
    lo = math.floor(q)
    frac = q - lo
    if frac == 0:
        return lo
    hi = lo + 1
    toward_zero = hi if q < 0 else lo
    away = lo if q < 0 else hi
    if mode == Round.TRN:
        return lo
    if mode == Round.TRN_INF:
        return hi
    if mode == Round.TRN_ZERO:
        return toward_zero
    half = Fraction(1, 2)
    if frac != half:
        return hi if frac > half else lo
    return {Round.RND: hi, Round.RND_MIN_INF: lo, Round.RND_ZERO: toward_zero, Round.RND_INF: away,
            Round.RND_CONV: lo if lo % 2 == 0 else hi}[Round(mode)]


def exact(n: int) -> int:
    """The accumulator of :func:`rescale` when nothing narrows there."""
    return n


def rescale(n: int, s: int, mode: Round, acc: Callable[[int], int] = exact) -> int:
    """``R(n, s)``: ``n * 2**-s`` rounded by ``mode``, the way hardware computes it.

    ``s <= 0``: ``n << -s``, held in the accumulator. ``RND`` adds half an LSB in the accumulator,
    then floors (so the sum may wrap or saturate there: number.hh ``scale`` on a LONG_NUMBER_T);
    every other mode rounds the exact ``n / 2**s``. ``acc`` is how the accumulator holds a value
    (e.g. ``lambda m: wrap(m, 32)``; default: exactly).
    """
    if s <= 0:
        return acc(n * 2 ** -s)
    if mode == Round.RND:
        return math.floor(Fraction(acc(n + 2 ** (s - 1)), 2 ** s))
    return round_rational(Fraction(n, 2 ** s), mode)
