"""Grouped and depthwise-separable convolutions (``groups``) against the REAL Qualia model and the REAL generated C.

qualia-core 2.6's ``QuantizedConv1d`` / ``QuantizedConv2d`` take ``groups`` (torch Conv subclasses, passed to
``conv{1,2}d``); qualia-codegen deploys them (``TorchModelGraph`` passes ``module.groups``; the conv templates sum
each filter over its group's ``CHANNELS_PER_GROUP`` channels). Qualia's float ``SCNN`` builds separable convs
(``separables``: a depthwise ``conv<i>_dw`` with ``groups = in_channels`` and a 1x1 ``conv<i>_pw``) but
``QuantizedSCNN`` 2.6.0 has no ``separables`` argument, so QAT (``QuantizedSCNN(**params)``) cannot build one from a
config (``TypeError: QuantizedSCNN.__init__() got an unexpected keyword argument 'separables'``), and the float
SCNN with ``separables`` and ``batch_norm`` fails at its first forward (``bn<i>_dw`` is built with ``out_filters``
channels after a depthwise conv of ``in_filters``: "running_mean should contain 4 elements not 6"). The quantized
models here are built through Qualia's Python API, as the float template lays them out (names included), from
Qualia's own quantized layer classes; calibrated in train mode, then ``.eval()``.
"""

import warnings
from collections import OrderedDict

import numpy as np
import pytest

from proofs import against_c, missing_codegen, missing_torch, record, requires

pytestmark = requires(missing_torch())


def grouped_scnn(dims, variant, kind="LIF", bits=8, seed=0, timesteps=6):
    """qualia_models' SCNN (filters [4, 6]) with conv2 replaced: 'separable' -> conv2_dw (groups 4) + neuron2_dw +
    conv2_pw (1x1), as Qualia's float SCNN lays out ``separables``; 'groups2' -> one conv 4 -> 6 with groups 2."""
    import torch
    from spikingjelly.activation_based import functional

    from golden.refs import qualia_models as qm

    b = qm.build("SCNN", dims=dims, kind=kind, bits=bits, seed=seed, timesteps=timesteps, calib_batches=0)
    m = b.model
    qp = b.quantized_kwargs["quant_params"]
    conv = type(m.layers.conv2)
    new = OrderedDict()
    for name, mod in m.layers.items():
        if name == "neuron2" and variant == "separable":
            new["neuron2_pw"] = mod  # the float SCNN's names: conv2_dw, neuron2_dw, conv2_pw, neuron2_pw
        elif name != "conv2":
            new[name] = mod
        elif variant == "separable":
            new["conv2_dw"] = conv(in_channels=4, out_channels=4, kernel_size=3, padding=1, stride=1, groups=4,
                                   bias=True, quant_params=qp, step_mode="s")
            new["neuron2_dw"] = m.create_neuron(quant_params=qp)
            new["conv2_pw"] = conv(in_channels=4, out_channels=6, kernel_size=1, padding=0, stride=1, bias=True,
                                   quant_params=qp, step_mode="s")
        else:
            new["conv2"] = conv(in_channels=4, out_channels=6, kernel_size=3, padding=1, stride=1, groups=2,
                                bias=True, quant_params=qp, step_mode="s")
    m.layers = torch.nn.ModuleDict(new)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if type(mod).__name__.startswith(("QuantizedConv", "QuantizedLinear")):
                fan_in = int(np.prod(mod.weight.shape[1:]))
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (2.5 / np.sqrt(fan_in)))
                mod.bias.copy_(torch.rand(mod.bias.shape, generator=g) * 0.5)
    functional.set_step_mode(m, "s")
    m.train()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(4):
            xb = torch.from_numpy(b.sample_inputs(8, seed=seed + 1000 + i))
            functional.reset_net(m)
            for t in range(timesteps):
                m(xb[:, t])
    m.eval()
    functional.reset_net(m)
    return b, m


CASES = [(1, "separable", "LIF", 8), (2, "separable", "IF", 16), (1, "groups2", "IF", 16), (2, "groups2", "LIF", 8)]


@pytest.mark.parametrize("dims,variant,kind,bits", CASES)
def test_grouped_convs_equal_the_real_model(dims, variant, kind, bits):
    """torch-eval: every layer at every step against the real model in .eval(), the grouped convs included."""
    import golden

    b, m = grouped_scnn(dims, variant, kind, bits)
    x = b.sample_inputs(3, seed=7)
    report = golden.check_model(m, x, network=True)
    net = report.network
    grouped = {n.name: n.layer.groups for n in net if type(n.layer).__name__ == "Conv" and n.layer.groups > 1}
    assert grouped == ({"layers.conv2_dw": 4} if variant == "separable" else {"layers.conv2": 2}), grouped
    record("network torch-eval", "qualia-plugin-snn's whole models in .eval(), every layer at every step",
           report.compared, report.count("golden != module") + report.count("off grid"), unit="layer values")
    assert report.count("golden != module") == 0 and report.count("off grid") == 0, str(report)
    if bits == 8:
        assert report.exact and report.end_to_end_mismatches == 0, str(report)
    rates = [c.spike_rate for c in report.layers if c.spike_rate is not None]
    assert len(rates) >= 2 and min(rates) > 0.005, str(report)
    for name in grouped:  # the grouped layer itself is compared on every value, and exactly
        c = next(c for c in report.layers if c.name == name)
        assert c.compared > 0 and c.total_mismatches == 0, str(c)


@requires(missing_codegen())
@pytest.mark.parametrize("dims,variant,kind,bits", CASES)
def test_grouped_convs_equal_the_real_c(dims, variant, kind, bits):
    """codegen: Qualia's deployment path on the float twin (spikingjelly Conv with groups), the C compiled with gcc
    and run; golden's codegen network equals it at every layer and every step."""
    import golden
    from golden.refs import codegen_model as cm

    b, m = grouped_scnn(dims, variant, kind, bits)
    dep = cm.deploy(m, long_width=32 if bits == 8 else None)
    net = golden.from_torch(dep, profile="codegen")
    assert any(type(n.layer).__name__ == "Conv" and n.layer.groups > 1 for n in net), net.describe()
    x = cm.quantize_input(dep, b.sample_inputs(3, seed=7))
    tr, counts = against_c(dep, net, x)
    values = sum(v for v, _ in counts.values())
    assert values > 1000 and {n: k for n, (_, k) in counts.items() if k} == {}, counts
    rates = [lt.spike_rate for lt in tr.layers.values() if lt.spikes is not None]
    assert rates and max(rates) >= 0.02, rates


def test_groups_saved_and_loaded_and_refused_when_they_do_not_divide(tmp_path):
    """groups round-trips through network.toml (written only when != 1: older files keep their bytes); a groups
    that does not divide both channel counts is one NetworkError line naming the field and the fix."""
    import golden
    from golden.network import Network, NetworkError

    _, m = grouped_scnn(1, "separable")
    net = golden.from_torch(m)
    back = Network.load(net.save(tmp_path / "n"))
    assert back.digest() == net.digest() and back["layers.conv2_dw"].layer.groups == 4
    assert "groups = 4" in (tmp_path / "n" / "network.toml").read_text()
    assert "groups" not in net["layers.conv1"].layer.describe() and "groups=4" in net.describe()
    layer = net["layers.conv2_pw"].layer
    with pytest.raises(NetworkError, match=r"^groups: 4 must divide in_channels 4 and out_channels 6"):
        layer.replace(groups=4)
