"""golden's torch-eval and torch-train profiles are bit-exact against the real Qualia layers.

The reference is the released qualia-plugin-snn 2.6 ``QuantizedLIFNode`` /
``QuantizedIFNode`` / ``QuantizedATIF`` (with qualia-core 2.6's ``Quantizer``,
spikingjelly 0.0.0.0.14), driven by ``golden/refs/torch_ref.py``: only ATIF's
missing ``vp_th`` attribute is aliased to its ``v_threshold`` Parameter.

Train mode is compared with every quantizer's q frozen by ``force_q`` (Qualia
recalibrates an unforced q at every call in ``.train()``); the train-mode
potential compared is what the module holds after the step.

Budget: each property test below runs ``max_examples`` examples (150 in the
``ci`` profile) of 512..2048 neurons x 20..50 steps, so at least
150 x 512 x 20 = 1,536,000 neuron-steps per (profile, kind), i.e. over 4.6e6
per profile (about 1.4e7 in practice); the count is asserted and printed
(``pytest -rP``). ``--hypothesis-profile=deep`` (or ``GOLDEN_HYPOTHESIS=deep``)
runs 20,000 examples each: over 6e8 neuron-steps per profile (about 1.8e9).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import currently_in_test_context, example, given, note, settings
from hypothesis import strategies as st

import golden
from golden import SpecError
from golden.refs import torch_ref
from golden.strategies import profile_params, qualia_configs, qualia_inputs

from proofs import missing_torch, record, requires

pytestmark = [requires(missing_torch()), pytest.mark.filterwarnings("ignore::UserWarning")]

PROFILES = {"eval": golden.torch_eval, "train": golden.torch_train}
MIN_NEURONS, MAX_NEURONS, MIN_STEPS, MAX_STEPS = 512, 2048, 20, 50
REQUIRED_NEURON_STEPS = 1_000_000  # per profile, in CI


# ------------------------------------------------------------------ helpers
def _note(text: str) -> None:
    if currently_in_test_context():
        note(text)


def _run_reference(config: dict, x: np.ndarray, mode: str):
    module = torch_ref.make_module(**config)
    return module, torch_ref.run_module(module, x, q_in=config["q_in"], mode=mode)


def _first_difference(spec, trace_fields: dict, ref: dict):
    """(t, neuron, field) of the earliest disagreement, or None. Spikes are the reference's ``out != 0``."""
    fields = ["out", "v"] + (["spikes"] if spec.spike_out != 0 else [])
    first = None
    for f in fields:
        bad = np.argwhere(np.asarray(trace_fields[f]) != np.asarray(ref[f]))
        if bad.size:
            t, n = (int(a) for a in bad[0])
            if first is None or (t, n) < first[:2]:
                first = (t, n, f)
    return first


def _golden(spec, x) -> dict:
    tr = golden.simulate(spec, x)
    return {"out": tr.out, "v": tr.v, "spikes": tr.spikes}


def _fails(config, spec, mode, column) -> bool:
    x = np.asarray(column, np.int64)[:, None]
    return _first_difference(spec, _golden(spec, x), _run_reference(config, x, mode)[1]) is not None


def _minimize(config, spec, mode, column) -> np.ndarray:
    """Shrink one failing neuron's input sequence: drop leading steps, zero values, cut after the first difference."""
    c = np.asarray(column, np.int64).copy()
    while len(c) > 1 and _fails(config, spec, mode, c[1:]):
        c = c[1:]
    for i in range(len(c)):
        if c[i] != 0:
            trial = c.copy()
            trial[i] = 0
            if _fails(config, spec, mode, trial):
                c = trial
    return c


def _mismatch_report(config, spec, mode, x, first, got: dict, ref: dict) -> str:
    """The minimal counterexample: config, spec, one neuron's shortest input sequence, both traces to the first
    difference."""
    t, n, field = first
    column = _minimize(config, spec, mode, x[: t + 1, n])
    xm = column[:, None]
    g, r = _golden(spec, xm), _run_reference(config, xm, mode)[1]
    tm, _, fm = _first_difference(spec, g, r) or (t, 0, field)
    rows = [f"  {'t':>3} {'x':>8} | {'golden out':>10} {'v':>8} {'spike':>5} | {'torch out':>10} {'v':>8} {'spike':>5}"]
    for s in range(tm + 1):
        rows.append(f"  {s:>3} {int(column[s]):>8} | {int(g['out'][s, 0]):>10} {int(g['v'][s, 0]):>8} "
                    f"{int(g['spikes'][s, 0]):>5} | {int(r['out'][s, 0]):>10} {int(r['v'][s, 0]):>8} "
                    f"{int(r['spikes'][s, 0]):>5}")
    return "\n".join([
        f"golden {spec.profile} != Qualia Quantized{config['kind']} in .{mode}(): "
        f"first difference at step t={t}, neuron {n}, field {field!r} "
        f"(golden {int(got[field][t, n])} != torch {int(ref[field][t, n])}; x[:t+1] = {x[: t + 1, n].tolist()})",
        f"config = {config!r}",
        f"spec: {spec.describe()}",
        f"minimal input sequence for one neuron (raw, q_in={config['q_in']}): {column.tolist()}",
        f"it first differs at step t={tm}, field {fm!r}; traces (raw integers):",
        *rows,
    ])


def check_against_module(config: dict, x: np.ndarray, mode: str) -> int:
    """Assert golden (profile from the config, and from_torch of the module) equals the real module; returns
    neuron-steps."""
    spec = PROFILES[mode](config["kind"], **profile_params(config))
    _note(f"config = {config!r}")
    _note(spec.to_toml())
    module = torch_ref.make_module(**config)
    for when in ("before", "after"):
        read = golden.from_torch(module, f"torch-{mode}")
        assert read == spec, (f"from_torch(module) {when} the run differs from the profile built from the config\n"
                              f"config = {config!r}\nprofile:\n{spec.to_toml()}\nfrom_torch:\n{read.to_toml()}")
        if when == "before":
            ref = torch_ref.run_module(module, x, q_in=config["q_in"], mode=mode)
    got = _golden(spec, x)
    first = _first_difference(spec, got, ref)
    fields = ["out", "v"] + (["spikes"] if spec.spike_out != 0 else [])
    differ = np.zeros(x.shape, bool)
    for f in fields:
        differ |= np.asarray(got[f]) != np.asarray(ref[f])
    record(f"torch-{mode}", f"qualia-plugin-snn's layers in .{mode}()", x.size, int(differ.sum()))
    if first is not None:
        _note(f"x (T={x.shape[0]}, N={x.shape[1]}), first difference (t, neuron, field) = {first}")
        raise AssertionError(_mismatch_report(config, spec, mode, x, first, got, ref))
    if spec.spike_out == 0:
        assert not ref["out"].any() and not got["out"].any()
    return x.size


# ------------------------------------------------------- the property tests
def _property(mode: str, kind: str, counter: dict):
    @given(st.data())
    def prop(data):
        config = data.draw(qualia_configs(kinds=st.just(kind)), label="config")
        x = data.draw(qualia_inputs(config, min_steps=MIN_STEPS, max_steps=MAX_STEPS, min_neurons=MIN_NEURONS,
                                    max_neurons=MAX_NEURONS), label="x")
        counter["neuron_steps"] += check_against_module(config, x, mode)
        counter["examples"] += 1

    prop()


@pytest.mark.parametrize("kind", ["LIF", "IF", "ATIF"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_profile_bit_exact_against_real_module(mode, kind):
    """out, v and spikes, every step, every neuron: golden torch-{mode} == Qualia Quantized{kind} in .{mode}()."""
    counter = {"neuron_steps": 0, "examples": 0}
    _property(mode, kind, counter)
    minimum = settings.default.max_examples * MIN_NEURONS * MIN_STEPS
    print(f"torch-{mode} {kind}: {counter['examples']} examples, {counter['neuron_steps']} neuron-steps")
    assert counter["neuron_steps"] >= min(minimum, REQUIRED_NEURON_STEPS), counter


def test_ci_budget_arithmetic():
    """3 kinds x 150 examples x >= 512 neurons x >= 20 steps >= 1e6 neuron-steps per profile (ci profile)."""
    if settings.default.max_examples >= 150:
        assert settings.default.max_examples * MIN_NEURONS * MIN_STEPS >= REQUIRED_NEURON_STEPS


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("kind, extra", [
    ("LIF", dict(tau=2.0, v_reset=None, decay_input=True)),
    ("LIF", dict(tau=3.0, v_reset=0.0, decay_input=False)),
    ("LIF", dict(tau=64 / 7, v_reset=0.25, decay_input=True)),  # float32 division by float32(tau): 3.4999998
    ("LIF", dict(tau=1.25, v_reset=-0.3, decay_input=False)),
    ("IF", dict(tau=None, v_reset=0.1, decay_input=True)),
    ("ATIF", dict(tau=None, v_reset=None, decay_input=True)),
])
def test_known_traps_every_raw_input(mode, kind, extra):
    """Every raw input value, held for 40 steps, at 8 bits q=6: ties, threshold crossings, saturation."""
    config = dict(kind=kind, bits_in=8, q_in=6, bits_v=8, q_v=6, bits_out=8, q_out=7, round_in="nearest",
                  round_v="nearest", round_out="nearest", v_threshold=0.75 if kind == "ATIF" else 0.7, **extra)
    x = np.tile(np.arange(-128, 128, dtype=np.int64), (40, 1))
    x[1::7] = 0  # and a few zero steps: the leak alone
    check_against_module(config, x, mode)


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("kind, extra", [
    ("LIF", dict(tau=2.0, v_reset=None, decay_input=True)),
    ("LIF", dict(tau=3.0, v_reset=-0.25, decay_input=False)),
    ("IF", dict(tau=None, v_reset=0.1, decay_input=True)),
    ("IF", dict(tau=None, v_reset=None, decay_input=True)),
])
def test_a_threshold_quantized_to_zero_as_qualia_runs_it(mode, kind, extra):
    """v_threshold 0.001 at q_v = 6 quantizes to 0 (as a low-bit Qualia model's does): Qualia fires whenever v >= 0
    and golden follows, every raw input held for 40 steps."""
    config = dict(kind=kind, bits_in=8, q_in=6, bits_v=8, q_v=6, bits_out=8, q_out=7, round_in="nearest",
                  round_v="nearest", round_out="nearest", v_threshold=0.001, **extra)
    assert PROFILES[mode](kind, **profile_params(config)).v_threshold == 0
    x = np.tile(np.arange(-128, 128, dtype=np.int64), (40, 1))
    x[1::7] = 0
    x[2::5] = np.minimum(-x[2::5], 127)
    check_against_module(config, x, mode)


def test_mismatch_report_shows_minimal_counterexample():
    """A wrong spec (train's quantize-then-fire used for eval) yields a report with a shrunk one-neuron example."""
    config = dict(kind="LIF", bits_in=8, q_in=6, bits_v=8, q_v=6, bits_out=8, q_out=6, round_in="nearest",
                  round_v="nearest", round_out="nearest", tau=2.0, v_threshold=1.0, v_reset=None, decay_input=True)
    x = np.zeros((10, 50), np.int64)
    x[:, 37] = [-1, 0, -1, 0, 0, 0, 127, 0, 0, 0]  # v stays 0; 127 -> H = 63.5 raw: eval does not fire, train does
    wrong = golden.torch_train("LIF", **profile_params(config))
    ref = _run_reference(config, x, "eval")[1]
    got = _golden(wrong, x)
    first = _first_difference(wrong, got, ref)
    assert first[:2] == (6, 37)
    msg = _mismatch_report(config, wrong, "eval", x, first, got, ref)
    assert "t=6, neuron 37" in msg and "golden 64 != torch 0" in msg and "config = {" in msg
    assert "minimal input sequence for one neuron (raw, q_in=6): [127]" in msg
    assert "golden out" in msg and "torch out" in msg


# ------------------------------------------------ the input quantizer
def _input_quantizer(bits, q, roundtype):
    """A real layer's quantizer_input (eval mode, force_q), as a raw-int function; and that layer's golden spec."""
    import torch

    module = torch_ref.make_module(kind="IF", bits_in=bits, q_in=q, bits_v=16, q_v=8, bits_out=8, q_out=6,
                                   round_in=roundtype, round_v="nearest", round_out="nearest", tau=None,
                                   v_threshold=1.0, v_reset=None)
    module.eval()

    def apply(x):
        with torch.no_grad():
            y = module.quantizer_input(torch.from_numpy(np.ascontiguousarray(x, np.float32))).double().numpy()
        raw = y * 2.0 ** q
        assert np.array_equal(raw, np.rint(raw))
        return raw.astype(np.int64)

    return apply, golden.from_torch(module)


def _tricky_floats(bits, q):
    """Exact ties, a hair either side of them (0.49999997 * 2**-q among them), out of range, +-0, tiny values."""
    s = 2.0 ** -q
    k = np.arange(-(1 << (bits - 1)) - 3, (1 << (bits - 1)) + 3, dtype=np.float64)
    ties = ((k + 0.5) * s).astype(np.float32)
    vals = [ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf)),
            (k * s).astype(np.float32),
            np.array([0.49999997 * s, -0.49999997 * s, 0.5 * s, -0.5 * s, 1.5 * s, 0.0, -0.0, 1e-45, -1e-45,
                      3.4e38, -3.4e38, 1e30, -1e30, 2.0 ** 100, 2.0 ** 20, -(2.0 ** 20)], np.float32)]
    return np.concatenate([np.asarray(v, np.float32).ravel() for v in vals])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's inf - inf inside quantize_real on out-of-range floats
@given(bits=st.integers(4, 16), q=st.integers(-8, 24), roundtype=st.sampled_from(["nearest", "floor", "ceil"]),
       extra=st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=64))
@example(bits=8, q=6, roundtype="nearest", extra=[0.49999997 * 2.0 ** -6])
def test_quantize_input_equals_real_input_quantizer(bits, q, roundtype, extra):
    quantizer, spec = _input_quantizer(bits, q, roundtype)
    assert spec == golden.torch_eval("IF", bits=16, q_v=8, bits_in=bits, q_in=q, bits_out=8, q_out=6,
                                     v_threshold=1.0, v_reset=None, round_in=roundtype)
    x = np.concatenate([_tricky_floats(bits, q), np.asarray(extra, np.float32)])
    want = quantizer(x)
    got = spec.quantize_input(x).astype(np.int64)
    if not np.array_equal(got, want):
        i = int(np.argwhere(got != want)[0][0])
        raise AssertionError(f"quantize_input({x[i]!r} = {float(x[i]).hex()}) at bits={bits} q={q} {roundtype}: "
                             f"golden {got[i]} != Qualia {want[i]}")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_quantize_input_hair_below_a_tie_rounds_up():
    quantizer, spec = _input_quantizer(8, 6, "nearest")
    x = np.array([0.49999997 * 2.0 ** -6], np.float32)  # float32(y + 0.5) rounds up to 1.0
    assert spec.quantize_input(x)[0] == 1 == quantizer(x)[0]
    with pytest.raises(SpecError):
        spec.quantize_input(np.array([np.inf]))


# ------------------------------------------------------------ from_torch
def _qp(**kw):
    qp = {"quant_enable": True, "LSQ": False, "quantype": "fxp", "range_setting": "minmax", "is_asymmetric": False,
          "bits": 8, "roundtype": "nearest"}
    qp.update(kw)
    return qp


def _layers():
    import importlib

    return importlib.import_module("qualia_plugin_snn.learningmodel.pytorch.layers.quantized_SNN_layers")


def _lif(**kw):
    return _layers().QuantizedLIFNode(quant_params=_qp(**kw), tau=2.0, v_threshold=1.0, v_reset=None)


def test_from_torch_reads_each_quantizer_and_hyperparameter():
    config = dict(kind="LIF", bits_in=10, q_in=9, bits_v=12, q_v=8, bits_out=6, q_out=5, round_in="floor",
                  round_v="ceil", round_out="nearest", tau=3.0, v_threshold=0.7, v_reset=-0.3, decay_input=False)
    m = torch_ref.make_module(**config)
    for mode in ("eval", "train"):
        assert golden.from_torch(m, f"torch-{mode}") == PROFILES[mode]("LIF", **profile_params(config))
    assert golden.from_torch(m, q_in=7) == golden.torch_eval("LIF", **{**profile_params(config), "q_in": 7})
    spec = golden.from_torch(m, "codegen", width=16, round="nearest")
    assert spec == golden.codegen("LIF", width=16, bits=12, q_v=8, q_in=9, q_out=5, tau=3.0, v_threshold=0.7,
                                  v_reset=-0.3, decay_input=False, round="nearest", round_in="floor")


def test_from_torch_saturated_hyperparameters_as_the_module_holds_them():
    """Qualia saturates a hyperparameter silently (vth 1.0 at Q8.7 -> 127/128; 1/tau 0.5 at Q8.8 -> 127/256)."""
    config = dict(kind="LIF", bits_in=8, q_in=7, bits_v=8, q_v=8, bits_out=8, q_out=7, round_in="nearest",
                  round_v="nearest", round_out="nearest", tau=2.0, v_threshold=0.5, v_reset=-1.0, decay_input=True)
    with pytest.raises(SpecError, match="saturates"):  # a profile given real values refuses saturation...
        golden.torch_eval("LIF", **profile_params(config))
    x = np.random.default_rng(3).integers(-128, 128, (40, 256))
    for mode in ("eval", "train"):
        m = torch_ref.make_module(**config)
        spec = golden.from_torch(m, f"torch-{mode}")  # ...from_torch reads what the module will hold
        assert (spec.reciprocal_tau, spec.v_reset, spec.v_threshold) == (127, -128, 128 - 1)
        ref = torch_ref.run_module(m, x, q_in=7, mode=mode)
        got = _golden(spec, x)
        assert _first_difference(spec, got, ref) is None
        assert golden.from_torch(m, f"torch-{mode}") == spec


def test_from_torch_codegen_width_defaults_to_bits():
    m = _lif(force_q=6)
    assert golden.from_torch(m, "codegen") == golden.codegen("LIF", width=8, q_v=6, tau=2.0, v_reset=None)
    m12 = _lif(force_q=6, bits=12)
    with pytest.raises(SpecError, match="width"):
        golden.from_torch(m12, "codegen")


def test_from_torch_reads_calibrated_q_and_requantized_tau():
    """No force_q: q = bits - 2 - floor(log2(global_max)), and tau re-quantized at that q (3 -> 21/64 -> 11/32)."""
    import torch

    m = _layers().QuantizedLIFNode(quant_params=_qp(), tau=3.0, v_threshold=1.0, v_reset=None)
    m.train()
    with torch.no_grad():
        m(torch.full((4,), 0.9))  # global_max(v) = 1 (the threshold): q_v = 6; input 0.9: q_in = 7
        m.reset()
        m(torch.full((4,), 8.0))  # v = 8 * 21/64 = 2.625: q_v = 5 (1/tau -> 11/32); input 8: q_in = 3
    m.eval()
    spec = golden.from_torch(m)
    assert (spec.fmt_in.frac, spec.fmt_v.frac) == (3, 5)
    assert spec.reciprocal_tau == 11 and m.quantizer_v.fractional_bits == 5
    assert spec == golden.from_torch(m, "torch-eval", q_v=5)


def test_refuses_uncalibrated_quantizer():
    with pytest.raises(SpecError, match="uncalibrated"):
        golden.from_torch(_lif())
    m = _lif()
    m.quantizer_v.force_q, m.quantizer_act.force_q = 6, 6
    with pytest.raises(SpecError, match=r"quantizer_input: uncalibrated"):
        golden.from_torch(m)
    assert golden.from_torch(m, q_in=7).fmt_in.frac == 7  # an override states what the module does not record


def test_refuses_lsq():
    with pytest.raises(SpecError, match=r"LSQ=True .*Qualia's own converter \(QualiaCodeGen\) refuses LSQ too"):
        golden.from_torch(_lif(force_q=6, LSQ=True))


def test_refuses_asymmetric():
    with pytest.raises(SpecError, match="is_asymmetric"):
        golden.from_torch(_lif(force_q=6, is_asymmetric=True))


def test_refuses_non_fxp_quantype():
    with pytest.raises(SpecError, match=r"quantype='fake'.*Qualia's own converter \(QualiaCodeGen\) refuses 'fake'"):
        golden.from_torch(_lif(force_q=6, quantype="fake"))


def test_disabled_input_quantizer_takes_the_stated_producer_format():
    """``input.quant_enable = false``: a lone neuron takes its producer's values as they are; without the producer
    its format must be stated (q_in=), and then the spec is the one with that input format."""
    m = _lif(force_q=6, input={"quant_enable": False})
    with pytest.raises(SpecError, match=r"^QuantizedLIFNode\.quantizer_input: quant_enable=False.*state that format "
                                        r"with q_in="):
        golden.from_torch(m)
    spec = golden.from_torch(m, q_in=5, bits_in=8)
    assert spec == golden.from_torch(_lif(force_q=6), q_in=5)


def test_refuses_unquantized_spikingjelly_node():
    from spikingjelly.activation_based import neuron

    with pytest.raises(SpecError, match="unquantized SpikingJelly node"):
        golden.from_torch(neuron.LIFNode(tau=2.0))


def test_refuses_unsupported_module():
    import torch

    with pytest.raises(SpecError, match="unsupported module type Linear"):
        golden.from_torch(torch.nn.Linear(3, 3))


def test_global_max_zero_follows_torch_scale_one():
    """A quantizer whose global_max stayed 0 (the input and the output only ever saw zeros while calibrated): Qualia
    computes with scale 1 (q = 0) whatever force_q says, and torch-eval follows it, proven against the module."""
    import torch

    m = _lif(force_q=6)
    m.train()
    with torch.no_grad():
        m(torch.zeros(4))  # quantizer_input and quantizer_act have only seen zeros: global_max == 0, scale 1
    m.eval()
    assert float(m.quantizer_input.global_max) == 0 and float(m.quantizer_act.global_max) == 0
    spec = golden.from_torch(m)
    assert (spec.fmt_in.frac, spec.fmt_out.frac, spec.fmt_v.frac) == (0, 0, 6)
    x = torch.from_numpy(np.random.default_rng(3).random((12, 2, 4), dtype=np.float32) * 3)
    report = golden.check_model(m, x)
    assert report.ok, str(report)
    assert report.layers[0].spike_rate > 0.1, str(report)


def test_off_grid_atif_threshold_is_reproduced():
    """A learned ATIF threshold off the q_v grid (as every trained layer holds it) is reproduced, not refused:
    fire/reset on one integer threshold C, graded output Qact(Qv(vth)); they part exactly at a tie. Proven against
    the module by tests/test_network_torch.py::test_atif_learned_threshold_off_the_grid."""
    config = dict(kind="ATIF", bits_in=8, q_in=6, bits_v=8, q_v=6, bits_out=8, q_out=6, round_in="nearest",
                  round_v="nearest", round_out="nearest", tau=None, v_threshold=0.71, v_reset=None)
    spec = golden.from_torch(torch_ref.make_module(**config))
    assert (spec.v_threshold, spec.spike_out) == (45, 45)  # theta = 0.71 * 64 = 45.44
    config["v_threshold"] = 45.5 / 64  # a tie: fire/reset at ceil(45.5 - 1/2) = 45, output floor(45.5 + 1/2) = 46
    spec = golden.from_torch(torch_ref.make_module(**config))
    assert (spec.v_threshold, spec.spike_out) == (45, 46)
    x = np.array([[45, 100, -3], [0, 20, 60], [100, 127, 0]] * 5, np.int64)
    check_against_module({**config, "v_threshold": 45 / 64}, x, "eval")


def test_refuses_unknown_override_and_profile():
    with pytest.raises(SpecError, match="unknown override"):
        golden.from_torch(_lif(force_q=6), width=8)
    with pytest.raises(SpecError, match="profile"):
        golden.from_torch(_lif(force_q=6), "hardware")


# ------------------------------------------------------------ check_model
def _model(quant_params, T=12, batch=16, calibrate=True, seed=0):
    """QuantizedLinear(20->32) + QuantizedLIFNode + QuantizedLinear(32->10) + QuantizedIFNode, calibrated in train
    mode."""
    import torch
    from qualia_core.learningmodel.pytorch.layers.quantized_layers import QuantizedLinear
    from spikingjelly.activation_based import functional

    layers = _layers()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        QuantizedLinear(20, 32, quant_params=quant_params),
        layers.QuantizedLIFNode(quant_params=quant_params, tau=3.0, v_threshold=0.5, v_reset=None, decay_input=True),
        QuantizedLinear(32, 10, quant_params=quant_params),
        layers.QuantizedIFNode(quant_params=quant_params, v_threshold=0.5, v_reset=0.0),
    )
    x = torch.rand(T, batch, 20) * 6
    if calibrate:
        model.train()
        with torch.no_grad():
            for _ in range(2):
                functional.reset_net(model)
                for t in range(T):
                    model(x[t])
        model.eval()
    return model, x


def test_check_model_calibrated_in_train_then_evaluated():
    model, x = _model(_qp(bits=8))
    report = golden.check_model(model, x, profile="torch-eval")
    assert report.ok, str(report)
    assert [layer.name for layer in report.layers] == ["1", "3"]
    assert report.layers[0].spec.kind == "LIF" and report.layers[1].spec.kind == "IF"
    assert report.neuron_steps == 12 * 16 * (32 + 10)
    assert all(layer.spike_rate > 0.05 for layer in report.layers), str(report)  # not a vacuous check
    assert report.layers[0].spec.fmt_in.frac != report.layers[0].spec.fmt_v.frac  # q's from calibration
    from golden.testing import assert_bit_exact

    assert assert_bit_exact(model, x).ok
    assert not model.training  # the model's mode is restored


def test_check_model_on_qualia_quantized_smlp():
    """qualia-plugin-snn's own QuantizedSMLP (fc, LIF, fc, LIF, fc), calibrated in train mode, checked in eval."""
    import torch
    from qualia_plugin_snn.learningmodel.pytorch.QuantizedSMLP import QuantizedSMLP
    from spikingjelly.activation_based import functional

    torch.manual_seed(0)
    model = QuantizedSMLP(input_shape=(20,), output_shape=(5,), units=[32, 16], quant_params=_qp(bits=8), timesteps=10,
                          neuron={"kind": "LIFNode", "params": {"tau": 2.0, "v_threshold": 0.25, "v_reset": False,
                                                                "step_mode": "s"}})
    x = torch.rand(10, 8, 20) * 4
    model.train()
    with torch.no_grad():
        functional.reset_net(model)
        for t in range(10):
            model(x[t])
    report = golden.check_model(model, x)
    assert report.ok and [layer.name for layer in report.layers] == ["layers.neuron1", "layers.neuron2"], str(report)
    assert all(layer.spike_rate > 0.02 for layer in report.layers), str(report)


def test_check_model_train_profile_with_forced_q():
    q = {"force_q": 5}
    model, x = _model(_qp(bits=10, input=dict(q), v=dict(q), act=dict(q)), calibrate=False)
    model.train()
    report = golden.check_model(model, x, profile="torch-train")
    assert report.ok, str(report)
    assert all(layer.spike_rate > 0.05 for layer in report.layers), str(report)
    assert model.training


def test_check_model_train_profile_refuses_unforced_q():
    model, x = _model(_qp(bits=8))
    report = golden.check_model(model, x, profile="torch-train")
    assert not report.ok and all("force_q" in layer.error for layer in report.layers)


def test_check_model_reports_first_divergence():
    import torch

    model, x = _model(_qp(bits=8))
    model[1].register_forward_hook(lambda mod, args, out: torch.zeros_like(out))  # sabotage the LIF's output
    report = golden.check_model(model, x)
    lif, if_ = report.layers
    assert not report.ok and if_.exact
    d = lif.divergence
    assert d.field == "out" and d.got == 0 and d.expected != 0
    assert lif.mismatches["out"] > 0 and lif.mismatches["v"] == 0
    from golden.testing import assert_bit_exact

    with pytest.raises(AssertionError, match=r"DIVERGES first at t=\d+ neuron=\d+"):
        assert_bit_exact(model, x)


def test_check_model_reports_unquantized_node_and_atif():
    import torch
    from spikingjelly.activation_based import neuron

    atif = torch_ref.make_module(kind="ATIF", bits_in=8, q_in=6, bits_v=8, q_v=6, bits_out=8, q_out=6,
                                 round_in="nearest", round_v="nearest", round_out="nearest", tau=None,
                                 v_threshold=0.75, v_reset=None)
    x = torch.from_numpy((np.random.default_rng(1).integers(-128, 128, (30, 4, 64)) / 64).astype(np.float32))
    from golden.testing import assert_bit_exact

    assert assert_bit_exact(atif, x).neuron_steps == 30 * 4 * 64
    report = golden.check_model(torch.nn.Sequential(neuron.IFNode()), x)
    assert not report.ok and "unquantized" in report.layers[0].error
    assert math.isclose(float(atif.v_threshold), 0.75)
