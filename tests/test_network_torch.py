"""Whole networks against the REAL Qualia models in .eval(): every layer, every step, several samples.

The models are qualia-plugin-snn's QuantizedSMLP / SCNN (1-D, 2-D, batch_norm, gsp) /
SResNet, built small with seeded random weights and calibrated in train mode
(golden.refs.qualia_models). ``check_model(network=True)`` hooks every layer, runs the
model in its own step mode, replays every golden layer on the module's own inputs and
compares raw values. The CI grid covers every model x 8/16 bits x both step modes,
the neuron variant rotating so that each (neuron, bits, mode) appears; ATIF (with the
test-driver ``vp_th`` alias, the learned threshold off the grid) on every model; the
``deep`` profile runs the full product.
"""

import itertools
import os

import numpy as np
import pytest

from proofs import missing_torch, record, requires

pytestmark = requires(missing_torch())

DEEP = os.environ.get("GOLDEN_HYPOTHESIS") == "deep"
MODELS = ["SMLP", "SCNN1d", "SCNN1d-bn", "SCNN1d-gsp", "SCNN2d", "SCNN2d-bn", "SCNN2d-gsp", "SResNet1d", "SResNet2d"]
NEURONS = ["LIF-soft", "LIF-hard", "LIF-soft-nodecay", "LIF-hard-nodecay", "IF-soft", "IF-hard"]
MIN_LAYER_RATE = 0.005  # every neuron layer spikes on >= 0.5% of its neuron-steps: no silent network passes
MIN_MEAN_RATE = 0.05


def _grid():
    if DEEP:
        return list(itertools.product(MODELS, NEURONS + ["ATIF"], (8, 16), ("s", "m")))
    out = []  # every model at 8 and 16 bits, in both step modes; every neuron variant at 8 and 16 bits
    for i, model in enumerate(MODELS):
        modes = ("s", "m") if i % 2 == 0 else ("m", "s")
        out += [(model, NEURONS[(i + 3 * k) % len(NEURONS)], bits, modes[k]) for k, bits in enumerate((8, 16))]
    out += [(model, "ATIF", (8, 16)[i % 2], ("s", "m")[i // 2 % 2]) for i, model in enumerate(MODELS)]
    return out


def _check(model_name, neuron, bits, mode, samples=3):
    import golden
    from golden.qualia.check import BUG, F32, OFF_GRID
    from golden.refs import qualia_models as qm

    kw = dict(qm.configs([model_name], [neuron], (bits,), (mode,), (0,))[0][1])
    built = qm.build(**kw)
    x = built.sample_inputs(samples, seed=7)
    report = golden.check_model(built.model, x, network=True)
    return built, x, report, (BUG, F32, OFF_GRID)


@pytest.mark.parametrize("model_name,neuron,bits,mode", _grid(), ids=lambda v: str(v))
def test_every_layer_equals_the_real_model(model_name, neuron, bits, mode):
    _, x, report, (BUG, F32, OFF_GRID) = _check(model_name, neuron, bits, mode)
    print(f"\n{model_name}/{neuron}/{bits}b/{mode}: {report.compared} values, {report.count(F32)} float32 "
          f"accumulation, {sum(c.outside_bound for c in report.layers)} outside the float32 bound")
    record("network torch-eval", "qualia-plugin-snn's whole models in .eval(), every layer at every step",
           report.compared, report.count(BUG) + report.count(OFF_GRID), unit="layer values")
    assert report.count(BUG) == 0 and report.count(OFF_GRID) == 0, str(report)
    # every layer of the graph is compared, outputs at every step of every sample
    S, T = x.shape[:2]
    net = report.network
    assert [c.name for c in report.layers] == [n.name for n in net]
    for c, node in zip(report.layers, net):
        assert c.compared >= S * T * int(np.prod(node.layer.out_shape)), c
    rates = [c.spike_rate for c in report.layers if c.spike_rate is not None]
    assert len(rates) >= 2 and min(rates) >= MIN_LAYER_RATE and np.mean(rates) >= MIN_MEAN_RATE, str(report)
    if bits == 8:  # 8-bit products and sums stay inside the float32 bound: bit-exact, end to end too
        assert report.exact and sum(c.outside_bound for c in report.layers) == 0, str(report)
        assert report.end_to_end_mismatches == 0


def test_step_modes_give_the_same_network_and_trace():
    """'s' and 'm' builds of one model: one golden network (same digest), identical traces."""
    import golden
    from golden.refs import qualia_models as qm

    nets = {}
    for mode in ("s", "m"):
        kw = dict(qm.configs(["SResNet1d"], ["LIF-hard"], (8,), (mode,), (0,))[0][1])
        nets[mode] = golden.from_torch(qm.build(**kw).model)
    a, b = nets["s"], nets["m"]
    assert a.meta["step_mode"] == "s" and b.meta["step_mode"] == "m"
    assert a.describe() == b.describe()
    x = a.quantize_input(np.random.default_rng(3).random((2, 8, *a.input_shape), np.float32) * 2)
    ta, tb = a.simulate(x), b.simulate(x)
    for name in ta.layers:
        np.testing.assert_array_equal(ta.layers[name].out, tb.layers[name].out)


def test_samples_are_independent():
    """State resets between samples: a sample's trace does not depend on the batch around it."""
    import golden
    from golden.refs import qualia_models as qm

    built = qm.build(**dict(qm.configs(["SCNN1d"], ["LIF-soft"], (8,), ("s",), (0,))[0][1]))
    net = golden.from_torch(built.model)
    x = net.quantize_input(built.sample_inputs(4, seed=1))
    whole = net.simulate(x)
    one = net.simulate(x[2:3])
    for name, lt in whole.layers.items():
        np.testing.assert_array_equal(lt.out[2:3], one.layers[name].out)
    assert whole.out.shape == (4, built.timesteps, 4)


def test_float32_accumulation_is_reported_never_silent():
    """At 16 bits some partial sums exceed float32's 24-bit mantissa (here in the 3x3 Conv2d of SCNN2d-bn, whose
    summation order is torch's own): golden gives the exact integer result; the check names the cause "float32
    accumulation" with both values (off by one LSB), and nothing else differs. Its BatchNorms are not among them:
    golden reproduces their two float32 operations (tests/test_network_batchnorm.py)."""
    from golden.testing import assert_bit_exact

    built, x, report, (BUG, F32, OFF_GRID) = _check("SCNN2d-bn", "LIF-hard-nodecay", 16, "s")
    assert report.count(BUG) == 0 and report.count(OFF_GRID) == 0, str(report)
    assert report.count(F32) > 0, str(report)
    first = report.first
    assert first.cause == F32
    assert "float32 accumulation" in str(report) and f"golden {first.golden} != module {first.module}" in str(report)
    assert abs(first.golden - first.module) == 1
    assert first.shrunk_input.shape == (1, first.t + 1, *x.shape[2:])
    bad = [c for c in report.layers if c.total_mismatches]
    assert all(c.outside_bound >= c.mismatches[F32] > 0 for c in bad)
    assert not any(c.type.startswith("BatchNorm") for c in bad) and all(
        c.outside_bound == 0 for c in report.layers if c.type.startswith("BatchNorm")), str(report)
    with pytest.raises(AssertionError, match="float32 accumulation"):
        assert_bit_exact(built.model, x, network=True)
    assert_bit_exact(built.model, x, network=True, allow_float32=True)


def test_single_neuron_module_still_gives_a_spec():
    import golden
    from golden.refs import torch_ref

    m = torch_ref.make_module(kind="LIF", bits_in=8, q_in=6, bits_v=8, q_v=6, bits_out=8, q_out=6,
                              round_in="nearest", round_v="nearest", round_out="nearest", tau=2.0, v_threshold=1.0,
                              v_reset=None)
    assert isinstance(golden.from_torch(m), golden.Spec)


@pytest.mark.parametrize("roundtype", ["nearest", "floor", "ceil"])
@pytest.mark.parametrize("theta", [45.44, 45.5, 45.0, 45.7, 57.25])
def test_atif_learned_threshold_off_the_grid(roundtype, theta):
    """A single QuantizedATIF whose threshold is off the q_v grid (ties included): golden's spec equals the module,
    and the two integers it holds are the closed forms of golden.qualia.atif."""
    import torch

    import golden
    from golden.qualia.atif import atif_threshold, closed_form
    from golden.refs import torch_ref
    from golden.spec import QFormat

    q = 6
    vth = float(np.float32(theta / 2 ** q))
    m = torch_ref.make_module(kind="ATIF", bits_in=8, q_in=q, bits_v=8, q_v=q, bits_out=8, q_out=q, round_in=roundtype,
                              round_v=roundtype, round_out=roundtype, tau=None, v_threshold=1.0, v_reset=None)
    with torch.no_grad():
        m.v_threshold.fill_(vth)
    spec = golden.from_torch(m)
    c, out = atif_threshold(vth, QFormat(8, q), golden.spec.QUALIA_ROUND[roundtype])
    assert (c, out) == closed_form(theta, roundtype)
    assert spec.v_threshold == c
    rng = np.random.default_rng(int(theta * 4))
    x = rng.integers(-20, 64, (40, 32))
    got = torch_ref.run_module(m, x, q_in=q, mode="eval")
    tr = golden.simulate(spec, spec.quantize_input(x * 2.0 ** -q))
    np.testing.assert_array_equal(tr.out, got["out"])
    np.testing.assert_array_equal(tr.v, got["v"])
    assert 0.05 < tr.spike_rate < 0.95


def _exact_and_spiking(built, x, label):
    import golden

    report = golden.check_model(built.model, x, network=True)
    record("network torch-eval", "qualia-plugin-snn's whole models in .eval(), every layer at every step",
           report.compared, report.count("golden != module") + report.count("off grid"), unit="layer values")
    assert report.exact and report.end_to_end_mismatches == 0, str(report)
    rates = [c.spike_rate for c in report.layers if c.spike_rate is not None]
    assert rates and min(rates) > 0, str(report)  # every neuron layer spikes: the check proves something
    print(f"\n{label}: {report.compared} values, 0 mismatches, spike rates {[round(r, 3) for r in rates]}")
    return report


@pytest.mark.parametrize("model_name", ["SCNN2d", "SResNet1d", "SCNN1d-bn"])
def test_disabled_input_quantizer_takes_its_producers_format(model_name):
    """``input.quant_enable = false`` (every GSC and CIFAR int config): a layer's input is its producer's quantized
    output, passed unchanged, so its format is the producer's; proven against the real model."""
    from golden.refs import qualia_models as qm

    b = qm.build(**qm.MODELS[model_name], kind="LIF", bits=8, seed=0, overrides={"input": {"quant_enable": False}})
    off = [n for n, m in b.model.named_modules()
           if getattr(getattr(m, "quantizer_input", None), "quant_enable", True) is False]
    assert len(off) >= 3, off
    report = _exact_and_spiking(b, b.sample_inputs(3, seed=7), f"{model_name} input quantizers off")
    for n in report.network:
        if n.layer.fmt_in is not None and type(n.layer).__name__ not in ("Identity",):
            assert n.layer.fmt_in == n.layer.fmt_src, n.name


def test_disabled_input_quantizer_on_the_model_input_is_refused_naming_the_layer():
    import golden
    from golden.network import NetworkError
    from golden.refs import qualia_models as qm

    b = qm.build("SMLP", kind="LIF", bits=8, overrides={"input": {"quant_enable": False}}, calib_batches=1)
    with pytest.raises(NetworkError, match=r"^layers\.fc1 \(QuantizedLinear\)\.quantizer_input: quant_enable=False "
                                           r"on the layer that takes the model's input.*enable that quantizer"):
        golden.from_torch(b.model)


def test_m_sresnet_keeps_its_add_in_s():
    """Qualia builds an 'm' SResNet with its QuantizedAdd left in 's' (an elementwise sum: the same on (T, B, ...))."""
    from golden.refs import qualia_models as qm

    b = qm.build("SResNet", dims=2, kind="LIF", bits=8, step_mode="m", seed=0)
    modes = {type(m).__name__: m.step_mode for m in b.model.modules() if isinstance(getattr(m, "step_mode", None),
                                                                                       str)}
    assert modes["QuantizedAdd"] == "s" and modes["QuantizedLIFNode"] == "m", modes
    report = _exact_and_spiking(b, b.sample_inputs(3, seed=7), "SResNet2d 'm', add 's'")
    assert report.network.meta["step_mode"] == "m"


def never_spiked(model_name="SCNN2d"):
    """A model whose second neuron layer never spiked while calibrated (T=2, threshold 8): its quantizer_act and the
    next layer's quantizer_input keep global_max == 0. Over 12 steps it spikes."""
    from golden.refs import qualia_models as qm

    b = qm.build(**qm.MODELS[model_name], kind="IF", soft_reset=True, bits=8, seed=0, v_threshold=8.0, timesteps=2)
    return b, np.repeat(b.sample_inputs(3, seed=7)[:, :1], 12, 1)


@pytest.mark.parametrize("model_name", ["SMLP", "SCNN2d"])
def test_never_spiked_layer_follows_torchs_scale_one(model_name):
    """global_max == 0: torch computes with scale 1 (q = 0) and torch-eval follows it; the network's metadata names
    each such quantizer and the fractional_bits the exporter (hence the C) uses instead."""
    b, x = never_spiked(model_name)
    report = _exact_and_spiking(b, x, f"{model_name} never spiked while calibrated")
    net = report.network
    assert "layers.neuron2.quantizer_act: scale 1 (q=0) while fractional_bits=6" in net.meta["scale_one"]
    assert net["layers.neuron2"].layer.fmt_out.frac == 0


def test_torch_readers_dispatch_by_type_and_name_the_registry_in_refusals():
    """One reader per Qualia module class, found by type (a subclass, e.g. the plugin's step-mode QuantizedConv2d,
    is read by its registered base); an unknown layer is refused with the registry's list."""
    import torch

    import golden
    from golden.network import NetworkError
    from golden.qualia import readers
    from golden.refs import qualia_models as qm

    b = qm.build("SCNN", dims=2, kind="IF", bits=8, calib_batches=1)
    conv = b.model.layers.conv1
    assert type(conv) not in readers.TORCH_READERS and readers.TORCH_READERS.find(type(conv)) is not None
    names = readers.TORCH_READERS.names()
    assert {"QuantizedConv2d", "QuantizedLinear", "QuantizedAdd", "QuantizedLIFNode", "QuantizedATIF"} <= set(names)
    b.model.layers.neuron1 = torch.nn.GELU()
    with pytest.raises(NetworkError, match=r"^layers\.neuron1 \(GELU\): unsupported layer type; golden describes "
                                           + readers.supported().replace("(", r"\(").replace(")", r"\)")):
        golden.from_torch(b.model)


@pytest.mark.parametrize("model_name,kind,bits", [("SCNN2d", "LIF", 4), ("SCNN1d", "IF", 6), ("SResNet1d", "LIF", 12)])
def test_widths_other_than_8_and_16_in_torch_eval(model_name, kind, bits):
    """The GSC configs quantize at 4, 6 and 12 bits: torch-eval reads any width, proven against the real model
    (codegen refuses them: tests/test_network_codegen.py)."""
    from golden.refs import qualia_models as qm

    b = qm.build(**qm.MODELS[model_name], kind=kind, bits=bits, seed=0)
    report = _exact_and_spiking(b, b.sample_inputs(3, seed=7), f"{model_name} {kind} {bits} bits")
    assert {n.layer.fmt_out.bits for n in report.network} == {bits}
