"""ParametricLIF and ATIF in real Qualia 2.6.0 models: what Qualia builds, runs and deploys, and what golden reads.

Measured on the installed qualia-plugin-snn 2.6.0 (each asserted below, so an upstream fix shows up here):

- **ParametricLIF**: there is no ``QuantizedParametricLIFNode``. A quantized template (what QAT builds from a config
  with ``neuron.kind = "ParametricLIFNode"``) raises ``AttributeError: module '...quantized_SNN_layers' has no
  attribute 'QuantizedParametricLIFNode'`` at ``qualia_plugin_snn/learningmodel/pytorch/SNN.py:66``
  (``SNN.__select_neuron``). A quantized model can hold spikingjelly's float ``ParametricLIFNode`` only when built
  by hand through the Python API; in ``.eval()`` that node computes in float (no quantizer: no fixed-point format),
  so torch-eval refuses it in one line. Qualia's converter deploys it (qualia-codegen-plugin-snn
  ``TorchModelGraph``: ``TLifLayer`` with ``reciprocal_tau = sigmoid(w)``), in the formats of the layer before it
  (the node has no activation range of its own); golden's codegen network reads that C and equals it.
- **ATIF**: ``QuantizedATIF.ifsrl_fn`` reads ``self.vp_th`` (``quantized_SNN_layers.py:444``), an attribute only
  the unrelated ``IFSRL`` has: every forward, train or eval, raises ``AttributeError: 'QuantizedATIF' object has
  no attribute 'vp_th'``, so no Qualia run can calibrate or evaluate an ATIF model; a config's ``v_reset`` gives
  ``TypeError: QuantizedATIF.__init__() got an unexpected keyword argument 'v_reset'`` (``SNN.py:119``). golden reads
  ATIF and is proven against the module with the one-line ``vp_th = v_threshold`` alias
  (tests/test_network_torch.py); qualia-codegen has no ATIF mapping.
"""

import warnings

import numpy as np
import pytest

from proofs import against_c, missing_codegen, missing_torch, requires

pytestmark = requires(missing_torch())
QP = {"quant_enable": True, "LSQ": False, "quantype": "fxp", "range_setting": "minmax", "is_asymmetric": False,
      "bits": 8, "roundtype": "nearest", "force_q": None}
ARCH = dict(input_shape=(16, 1), output_shape=(4,), filters=[4, 6], kernel_sizes=[3, 3], paddings=[1, 1],
            strides=[1, 1], dropouts=0.0, pool_sizes=[2, 0], fc_units=[], timesteps=4, dims=1)


def plif_model(init_tau, decay_input, seed=0):
    """qualia_models' 8-bit SCNN1d with neuron1 a spikingjelly ParametricLIFNode (soft reset), calibrated."""
    import torch
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based import neuron as sjn

    from golden.refs import qualia_models as qm

    b = qm.build("SCNN", dims=1, kind="LIF", bits=8, seed=seed, calib_batches=0)
    m = b.model
    m.layers.neuron1 = sjn.ParametricLIFNode(init_tau=init_tau, decay_input=decay_input, v_threshold=1.0,
                                             v_reset=None, detach_reset=True, step_mode="s")
    functional.set_step_mode(m, "s")
    m.train()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(4):
            xb = torch.from_numpy(b.sample_inputs(8, seed=seed + 1000 + i))
            functional.reset_net(m)
            for t in range(xb.shape[1]):
                m(xb[:, t])
    m.eval()
    functional.reset_net(m)
    return b, m


def test_qualia_has_no_quantized_parametric_lif_and_atif_reads_a_missing_vp_th():
    import torch
    from qualia_plugin_snn.learningmodel.pytorch.layers import quantized_SNN_layers as q
    from qualia_plugin_snn.learningmodel.pytorch.QuantizedSCNN import QuantizedSCNN

    assert not hasattr(q, "QuantizedParametricLIFNode")
    with pytest.raises(AttributeError, match="has no attribute 'QuantizedParametricLIFNode'"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        QuantizedSCNN(**ARCH, quant_params=dict(QP), neuron={"kind": "ParametricLIFNode", "params": {}})
    atif = q.QuantizedATIF(quant_params=dict(QP, force_q=5))
    for mode in ("train", "eval"):
        getattr(atif, mode)()
        with pytest.raises(AttributeError, match="'QuantizedATIF' object has no attribute 'vp_th'"):
            atif(torch.rand(2, 5))


def test_parametric_lif_torch_eval_is_refused_in_one_line():
    import golden
    from golden.network import NetworkError

    _, m = plif_model(3.0, True)
    with pytest.raises(NetworkError, match=r"^layers\.neuron1 \(ParametricLIFNode\): an unquantized SpikingJelly "
                                           r"node computes in float; use Qualia's quantized neurons$"):
        golden.from_torch(m)


@requires(missing_codegen())
@pytest.mark.parametrize("init_tau,decay_input", [(3.0, True), (1.6, False), (2.0, True)])
def test_parametric_lif_deployed_as_a_lif_equals_the_real_c(init_tau, decay_input):
    """Qualia's deployment path on the model (its float twin keeps the ParametricLIFNode): the converter maps it to
    a TLifLayer with 1/tau = sigmoid(w); golden's codegen network equals the compiled C at every layer and step."""
    import golden
    from golden.refs import codegen_model as cm

    b, m = plif_model(init_tau, decay_input)
    w_tau = float(m.layers.neuron1.w.detach().sigmoid())
    assert abs(w_tau - 1 / init_tau) < 1e-6
    dep = cm.deploy(m)
    assert [la.ctype for la in dep.layers if la.torch_name == "layers.neuron1"] == ["TLifLayer"]
    net = golden.from_torch(dep, profile="codegen")
    spec = net["layers.neuron1"].layer.spec
    q_v = spec.fmt_v.frac
    assert spec.reciprocal_tau == int(np.floor(np.float32(w_tau) * 2.0 ** q_v + 0.5))  # the converter's integer
    assert spec.decay_input == decay_input
    x = cm.quantize_input(dep, b.sample_inputs(3, seed=7))
    tr, counts = against_c(dep, net, x)
    values = sum(v for v, _ in counts.values())
    assert values > 1000 and {n: k for n, (_, k) in counts.items() if k} == {}, counts
    assert tr.layers["layers.neuron1"].spike_rate > 0.02, tr.layers["layers.neuron1"].spike_rate
