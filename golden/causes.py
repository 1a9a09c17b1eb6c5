"""Why two datapaths of one model part: the one cause vocabulary and the one attribution engine.

``golden diff`` (one layer, :mod:`golden.diff`), ``golden diff --exhaustive`` / ``golden prove --against SPEC``
(:func:`golden.prove.divergence_map`) and ``golden diff --net-a --net-b`` (:mod:`golden.network.diff`) all
explain a divergence the same way: spec b is re-run with the knobs of one :class:`Cause` switched toward spec a;
the cause of a differing value is the first knob set, by size then in :data:`CAUSES` order, whose alignment
restores a's value there (a single specific knob wins over a broad one: "leak rounding" switches the whole
arithmetic). Several knobs at once read ``"init potential + TMP shift"``; no set: :data:`UNEXPLAINED`.

The engine (:func:`attribute`) only needs the candidate variants and a test "does this variant restore these
items"; each caller supplies those for its items (neurons of a stimulus, ``(v, x)`` pairs, a network value).
A network layer that is not a neuron has its accumulator width (``acc_bits``, :data:`WIDTH`) and, for a BatchNorm,
its arithmetic (torch's float32 or the C's integers, :data:`F32_ARITH`).

:class:`FirstDivergence` is the one record of where two runs first part, for a layer and for a network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .errors import GoldenError
from .spec import QFormat, Spec, SpecError

__all__ = ["CAUSES", "F32_ARITH", "HYPER", "INIT", "LEAK", "ORDER", "SPIKE", "TMP", "UNEXPLAINED", "WIDTH", "Cause",
           "FirstDivergence", "Steps", "aligned", "attribute", "canonical", "differing", "spec_variants"]

UNEXPLAINED = "unexplained"  # no knob set restores a's value


# ------------------------------------------------------------------------------------------------------ knobs
def _align_init(a: Spec, b: Spec) -> Spec:
    return b.replace(v_init=a.v_init)


def _align_spike(a: Spec, b: Spec) -> Spec:
    return b.replace(fmt_out=a.fmt_out, spike_out=a.spike_out)


def _align_tmp(a: Spec, b: Spec) -> Spec:
    return b.replace(leak_shift=a.leak_shift)


def _align_width(a: Spec, b: Spec) -> Spec:
    acc_bits = a.acc_bits if a.arith == "int" else 64
    acc_overflow = a.acc_overflow if a.arith == "int" else "wrap"
    fmt_v = QFormat(a.fmt_v.bits, b.fmt_v.frac)
    return b.replace(acc_bits=max(acc_bits, fmt_v.bits, b.fmt_in.bits), acc_overflow=acc_overflow,
                     v_overflow=a.v_overflow, fmt_v=fmt_v)


def _align_order(a: Spec, b: Spec) -> Spec:
    return b.replace(order=a.order)


def _align_leak(a: Spec, b: Spec) -> Spec:
    return b.replace(arith=a.arith, charge_form=a.charge_form)


def _align_hyper(a: Spec, b: Spec) -> Spec:
    if a.fmt_v.frac != b.fmt_v.frac:
        raise SpecError("hyperparameters are at different scales")
    return b.replace(v_threshold=a.v_threshold, v_reset=a.v_reset, reciprocal_tau=a.reciprocal_tau)


@dataclass(frozen=True)
class Cause:
    """One known reason two datapaths part, and the spec knobs that switch it.

    ``align(a, b)`` is ``b`` with this cause's knobs taken from ``a`` (SpecError when that makes no valid spec);
    ``knobs`` are the :class:`~golden.spec.Spec` fields it changes; ``layer_knobs`` the fields of a network layer
    that is not a neuron (only the accumulator width has one); ``aliases`` the names earlier releases printed.
    """

    name: str
    why: str
    knobs: tuple
    align: Callable = dataclasses.field(repr=False, compare=False)
    layer_knobs: tuple = ()
    aliases: tuple = ()

    def __str__(self) -> str:
        return self.name


INIT = Cause("init potential", "Qualia starts at v_reset, the C at 0", ("v_init",), _align_init)
SPIKE = Cause("spike-value clamp", "the C's clamp(1 << q_out), wrapped to LONG_NUMBER_T, vs Qualia's quantize(1.0)",
              ("fmt_out", "spike_out"), _align_spike)
TMP = Cause("TMP shift", "the C shifts the leak product by max(q_in, q_v), not q_v", ("leak_shift",), _align_tmp,
            aliases=("TMP leak shift",))
WIDTH = Cause("saturation width", "LONG_NUMBER_T wraps (an accumulator or the potential's arithmetic); "
              "an int16 C of an 8-bit model saturates later", ("acc_bits", "acc_overflow", "v_overflow", "fmt_v"),
              _align_width, layer_knobs=("acc_bits",), aliases=("LONG wrap",))
ORDER = Cause("compare-before-round", "the spike test on the rounded (QAT) or the unrounded potential", ("order",),
              _align_order)
LEAK = Cause("leak rounding", "float32 division by tau, spike test on the unrounded potential, vs an integer leak "
             "product rounded to the working scale", ("arith", "charge_form"), _align_leak,
             aliases=("LIF compare-before-round",))
HYPER = Cause("hyperparameter rounding", "v_threshold / v_reset / 1/tau held as different raw values (e.g. tau "
              "re-quantized at calibration)", ("v_threshold", "v_reset", "reciprocal_tau"), _align_hyper,
              aliases=("tau re-quantized",))



def _layer_only(a: Spec, b: Spec) -> Spec:
    raise SpecError("a knob of a network layer's arithmetic, not of a neuron spec")


F32_ARITH = Cause("float32 arithmetic", "torch's float32 BatchNorm (x * alpha and + beta each rounded to float32, its "
                  "quantizer's float32 y * 2**q + 1/2) vs the C's exact integer product and sum", (), _layer_only,
                  layer_knobs=("arith", "acc_bits", "acc_overflow", "tmp_frac", "out_overflow"))

#: every known cause, in attribution order (most specific first)
CAUSES = (INIT, SPIKE, TMP, WIDTH, ORDER, LEAK, HYPER, F32_ARITH)
_BY_NAME = {n: c.name for c in CAUSES for n in (c.name, *c.aliases)} | {UNEXPLAINED: UNEXPLAINED, "other": UNEXPLAINED}


def canonical(label: str) -> str:
    """``label`` (a cause, an alias, or causes joined by ``" + "``) in today's names and attribution order;
    SpecError naming the known causes when a part is none of them."""
    parts = [p.strip() for p in str(label).split("+")]
    try:
        names = [_BY_NAME[p] for p in parts]
    except KeyError:
        bad = next(p for p in parts if p not in _BY_NAME)
        raise SpecError(f"cause: unknown cause {bad!r} (known: {', '.join(c.name for c in CAUSES)}, "
                        f"{UNEXPLAINED}; join several with ' + ')") from None
    if UNEXPLAINED in names and len(names) > 1:
        raise SpecError(f"cause: {UNEXPLAINED!r} is not combined with another cause")
    order = {c.name: i for i, c in enumerate(CAUSES)}
    return " + ".join(sorted(dict.fromkeys(names), key=lambda n: order.get(n, len(order))))


# ------------------------------------------------------------------------------------------------------ engine
def differing(a: Spec, b: Spec) -> list:
    """The causes whose alignment changes ``b`` (and makes a valid spec), in attribution order."""
    out = []
    for c in CAUSES:
        try:
            b2 = c.align(a, b)
        except SpecError:
            continue
        if any(getattr(b2, f) != getattr(b, f) for f in c.knobs):
            out.append(c)
    return out


def aligned(a: Spec, b: Spec, causes: Iterable[Cause]) -> Spec | None:
    """``b`` with every knob of ``causes`` taken from ``a`` (in attribution order), or None if no valid spec."""
    try:
        for c in causes:
            b = c.align(a, b)
    except SpecError:
        return None
    return b


def spec_variants(a: Spec, b: Spec) -> Iterator[tuple[str, Spec]]:
    """(label, b with those causes aligned to a) for every set of :func:`differing` causes: by size, then in
    attribution order; sets that make no valid spec are skipped."""
    knobs = differing(a, b)
    for size in range(1, len(knobs) + 1):
        for combo in combinations(knobs, size):
            b2 = aligned(a, b, combo)
            if b2 is not None:
                yield " + ".join(c.name for c in combo), b2


def attribute(todo: np.ndarray, variants: Iterable, restores: Callable) -> tuple[np.ndarray, list]:
    """The one attribution engine: per item, the first variant that restores a's value there.

    ``todo``: bool mask of the items that differ. ``variants``: (label, variant) in priority order.
    ``restores(variant, idx) -> bool mask`` over the item indices ``idx`` (a GoldenError, e.g. a spec, network or
    format refusing the variant, means the variant cannot run: it restores nothing).
    Returns (``code`` int16 per item: 0 where it does not differ, else 1 + the index in ``labels``; ``labels``:
    the labels that won some item, in priority order, :data:`UNEXPLAINED` last when some item has none).
    """
    todo = np.asarray(todo, bool).copy()
    code = np.zeros(todo.shape, np.int16)
    labels: list = []
    for label, variant in variants:
        if not todo.any():
            break
        idx = np.nonzero(todo)[0]
        try:
            ok = np.asarray(restores(variant, idx), bool)
        except GoldenError:
            continue
        if ok.any():
            labels.append(label)
            code[idx[ok]] = len(labels)
            todo[idx[ok]] = False
    if todo.any():
        labels.append(UNEXPLAINED)
        code[todo] = len(labels)
    return code, labels


# ------------------------------------------------------------------------------------------------------ record
@dataclass(frozen=True)
class Steps:
    """One neuron's run over steps 0..t: raw inputs (spec a's input format), real potentials, spikes, outputs."""

    x: tuple
    a_v: tuple
    b_v: tuple
    a_spikes: tuple
    b_spikes: tuple
    a_out: tuple
    b_out: tuple


@dataclass(frozen=True)
class FirstDivergence:
    """Where two runs first part: the lowest step, then (networks) the lowest layer, then the lowest index.

    ``a`` / ``b`` are both sides' values of the first differing field there (raw integers for a network layer's
    output, reals for a single layer, whose formats may differ). A single layer also carries the neuron's
    ``history`` (steps 0..t) and the ``minimal`` input sequence the shrinker found that still diverges for the
    same cause (with ``shrink_evaluations`` candidates tried).
    """

    t: int
    index: tuple
    fields: tuple  # which of "spike", "v", "out" differ at step t
    a: float | int
    b: float | int
    cause: str
    sample: int | None = None
    layer: str | None = None
    history: Steps | None = None
    minimal: Steps | None = None
    shrink_evaluations: int = 0

    @property
    def neuron(self) -> int:
        """The (flat) neuron index of a single layer."""
        return self.index[0]

    def to_dict(self) -> dict:
        """JSON-ready: tuples as lists, the fields a network or a layer does not have left out."""
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()
                if v is not None and not (k == "shrink_evaluations" and self.minimal is None)}
