"""``golden prove``: exhaustive one-step equivalence, so equality on every input sequence by induction.

A neuron layer's whole state is its potential ``v``, an integer of the potential format; one step maps
``(v, x)`` to ``(v', out)``. If golden and a reference agree on one step for *every* ``(v, x)`` of the formats,
start from the same ``v0``, and the reference's state after a step is exactly the potential it reports (no hidden
float residue) with hyperparameters that do not move, then they agree on every input sequence of any length.

:func:`prove` enumerates the pairs (or only the ``v`` reachable from ``v0``), evaluates one step through golden's
kernel and through the reference, checks each precondition on the reference itself, and returns a
:class:`Certificate` (deterministic JSON). The work is a :class:`Proof` of chunks (rows of the (v, x) plane), each
a pure function of (spec, reference, chunk index) with a JSON-able result (:class:`Chunk`), merged in index
order: so a long proof can be timed from its first chunk, saved and resumed, or run chunk by chunk elsewhere.
References: ``reference`` (golden's plain-Python oracle),
``torch-eval`` / ``torch-train`` (the real Qualia module, its ``v`` set per neuron, driven in cache-sized batches),
``codegen`` (the real ``lif.cc`` / ``if.cc`` rendered from the installed packages, compiled once by gcc as a shared
library with golden's driver and undefined-behaviour replay, one call per chunk), or another
:class:`~golden.spec.Spec`. :func:`divergence_map` lists exactly where two specs differ on the whole state space,
grouped by the causes of :data:`golden.causes.CAUSES`.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from . import budget
from . import reference as _reference
from .budget import Cost
from .causes import UNEXPLAINED, attribute, spec_variants
from .errors import GoldenError
from .fileio import write_atomic
from .simulate import Runner
from .spec import QUALIA_ROUND, QFormat, Spec, SpecError, quantize_real

__all__ = ["CONFIG_FIELDS", "REFERENCES", "Certificate", "Chunk", "DivergenceMap", "Proof", "ProveError",
           "check_config", "divergence_cost", "divergence_map", "golden_step", "pairs", "plot_map", "prove",
           "reachable"]

REFERENCES = ("reference", "torch-eval", "torch-train", "codegen")
MAX_LISTED = 1000  # differing pairs listed in a certificate
MAX_ENUM_BITS = 32  # bits_v + bits_in: 4.3e9 pairs at most
CHUNK = 1 << 22  # pairs per chunk (one reference call; a whole 8-bit space is 1 << 16): 1-4 s against torch or the C
CHUNK_ORACLE = 1 << 16  # pairs per chunk against the plain-Python oracle (5-35 us per pair)
TORCH_BATCH = 1 << 18  # neurons per call of the torch module (measured fastest: 2**16 to 2**20 on one thread)
BYTES_PER_PAIR = 256  # peak memory per pair of a chunk (measured at 2**22 pairs: torch ~140, the int16 C ~240)
_ROUND_NAME = {v: k for k, v in QUALIA_ROUND.items()}  # Xilinx name -> Qualia roundtype


class ProveError(GoldenError, ValueError):
    """golden prove cannot run: the message names the cause and the fix."""


# ------------------------------------------------------------------------------------------------ enumeration
def _values(fmt: QFormat) -> np.ndarray:
    return np.arange(fmt.min, fmt.max + 1, dtype=np.int64)


def _check_enumerable(spec: Spec) -> None:
    if not isinstance(spec, Spec):
        raise ProveError(f"spec: expected a golden.Spec, got {type(spec).__name__}")
    if spec.fmt_v.bits + spec.fmt_in.bits > MAX_ENUM_BITS:
        raise ProveError(f"{spec.fmt_v} x {spec.fmt_in}: 2**{spec.fmt_v.bits + spec.fmt_in.bits} pairs is too many "
                         f"to enumerate (at most 2**{MAX_ENUM_BITS}); prove the layer at 16 bits or fewer")
    if "strict" in (spec.v_overflow, spec.acc_overflow):
        raise ProveError("overflow: a 'strict' policy stops at the first overflow, so some steps have no result; "
                         "prove the spec with 'saturate' or 'wrap'")


def pairs(spec: Spec, v_values=None) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(v, x)``: v from ``v_values`` (default the whole potential format), x the whole input format.

    v-major: pair ``i`` is ``(v_values[i // nx], x_min + i % nx)``; int64 arrays.
    """
    vs = _values(spec.fmt_v) if v_values is None else np.asarray(v_values, np.int64)
    xs = _values(spec.fmt_in)
    return np.repeat(vs, len(xs)), np.tile(xs, len(vs))


@dataclass
class Outcome:
    """One step on a batch of pairs: raw potentials and outputs (int64), spikes when the reference exposes them,
    and the pairs where the reference has no defined answer (the C's undefined behaviour)."""

    v: np.ndarray
    out: np.ndarray
    spike: np.ndarray | None = None
    undefined: np.ndarray | None = None


def golden_step(spec: Spec, v, x, *, parallel: bool | None = False) -> Outcome:
    """golden's kernel, one step from potentials ``v`` on inputs ``x`` (1-D raw arrays of equal length)."""
    v = np.asarray(v)
    x = np.asarray(x)
    for name, a, fmt in (("v", v, spec.fmt_v), ("x", x, spec.fmt_in)):
        if a.dtype.kind not in "iu" or (a.size and (a.min() < fmt.min or a.max() > fmt.max)):
            raise ProveError(f"{name}: expected raw integers in {fmt}")
    state = v.astype(np.int64)  # golden's state type (simulate's v0 casting is another fix; do it here)
    out, vt, spikes, _ = Runner(spec).run(x.astype(spec.fmt_in.dtype)[None, :], state, parallel=parallel)
    return Outcome(vt[0].astype(np.int64), out[0].astype(np.int64), spikes[0].copy())


def reachable(spec: Spec, v0: int | None = None) -> np.ndarray:
    """The potentials reachable from ``v0`` (default the spec's), by fixed-point iteration of golden's step map
    over every input; sorted int64."""
    _check_enumerable(spec)
    fmt = spec.fmt_v
    start = spec.v_start if v0 is None else int(v0)
    if not fmt.min <= start <= fmt.max:
        raise ProveError(f"v0: {start} is outside {fmt}")
    seen = np.zeros(1 << fmt.bits, bool)
    seen[start - fmt.min] = True
    frontier = np.array([start], np.int64)
    nx = 1 << spec.fmt_in.bits
    while len(frontier):
        new = []
        for lo in range(0, len(frontier), max(1, CHUNK // nx)):
            v, x = pairs(spec, frontier[lo: lo + max(1, CHUNK // nx)])
            nv = np.unique(golden_step(spec, v, x).v) - fmt.min
            nv = nv[~seen[nv]]
            seen[nv] = True
            new.append(nv + fmt.min)
        frontier = np.unique(np.concatenate(new))
    return np.nonzero(seen)[0].astype(np.int64) + fmt.min


# ------------------------------------------------------------------------------------------------ references
def versions(*names: str) -> dict:
    """The installed version of each package (None: not installed): what a certificate records."""
    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def _precondition(name: str, holds: bool, detail: str) -> dict:
    return {"name": name, "holds": bool(holds), "detail": detail}


def _same_layer(spec: Spec, ref: Spec, against: str) -> list:
    """Refuse a spec whose formats or raw hyperparameters the reference cannot hold; return the datapath knobs
    on which the reference's own spec differs (the proof then shows where that matters)."""
    for f in ("kind", "reset", "fmt_in", "fmt_v", "fmt_out", "v_threshold", "v_reset", "reciprocal_tau"):
        if getattr(spec, f) != getattr(ref, f):
            raise ProveError(f"{f}: {against} cannot represent this spec ({f} = {getattr(spec, f)}; the reference "
                             f"built from it holds {getattr(ref, f)}); pick a spec on the reference's grid")
    if spec.kind == "LIF" and spec.decay_input != ref.decay_input:  # pragma: no cover - both read the same flag
        raise ProveError("decay_input: the reference disagrees")
    knobs = ("decay_input", "spike_out", "round", "v_overflow", "acc_bits", "acc_overflow", "order", "arith",
             "leak_shift", "charge_form", "v_init")
    return [f for f in knobs if getattr(spec, f) != getattr(ref, f)]


class _Reference:
    """A reference: its name, versions, the layer config it was built from, and its one-step map."""

    name = ""
    exposes_spike = False
    residue_detail = ("on {n} pairs, a second step continuing from the reference's own state equals one step from "
                      "the potential it reported (input reversed over the enumeration)")

    def __init__(self, spec: Spec):
        self.spec = spec
        self.config: dict = {}
        self.versions: dict = {}
        self.own_spec: Spec | None = None
        self.knobs_differing: list = []
        self.notes: list = []

    def v0(self) -> int:
        return self.spec.v_start

    def step(self, v, x) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def residue(self, v, x, x2) -> tuple[Outcome, Outcome, Outcome]:
        """(one step from (v, x); a second step continuing on x2; one step from the reported potential on x2)."""
        first = self.step(v, x)
        return first, self.step(first.v, x2), self.step(first.v, x2)

    def finish(self) -> list:
        """Preconditions checked after the run (e.g. hyperparameters did not move)."""
        return []


class _Python(_Reference):
    name = "reference"
    exposes_spike = True
    residue_detail = "golden.reference.step is a pure function of (v, x) returning Python ints: no other state"

    def __init__(self, spec):
        super().__init__(spec)
        self.versions = versions("golden")
        self.own_spec = spec

    def residue(self, v, x, x2):
        first = self.step(v, x)  # a pure function of (v, x): its state is the int it returns
        return first, first, first

    def step(self, v, x):
        res = [_reference.step(self.spec, int(a), int(b)) for a, b in zip(v.tolist(), x.tolist())]
        nv = np.fromiter((r[0] for r in res), np.int64, len(res))
        spike = np.fromiter((r[1] for r in res), bool, len(res))
        return Outcome(nv, np.where(spike, self.spec.spike_out, 0).astype(np.int64), spike)


class _OtherSpec(_Reference):
    """Another spec, on the same real (v, x): its results in this spec's raw units (float64, exact)."""

    exposes_spike = True
    residue_detail = "golden's kernel takes the state as an argument: no other state"

    def __init__(self, spec, other: Spec):
        super().__init__(spec)
        if not isinstance(other, Spec):
            raise ProveError(f"against: expected a reference name or a golden.Spec, got {type(other).__name__}")
        _check_enumerable(other)
        self.other = self.own_spec = other
        self.name = f"spec {other.digest()}"
        self.versions = versions("golden")
        self.knobs_differing = [f for f in Spec.__dataclass_fields__ if not f.startswith("_") and f != "profile"
                                and getattr(spec, f) != getattr(other, f)]

    def v0(self):
        return _num(self.other.v_start * 2.0 ** (self.spec.fmt_v.frac - self.other.fmt_v.frac))

    def residue(self, v, x, x2):
        first = self.step(v, x)
        return first, first, first

    def step(self, v, x):
        a, b = self.spec, self.other
        o = golden_step(b, _convert(v, a.fmt_v, b.fmt_v, "v"), _convert(x, a.fmt_in, b.fmt_in, "x"))
        return Outcome(o.v * 2.0 ** (a.fmt_v.frac - b.fmt_v.frac), o.out * 2.0 ** (a.fmt_out.frac - b.fmt_out.frac),
                       o.spike)


def _num(value):
    """An int when the value is one (raw units), else the float."""
    return int(value) if float(value).is_integer() else float(value)


def torch_config(spec: Spec) -> dict:
    """The real Qualia layer (``golden.refs.torch_ref.make_module`` arguments) that holds this spec's formats and
    raw hyperparameters; refuses what no Qualia layer can hold."""
    for name, fmt in (("fmt_in", spec.fmt_in), ("fmt_v", spec.fmt_v), ("fmt_out", spec.fmt_out)):
        if fmt.bits > 24:
            raise ProveError(f"{name}: {fmt} is wider than float32's 24-bit mantissa; the torch layers cannot hold it")
    for name, mode in (("round", spec.round), ("round_in", spec.round_in)):
        if mode not in _ROUND_NAME:
            raise ProveError(f"{name}: {mode} is not a Qualia roundtype (nearest=RND, floor=TRN, ceil=TRN_INF); "
                             f"the torch layers cannot round that way")
    v = spec.fmt_v
    spike_real = v.real(spec.v_threshold) if spec.kind == "ATIF" else 1.0
    outs = [r for r in ("nearest", "floor", "ceil")
            if int(quantize_real(spike_real, spec.fmt_out, QUALIA_ROUND[r])) == spec.spike_out]
    pref = _ROUND_NAME[spec.round]
    round_out = pref if pref in outs or not outs else outs[0]
    return {"kind": spec.kind, "bits_in": spec.fmt_in.bits, "q_in": spec.fmt_in.frac, "bits_v": v.bits,
            "q_v": v.frac, "bits_out": spec.fmt_out.bits, "q_out": spec.fmt_out.frac,
            "round_in": _ROUND_NAME[spec.round_in], "round_v": pref, "round_out": round_out,
            "tau": 1.0 / v.real(spec.reciprocal_tau) if spec.kind == "LIF" else None,
            "v_threshold": v.real(spec.v_threshold),
            "v_reset": None if spec.reset == "soft" else v.real(spec.v_reset), "decay_input": spec.decay_input}


REAL = (int, float, type(None))
_Q, _BITS, _ROUNDS = range(-64, 65), range(1, 25), ("nearest", "floor", "ceil")
CONFIG_FIELDS = {  # reference stack -> field -> (its type, its allowed values; reals: finite, within 1e30)
    "torch": {"kind": (str, ("IF", "LIF", "ATIF")), "bits_in": (int, _BITS), "q_in": (int, _Q),
              "bits_v": (int, _BITS), "q_v": (int, _Q), "bits_out": (int, _BITS), "q_out": (int, _Q),
              "round_in": (str, _ROUNDS), "round_v": (str, _ROUNDS), "round_out": (str, _ROUNDS),
              "tau": (REAL, "> 0, or null for IF/ATIF"), "v_threshold": (REAL, "finite"),
              "v_reset": (REAL, "finite, or null for a soft reset"), "decay_input": (bool, (False, True))},
    "codegen": {"kind": (str, ("IF", "LIF")), "width": (int, (8, 16, 32)), "long_width": (int, (16, 32, 64)),
                "q_in": (int, _Q), "q_v": (int, _Q), "q_out": (int, _Q), "round_mode": (str, _ROUNDS[:2]),
                "soft_reset": (bool, (False, True)), "decay_input": (bool, (False, True))},
}


def _config_value_ok(field: str, value, types, allowed) -> bool:
    if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
        return False
    if types is not REAL:
        return value in allowed
    if value is None:
        return field in ("tau", "v_reset")
    return math.isfinite(value) and abs(value) <= 1e30 and (field != "tau" or value > 0)


def check_config(against, cfg) -> dict:
    """A reference's ``config`` (``--config``), checked field by field before anything is built from it: exactly
    the fields of :data:`CONFIG_FIELDS` for that reference, each of its type and in its range (finite reals)."""
    stack = "codegen" if against == "codegen" else "torch" if against in ("torch-eval", "torch-train") else None
    if stack is None:
        raise ProveError(f"config: {against if isinstance(against, str) else 'another spec'} is not built from a "
                         f"layer config (only torch-eval, torch-train and codegen are): drop --config")
    want = CONFIG_FIELDS[stack]
    if not isinstance(cfg, dict):
        raise ProveError(f"config: expected a JSON object of the {against} layer's fields ({', '.join(want)})")
    missing, extra = [f for f in want if f not in cfg], sorted(str(f)[:40] for f in cfg if f not in want)
    if missing or extra:
        what = "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                         + ([f"unknown {', '.join(extra[:5])}"] if extra else []))
        raise ProveError(f"config: {what} (the {against} layer takes exactly: {', '.join(want)})")
    for f, (types, allowed) in want.items():
        if not _config_value_ok(f, cfg[f], types, allowed):
            expected = (allowed if types is REAL else "true or false" if types is bool
                        else f"an integer in {allowed.start}..{allowed.stop - 1}" if isinstance(allowed, range)
                        else "one of " + ", ".join(map(str, allowed)))
            raise ProveError(f"config: {f} = {str(cfg[f])[:40]!r} is not valid (expected {expected})")
    return dict(cfg)


class _Torch(_Reference):
    def __init__(self, spec, mode: str, config: dict | None = None):
        super().__init__(spec)
        from .refs import torch_ref

        if not torch_ref.torch_available():
            raise ProveError("the torch reference stack is not importable (torch 2.13 CPU, spikingjelly "
                             "0.0.0.0.14, qualia-plugin-snn 2.6, and no torchvision): install the test extras")
        from . import torch_bridge

        self.mode, self.name, self.ref = mode, f"torch-{mode}", torch_ref
        self.config = torch_config(spec) if config is None else check_config(self.name, config)
        try:
            self.module = torch_ref.make_module(**self.config)
        except (TypeError, ValueError) as e:
            raise ProveError(f"config: the Qualia layer cannot be built from it: {e}") from None
        try:
            self.own_spec = torch_bridge.from_torch(self.module, self.name)
        except SpecError as e:
            raise ProveError(f"{self.name} cannot represent this spec: {e}") from None
        self.knobs_differing = _same_layer(spec, self.own_spec, self.name)
        self.versions = versions("torch", "spikingjelly", "qualia-core", "qualia-plugin-snn")
        if spec.kind == "ATIF":
            self.notes.append("qualia-plugin-snn 2.6.0 QuantizedATIF reads the missing self.vp_th: aliased to "
                              "v_threshold (the same Parameter), the only patch applied")

    def v0(self):
        got = self.ref.initial_v(self.module, mode=self.mode)
        return int(got[0]) if np.all(got == got[0]) else None

    def step(self, v, x):
        return self._call(x, v)

    def _call(self, x, v):
        try:
            r = self.ref.step_module(self.module, x, v, q_in=self.config["q_in"], mode=self.mode)
        except AssertionError as e:  # a value off the grid: that is hidden float state, reported as such
            raise _OffGrid(str(e)) from None
        return Outcome(r["v"], r["out"])

    def residue(self, v, x, x2):
        """The three module calls on batches of :data:`TORCH_BATCH` neurons (each neuron is independent; a batch
        that fits in the cache runs 3-4x faster than a chunk-sized one), the continued call right after the first
        on the same batch, so that it continues from that batch's own state."""
        parts = []
        for lo in range(0, len(v), TORCH_BATCH):
            sl = slice(lo, lo + TORCH_BATCH)
            first = self._call(x[sl], v[sl])
            cont = self._call(x2[sl], None)
            parts.append((first, cont, self._call(x2[sl], first.v)))
        if len(parts) == 1:
            return parts[0]
        return tuple(Outcome(np.concatenate([p[k].v for p in parts]), np.concatenate([p[k].out for p in parts]))
                     for k in range(3))

    def finish(self):
        from . import torch_bridge

        forced = all(getattr(self.module, a).force_q is not None
                     for a in ("quantizer_input", "quantizer_v", "quantizer_act"))
        after = torch_bridge.from_torch(self.module, self.name)
        return [_precondition("hyperparameters frozen", forced and after == self.own_spec,
                              "every quantizer has force_q and the module reads as the same spec (q's, "
                              "v_threshold, 1/tau, v_reset) after every step as before the first"
                              + ("" if after == self.own_spec else f"; after: {after.describe()}"))]


class _OffGrid(Exception):
    pass


def codegen_config(spec: Spec) -> dict:
    """The compile-time configuration of the generated C layer that holds this spec; refuses what no
    qualia-codegen build can hold."""
    if spec.kind == "ATIF":
        raise ProveError("kind: qualia-codegen has no mapping for ATIF, so codegen cannot represent this spec; "
                         "prove it against torch-eval or torch-train")
    w = spec.fmt_v.bits
    if w not in (8, 16, 32) or spec.fmt_in.bits != w or spec.fmt_out.bits != w:
        raise ProveError(f"format: the C holds input, potential and output in one NUMBER_T of 8, 16 or 32 bits; "
                         f"this spec has {spec.fmt_in}, {spec.fmt_v}, {spec.fmt_out}")
    if spec.round not in ("RND", "TRN"):
        raise ProveError(f"round: the C rounds 'nearest' (RND) or 'floor' (TRN), not {spec.round}")
    long_width = spec.acc_bits if spec.arith == "int" and spec.acc_bits in (16, 32, 64) and spec.acc_bits > w \
        else 2 * w
    if w == 32:
        long_width = 64
    return {"kind": spec.kind, "width": w, "long_width": long_width, "q_in": spec.fmt_in.frac,
            "q_v": spec.fmt_v.frac, "q_out": spec.fmt_out.frac, "round_mode": _ROUND_NAME[spec.round],
            "soft_reset": spec.reset == "soft", "decay_input": spec.decay_input if spec.kind == "LIF" else False}


def _codegen_spec(cfg: dict, spec: Spec) -> Spec:
    """golden's codegen profile of that C build with the spec's raw hyperparameters."""
    from . import profiles

    s = 2.0 ** -cfg["q_v"]
    kw = {k: cfg[k] for k in ("width", "long_width", "q_v", "q_in", "q_out")}
    kw.update(round=cfg["round_mode"], v_threshold=spec.v_threshold * s,
              v_reset=None if cfg["soft_reset"] else spec.v_reset * s)
    if spec.kind == "LIF":
        kw.update(tau=1.0 / (spec.reciprocal_tau * s), decay_input=cfg["decay_input"])
    else:
        kw.update(tau=None)
    try:
        return profiles.codegen(spec.kind, **kw)
    except SpecError as e:
        raise ProveError(f"codegen cannot represent this spec: {e}") from None


class _Codegen(_Reference):
    name = "codegen"

    def __init__(self, spec, config: dict | None = None):
        super().__init__(spec)
        from .refs import codegen_c

        if not codegen_c.c_available():
            raise ProveError("the codegen reference is not available: it needs gcc and the installed "
                             "qualia-codegen-core / qualia-codegen-plugin-snn packages")
        self.cc = codegen_c
        self.config = codegen_config(spec) if config is None else check_config("codegen", config)
        self.own_spec = _codegen_spec(self.config, spec)
        self.knobs_differing = _same_layer(spec, self.own_spec, self.name)
        self.versions = {**versions("qualia-codegen-core", "qualia-codegen-plugin-snn"),
                         "gcc": codegen_c.compiler_id("gcc")}
        self.notes.append("int8 builds evaluate in int from int16_t LONG values, which wrap by gcc's modular "
                          "conversion (defined); in wider builds a signed overflow or an oversized shift is undefined: "
                          "such pairs are found by replaying the C's integer expressions, excluded from the "
                          "comparison and counted in 'undefined'")
        self._v0 = None

    def v0(self):
        if self._v0 is None:
            zero = np.zeros(1, np.int64)
            self._chunk(zero, zero, zero)
        return self._v0

    def _chunk(self, v, x, x2):
        """The three layer calls and both undefined-behaviour replays of one chunk: one call of the compiled C."""
        n = len(v)
        shape = (n,) if n <= self.cc.MAX_DIM else (n // 65536, 256, 256)
        s, c = self.spec, self.config
        args = {k: c[k] for k in ("kind", "width", "long_width", "q_in", "q_v", "q_out", "round_mode",
                                  "soft_reset", "decay_input")}
        r = self.cc.prove_chunk_c(**args, shape=shape, v=v, x=x, x2=x2, v_threshold=s.v_threshold,
                                  v_reset=s.v_reset, reciprocal_tau=s.reciprocal_tau)
        lo, hi = int(r.v0.min()), int(r.v0.max())  # one value for every neuron, or none (min/max: no sort of 4M)
        self._v0 = lo if lo == hi else None
        return r

    def step(self, v, x):
        r = self._chunk(v, x, x)
        return Outcome(r.v1, r.o1, undefined=r.ub1)

    def residue(self, v, x, x2):
        """Step (v, x), then continue on x2; then the C again from the reported potential on x2: one C call, which
        also replays the pairs of both steps for undefined behaviour (the second steps share their pairs)."""
        r = self._chunk(v, x, x2)
        return (Outcome(r.v1, r.o1, undefined=r.ub1), Outcome(r.v2, r.o2, undefined=r.ub2),
                Outcome(r.v3, r.o3, undefined=r.ub2))


def _make_reference(spec: Spec, against, config: dict | None) -> _Reference:
    if config is not None and against not in ("torch-eval", "torch-train", "codegen"):
        check_config(against, config)  # refuses: only those references are built from a config
    if isinstance(against, Spec):
        return _OtherSpec(spec, against)
    if against == "reference":
        return _Python(spec)
    if against in ("torch-eval", "torch-train"):
        return _Torch(spec, against.split("-")[1], config)
    if against == "codegen":
        return _Codegen(spec, config)
    raise ProveError(f"against: unknown reference {against!r} (expected one of: {', '.join(REFERENCES)}, "
                     f"or a spec .toml)")


# ------------------------------------------------------------------------------------------------ certificate
@dataclass
class Certificate:
    """The result of :func:`prove`. ``to_json()`` is deterministic (sorted keys, no time): CI can store and diff
    it. ``seconds`` is the wall time, kept out of the JSON."""

    spec: Spec
    against: str
    reference: dict
    enumeration: dict
    pairs: int
    compared: int
    fields: list
    differences: int
    differing: list
    undefined: dict
    preconditions: list
    seconds: float = field(default=0.0, compare=False)

    @property
    def preconditions_hold(self) -> bool:
        return all(p["holds"] for p in self.preconditions)

    @property
    def proven(self) -> bool:
        return self.differences == 0 and self.undefined["count"] == 0 and self.preconditions_hold

    @property
    def result(self) -> str:
        if self.proven:
            return "proven"
        why = []
        if self.differences:
            why.append(f"{self.differences} pair(s) differ")
        if self.undefined["count"]:
            why.append(f"{self.undefined['count']} pair(s) undefined in the reference")
        why += [f"precondition failed: {p['name']}" for p in self.preconditions if not p["holds"]]
        return "not proven: " + "; ".join(why)

    def to_dict(self) -> dict:
        return {"spec_sha256": self.spec.digest(), "spec": self.spec.to_toml(), "describe": self.spec.describe(),
                "against": self.against, "reference": self.reference, "enumeration": self.enumeration,
                "pairs": self.pairs, "compared": self.compared, "fields": self.fields,
                "differences": self.differences, "differing_pairs": self.differing,
                "differing_pairs_listed": len(self.differing), "undefined": self.undefined,
                "preconditions": self.preconditions, "proven": self.proven, "result": self.result,
                "induction": "equal one-step maps on every (v, x) of the formats, the same v0, and a state that is "
                             "exactly the reported potential give equal outputs and potentials on every input "
                             "sequence of any length"}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n"

    def __str__(self) -> str:
        vs = ", ".join(f"{k} {v}" for k, v in self.reference["versions"].items())
        lines = [f"golden prove: {self.spec.describe()}", f"  against     {self.against} ({vs})",
                 (f"  pairs       {self.pairs} ({self.enumeration['v_values']} potentials x "
                  f"{self.enumeration['x_values']} inputs, {self.enumeration['mode']}); compared "
                  f"{', '.join(self.fields)} on {self.compared}"),
                 f"  differences {self.differences}"]
        if self.undefined["count"]:
            lines.append(f"  undefined   {self.undefined['count']} pair(s): {self.undefined['reason']}")
        for p in self.preconditions:
            lines.append(f"  {'ok  ' if p['holds'] else 'FAIL'}        {p['name']}: {p['detail']}")
        for d in self.differing[:5]:
            lines.append(f"  differs     v={d['v']} x={d['x']}: golden {d['golden']} reference {d['reference']}")
        lines.append(f"  result      {self.result.upper() if self.proven else self.result} ({self.seconds:.2f} s)")
        return "\n".join(lines)


def _record(o: Outcome, i: int, spike: bool) -> dict:
    d = {"v": _num(o.v[i]), "out": _num(o.out[i])}
    if spike and o.spike is not None:
        d["spike"] = bool(o.spike[i])
    return d


# ------------------------------------------------------------------------------------------------ chunks
@dataclass(frozen=True)
class Chunk:
    """What one chunk of a proof found: plain JSON-able values, so a chunk can be saved, resumed, or run elsewhere.

    ``differing`` and ``undefined_first`` hold at most the pairs the certificate may still list; ``offgrid``
    is the reference's message when a potential it reported was off the q_v grid (the proof stops there);
    ``after`` are the preconditions the reference checks on itself after the chunk (e.g. hyperparameters frozen).
    """

    index: int
    pairs: int
    differences: int = 0
    differing: tuple = ()
    undefined: int = 0
    undefined_first: tuple = ()
    closed: bool = True
    residue_ok: bool = True
    residue_pairs: int = 0
    offgrid: str | None = None
    after: tuple = ()

    def to_dict(self) -> dict:
        return {f: (list(getattr(self, f)) if isinstance(getattr(self, f), tuple) else getattr(self, f))
                for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d) -> Chunk:
        """The chunk a :meth:`to_dict` gave, type-checked (it may come from a file): ProveError naming the field."""
        if not isinstance(d, dict) or set(d) != set(cls.__dataclass_fields__):
            raise ProveError(f"chunk: expected the fields {', '.join(cls.__dataclass_fields__)}")
        for f, want in (("index", int), ("pairs", int), ("differences", int), ("undefined", int),
                        ("residue_pairs", int), ("closed", bool), ("residue_ok", bool), ("differing", list),
                        ("undefined_first", list), ("after", list), ("offgrid", (str, type(None)))):
            value = d[f]
            if not isinstance(value, want) or (want is int and (isinstance(value, bool) or value < 0)):
                raise ProveError(f"chunk {d.get('index')!r}: {f} = {str(value)[:40]!r} is not a valid value")
        if not all(isinstance(e, dict) for e in d["differing"] + d["undefined_first"] + d["after"]):
            raise ProveError(f"chunk {d['index']}: its listed pairs and preconditions must be JSON objects")
        return cls(**{f: (tuple(v) if isinstance(v, list) else v) for f, v in d.items()})


def _merge_after(chunks: list) -> list:
    """The reference's own preconditions over several chunks: each holds when it held after every chunk."""
    merged = []
    for k, p in enumerate(chunks[0].after if chunks else ()):
        fails = [c.after[k] for c in chunks if k < len(c.after) and not c.after[k]["holds"]]
        merged.append(fails[0] if fails else p)
    return merged


def _check_v_range(spec: Spec, v_range) -> tuple | None:
    """(lo, hi) raw potentials of a slice of the plane, inclusive, within the potential format; or None."""
    if v_range is None:
        return None
    fmt = spec.fmt_v
    ok = (isinstance(v_range, (tuple, list)) and len(v_range) == 2
          and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in v_range))
    if not ok or not fmt.min <= v_range[0] <= v_range[1] <= fmt.max:
        raise ProveError(f"v_range: expected raw potentials LO <= HI within {fmt} ({fmt.min}..{fmt.max}), "
                         f"got {v_range!r}")
    return int(v_range[0]), int(v_range[1])


class Proof:
    """One proof, cut into chunks that can run in any order, in any process, and be saved and resumed.

    Chunk ``i`` is one step from every ``(v, x)`` with ``v`` in rows ``[i * rows, (i + 1) * rows)`` of the
    enumerated potentials and ``x`` over the whole input format: a pure function of (spec, reference, i).
    :meth:`certificate` merges a complete set of chunks in index order, so the certificate does not depend on
    who ran which chunk, or when. :meth:`key` names everything a saved chunk depends on (to resume safely).
    """

    def __init__(self, spec: Spec, against="reference", *, reachable_only: bool = False,
                 config: dict | None = None, chunk: int | None = None, listed: int = MAX_LISTED,
                 v_range: tuple | None = None):
        self.t0 = time.perf_counter()  # the certificate's seconds count from here: the reference's setup included
        _check_enumerable(spec)
        self.spec, self.against, self.reachable_only, self.listed = spec, against, reachable_only, listed
        self.v_range = _check_v_range(spec, v_range)
        self.ref = _make_reference(spec, against, config)
        self.vs = reachable(spec) if reachable_only else _values(spec.fmt_v)
        if self.v_range is not None:
            self.vs = self.vs[(self.vs >= self.v_range[0]) & (self.vs <= self.v_range[1])]
            if not len(self.vs):
                raise ProveError(f"v_range: no enumerated potential lies in {list(self.v_range)}")
        self.nx = 1 << spec.fmt_in.bits
        size = chunk or (CHUNK_ORACLE if isinstance(self.ref, _Python) else CHUNK)
        self.rows = max(1, size // self.nx)
        self.chunks = -(-len(self.vs) // self.rows)
        self.pairs = len(self.vs) * self.nx
        self.chunk_pairs = min(self.rows, len(self.vs)) * self.nx

    @property
    def chunk_bytes(self) -> int:
        """Peak memory of one chunk (measured: about 140-240 bytes per pair for torch and the C)."""
        return self.chunk_pairs * BYTES_PER_PAIR

    def key(self) -> dict:
        """Everything a chunk's result depends on: a saved chunk is reused only under an equal key."""
        ref = self.ref
        return {"spec_sha256": self.spec.digest(), "reference": ref.name, "config": ref.config,
                "versions": ref.versions, "reference_spec_sha256": ref.own_spec.digest() if ref.own_spec else None,
                "reachable_only": self.reachable_only, "v_values": len(self.vs), "rows": self.rows,
                "chunks": self.chunks, "listed": self.listed, "golden": versions("golden")["golden"]} \
            | ({} if self.v_range is None else {"v_range": list(self.v_range)})

    def run_chunk(self, i: int, keep: int | None = None) -> Chunk:
        """Chunk ``i`` (listing at most ``keep`` differing pairs, default all the certificate lists)."""
        if not 0 <= i < self.chunks:
            raise ProveError(f"chunk: {i} is not in 0..{self.chunks - 1}")
        keep = self.listed if keep is None else max(0, keep)
        spec, ref = self.spec, self.ref
        v, x = pairs(spec, self.vs[i * self.rows: (i + 1) * self.rows])
        x2 = x[::-1].copy()  # the second step of the residue check sees another input in every pair
        g = golden_step(spec, v, x, parallel=None if len(v) >= (1 << 20) else False)
        try:
            r1, r2, r3 = ref.residue(v, x, x2)
        except _OffGrid as e:
            return Chunk(i, len(v), offgrid=str(e), after=tuple(ref.finish()))
        use_spike = ref.exposes_spike
        none = np.zeros(len(v), bool)
        und = r1.undefined if r1.undefined is not None else none
        bad = ((g.out != r1.out) | (g.v != r1.v)) & ~und
        if use_spike:
            bad |= (g.spike != r1.spike) & ~und
        idx = np.nonzero(bad)[0]
        uidx = np.nonzero(und)[0]
        ok = ~und
        ok2 = ok & ~(r2.undefined if r2.undefined is not None else none)
        return Chunk(
            i, len(v), differences=len(idx),
            differing=tuple({"v": int(v[k]), "x": int(x[k]), "golden": _record(g, k, use_spike),
                             "reference": _record(r1, k, use_spike)} for k in idx[:keep]),
            undefined=len(uidx), undefined_first=tuple({"v": int(v[k]), "x": int(x[k])} for k in uidx[:20]),
            closed=not np.any(((r1.v < spec.fmt_v.min) | (r1.v > spec.fmt_v.max)) & ok),
            residue_ok=not np.any(((r2.v != r3.v) | (r2.out != r3.out)) & ok2),
            residue_pairs=int(ok2.sum()), after=tuple(ref.finish()))

    def needed(self, done: dict) -> list:
        """The chunk indices still to run, in order, given the finished ones (none after an off-grid stop)."""
        stop = min((i for i, c in done.items() if c.offgrid is not None), default=self.chunks)
        return [i for i in range(stop) if i not in done]

    def keep(self, done: dict, i: int) -> int:
        """How many differing pairs chunk ``i`` must list, given the chunks before it that are finished."""
        if all(j in done for j in range(i)):
            return max(0, self.listed - sum(len(done[j].differing) for j in range(i)))
        return self.listed

    def run(self, done: dict | None = None, on_chunk=None) -> Certificate:
        """Run every chunk not in ``done`` (index -> Chunk), in order, calling ``on_chunk(chunk)`` after each."""
        done = dict(done or {})
        for i in self.needed(done):
            if any(c.offgrid is not None for c in done.values()):
                break
            done[i] = self.run_chunk(i, self.keep(done, i))
            if on_chunk is not None:
                on_chunk(done[i])
        return self.certificate(done)

    def certificate(self, done: dict) -> Certificate:
        """Merge the chunks in index order (up to the first off-grid one) into the certificate."""
        used = []
        for i in range(self.chunks):
            if i not in done:
                raise ProveError(f"chunk {i} of {self.chunks} has not run; run every chunk before certifying")
            if done[i].index != i:
                raise ProveError(f"chunk {i}: holds the result of chunk {done[i].index}")
            used.append(done[i])
            if done[i].offgrid is not None:
                break
        spec, ref, fmt = self.spec, self.ref, self.spec.fmt_v
        counted = [c for c in used if c.offgrid is None]
        offgrid = used[-1].offgrid
        differing = [d for c in counted for d in c.differing][: self.listed]
        und_list = [d for c in counted for d in c.undefined_first][:20]
        und_count = sum(c.undefined for c in counted)
        closed = all(c.closed for c in counted)
        residue_ok = all(c.residue_ok for c in counted)
        ref_v0 = ref.v0()
        pre = [
            _precondition("v0 in format", fmt.min <= spec.v_start <= fmt.max, f"v0 = {spec.v_start} in {fmt}"),
            _precondition("reset values in format",
                          fmt.min <= spec.v_reset <= fmt.max and 0 < spec.v_threshold <= fmt.max,
                          f"v_reset = {spec.v_reset}, v_threshold = {spec.v_threshold} in {fmt}"),
            _precondition("same v0", ref_v0 == spec.v_start,
                          f"the reference starts at {ref_v0}, the spec at {spec.v_start}"),
            _precondition("closed", closed and offgrid is None,
                          "every potential the reference reports after a step is on the q_v grid and in the format"
                          + (f" ({offgrid})" if offgrid else "")),
            _precondition("no hidden state", residue_ok and offgrid is None,
                          ref.residue_detail.format(n=sum(c.residue_pairs for c in counted))),
        ] + _merge_after(used)
        if self.v_range is not None:  # a slice certifies its rows only: never a proof of the layer
            pre.append(_precondition("every potential", False,
                                     f"only the {len(self.vs)} potentials in [{self.v_range[0]}, {self.v_range[1]}] "
                                     f"were enumerated (a slice of the plane), not every potential of {fmt}"))
        own = ref.own_spec
        reference = {"name": ref.name, "versions": ref.versions, "config": ref.config, "notes": ref.notes,
                     "spec_sha256": own.digest() if own is not None else None,
                     "knobs_differing": ref.knobs_differing}
        enumeration = {"mode": "reachable from v0" if self.reachable_only else "all", "v_values": len(self.vs),
                       "x_values": self.nx}
        if self.v_range is not None:
            enumeration["v_range"] = list(self.v_range)
        undefined = {"count": und_count, "first": und_list,
                     "reason": "the generated C hits undefined behaviour (signed overflow or an oversized shift in "
                               "its int/int64_t arithmetic): it has no defined answer there" if und_count else ""}
        fields = ["out", "v"] + (["spike"] if ref.exposes_spike else [])
        return Certificate(spec, self.against if isinstance(self.against, str) else ref.name, reference,
                           enumeration, self.pairs, self.pairs - und_count, fields,
                           sum(c.differences for c in counted), differing, undefined, pre,
                           time.perf_counter() - self.t0)


def prove(spec: Spec, against="reference", *, reachable_only: bool = False, config: dict | None = None,
          chunk: int | None = None, listed: int = MAX_LISTED) -> Certificate:
    """Prove ``spec`` equal to a reference on one step from every ``(v, x)``; see the module docstring.

    ``against``: "reference", "torch-eval", "torch-train", "codegen" or a :class:`Spec`. ``config``: the
    reference's layer in Qualia's terms (``golden.refs.torch_ref.make_module`` / the C build's arguments,
    checked by :func:`check_config`) instead of the one derived from the spec. ``reachable_only``: enumerate
    only the potentials reachable from v0. ``chunk``: pairs per chunk (default :data:`CHUNK`, or
    :data:`CHUNK_ORACLE` against the plain-Python oracle). Raises :class:`ProveError` when the proof cannot
    run (the reference cannot represent the spec, ...). For a long proof (a budget, progress, resuming) drive
    a :class:`Proof` chunk by chunk, as ``golden prove`` does.
    """
    return Proof(spec, against, reachable_only=reachable_only, config=config, chunk=chunk, listed=listed).run()


# ------------------------------------------------------------------------------------------------ divergence maps
@dataclass
class DivergenceMap:
    """Where two specs differ on one step, over every ``(v, x)`` of ``spec_a``'s formats (compared as real values).

    ``cause`` is an int8 array (potentials x inputs): 0 where they agree, else 1 + the index in ``causes``.
    """

    spec_a: Spec
    spec_b: Spec
    pairs: int
    spike: int
    out: int
    v: int
    any: int
    causes: dict  # cause -> number of differing pairs
    cause: np.ndarray = field(repr=False)

    def fraction(self, what: str) -> Fraction:
        return Fraction(getattr(self, what), self.pairs)

    @property
    def v0(self) -> tuple[float, float]:
        """Both initial potentials (real): where they differ, sequences part at step 0 ("init potential")."""
        return tuple(s.fmt_v.real(s.v_start) for s in (self.spec_a, self.spec_b))

    def to_dict(self) -> dict:
        frac = {k: {"count": getattr(self, k), "fraction": str(self.fraction(k)), "value": float(self.fraction(k))}
                for k in ("spike", "out", "v", "any")}
        return {"a": {"spec_sha256": self.spec_a.digest(), "describe": self.spec_a.describe()},
                "b": {"spec_sha256": self.spec_b.digest(), "describe": self.spec_b.describe()},
                "pairs": self.pairs, "differ": frac, "v0": {"a": self.v0[0], "b": self.v0[1]},
                "causes": {c: {"count": n, "fraction": str(Fraction(n, self.pairs))} for c, n in self.causes.items()}}

    def __str__(self) -> str:
        a, b = self.spec_a, self.spec_b
        lines = [f"golden divergence map: {a.profile} (a) vs {b.profile} (b), one step from every (v, x)",
                 f"  a           {a.describe()}", f"  b           {b.describe()}",
                 f"  pairs       {self.pairs} ({a.fmt_v} x {a.fmt_in})"]
        for k, name in (("spike", "spikes"), ("out", "outputs"), ("v", "potentials"), ("any", "anything")):
            f = self.fraction(k)
            lines.append(f"  {name:<11} {getattr(self, k)} differ = {f} = {100 * float(f):.4g}%")
        for c, n in sorted(self.causes.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {c:<30} {n} pair(s) = {100 * n / self.pairs:.4g}%")
        if self.v0[0] != self.v0[1]:
            lines.append(f"  v0          differs (init potential): a starts at {self.v0[0]:g}, b at {self.v0[1]:g}")
        return "\n".join(lines)


def _convert(a: np.ndarray, src: QFormat, dst: QFormat, what: str) -> np.ndarray:
    """Raw values of ``src`` as raw values of ``dst`` (the same reals), or ProveError when one does not exist."""
    d = dst.frac - src.frac
    out = a << d if d >= 0 else a >> -d
    if d < 0 and np.any((out << -d) != a) or np.any((out < dst.min) | (out > dst.max)):
        raise ProveError(f"{what}: some values of {src} are not values of {dst}; a divergence map needs every "
                         f"state and input of spec_a to exist in spec_b")
    return out


def _real_step(a: Spec, spec: Spec, v: np.ndarray, x: np.ndarray) -> tuple:
    """(spike, out, v) of ``spec`` on a's raw (v, x), as reals (float64 is exact for <= 32-bit raws)."""
    o = golden_step(spec, _convert(v, a.fmt_v, spec.fmt_v, "v"), _convert(x, a.fmt_in, spec.fmt_in, "x"),
                    parallel=None if len(v) >= (1 << 20) else False)
    return o.spike, o.out * 2.0 ** -spec.fmt_out.frac, o.v * 2.0 ** -spec.fmt_v.frac


DMAP_ROWS_PAIRS = 1 << 20  # pairs stepped and classified at once: bounds the working set
DMAP_BYTES_PER_PAIR = 2  # the cause map kept for every pair (codes, then the compact map)
DMAP_CHUNK_BYTES = 320 * DMAP_ROWS_PAIRS  # measured working set of one chunk (both steps, reals, masks, variants)
DMAP_SECONDS_PER_PAIR = 1e-6  # measured 0.5-1.3 us: torch-eval vs codegen LIF at 12-13 bits, two causes, 2 cores


def divergence_cost(spec_a: Spec, spec_b: Spec) -> Cost:
    """What :func:`divergence_map` of these specs costs, before anything is allocated."""
    for s in (spec_a, spec_b):
        _check_enumerable(s)
    n = 1 << (spec_a.fmt_v.bits + spec_a.fmt_in.bits)
    return Cost(f"a divergence map of {n} (v, x) pairs ({spec_a.fmt_v} x {spec_a.fmt_in})",
                n * DMAP_BYTES_PER_PAIR + min(n, DMAP_ROWS_PAIRS) * (DMAP_CHUNK_BYTES // DMAP_ROWS_PAIRS),
                n * DMAP_SECONDS_PER_PAIR)


def divergence_map(spec_a: Spec, spec_b: Spec, *, classify: bool = True, progress=None) -> DivergenceMap:
    """Exact counts of the ``(v, x)`` pairs where one step of ``spec_b`` differs from ``spec_a`` (spike, output,
    potential), each differing pair attributed by :func:`golden.causes.attribute` to the smallest set of
    :data:`golden.causes.CAUSES` whose alignment (spec_b toward spec_a) removes its difference, as ``golden diff``
    classifies a divergence.

    Runs in chunks of about :data:`DMAP_ROWS_PAIRS` pairs (``progress(done, total)`` after each); refuses
    (BudgetError) a map whose cause array does not fit in memory, before allocating it."""
    budget.refuse(divergence_cost(spec_a, spec_b), "divergence map", allow_long=True)
    vs, xs = _values(spec_a.fmt_v), _values(spec_a.fmt_in)
    _convert(vs, spec_a.fmt_v, spec_b.fmt_v, "v")
    _convert(xs, spec_a.fmt_in, spec_b.fmt_in, "x")
    variants = list(spec_variants(spec_a, spec_b)) if classify else []
    rank = {label: i + 1 for i, (label, _) in enumerate(variants)} | {UNEXPLAINED: len(variants) + 1}
    n = len(vs) * len(xs)
    code = np.zeros(n, np.uint8 if len(rank) < 255 else np.uint16)  # 0: agree, else the label's rank
    counts = np.zeros(4, np.int64)  # spike, out, v, any
    rows = max(1, DMAP_ROWS_PAIRS // len(xs))
    for lo in range(0, len(vs), rows):
        v, x = pairs(spec_a, vs[lo: lo + rows])
        ra = _real_step(spec_a, spec_a, v, x)
        rb = _real_step(spec_a, spec_b, v, x)
        ds, do, dv = (ra[i] != rb[i] for i in range(3))
        bad = ds | do | dv
        counts += [ds.sum(), do.sum(), dv.sum(), bad.sum()]
        if classify and bad.any():
            def restores(b2: Spec, idx: np.ndarray, v=v, x=x, ra=ra) -> np.ndarray:
                r2 = _real_step(spec_a, b2, v[idx], x[idx])
                return (ra[0][idx] == r2[0]) & (ra[1][idx] == r2[1]) & (ra[2][idx] == r2[2])

            local, labels = attribute(bad, variants, restores)
            lut = np.array([0, *(rank[lb] for lb in labels)], code.dtype)
            code[lo * len(xs): lo * len(xs) + len(v)] = lut[local]
        if progress is not None:
            progress(min(n, (lo + rows) * len(xs)), n)
    # the compact map: 1 + the index in ``causes``, whose order is the attribution order
    found = np.bincount(code, minlength=len(rank) + 1)
    names = {r: label for label, r in rank.items()}
    kept = [r for r in range(1, len(rank) + 1) if found[r]]
    causes = {names[r]: int(found[r]) for r in kept}
    lut = np.zeros(len(rank) + 1, np.int8 if len(kept) < 128 else np.int16)
    lut[kept] = np.arange(1, len(kept) + 1)
    shape = (len(vs), len(xs))
    spike, out, v_, any_ = (int(c) for c in counts)
    return DivergenceMap(spec_a, spec_b, n, spike, out, v_, any_, causes, lut[code].reshape(shape))


def plot_map(m: DivergenceMap, path, *, force: bool = False) -> None:
    """Heat map of the (v, x) plane, one colour per cause (white: agree). Needs matplotlib (the 'plot' extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
    except ImportError:
        raise ProveError("--plot needs matplotlib: pip install 'golden[plot]'") from None
    a = m.spec_a
    names = list(m.causes)
    colours = ["white"] + [plt.get_cmap("tab10")(i % 10) for i in range(len(names))]
    fig, ax = plt.subplots(figsize=(7, 6))
    ext = (a.fmt_in.min - 0.5, a.fmt_in.max + 0.5, a.fmt_v.min - 0.5, a.fmt_v.max + 0.5)
    ax.imshow(m.cause, origin="lower", extent=ext, aspect="auto", interpolation="nearest",
              cmap=ListedColormap(colours), vmin=0, vmax=len(colours) - 1)
    for i, n in enumerate(names):
        ax.plot([], [], "s", color=colours[i + 1], label=f"{n}: {m.causes[n]} pairs")
    ax.set_xlabel(f"input x (raw, {a.fmt_in})")
    ax.set_ylabel(f"potential v (raw, {a.fmt_v})")
    ax.set_title(f"{a.profile} vs {m.spec_b.profile}: {m.any} of {m.pairs} pairs differ")
    if names:
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    try:  # golden's one writer: never through a symlink, all or nothing
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110), force=force)
    finally:
        plt.close(fig)
