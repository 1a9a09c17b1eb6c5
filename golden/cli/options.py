"""What every ``golden`` subcommand shares: a parser whose errors are one line, typed values, the layer options.

The layer options (``--kind``, ``--bits``, ``--q-v``, ``--tau``, ...) describe one layer by its real values,
the same for every profile; :func:`layer_params` turns them into one profile's keyword arguments.
``golden spec new``, ``golden diff`` and ``tools/quirks.py`` use them.
"""

from __future__ import annotations

import argparse
import math

from ..errors import GoldenError
from ..spec import QUALIA_ROUND, Kind


class UsageError(GoldenError, ValueError):
    """A command line that does not parse: one line, exit 2 (``golden.cli.main``)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`UsageError` (one line) instead of printing usage and exiting."""

    def error(self, message):
        where = self.prog.removeprefix("golden").strip()
        raise UsageError(f"{where + ': ' if where else ''}{message} (see {self.prog} --help)")


def _typed(name: str, convert, test, expected: str):
    def parse(text: str):
        try:
            value = convert(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = name
    return parse


positive_int = _typed("positive_int", int, lambda v: v >= 1, "a positive integer")
natural_int = _typed("natural_int", int, lambda v: v >= 0, "an integer >= 0")
positive_float = _typed("positive_float", float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
finite_float = _typed("finite_float", float, math.isfinite, "a finite number")
FLOAT32_MAX = 3.4028234663852886e38
# a layer's real values go through Qualia's float32 quantizers: beyond float32 they are infinities, refused here
real32 = _typed("real32", float, lambda v: math.isfinite(v) and abs(v) <= FLOAT32_MAX,
                "a finite number within float32's range (|x| <= 3.4e38)")
positive_real32 = _typed("positive_real32", float, lambda v: math.isfinite(v) and 0 < v <= FLOAT32_MAX,
                         "a finite number > 0 within float32's range (<= 3.4e38)")


def kind(text: str) -> str:
    """A neuron kind, any case (``lif`` is ``LIF``)."""
    try:
        return Kind.parse(text, "--kind", any_case=True).value
    except GoldenError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_layer_options(p, *, round_help: str = "quantizer roundtype: nearest|floor|ceil (hardware: a Xilinx mode "
                                                 "such as RND, RND_CONV; nearest/floor/ceil map to RND/TRN/TRN_INF)"):
    """The profile-independent layer options (real values), on parser or argument group ``p``."""
    p.add_argument("--kind", type=kind, default="LIF", help="neuron kind: " + " | ".join(k.value for k in Kind))
    p.add_argument("--bits", type=positive_int, default=8, help="Qualia quantizer bits (default 8)")
    p.add_argument("--width", type=positive_int, help="codegen: NUMBER_T width (default --bits)")
    p.add_argument("--long-width", type=positive_int, help="codegen: LONG_NUMBER_T width (default 2*width)")
    p.add_argument("--q-v", type=int, default=6, help="frac of the potential (default 6)")
    p.add_argument("--q-in", type=int, help="frac of the input (default q_v)")
    p.add_argument("--q-out", type=int, help="frac of the output (default: the profile's)")
    p.add_argument("--tau", type=positive_real32, default=2.0, help="LIF time constant (default 2)")
    p.add_argument("--v-threshold", type=real32, default=1.0)
    p.add_argument("--v-reset", type=real32, default=0.0)
    p.add_argument("--soft", action="store_true", help="soft reset: subtract the threshold (ATIF always does)")
    p.add_argument("--no-decay-input", action="store_true", help="LIF: the input is not divided by tau")
    p.add_argument("--round", help=round_help)


def layer_params(profile: str, a) -> dict:
    """The keyword arguments of ``profiles.make(profile, a.kind, ...)`` from the layer options ``a``."""
    p = {"q_v": a.q_v, "q_in": a.q_in, "q_out": a.q_out, "v_threshold": a.v_threshold,
         "v_reset": None if (a.soft or Kind(a.kind).soft_reset_only) else a.v_reset}
    if Kind(a.kind).has_leak:
        p.update(tau=a.tau, decay_input=not a.no_decay_input)
    if profile == "codegen":
        p.update(width=a.width or a.bits, long_width=a.long_width, round=a.round)
        if a.width and a.width != a.bits:
            p.update(bits=a.bits)
    elif profile == "hardware":
        p.update(bits=a.bits, round=QUALIA_ROUND.get(a.round, a.round))
    else:
        p.update(bits=a.bits, round=a.round)
    return {k: v for k, v in p.items() if v is not None or k == "v_reset"}


class OutputError(GoldenError, OSError):
    """An output that cannot be written (nothing is left half-written)."""
