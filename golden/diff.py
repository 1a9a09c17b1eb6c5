"""``golden diff``: where do two datapaths of the same layer part, and why?

:func:`diff` runs two specs (typically ``torch-eval`` and ``codegen`` built
from the same real-valued layer parameters) on the same stimulus and reports

- the spike and potential mismatch rates (potentials compared as real values,
  so formats may differ);
- the first divergence (lowest step, then lowest neuron), with a *shrunk*
  minimal input sequence that still diverges for the same reason: a
  deterministic, bounded greedy search over :func:`golden.simulate` (truncate
  after the first divergence, delete steps, zero values, halve magnitudes,
  step toward zero; candidates are evaluated as the columns of one batched
  simulation);
- a classification of every diverging neuron by known cause (:mod:`golden.causes`, the vocabulary and the
  attribution engine shared with ``golden diff --exhaustive`` and the network diff): spec_b is re-run with the
  knobs of a cause switched toward spec_a, one cause at a time first, then in pairs, triples, ...; the cause is
  the first (smallest) set whose alignment removes that neuron's first divergence (spec_a and the modified spec_b
  agree up to and including that step), e.g. "TMP shift" or "init potential + TMP shift"; "unexplained" when none
  does. docs/quirks.md tabulates the causes and their knobs (generated from ``golden.causes.CAUSES``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .causes import FirstDivergence, Steps, aligned, attribute, canonical, differing, spec_variants
from .fileio import write_atomic
from .simulate import simulate
from .spec import Spec, SpecError

__all__ = ["DiffReport", "FirstDivergence", "diff", "diverges", "neuron_steps_bytes", "stimulus"]

MAX_NEURON_STEPS = 1 << 26  # a stimulus and both traces are held in memory
BYTES_PER_NEURON_STEP = 96  # measured peak of diff() per neuron-step (the input, both traces, raw and real)


def neuron_steps_bytes(n: int) -> int:
    """About the memory :func:`diff` needs for ``n`` neuron-steps."""
    return n * BYTES_PER_NEURON_STEP


# ----------------------------------------------------------------------------------------------- simulation
def _inputs(a: Spec, b: Spec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (raw, in a's input format) and the same values in b's: identical when the formats are."""
    if a.fmt_in == b.fmt_in:
        return x, x
    return x, b.quantize_input(x.astype(np.float64) * 2.0 ** -a.fmt_in.frac)


def _run(spec: Spec, x: np.ndarray):
    """(spikes, real potentials, real outputs), each (T, N)."""
    tr = simulate(spec, x)
    v = tr.v.astype(np.float64) * 2.0 ** -spec.fmt_v.frac
    return tr.spikes, v, tr.out.astype(np.float64) * 2.0 ** -spec.fmt_out.frac


def _mismatch(ra, rb):
    """Per neuron-step: (spike differs, potential differs, anything differs)."""
    ds = ra[0] != rb[0]
    dv = ra[1] != rb[1]
    return ds, dv, ds | dv | (ra[2] != rb[2])


def _first_steps(bad: np.ndarray) -> np.ndarray:
    """Per neuron, the first differing step, or T."""
    T = bad.shape[0]
    return np.where(bad.any(axis=0), bad.argmax(axis=0), T)


def diverges(a: Spec, b: Spec, cols: np.ndarray) -> np.ndarray:
    """Per column of ``cols`` (T, K) of raw inputs in a's format: do a and b diverge at any step?"""
    xa, xb = _inputs(a, b, cols)
    return _mismatch(_run(a, xa), _run(b, xb))[2].any(axis=0)


def _classify(a: Spec, b: Spec, x: np.ndarray, first: np.ndarray, idx: np.ndarray) -> list:
    """Cause of each diverging neuron in ``idx`` (whose first divergence is ``first[idx]``): the first knob set
    (:func:`golden.causes.spec_variants`) whose alignment makes spec_a and the modified spec_b agree on every step
    up to and including the neuron's first divergence."""
    if not len(idx):
        return []
    xs = x[:, idx]
    T = xs.shape[0]
    upto = np.arange(T)[:, None] <= first[idx][None, :]
    xa, xb = _inputs(a, b, xs)
    ra = _run(a, xa)

    def restores(b2: Spec, cols: np.ndarray) -> np.ndarray:
        return ~(_mismatch(tuple(r[:, cols] for r in ra), _run(b2, xb[:, cols]))[2] & upto[:, cols]).any(axis=0)

    code, labels = attribute(np.ones(len(idx), bool), spec_variants(a, b), restores)
    return [labels[c - 1] for c in code.tolist()]


# -------------------------------------------------------------------------------------------------- shrinking
def _shrink(a: Spec, b: Spec, seq: np.ndarray, keep, budget: int = 400) -> tuple[np.ndarray, int]:
    """Greedy, deterministic shrink of one input sequence (T,) while ``keep(cols) -> bool mask`` holds.

    Shorter first, then smaller magnitudes. Every round evaluates all candidates of one kind as the columns of a
    single batched run and takes the first that still holds. Returns (shrunk sequence, candidates evaluated).
    """
    lo, hi = a.fmt_in.min, a.fmt_in.max
    evals = 0

    def truncate(s):
        xa, xb = _inputs(a, b, s[:, None])
        bad = _mismatch(_run(a, xa), _run(b, xb))[2][:, 0]
        return s[: int(np.argmax(bad)) + 1] if bad.any() else s

    def try_all(cands):
        nonlocal evals
        if not cands:
            return None
        n = len(cands[0])
        cols = np.stack(cands, axis=1).reshape(n, -1)
        evals += cols.shape[1]
        ok = keep(cols)
        hit = np.nonzero(ok)[0]
        return cands[hit[0]] if len(hit) else None

    seq = truncate(np.asarray(seq, np.int64))
    changed = True
    while changed and evals < budget:
        changed = False
        # 1. drop a step (earliest first)
        if len(seq) > 1:
            got = try_all([np.delete(seq, i) for i in range(len(seq))])
            if got is not None:
                seq, changed = truncate(got), True
                continue
        # 2. zero a value; 3. halve it toward zero; 4. one step toward zero
        for f in (lambda v: 0, lambda v: int(v / 2), lambda v: v - 1 if v > 0 else v + 1):
            cands = []
            for i, v in enumerate(seq.tolist()):
                w = min(max(f(v), lo), hi)
                if v != 0 and w != v and abs(w) < abs(v):
                    c = seq.copy()
                    c[i] = w
                    cands.append(c)
            got = try_all(cands)
            if got is not None:
                seq, changed = truncate(got), True
                break
    return seq, evals


# ---------------------------------------------------------------------------------------------------- report
@dataclass
class DiffReport:
    """Two datapaths of one layer on one stimulus."""

    spec_a: Spec
    spec_b: Spec
    steps: int
    neurons: int
    spike_mismatches: int
    potential_mismatches: int
    output_mismatches: int
    diverging_neurons: int
    causes: dict  # cause -> number of diverging neurons (first divergence of each)
    first: FirstDivergence | None  # None when identical (or when no divergence has the requested cause)
    seed: int | None = None
    x: np.ndarray | None = field(default=None, repr=False)
    traces: tuple | None = field(default=None, repr=False)  # (a_v, b_v, a_spikes, b_spikes) real (T, N)
    focus: str | None = None  # the cause the first divergence was restricted to

    @property
    def identical(self) -> bool:
        return self.diverging_neurons == 0

    @property
    def neuron_steps(self) -> int:
        return self.steps * self.neurons

    @property
    def spike_mismatch_rate(self) -> float:
        return self.spike_mismatches / self.neuron_steps if self.neuron_steps else 0.0

    @property
    def potential_mismatch_rate(self) -> float:
        return self.potential_mismatches / self.neuron_steps if self.neuron_steps else 0.0

    def to_dict(self) -> dict:
        return {
            "a": {"profile": self.spec_a.profile, "describe": self.spec_a.describe(), "spec": self.spec_a.to_toml()},
            "b": {"profile": self.spec_b.profile, "describe": self.spec_b.describe(), "spec": self.spec_b.to_toml()},
            "steps": self.steps, "neurons": self.neurons, "seed": self.seed, "neuron_steps": self.neuron_steps,
            "identical": self.identical,
            "spike_mismatches": self.spike_mismatches, "spike_mismatch_rate": self.spike_mismatch_rate,
            "potential_mismatches": self.potential_mismatches, "potential_mismatch_rate": self.potential_mismatch_rate,
            "output_mismatches": self.output_mismatches,
            "diverging_neurons": self.diverging_neurons,
            "causes": dict(self.causes), "cause_filter": self.focus,
            "first_divergence": None if self.first is None else self.first.to_dict(),
        }

    def __str__(self) -> str:
        a, b = self.spec_a, self.spec_b
        n = self.neuron_steps
        lines = [
            f"golden diff: {a.profile} (a) vs {b.profile} (b)",
            f"  a           {a.describe()}",
            f"  b           {b.describe()}",
            f"  stimulus    {self.neurons} neurons x {self.steps} steps = {n} neuron-steps"
            + (f", seed {self.seed}" if self.seed is not None else ""),
        ]
        if self.identical:
            lines.append("  result      IDENTICAL: spikes, potentials and outputs agree at every step")
            return "\n".join(lines)
        pct = lambda k: f"{100.0 * k / n:.3g}%" if n else "0%"  # noqa: E731
        lines += [
            f"  spikes      {pct(self.spike_mismatches)} of neuron-steps differ ({self.spike_mismatches})",
            f"  potentials  {pct(self.potential_mismatches)} of neuron-steps differ ({self.potential_mismatches})",
            f"  neurons     {self.diverging_neurons} of {self.neurons} diverge at some step",
            "  causes      (of each diverging neuron's first divergence)",
        ]
        width = max(len(c) for c in self.causes)
        for cause, k in sorted(self.causes.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {cause:<{width}}  {k} neuron(s)")
        f = self.first
        if f is None:
            lines.append(f"  first       no diverging neuron has the cause {self.focus!r}")
            return "\n".join(lines)
        m = f.minimal
        lines += [
            f"  {'first' if self.focus is None else 'first of it':<11} neuron {f.neuron}, step {f.t}: "
            f"{', '.join(f.fields)} differ; cause: {f.cause}",
            f"  minimal     input {list(m.x)} (raw, {a.fmt_in}; shrunk from {len(f.history.x)} steps, "
            f"{f.shrink_evaluations} candidates tried)",
            "              step      x       a.v       b.v  a.spike b.spike     a.out     b.out",
        ]
        for t, xv in enumerate(m.x):
            lines.append(f"              {t:>4} {xv:>6} {m.a_v[t]:>9.6g} {m.b_v[t]:>9.6g} "
                         f"{int(m.a_spikes[t]):>8} {int(m.b_spikes[t]):>7} {m.a_out[t]:>9.6g} {m.b_out[t]:>9.6g}")
        return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- the diff
def stimulus(spec: Spec, steps: int, neurons: int, seed: int = 0) -> np.ndarray:
    """Deterministic drive in ``spec``'s input format, scaled to its threshold: per neuron a mean current in
    [-0.5, 1.5] x threshold plus noise of standard deviation 0.6 x threshold (a sum of four uniforms); one
    neuron in eight gets full-range noise (saturation, wrap).

    The numbers come from PCG64's raw 64-bit outputs through additions and multiplications only, which
    NumPy documents as stable: the same stimulus on any machine and NumPy version (``default_rng().normal``
    is not promised to be).
    """
    bits = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(0x646966,)))  # 'dif'

    def unit(*shape):  # float64 in [0, 1): the top 53 bits of each raw output, exactly
        n = int(np.prod(shape, dtype=np.int64))
        top = np.asarray(bits.random_raw(n), np.uint64) >> np.uint64(11)
        return top.astype(np.float64).reshape(shape) * 2.0 ** -53

    vth = spec.fmt_v.real(spec.v_threshold)
    mean = (unit(neurons) * 2.0 - 0.5) * vth
    noise = (unit(steps, neurons) + unit(steps, neurons) + unit(steps, neurons) + unit(steps, neurons) - 2.0)
    x = mean + noise * (0.6 * math.sqrt(3.0)) * vth  # four uniforms: variance 1/3
    wide = unit(neurons) < 0.125
    lo, hi = spec.fmt_in.real(spec.fmt_in.min), spec.fmt_in.real(spec.fmt_in.max)
    x = np.where(wide[None, :], lo + unit(steps, neurons) * (hi - lo), x)
    return spec.quantize_input(x.astype(np.float32)).astype(np.int64)


def diff(spec_a: Spec, spec_b: Spec, x=None, *, steps: int = 200, neurons: int = 1024, seed: int = 0,
         shrink: bool = True, classify_limit: int = 4096, cause: str | None = None) -> DiffReport:
    """Compare two specs on raw inputs ``x`` (T, N) in ``spec_a``'s input format (converted through their real
    values when spec_b's input format differs), or on :func:`stimulus` (``steps`` x ``neurons``, ``seed``).

    ``classify_limit`` bounds how many diverging neurons are classified (the first ones, by neuron index).
    ``cause``: report (and shrink) the first divergence among the neurons of that cause only.
    """
    for name, s in (("spec_a", spec_a), ("spec_b", spec_b)):
        if not isinstance(s, Spec):
            raise SpecError(f"{name}: expected a golden.Spec, got {type(s).__name__}")
    cause = None if cause is None else canonical(cause)
    used_seed = None
    if x is None:
        if steps < 1 or neurons < 1:
            raise SpecError("steps and neurons must be positive")
        if steps * neurons > MAX_NEURON_STEPS:
            raise SpecError(f"steps x neurons = {steps * neurons} is more than golden diff holds in memory "
                            f"({MAX_NEURON_STEPS}, about {neuron_steps_bytes(MAX_NEURON_STEPS) >> 30} GiB)")
        x, used_seed = stimulus(spec_a, steps, neurons, seed), seed
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise SpecError(f"x: expected raw integers in spec_a's input format {spec_a.fmt_in}, got dtype {x.dtype}")
    if x.ndim != 2:
        raise SpecError(f"x: expected shape (T, N), got {x.shape}")
    x = x.astype(np.int64)
    xa, xb = _inputs(spec_a, spec_b, x)
    ra, rb = _run(spec_a, xa), _run(spec_b, xb)
    ds, dv, bad = _mismatch(ra, rb)
    T, N = x.shape
    first = _first_steps(bad)
    div = np.nonzero(first < T)[0]
    report = DiffReport(spec_a, spec_b, T, N, int(ds.sum()), int(dv.sum()), int((ra[2] != rb[2]).sum()), len(div),
                        {}, None, used_seed, x, (ra[1], rb[1], ra[0], rb[0]), cause)
    if not len(div):
        return report
    todo = div[:classify_limit]
    causes = _classify(spec_a, spec_b, x, first, todo)
    for c in causes:
        report.causes[c] = report.causes.get(c, 0) + 1
    # the first divergence: lowest step, then lowest neuron (of the requested cause)
    pool = div if cause is None else np.array([n for n, c in zip(todo.tolist(), causes) if c == cause], np.int64)
    if not len(pool):
        return report
    n = int(pool[np.lexsort((pool, first[pool]))[0]])
    t = int(first[n])
    listed = todo.tolist()
    label = causes[listed.index(n)] if n in listed else _classify(spec_a, spec_b, x, first, np.array([n]))[0]
    masks = {"spike": ds, "v": dv, "out": ra[2] != rb[2]}
    fields = tuple(name for name, m in masks.items() if m[t, n])
    seq = x[: t + 1, n]
    named = {c.name: c for c in differing(spec_a, spec_b)}
    parts = label.split(" + ")
    knob = aligned(spec_a, spec_b, [named[c] for c in parts]) if all(c in named for c in parts) else None

    def keep(cols):
        ok = diverges(spec_a, spec_b, cols)
        if knob is not None:  # still removed by the same knob(s): the same cause
            ok &= ~diverges(spec_a, knob, cols)
        return ok

    small, evals = _shrink(spec_a, spec_b, seq, keep) if shrink else (seq, 0)
    sa, sb = _inputs(spec_a, spec_b, small[:, None])
    k = {"spike": 0, "v": 1, "out": 2}[fields[0]]
    va, vb = ((int(r[0][t, n]) if k == 0 else float(r[k][t, n])) for r in (ra, rb))
    report.first = FirstDivergence(t, (n,), fields, va, vb, label,
                                   history=_steps(seq, ra, rb, n), minimal=_steps(small, _run(spec_a, sa),
                                                                                _run(spec_b, sb), 0),
                                   shrink_evaluations=evals)
    return report


def _steps(x: np.ndarray, ra, rb, n: int) -> Steps:
    """Neuron ``n``'s inputs ``x`` (steps 0..t) and both runs (spikes, real v, real out) over those steps."""
    k = len(x)
    return Steps(tuple(x.tolist()), tuple(ra[1][:k, n].tolist()), tuple(rb[1][:k, n].tolist()),
                 tuple(ra[0][:k, n].astype(int).tolist()), tuple(rb[0][:k, n].astype(int).tolist()),
                 tuple(ra[2][:k, n].tolist()), tuple(rb[2][:k, n].tolist()))


# ------------------------------------------------------------------------------------------------------ plot
def plot(report: DiffReport, path, *, force: bool = False) -> None:
    """Both potential traces of the first diverging neuron over the whole stimulus, spikes and the first
    divergence marked; a second panel shows the minimal input's traces. A PNG written through golden's one
    writer (:func:`golden.fileio.write_atomic`: never through a symlink, all or nothing). Needs matplotlib
    (the 'plot' extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("--plot needs matplotlib: pip install 'golden[plot]'") from None
    a, b = report.spec_a, report.spec_b
    fig, axes = plt.subplots(2 if report.first else 1, 1, figsize=(10, 6.5 if report.first else 3.5), squeeze=False)
    ax = axes[0][0]
    n = report.first.neuron if report.first else 0
    av, bv, asp, bsp = (arr[:, n] for arr in report.traces)
    t = np.arange(report.steps)
    ax.step(t, av, where="post", label=f"a: {a.profile}", color="tab:blue")
    ax.step(t, bv, where="post", label=f"b: {b.profile}", color="tab:orange", linestyle="--")
    ax.axhline(a.fmt_v.real(a.v_threshold), color="grey", linewidth=0.8, linestyle=":", label="threshold (a)")
    ax.plot(t[asp], av[asp], "o", color="tab:blue", markersize=4, label="spike (a)")
    ax.plot(t[bsp], bv[bsp], "x", color="tab:orange", markersize=6, label="spike (b)")
    if report.first:
        ax.axvline(report.first.t, color="red", linewidth=1.2, label=f"first divergence (t={report.first.t})")
        ax.set_title(f"neuron {n}: {report.first.cause}")
    else:
        ax.set_title("identical" if report.identical else f"no divergence of cause {report.focus!r}")
    ax.set_xlabel("step")
    ax.set_ylabel("potential (real)")
    ax.legend(fontsize=7, loc="best")
    if report.first:
        m = report.first.minimal
        ax2 = axes[1][0]
        tm = np.arange(len(m.x))
        ax2.step(tm, m.a_v, where="post", color="tab:blue", marker="o", label="a")
        ax2.step(tm, m.b_v, where="post", color="tab:orange", linestyle="--", marker="x", label="b")
        ax2.axvline(len(m.x) - 1, color="red", linewidth=1.2)
        ax2.set_title(f"minimal input {list(m.x)}")
        ax2.set_xlabel("step")
        ax2.set_ylabel("potential (real)")
        ax2.legend(fontsize=7)
    fig.tight_layout()
    try:
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110), force=force)
    finally:
        plt.close(fig)
