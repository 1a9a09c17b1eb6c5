"""The model factory builds the REAL qualia-plugin-snn templates, calibrated, spiking and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from golden.refs import qualia_models as qm

from proofs import missing_torch, requires

pytestmark = requires(missing_torch())

X_SEED = 5


def _rates(outs: dict) -> dict[str, float]:
    return {n: float((v != 0).mean()) for n, v in outs.items() if n.rsplit(".", 1)[-1].startswith("neuron")}


@pytest.mark.parametrize("model,kind", [(m, "LIF") for m in qm.MODELS]
                         + [("SMLP", "IF"), ("SCNN2d-gsp", "IF"), ("SResNet1d", "IF"), ("SCNN1d-bn", "ATIF")])
def test_models_build_calibrate_and_spike(model, kind):
    b = qm.build(**qm.MODELS[model], kind=kind, bits=8, seed=0)
    assert b.model.training is False
    assert type(b.model).__name__ == f"Quantized{b.template}"
    # calibrated: every quantizer of every layer has seen data (global_max finite)
    for n, m in b.model.named_modules():
        if type(m).__name__ == "Quantizer" and ".functional" not in n:
            assert np.isfinite(float(m.global_max)), n
    outs = qm.run_torch(b, b.sample_inputs(3, seed=X_SEED))
    assert outs["output"].shape == (3, b.timesteps, 4)
    rates = _rates(outs)
    assert rates, "no neuron layer found"
    # every neuron layer spikes, none saturates: a silent network cannot pass
    assert all(0.0 < r < 0.95 for r in rates.values()), rates
    assert np.mean(list(rates.values())) > 0.02, rates
    # every torch output lies on its layer's quantization grid is the #11 check; here: finite values
    assert all(np.isfinite(v).all() for v in outs.values())


def test_layer_names_are_qualified_and_in_execution_order():
    b = qm.build("SResNet", dims=1, seed=0)
    outs = qm.run_torch(b, b.sample_inputs(1))
    assert list(outs) == [
        "identity1", "conv1", "neuron1", "layers.0.0.conv1", "layers.0.0.pool1", "layers.0.0.neuron1",
        "layers.0.0.conv2", "layers.0.0.neuron2", "layers.0.0.sconv", "layers.0.0.smax", "layers.0.0.neuronr",
        "layers.0.0.add", "postpool", "flatten", "linear", "output",
    ]
    names = dict(b.model.named_modules())
    assert all(n in names for n in outs if n != "output")


def test_deterministic_by_seed():
    a = qm.build("SCNN", dims=1, batch_norm=True, seed=3)
    b = qm.build("SCNN", dims=1, batch_norm=True, seed=3)
    c = qm.build("SCNN", dims=1, batch_norm=True, seed=4)
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert sa.keys() == sb.keys()
    assert all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)
    assert not np.array_equal(sa["layers.conv1.weight"].numpy(), sc["layers.conv1.weight"].numpy())
    x = a.sample_inputs(2, seed=X_SEED)
    oa, ob = qm.run_torch(a, x), qm.run_torch(b, x)
    assert all(np.array_equal(oa[n], ob[n]) for n in oa)
    assert np.array_equal(a.sample_inputs(2, seed=1), b.sample_inputs(2, seed=1))


@pytest.mark.parametrize("model,kind,bits", [
    ("SMLP", "LIF", 8), ("SCNN1d-bn", "LIF", 16), ("SCNN2d-gsp", "IF", 8), ("SResNet1d", "LIF", 8),
    ("SCNN1d", "ATIF", 8),
])
def test_step_modes_give_identical_outputs(model, kind, bits):
    s = qm.build(**qm.MODELS[model], kind=kind, bits=bits, step_mode="s", soft_reset=False, seed=2)
    m = qm.build(**qm.MODELS[model], kind=kind, bits=bits, step_mode="m", soft_reset=False, seed=2)
    x = s.sample_inputs(2, seed=X_SEED)
    os_, om = qm.run_torch(s, x), qm.run_torch(m, x)
    assert list(os_) == list(om)
    for n in os_:
        assert np.array_equal(os_[n], om[n]), n
    assert any(r > 0 for r in _rates(os_).values())


def test_float_twin_loads_the_quantized_weights():
    b = qm.build("SResNet", dims=2, batch_norm=True, seed=0)
    f = qm.float_model(b)
    assert type(f).__name__ == b.float_template == "SResNet"
    fs, qs = f.state_dict(), b.model.state_dict()
    for k, v in fs.items():
        assert np.array_equal(v.numpy(), qs[k].numpy()), k
    assert b.float_kwargs["neuron"]["kind"] == "LIFNode"


def test_overrides_reach_the_neurons():
    b = qm.build("SMLP", **qm.neuron_kwargs("LIF-qin>qv", 8))
    neurons = [m for m in b.model.modules() if hasattr(m, "quantizer_v")]
    assert neurons and all(m.weights_q == 2 for m in neurons), [(m.input_q, m.weights_q) for m in neurons]
    assert any(m.input_q > m.weights_q for m in neurons), [(m.input_q, m.weights_q) for m in neurons]


def test_configs_grid():
    grid = qm.configs()
    assert len(grid) == len(qm.MODELS) * len(qm.NEURONS) * 2
    assert len({label for label, _ in grid}) == len(grid)
    label, kw = grid[0]
    assert label == "SMLP/LIF-soft/8b/s/s0" and kw["template"] == "SMLP"


@pytest.mark.parametrize("kwargs,field", [
    ({"template": "SVGG"}, "template"),
    ({"template": "SCNN", "dims": 3}, "dims"),
    ({"template": "SMLP", "dims": 2}, "SMLP"),
    ({"template": "SMLP", "gsp": True}, "SMLP"),
    ({"template": "SResNet", "gsp": True}, "gsp"),
    ({"template": "SMLP", "kind": "Izhikevich"}, "kind"),
    ({"template": "SMLP", "bits": 5}, "bits"),
    ({"template": "SMLP", "roundtype": "even"}, "roundtype"),
    ({"template": "SMLP", "step_mode": "x"}, "step_mode"),
    ({"template": "SMLP", "overrides": {"weights": {"force_q": 3}}}, "overrides"),
    ({"template": "SMLP", "timesteps": 0}, "timesteps"),
])
def test_bad_build_arguments(kwargs, field):
    with pytest.raises(qm.ModelConfigError, match=field) as e:
        qm.build(**kwargs)
    assert isinstance(e.value, ValueError)
    assert "\n" not in str(e.value)


def test_bad_run_inputs():
    b = qm.build("SMLP")
    with pytest.raises(qm.ModelConfigError, match="x must be"):
        qm.run_torch(b, np.zeros((1, b.timesteps + 1, *b.torch_input_shape), np.float32))
    with pytest.raises(qm.ModelConfigError, match="n must be"):
        b.sample_inputs(0)
