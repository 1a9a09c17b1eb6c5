#!/usr/bin/env python3
"""Generate docs/quirks.md: the upstream-quirk table, every number produced by golden itself.

    python tools/quirks.py            # rewrite docs/quirks.md
    python tools/quirks.py --check    # exit 1 if docs/quirks.md is not what golden produces now
    python tools/quirks.py --stdout   # print it

Each row builds two profiles from the same real-valued layer parameters, runs
``golden.diff.diff`` on its seeded stimulus restricted to that row's cause, and
prints the shrunk minimal input with both results. The exact ``golden diff``
command that reproduces the row is printed with it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import golden  # noqa: E402
from golden import diff as gdiff  # noqa: E402
from golden.cli.diff import build_parser  # noqa: E402
from golden.cli.options import layer_params  # noqa: E402

DOC = ROOT / "docs" / "quirks.md"
STEPS, NEURONS, SEED = 100, 512, 0


@dataclass
class Quirk:
    title: str
    what: str  # one sentence: the mechanism
    cause: str  # golden diff's cause name
    layer: dict  # shared real-valued layer options (golden diff's CLI names, without the leading --)
    a: str = "torch-eval"
    b: str = "codegen"
    a_over: dict = field(default_factory=dict)  # profile-specific overrides (profile keyword arguments)
    b_over: dict = field(default_factory=dict)
    note: str = ""


QUIRKS = [
    Quirk("Leak rounding before the spike test",
          "The C adds the leak term `scale((x - (v - v_reset)) * rtau, T)` already rounded to the working grid and "
          "tests the threshold on that; PyTorch divides by tau in float32 and tests the unrounded potential.",
          "leak rounding", {}),
    Quirk("Leak rounding without decay_input",
          "`v - scale(v * rtau, T) + x` in the C, `v * float32(1 - 1/tau) + x` in PyTorch (soft reset): the "
          "potentials part after a step or two and stay apart (most neuron-steps differ).",
          "leak rounding", {"no-decay-input": True, "soft": True}),
    Quirk("TMP shift (q_in > q_v)",
          "The C shifts the leak product by TMP_SCALE_FACTOR = max(q_in, q_v) although `reciprocal_tau` is at q_v: "
          "with q_in = q_v + 1 the leak is halved.",
          "TMP shift", {"q-in": 7}),
    Quirk("Initial potential",
          "Qualia's neurons start at v_reset; the generated `<layer>_reset_pot()` sets the potential to 0.",
          "init potential", {"v-reset": -0.25}),
    Quirk("Spike value clamp",
          "The C outputs `clamp_to(NUMBER_T, scale(1, -q_out))`: `1 << q_out` is computed in LONG_NUMBER_T, so in an "
          "int8 build q_out = 15 wraps to -32768 and clamps to -128, a negative spike. (At q_out = bits-1 both give "
          "127: Qualia's quantizer saturates 1.0 the same way.)",
          "spike-value clamp", {"q-out": 15}),
    Quirk("LONG_NUMBER_T wraps",
          "An int8 build keeps intermediates in int16_t: with q_in < q_v the input is shifted left, and "
          "`(x - v) * rtau` wraps past 32767 (gcc's conversion is modular), turning a large negative input into a "
          "large positive potential.",
          "saturation width", {"q-v": 5, "q-in": 2, "tau": 1.05, "v-threshold": 0.9, "soft": True}),
    Quirk("Potential width of an int16 C for an 8-bit model",
          "Deploying an 8-bit Qualia model as int16 C: PyTorch saturates the potential at the 8-bit range, the C "
          "at 16 bits.",
          "saturation width", {"tau": 3.0, "no-decay-input": True, "width": 16}),
    Quirk("Compare before round (QAT forward)",
          "In `.train()` Qualia quantizes the charged potential before the spike test; in `.eval()` (and in the C) "
          "the test sees the unrounded value. A model validated in train mode fires differently in eval.",
          "compare-before-round", {"v-reset": -0.5, "tau": 3.0}, a="torch-train", b="torch-eval"),
    Quirk("Hyperparameter drift at calibration",
          "Calibration re-quantizes tau at every q it passes: tau = 3 seen at q_v = 7 (43/128) then q_v = 6 holds "
          "1/tau = 22/64 in the quantized model; `qualia prepare_deploy` converts the float twin built from the "
          "config, whose C gets round(64/3) = 21/64.",
          "hyperparameter rounding", {"tau": 3.0}, a_over={"tau": 64 / 22},
          note="a is the calibrated quantized module (what from_torch reads), b the deployed C"),
]


def _args(layer: dict) -> argparse.Namespace:
    argv = []
    for k, v in layer.items():
        argv += [f"--{k}"] if v is True else [f"--{k}", str(v)]
    return build_parser().parse_args(argv)


def build(q: Quirk):
    ns = _args(q.layer)
    pa = {**layer_params(q.a, ns), **q.a_over}
    pb = {**layer_params(q.b, ns), **q.b_over}
    a = golden.make(q.a, ns.kind, **pa)
    b = golden.make(q.b, ns.kind, **pb)
    return a, b


def command(q: Quirk) -> str:
    """The shell command (or, when a profile needs an override the CLI has no option for, the Python call)."""
    if q.a_over or q.b_over:
        a, b = build(q)
        kw = lambda p, over: ", ".join(  # noqa: E731
            f"{k}={v!r}" for k, v in {**layer_params(p, _args(q.layer)), **over}.items())
        return (f"python -c \"import golden, golden.diff as d; print(d.diff(golden.make('{q.a}', '{a.kind}', "
                f"{kw(q.a, q.a_over)}), golden.make('{q.b}', '{b.kind}', {kw(q.b, q.b_over)}), steps={STEPS}, "
                f"neurons={NEURONS}, seed={SEED}, cause='{q.cause}'))\"")
    parts = ["golden diff --"]
    if q.a != "torch-eval":
        parts.append(f"--a {q.a}")
    if q.b != "codegen":
        parts.append(f"--b {q.b}")
    for k, v in q.layer.items():
        parts.append(f"--{k}" if v is True else f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {v}")
    parts.append(f"--steps {STEPS} --neurons {NEURONS} --seed {SEED} --cause '{q.cause}'")
    return " ".join(parts)


def _num(v: float) -> str:
    return f"{v:.10g}"


def result(v, spikes, out) -> str:
    pot = ", ".join(_num(x) for x in v)
    fired = [t for t, s in enumerate(spikes) if s]
    if fired:
        outs = sorted({_num(out[t]) for t in fired})
        spk = f"spike at t={','.join(map(str, fired))} (output {'/'.join(outs)})"
    else:
        spk = "no spike"
    return f"v = {pot}; {spk}"


def render() -> str:
    lines = [
        "# Upstream quirks: where Qualia's PyTorch layers and the C that qualia-codegen generates differ",
        "",
        "Generated by `python tools/quirks.py` from golden's own profiles (do not edit by hand; "
        "`python tools/quirks.py --check` runs in the tests). Every example is the minimal input that "
        "`golden diff` shrinks for that cause, on its seeded stimulus "
        f"({NEURONS} neurons x {STEPS} steps, seed {SEED}), and the command reproduces it. Inputs are raw "
        "integers in the input format; potentials and outputs are real values. Unless stated, the layer is "
        "8-bit LIF, q_in = q_v = q_out = 6, tau = 2, v_threshold = 1, v_reset = 0, decay_input, round nearest; "
        "`torch-eval` is qualia-plugin-snn 2.6 in `.eval()`, `codegen` the C of qualia-codegen-plugin-snn 2.6 "
        "(both proven bit-exact against the real thing by golden's tests).",
        "",
        "| # | quirk | config | minimal input | a | b | golden diff cause |",
        "|---|---|---|---|---|---|---|",
    ]
    details = []
    for i, q in enumerate(QUIRKS, 1):
        a, b = build(q)
        r = gdiff.diff(a, b, steps=STEPS, neurons=NEURONS, seed=SEED, cause=q.cause)
        if r.first is None:
            raise SystemExit(f"quirk {q.title!r}: no divergence of cause {q.cause!r} (causes: {r.causes})")
        f = r.first
        cfg = ", ".join(f"{k}" if v is True else f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in q.layer.items()) or "defaults"
        if q.a_over:
            cfg += "; a: " + ", ".join(f"{k}={v:.6g}" for k, v in q.a_over.items())
        ra = result(f.minimal_a_v, f.minimal_a_spikes, f.minimal_a_out)
        rb = result(f.minimal_b_v, f.minimal_b_spikes, f.minimal_b_out)
        lines.append(f"| {i} | {q.title} | {cfg} | `{f.minimal_x}` ({a.fmt_in}) | **{q.a}**: {ra} | "
                     f"**{q.b}**: {rb} | {f.cause} |")
        share = r.causes.get(q.cause, 0)
        details += [
            f"### {i}. {q.title}",
            "",
            q.what + (f" ({q.note}.)" if q.note else ""),
            "",
            f"- a: `{a.describe()}`",
            f"- b: `{b.describe()}`",
            f"- on the stimulus: spikes differ on {100 * r.spike_mismatch_rate:.3g}% and potentials on "
            f"{100 * r.potential_mismatch_rate:.3g}% of neuron-steps; {r.diverging_neurons} of {r.neurons} neurons "
            f"diverge, {share} of them first by this cause",
            f"- reproduce: `{command(q)}`",
            "",
        ]
    lines += ["", "## Details", ""] + details
    lines += [
        "## Not in the table",
        "",
        "- **Undefined behaviour in int16 / int32 builds.** There the C computes in `int` / `int64_t`, so an "
        "overflowing leak product or threshold comparison is undefined (gcc may fold `tmp - thr >= 0` into "
        "`tmp >= thr`). golden models a wrapping accumulator; the C has no defined answer. In int8 builds "
        "everything wraps at 16 bits, defined by gcc.",
        "- **q_out and shifts past the C's width.** `1 << q_out` for q_out >= 31 (int arithmetic) and the "
        "rounding constant `1 << (s - 1)` for a shift s > 31 are undefined; golden's `codegen` profile refuses them.",
        "- **Flat layers are limited to 65535 neurons**: the templates loop with `unsigned short` indices.",
        "- **The exporter** (`Quantizer.quantize_array_with_scale_factor`) computes `1 << scale_factor` and "
        "fails for a negative q_v; `qualia`'s QualiaCodeGen postprocessing offers int8 and int16 only.",
        "- **The C layer's input scale is the previous layer's output q**, not the neuron's own quantizer_input "
        "(which PyTorch applies): `golden.from_torch(..., profile='codegen', q_in=<previous layer's activation_q>)`.",
        "- **OUTPUT_ROUND_MODE is quantizer_act's roundtype** while the hyperparameters are exported with "
        "quantizer_v's (`codegen(round=..., round_out=...)`).",
        "",
        *atif_section(),
    ]
    return "\n".join(lines)


#: (v_threshold, roundtype) examples of a learned ATIF threshold off the Q8.6 grid; theta = vth * 64
ATIF_EXAMPLES = [(0.71, "nearest"), (45.5 / 64, "nearest"), (0.71, "floor"), (45.5 / 64, "floor"),
                 (0.71, "ceil"), (45.5 / 64, "ceil")]


def atif_section() -> list:
    """QuantizedATIF's learned threshold off the q_v grid: the two integers hardware holds, found by golden."""
    from golden.network.atif import atif_threshold
    from golden.network.layers import QUALIA_ROUNDS
    from golden.spec import QFormat

    fmt = QFormat(8, 6)
    rows = []
    for vth, rnd in ATIF_EXAMPLES:
        c, out = atif_threshold(vth, fmt, QUALIA_ROUNDS[rnd])
        rows.append(f"| {vth * 64:g} | {rnd} | {c} | {out} | {'yes' if c != out else 'no'} |")
    return [
        "## QuantizedATIF's learned threshold is off the q_v grid",
        "",
        "`QuantizedATIF.v_threshold` is an `nn.Parameter` drawn in [0.8, 1.0] x v_threshold, so in every "
        "default-built or trained layer it is off the grid. With `vp_th` read as `v_threshold` (the alias lives "
        "only in golden's test drivers), the layer fires on `Qv(v - vth) >= 0` with the unquantized float32 "
        "threshold, resets to `Qv(v - vth)` and outputs `Qact(z * Qv(vth))`. On the integer potential V "
        "(theta = vth * 2^q_v) firing and reset share one integer threshold C: `Qv(v - vth) = V - C` when it is "
        ">= 0, and it is < 0 exactly when V < C. golden finds C by evaluating the float32 expression on every V "
        "of the format (`golden.network.atif.atif_threshold`, so float32 rounding is honoured) and checks that "
        "it has that form. Integer hardware holds two constants: C and the graded output `Qact(Qv(vth))`; "
        "golden's spec is ATIF with `v_threshold = C` and `spike_out = Qact(Qv(vth))`. In closed form: "
        "'nearest' C = ceil(theta - 1/2), output floor(theta + 1/2), apart exactly at ties; 'floor' C = "
        "ceil(theta), output floor(theta); 'ceil' C = floor(theta), output ceil(theta), one LSB apart off the "
        "grid. Computed by golden at Q8.6:",
        "",
        "| theta = vth * 64 | roundtype | fire/reset threshold C (raw) | output Qv(vth) (raw) | differ |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 if docs/quirks.md is out of date")
    p.add_argument("--stdout", action="store_true", help="print instead of writing")
    a = p.parse_args(argv)
    text = render()
    if a.stdout:
        sys.stdout.write(text)
        return 0
    if a.check:
        current = DOC.read_text() if DOC.is_file() else ""
        if current != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run python tools/quirks.py", file=sys.stderr)
            return 1
        print(f"{DOC.relative_to(ROOT)} is up to date")
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
