#!/usr/bin/env python3
"""Generate docs/quirks.md: the upstream-quirk table, every number produced by golden itself.

    python tools/quirks.py            # rewrite docs/quirks.md
    python tools/quirks.py --check    # exit 1 if docs/quirks.md is not what golden produces now
    python tools/quirks.py --stdout   # print it
    python tools/quirks.py --save DIR # write each whole-network example's two networks and input under DIR

Each row builds two profiles from the same real-valued layer parameters, runs
``golden.diff.diff`` on its seeded stimulus restricted to that row's cause, and
prints the shrunk minimal input with both results. The exact ``golden diff``
command that reproduces the row is printed with it.

The whole-network section builds, per cause ``golden.network.diff.diff_networks`` names, a tiny pair of
networks from golden's layer specs (a torch-eval-like, b the same with the one codegen knob), searches the
minimal raw input on which they part, and fails unless ``diff_networks`` assigns the expected cause.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import shutil
import sys
import tempfile
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
        *causes_section(),
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
        m = f.minimal
        ra = result(m.a_v, m.a_spikes, m.a_out)
        rb = result(m.b_v, m.b_spikes, m.b_out)
        lines.append(f"| {i} | {q.title} | {cfg} | `{list(m.x)}` ({a.fmt_in}) | **{q.a}**: {ra} | "
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
        *network_section(),
    ]
    return "\n".join(lines)


def causes_section() -> list:
    """The one cause vocabulary (golden.causes.CAUSES) that golden diff, divergence maps and diff_networks use."""
    from golden.causes import CAUSES, UNEXPLAINED

    rows = [f"| {c.name} | {', '.join(f'`{k}`' for k in c.knobs)}"
            + (f"{'; other network' if c.knobs else 'network'} layers: {', '.join(f'`{k}`' for k in c.layer_knobs)}"
               if c.layer_knobs else "")
            + f" | {c.why} | {', '.join(c.aliases) or '-'} |" for c in CAUSES]
    return [
        "`golden diff`, `golden diff --exhaustive` (and `golden prove --against SPEC`) and `golden diff --net-a "
        "--net-b` name a divergence's cause in one vocabulary (`golden.causes.CAUSES`): b is re-run with the "
        "knobs of a set of causes switched toward a, sets by size then in this order; the first set that "
        f"restores a's value is the cause (joined with ' + '), '{UNEXPLAINED}' when none does.",
        "",
        "| cause | spec knobs aligned | why | earlier name |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


#: (v_threshold, roundtype) examples of a learned ATIF threshold off the Q8.6 grid; theta = vth * 64
ATIF_EXAMPLES = [(0.71, "nearest"), (45.5 / 64, "nearest"), (0.71, "floor"), (45.5 / 64, "floor"),
                 (0.71, "ceil"), (45.5 / 64, "ceil")]


def atif_section() -> list:
    """QuantizedATIF's learned threshold off the q_v grid: the two integers hardware holds, found by golden."""
    from golden.network.layers import QUALIA_ROUNDS
    from golden.qualia.atif import atif_threshold
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
        "of the format (`golden.qualia.atif.atif_threshold`, so float32 rounding is honoured) and checks that "
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


# ------------------------------------------------------------------------------------------------- whole networks
SAVE_DIR = "/tmp/quirk-nets"  # where the doc's recipe saves the example networks
MAX_ROWS = 1 << 17  # candidate inputs the minimal-input search simulates at once


@dataclass
class NetExample:
    slug: str  # directory name under --save DIR
    cause: str  # what diff_networks must name
    title: str
    what: str
    a: object  # golden.network.Network: torch-eval-like
    b: object  # the same layers with the one codegen knob
    x: object = None  # (1, T, *input_shape) raw: the minimal input on which they part


def _neuron_pair(spec_a, **knob):
    """One-neuron networks: a with ``spec_a``, b with ``knob`` changed (the knob diff_networks re-runs)."""
    from golden.network import Network, Node
    from golden.network.layers import Neuron

    return tuple(Network((1,), s.fmt_in, [Node("lif", Neuron.of(s, (1,), s.fmt_in))])
                 for s in (spec_a, dataclasses.replace(spec_a, **knob)))


def _linear_pair(fmt_in, fmt_w, fmt_out, weight, acc_bits_b):
    """Linear (in_features -> 1, no bias) networks: a with an exact accumulator, b with ``acc_bits_b``."""
    import numpy as np

    from golden.network import Network, Node
    from golden.network.layers import Linear

    w = np.asarray([weight], np.int64)
    lin = Linear(in_shape=(w.shape[1],), fmt_src=fmt_in, fmt_in=fmt_in, fmt_out=fmt_out, fmt_w=fmt_w,
                 in_features=w.shape[1], out_features=1)
    return tuple(Network((w.shape[1],), fmt_in, [Node("lin", layer)], {"lin": {"weight": w}})
                 for layer in (lin, lin.replace(acc_bits=acc_bits_b)))


def _bn_pair(fmt_in, fmt_w, fmt_out, weight):
    """BatchNorm1d (1 channel, no bias) networks: a torch-eval's (``arith = float32``), b the same with integers."""
    import numpy as np

    from golden.network import Network, Node
    from golden.network.layers import BatchNorm

    bn = BatchNorm(in_shape=(1, 1), fmt_src=fmt_in, fmt_in=fmt_in, fmt_out=fmt_out, fmt_w=fmt_w, dims=1,
                   num_features=1, arith="float32")
    return tuple(Network((1, 1), fmt_in, [Node("bn", layer)], {"bn": {"weight": np.asarray([weight], np.int64)}})
                 for layer in (bn, bn.replace(arith="int")))


def minimal_input(a, b, max_steps: int = 4):
    """The raw input (1, T, *shape) on which a layer both hold parts: fewest steps, then smallest max |x|,
    then smallest sum |x|, then first in the order 0, 1, -1, 2, -2, ... (every candidate is simulated)."""
    import numpy as np

    fmt, shape = a.fmt_input, a.input_shape
    vals = sorted(range(fmt.min, fmt.max + 1), key=lambda v: (abs(v), v < 0))
    for T in range(1, max_steps + 1):
        if len(vals) ** (T * math.prod(shape)) > MAX_ROWS:
            break
        xs = np.array(list(itertools.product(vals, repeat=T * math.prod(shape))), np.int64).reshape(-1, T, *shape)
        ta, tb = a.simulate(xs), b.simulate(xs)
        bad = np.zeros(len(xs), bool)
        for n, la in ta.layers.items():
            if n in tb.layers and la.fmt_out == tb.layers[n].fmt_out:
                bad |= (la.out != tb.layers[n].out).reshape(len(xs), -1).any(axis=1)
        if bad.any():
            ab = np.abs(xs).reshape(len(xs), -1)
            idx = np.flatnonzero(bad)
            best = min(idx, key=lambda i: (ab[i].max(), ab[i].sum(), i))
            return xs[best:best + 1].astype(fmt.dtype)
    raise SystemExit(f"no input of up to {max_steps} steps separates the two networks")


def network_examples() -> list:
    """One tiny pair per cause (golden.causes.CAUSES) for diff_networks, with its minimal input, in CAUSES order."""
    from golden.causes import CAUSES
    from golden.spec import QFormat

    q86 = QFormat(8, 6)
    cg_tmp = golden.make("codegen", "LIF", q_in=7, v_threshold=0.5)
    deployed = golden.make("codegen", "LIF", tau=3.0)
    cg_spike = golden.make("codegen", "LIF", q_out=15)
    train = golden.make("torch-train", "LIF", tau=3.0, v_threshold=0.25)
    exs = [
        NetExample("leak-rounding", "leak rounding", "LIF: float32 potential vs integer",
                   "torch's float32 charges the potential and tests the threshold on the unrounded value; the C's "
                   "integer arithmetic tests the potential already rounded to q_v. a is torch-eval's LIF, b the "
                   "same with `arith = int`.",
                   *_neuron_pair(golden.make("torch-eval", "LIF"), arith="int")),
        NetExample("tmp-shift", "TMP shift", "LIF with q_in = q_v + 1",
                   "The C shifts the leak product by TMP_SCALE_FACTOR = max(q_in, q_v) while `reciprocal_tau` is at "
                   "q_v: with q_in = 7, q_v = 6 the charge is halved. torch's float32 has no such shift, so a is the "
                   "codegen LIF with the exact shift (`leak_shift = q_v`) and b the codegen LIF (`max_q`); "
                   "v_threshold = 0.5 so that an input below 1 can fire.",
                   *_neuron_pair(dataclasses.replace(cg_tmp, leak_shift="q_v"), leak_shift=cg_tmp.leak_shift)),
        NetExample("saturation-width", "saturation width", "Linear 2 -> 1 in an int8 build",
                   "An int8 build accumulates in LONG_NUMBER_T = int16_t, which wraps (gcc's conversion is "
                   "modular); torch's float32 (and golden's torch-eval) holds the sum. a is a Q8.6 Linear with "
                   "weights [-128, -128] (-2, -2) and an exact accumulator, b the same with `acc_bits = 16`.",
                   *_linear_pair(q86, q86, q86, [-128, -128], 16)),
        NetExample("hyperparameter-rounding", "hyperparameter rounding", "LIF with tau = 3",
                   "Calibration leaves 1/tau = 22/64 in the quantized module (quirk 9 above: tau = 3 seen at "
                   "q_v = 7, then 6), the deployment quantizes float32(1/3) at the final q_v: "
                   f"{deployed.reciprocal_tau}/64. a is torch-eval's LIF with the calibrated value, b the same "
                   "with the deployed `reciprocal_tau`.",
                   *_neuron_pair(golden.make("torch-eval", "LIF", tau=64 / 22),
                                 reciprocal_tau=deployed.reciprocal_tau)),
        NetExample("init-potential", "init potential", "LIF with v_reset = -0.25",
                   "Qualia's neuron starts at v_reset, the generated `<layer>_reset_pot()` at 0. a is torch-eval's "
                   "LIF (`v_init = reset`), b the same with `v_init = zero`.",
                   *_neuron_pair(golden.make("torch-eval", "LIF", v_reset=-0.25), v_init="zero")),
        NetExample("spike-value-clamp", "spike-value clamp", "LIF with q_out = 15 in an int8 build",
                   "The C outputs `clamp_to(NUMBER_T, 1 << q_out)` with the shift in LONG_NUMBER_T = int16_t: at "
                   "q_out = 15 it wraps to -32768 and clamps to -128, where Qualia's quantizer saturates 1.0 to "
                   f"127. a is torch-eval's LIF, b the same with the C's `spike_out = {cg_spike.spike_out}`.",
                   *_neuron_pair(golden.make("torch-eval", "LIF", q_out=15), spike_out=cg_spike.spike_out)),
        NetExample("float32-arithmetic", "float32 arithmetic", "BatchNorm at 16 bits: torch's float32 y * 2^q + 1/2",
                   "QuantizedBatchNorm computes y = x * alpha + beta as two float32 operations and quantizes y in "
                   "float32, floor(float32(y * 2^q + 1/2)); the C multiplies and adds exact integers. With Q16.12 "
                   "inputs, alpha = 4097 / 2^13 and q_out = 0, x = 4095 / 2^12 gives x * alpha = 1/2 - 2^-25 "
                   "exactly: float32(z + 1/2) rounds to 1, the exact floor(z + 1/2) is 0. a is torch-eval's "
                   "BatchNorm (`arith = float32`), b the same with `arith = int`.",
                   *_bn_pair(QFormat(16, 12), QFormat(16, 13), QFormat(16, 0), 4097)),
        NetExample("compare-before-round", "compare-before-round", "LIF: QAT (train) vs eval",
                   "In `.train()` Qualia quantizes the charged potential before the spike test, in `.eval()` it "
                   "tests the unrounded value. a is torch-train's LIF (tau = 3, v_threshold = 0.25 so that one step "
                   "can fire), b the same with eval's `order`.",
                   *_neuron_pair(train, order=golden.make("torch-eval", "LIF", tau=3.0).order)),
    ]
    for ex in exs:
        ex.x = minimal_input(ex.a, ex.b)
    order = {c.name: i for i, c in enumerate(CAUSES)}
    return sorted(exs, key=lambda ex: order[ex.cause])


def check_cause(ex: NetExample):
    """diff_networks on the example's minimal input; SystemExit unless it names ``ex.cause``."""
    from golden.network.diff import diff_networks

    d = diff_networks(ex.a, ex.b, ex.x)
    f = d.first[0]
    if f is None or f.cause != ex.cause:
        raise SystemExit(f"network example {ex.slug!r}: diff_networks names {None if f is None else f.cause!r}, "
                         f"expected {ex.cause!r}")
    return d, f


def _steps(arr) -> str:
    return ", ".join(str(int(v)) if v.ndim == 0 else "[" + ", ".join(str(int(u)) for u in v.ravel()) + "]"
                     for v in arr)


def _outputs(trace, name: str, fmt, idx: tuple) -> str:
    lt = trace.layers[name]
    sel = (0, slice(None), *idx)
    out = lt.out[sel]
    s = "out = " + ", ".join(f"{int(o)} ({_num(fmt.real(int(o)))})" for o in out)
    if lt.v is not None:
        s += "; v = " + ", ".join(str(int(v)) for v in lt.v[sel])
    return s


def _accumulator(ex: NetExample, ta, tb, f) -> list:
    """For a Linear: the exact sum, what b's narrow accumulator holds, and golden's own wrap counters."""
    from golden.network.layers import Linear

    la, lb = ex.a[f.layer].layer, ex.b[f.layer].layer
    if not isinstance(la, Linear) or la.fmt_b is not None:
        return []
    w = ex.a.params[f.layer]["weight"][f.index[0]]
    acc = int(sum(int(wi) * int(xi) for wi, xi in zip(w, ex.x[0, f.t])))
    m = 1 << (lb.acc_bits - 1)
    wrapped = (acc + m) % (2 * m) - m
    wa, wb = ta.layers[f.layer].overflow["acc"], tb.layers[f.layer].overflow["acc"]
    if (wa, wb) != (0, 1) or wrapped == acc:
        raise SystemExit(f"network example {ex.slug!r}: expected one accumulator wrap in b only, got {wa}, {wb}")
    F = la.acc_frac
    return [f"- accumulator (frac {F}): exact sum W x = {acc} ({_num(acc / 2 ** F)}); b's {lb.acc_bits}-bit "
            f"LONG holds {wrapped} ({_num(wrapped / 2 ** F)}); golden counts {wb} accumulator wrap in b "
            f"(`LayerTrace.overflow['acc']`), {wa} in a; the output quantizer saturates both"]


def float32_example():
    """A 16-bit Linear (1 -> 1, no bias) whose exact product float32 cannot hold, found from golden's bound.

    Q16.8 input and weight give F = 16; a Q16.6 output keeps s = F - q_out = 10 bits of the accumulator away.
    The smallest product P >= 2**24 just below a rounding half (P = k 2**s + 2**(s-1) - 1) with both factors
    in the format: float32 rounds it up to the half, so 'nearest' rounds the output one LSB up.
    """
    from golden.network.layers import F32_EXACT
    from golden.spec import QFormat

    f_in, f_w, f_out = QFormat(16, 8), QFormat(16, 8), QFormat(16, 6)
    s = f_in.frac + f_w.frac - f_out.frac
    k = F32_EXACT >> s
    while True:
        P = (k << s) + (1 << (s - 1)) - 1
        if P >= F32_EXACT and _f32_round(P) >= (k << s) + (1 << (s - 1)):
            xs = [x for x in range(-(-P // f_w.max), f_in.max + 1) if P % x == 0]
            if xs:
                break
        k += 1
    x = xs[0]
    a, b = _linear_pair(f_in, f_w, f_out, [P // x], 32)
    return a, b, x, P, s


def _f32_neighbours(P: int) -> tuple:
    """The float32 values around the positive integer P: (largest <= P, smallest >= P)."""
    ulp = 1 << max(P.bit_length() - 24, 0)
    lo = P - P % ulp
    return lo, lo if lo == P else lo + ulp


def _f32_round(P: int) -> int:
    """IEEE-754 round-to-nearest-even of the positive integer P to float32."""
    lo, hi = _f32_neighbours(P)
    if hi == lo or P - lo < hi - P:
        return lo
    if P - lo > hi - P:
        return hi
    ulp = hi - lo
    return lo if (lo // ulp) % 2 == 0 else hi


def network_section() -> list:
    """docs/quirks.md's whole-network section: one example per cause diff_networks names, plus float32."""
    import numpy as np

    from golden.network.diff import CAUSES, diff_networks
    from golden.network.layers import F32_EXACT

    rows, details = [], []
    for ex in network_examples():
        d, f = check_cause(ex)
        ta, tb = ex.a.simulate(ex.x), ex.b.simulate(ex.x)
        layer_a, layer_b = ex.a[f.layer].layer, ex.b[f.layer].layer
        fmt = layer_a.fmt_out
        x = f"`{_steps(ex.x[0])}` ({ex.a.fmt_input})"
        rows.append(f"| {ex.cause} | {ex.title} | {x} | t={f.t}: {f.a} ({_num(fmt.real(f.a))}) | "
                    f"t={f.t}: {f.b} ({_num(fmt.real(f.b))}) | {f.cause} |")
        line = next(ln.strip() for ln in str(d).splitlines() if ln.strip().startswith("sample 0:"))
        details += [
            f"### {ex.cause}: {ex.title}",
            "",
            ex.what,
            "",
            f"- a `{f.layer}`: `{layer_a.describe()}`",
            f"- b `{f.layer}`: `{layer_b.describe()}`",
            f"- minimal input (raw, per step): {x}",
            f"- a at `{f.layer}`{list(f.index)} (raw, real): {_outputs(ta, f.layer, fmt, f.index)}",
            f"- b at `{f.layer}`{list(f.index)} (raw, real): {_outputs(tb, f.layer, fmt, f.index)}",
            *_accumulator(ex, ta, tb, f),
            f"- diff_networks: `{line}`",
            f"- reproduce: `golden diff --net-a {SAVE_DIR}/{ex.slug}/a --net-b {SAVE_DIR}/{ex.slug}/b "
            f"--input {SAVE_DIR}/{ex.slug}/x.npy`",
            "",
        ]
    a, b, xr, P, s = float32_example()
    x = np.array([[[xr]]], a.fmt_input.dtype)
    d = diff_networks(a, b, x)
    if not d.identical or d.f32_risk.get("lin") != 1:
        raise SystemExit(f"float32 example: expected identical networks with 1 value at risk, got {d.to_dict()}")
    lin = a["lin"].layer
    bound = a.float32_bounds()["lin"]
    if bound <= F32_EXACT:
        raise SystemExit(f"float32 example: bound {bound} <= 2**24")
    w = int(a.params["lin"]["weight"][0, 0])
    lo, hi = _f32_neighbours(P)
    r = _f32_round(P)
    if r != int(np.float32(P)):  # numpy's conversion agrees with the integer rounding above
        raise SystemExit(f"float32 example: round({P}) = {r} but numpy gives {int(np.float32(P))}")
    exact = int(a.simulate(x).out[0, 0, 0])
    half = 1 << (s - 1)
    f32_out = (r + half) >> s
    fo = lin.fmt_out
    if f32_out != exact + 1:
        raise SystemExit(f"float32 example: float32 output {f32_out}, golden {exact}: expected one LSB apart")
    rows.append(f"| float32 accumulation | 16-bit Linear 1 -> 1 | `{xr}` ({a.fmt_input}) | t=0: {exact} "
                f"({_num(fo.real(exact))}) | t=0: {exact} ({_num(fo.real(exact))}) | identical; f32_risk "
                f"{d.f32_risk['lin']}: float32 rounds the sum {P} to {r}, output {f32_out} "
                f"({_num(fo.real(f32_out))}) |")
    details += [
        "### float32 accumulation: a 16-bit Linear 1 -> 1",
        "",
        "Not a divergence between two golden networks: both compute the exact integer. It is where the real "
        "torch module may part from golden's torch-eval network, which `diff_networks` reports per layer as "
        "`f32_risk` (the values whose exact partial sums plus half an output LSB exceed 2^24, so torch's float32 "
        "may round them). a is a 16-bit Linear with an exact accumulator, b the same with `acc_bits = 32` "
        "(an int16 build's LONG_NUMBER_T = int32_t).",
        "",
        f"- a `lin`: `{lin.describe()}`; weight raw {w} ({_num(lin.fmt_w.real(w))})",
        f"- golden's float32 bound for `lin` (`Network.float32_bounds`): {bound} = 2^{math.log2(bound):.2f} "
        f"> 2^24: float32 may round",
        f"- input (raw): `{xr}` ({a.fmt_input}, {_num(a.fmt_input.real(xr))}), chosen from the bound: the "
        f"smallest product P >= 2^24 just below an output rounding half that factors into a Q16.8 input and "
        f"weight (the input is the smallest such factor)",
        f"- diff_networks: {'IDENTICAL' if d.identical else 'they differ'}, f32_risk `lin` = {d.f32_risk['lin']}",
        f"- exact accumulator (golden, a and b): P = {xr} x {w} = {P} (units of 2^-{lin.acc_frac}); output "
        f"floor(P / 2^{s} + 1/2) = {exact} ({_num(fo.real(exact))})",
        f"- float32 holds P's neighbours {lo} and {hi} (spacing {hi - lo} above 2^24) but not P: P is "
        f"{'the midpoint' if P - lo == hi - P else 'between them'}, round-to-nearest-even gives {r}, whose "
        f"output is floor({r} / 2^{s} + 1/2) = {f32_out} ({_num(fo.real(f32_out))}): one LSB above golden's",
        "- a single product is rounded once by IEEE-754 whatever the summation order; "
        "`tests/test_diff.py::test_quirks_float32_example_is_what_torch_computes` checks that "
        "`torch.nn.functional.linear` in float32 on these values gives that output",
        f"- reproduce (identical, exit 0; the `lin` line counts the value float32 may round): "
        f"`golden diff --net-a {SAVE_DIR}/float32-accumulation/a --net-b {SAVE_DIR}/float32-accumulation/b "
        f"--input {SAVE_DIR}/float32-accumulation/x.npy`",
        "",
    ]
    return [
        "## Whole networks: torch-eval vs codegen",
        "",
        "`golden diff --net-a DIR --net-b DIR` (`golden.network.diff.diff_networks`) runs two networks on one "
        "raw input and classifies each sample's first divergence by re-running the diverging layer of b with "
        "knobs of a's. Per cause, a tiny hand-built pair (golden layer specs, no torch): a torch-eval-like, b the "
        "same layer with the one codegen knob; the input is the minimal one on which they part (fewest steps, "
        "then smallest |x|, every candidate simulated), and the generator fails unless `diff_networks` names the "
        "cause. Outputs are raw (real) at the diverging layer. Save all the networks with "
        f"`python tools/quirks.py --save {SAVE_DIR}`, then run each example's `golden diff` line (exit 1: they "
        "differ). A real torch-eval / codegen pair differs in several knobs at once; there `diff_networks` names "
        "the first set of causes, by size then in the order " + ", ".join(f"'{c.name}'" for c in CAUSES)
        + ", whose knobs restore a's value (the attribution `golden diff` uses for a single layer).",
        "",
        "| cause | layer | minimal input | a | b | diff_networks |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *details,
    ]


def network_pairs() -> dict:
    """slug -> (a, b, x) for every whole-network example, float32 included (what --save writes)."""
    import numpy as np

    out = {ex.slug: (ex.a, ex.b, ex.x) for ex in network_examples()}
    a, b, xr, _, _ = float32_example()
    out["float32-accumulation"] = (a, b, np.array([[[xr]]], a.fmt_input.dtype))
    return out


def save(directory) -> int:
    """Write DIR/<slug>/{a,b,x.npy}; refuses an existing DIR; nothing is left behind on failure."""
    import numpy as np

    d = Path(directory)
    if d.exists() or d.is_symlink():
        print(f"quirks: error: --save {d}: already exists (give a new directory)", file=sys.stderr)
        return 2
    if not d.parent.is_dir():
        print(f"quirks: error: --save {d}: parent directory {d.parent} does not exist", file=sys.stderr)
        return 2
    pairs = network_pairs()
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".quirk-nets-", dir=d.parent))
    except OSError as e:
        print(f"quirks: error: --save {d}: cannot write in {d.parent} ({e.strerror})", file=sys.stderr)
        return 2
    try:
        for slug, (a, b, x) in pairs.items():
            (tmp / slug).mkdir()
            a.save(tmp / slug / "a")
            b.save(tmp / slug / "b")
            np.save(tmp / slug / "x.npy", x)
        tmp.chmod(0o755)
        tmp.rename(d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {len(pairs)} network pairs under {d}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 if docs/quirks.md is out of date")
    p.add_argument("--stdout", action="store_true", help="print instead of writing")
    p.add_argument("--save", metavar="DIR", help="write each whole-network example's networks a, b and input "
                   "x.npy to DIR/<name>/ (DIR must not exist) for golden diff --net-a --net-b --input")
    a = p.parse_args(argv)
    if a.save:
        return save(a.save)
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
