"""BatchNorm in torch-eval: torch's float32 arithmetic reproduced bit for bit, at 8, 12 and 16 bits.

qualia-core 2.6's ``QuantizedBatchNorm`` (not ``torch.nn.functional.batch_norm``) computes in ``.eval()``
``Qact(Qi(x) * Qw(alpha) + Qb(beta))`` as two float32 operations, then its quantizer in float32. golden's
``BatchNorm(arith="float32")`` (what the torch reader builds) reproduces both roundings and the quantizer's float32
``y * 2**q + 1/2``. Proven here against the REAL module on EVERY value of the input format, for drawn widths,
formats, roundtypes, bias quantizers and parameters, plus hand-made adversarial cases (a product and a sum that
round, the float32 half-up that rounds 1/2 - 2**-25 to 1), and end to end on a 16-bit SCNN with batch norm.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from proofs import missing_codegen, missing_torch, record, requires

pytestmark = requires(missing_torch())
ROUNDS = ("nearest", "floor", "ceil")


def _module(bits, q, rounds, separate_bias, channels, dims, weight, bias, mean, var):
    """A real QuantizedBatchNorm{dims}d with forced q per tensor (no calibration needed: global_max stays -inf,
    so force_q applies) and the given float parameters, in .eval()."""
    import torch
    from qualia_core.learningmodel.pytorch.layers import quantized_layers1d, quantized_layers2d

    qp = {"quant_enable": True, "LSQ": False, "quantype": "fxp", "range_setting": "minmax", "is_asymmetric": False,
          "bits": bits, "roundtype": rounds["act"], "force_q": q["act"],
          "input": {"force_q": q["input"], "roundtype": rounds["input"]},
          "w": {"force_q": q["w"], "roundtype": rounds["w"]}}
    if separate_bias:
        qp["bias"] = {"force_q": q["bias"], "roundtype": rounds["bias"]}
    cls = quantized_layers1d.QuantizedBatchNorm1d if dims == 1 else quantized_layers2d.QuantizedBatchNorm2d
    m = cls(channels, quant_params=qp)
    with torch.no_grad():
        for name, v in (("weight", weight), ("bias", bias), ("running_mean", mean), ("running_var", var)):
            getattr(m, name).copy_(torch.tensor(np.asarray(v, np.float32)))
    return m.eval()


def _check(m, dims, label=""):
    """Read the module with golden's torch reader; run golden on every input value; count mismatches."""
    from golden.network import kernels, ops, reference
    from golden.qualia import readers

    C = int(m.num_features)
    probe = (C, 1) if dims == 1 else (C, 1, 1)
    layer, params = readers.read_layer("bn", m, probe, _fmt_in(m))
    assert layer.float32_reproduced and layer.arith == "float32"
    import torch

    f = layer.fmt_in
    raw = np.arange(f.min, f.max + 1, dtype=np.int64)
    n = raw.size
    shape = (C, n) if dims == 1 else (C, 1, n)
    x = np.broadcast_to(raw, (C, n)).reshape(1, *shape).copy()
    xf = torch.from_numpy(np.ldexp(x.astype(np.float64), -f.frac).astype(np.float32))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = m(xf).numpy().astype(np.float64)
    want = np.ldexp(y, layer.fmt_out.frac)
    assert np.array_equal(want, np.rint(want)), "the module's output is off its grid"
    layer = layer.replace(in_shape=shape)
    got = ops.run(kernels, layer, params, [x])["out"]
    bad = int((got != want.astype(np.int64)).sum())
    exact_int = ops.run(kernels, layer.replace(arith="int"), params, [x])["out"]
    record("BatchNorm float32 (torch-eval)", "qualia-core QuantizedBatchNorm in .eval(), every input value",
           got.size, bad, unit="values")
    if n <= 512:  # the plain-Python oracle on the small widths
        np.testing.assert_array_equal(ops.run(reference, layer, params, [x])["out"], got)
    assert bad == 0, f"{label}: {bad} of {got.size} differ"
    return int((exact_int != got).sum())


def _fmt_in(m):
    from golden.qualia import readers

    return readers.fmt(m, "quantizer_input", "bn")[0]


pos = st.floats(0.0625, 4.0, width=32)
sym = st.floats(-2.0, 2.0, width=32)


@st.composite
def bn_cases(draw):
    bits = draw(st.sampled_from((8, 12, 16)))
    C = draw(st.integers(1, 3))
    q = {k: draw(st.integers(bits - 6, bits + 2)) for k in ("input", "w", "bias")}
    q["act"] = draw(st.integers(bits - 8, bits - 1))
    rounds = {k: draw(st.sampled_from(ROUNDS)) for k in ("input", "w", "bias", "act")}
    vec = lambda s: draw(st.lists(s, min_size=C, max_size=C))  # noqa: E731
    return dict(bits=bits, q=q, rounds=rounds, separate_bias=draw(st.booleans()), channels=C,
                dims=draw(st.sampled_from((1, 2))), weight=vec(st.one_of(pos, sym)), bias=vec(sym),
                mean=vec(sym), var=vec(pos))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bn_cases())
def test_float32_batchnorm_equals_the_real_module_on_every_input(case):
    """Drawn widths 8/12/16, per-tensor q and roundtype, a shared or separate bias quantizer, 1-D and 2-D: golden's
    BatchNorm equals QuantizedBatchNorm in .eval() on every raw value of its input format, every channel."""
    rounded = _check(_module(**case), case["dims"], str(case))
    target(float(rounded))  # steer towards parameters where torch's float32 and the exact integers part
    event("float32 and exact integers part" if rounded else "float32 equals the exact integers")


def _var_for_unit_sigma():
    """A float32 running_var with float32(var + eps) == 1 exactly: alpha = weight, beta = bias - weight * mean."""
    v = np.float32(1.0) - np.float32(1e-5)
    while np.float32(v + np.float32(1e-5)) != np.float32(1.0):
        v = np.nextafter(v, np.float32(2), dtype=np.float32)
    return float(v)


def test_adversarial_roundings_against_the_real_module():
    """Hand-made cases on the real module, each where the exact integer result and torch part:

    - the float32 quantizer's half-up: x * alpha = (2**24 - 1) * 2**-25 = 1/2 - 2**-25 exactly (4095/4096 x
      4097/8192), q_out = 0: floor(float32(z + 1/2)) = 1, the exact floor(z + 1/2) = 0;
    - a product x * alpha of 32 significant bits (16-bit by 16-bit) that float32 rounds, and a sum that rounds
      again (beta far below the product's LSB).
    """
    var = _var_for_unit_sigma()
    q = {"input": 12, "w": 13, "bias": 13, "act": 0}
    r = dict.fromkeys(("input", "w", "bias", "act"), "nearest")
    m = _module(16, q, r, True, 1, 1, weight=[4097 / 8192], bias=[0.0], mean=[0.0], var=[var])
    assert _check(m, 1, "half-up") >= 1  # the exact integer result differs there; golden follows torch
    q = {"input": 15, "w": 15, "bias": 24, "act": 14}
    m = _module(16, q, r, True, 1, 1, weight=[32767 / 32768], bias=[3 * 2.0 ** -24], mean=[0.0], var=[var])
    assert _check(m, 1, "product and sum round") > 0


@pytest.mark.parametrize("neuron,seed", [("IF-soft", 3), ("LIF-hard-nodecay", 1)])
def test_16_bit_scnn_with_batch_norm_end_to_end(neuron, seed):
    """A 16-bit SCNN1d with batch norm against the real model in .eval(), 6 samples x 8 steps: every layer at every
    step and the model output end to end, bit-exact. Measured before golden reproduced BatchNorm's float32: these
    two models had 10 and 4 BatchNorm values flagged "float32 accumulation" (golden's exact integers)."""
    import golden
    from golden.qualia.check import F32
    from golden.refs import qualia_models as qm

    b = qm.build(**dict(qm.configs(["SCNN1d-bn"], [neuron], (16,), ("s",), (seed,))[0][1]))
    report = golden.check_model(b.model, b.sample_inputs(6, seed=7), network=True)
    record("network torch-eval", "qualia-plugin-snn's whole models in .eval(), every layer at every step",
           report.compared, sum(c.total_mismatches for c in report.layers), unit="layer values")
    assert report.exact and report.end_to_end_mismatches == 0 and report.count(F32) == 0, str(report)
    bns = [c for c in report.layers if c.type.startswith("BatchNorm")]
    assert len(bns) == 2 and all(c.outside_bound == 0 and c.compared > 0 for c in bns), str(report)
    net = report.network
    assert all(net[c.name].layer.float32_reproduced and golden.network.layers.float32_bound(
        net[c.name].layer, net.params[c.name]) > 1 << 24 for c in bns)  # float32 rounds there: proven, not bounded
    rates = [c.spike_rate for c in report.layers if c.spike_rate is not None]
    assert rates and min(rates) > 0.005, str(report)


def test_float32_batchnorm_saved_loaded_and_described(tmp_path):
    """arith = "float32" round-trips through network.toml (written only when not "int": codegen networks and older
    files keep their bytes and digests); describe() names it and shows no float32 bound for it."""
    import golden
    from golden.network import Network
    from golden.refs import qualia_models as qm

    b = qm.build("SCNN", dims=1, kind="IF", bits=16, batch_norm=True, seed=0, calib_batches=1)
    net = golden.from_torch(b.model)
    back = Network.load(net.save(tmp_path / "n"))
    assert back.digest() == net.digest() and back["layers.bn1"].layer.arith == "float32"
    from golden.spec import tomllib

    doc = tomllib.loads((tmp_path / "n" / "network.toml").read_text())
    assert [e["spec"].get("arith") for e in doc["layer"] if e["type"].startswith("BatchNorm")] == ["float32"] * 2
    assert all("arith" not in e["spec"] for e in doc["layer"] if e["type"].startswith("Conv"))
    line = next(ln for ln in net.describe().splitlines() if "layers.bn1" in ln)
    assert "arith=float32" in line and "float32 bound" not in line
    assert "arith" not in net["layers.bn1"].layer.replace(arith="int").describe()


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_netprove_torch_run_batchnorm_is_the_real_module_and_equals_golden(bits):
    """golden.netprove_torch.run_batchnorm (the torch side a network proof can call per float32 BatchNorm): the real
    module holding a layer's raw alpha / beta on every input value; golden's layer equals it there."""
    from golden.netprove_torch import run_batchnorm
    from golden.network import BatchNorm, kernels, ops
    from golden.spec import QFormat

    rng = np.random.default_rng(bits)
    C = 3
    f = lambda q: QFormat(bits, q)  # noqa: E731
    layer = BatchNorm(in_shape=(C, 1), dims=1, num_features=C, fmt_src=f(bits - 2), fmt_in=f(bits - 2),
                      fmt_w=f(bits - 1), fmt_b=f(bits + 3), fmt_out=f(bits - 4), arith="float32")
    params = {"weight": rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), C),
              "bias": rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), C)}
    vals = np.arange(layer.fmt_in.min, layer.fmt_in.max + 1)
    want = run_batchnorm(layer, params, vals)
    x = np.broadcast_to(vals, (C, vals.size)).reshape(1, C, -1).copy()
    got = ops.run(kernels, layer.replace(in_shape=(C, vals.size)), params, [x])["out"][0]
    record("BatchNorm float32 (torch-eval)", "qualia-core QuantizedBatchNorm in .eval(), every input value",
           got.size, int((got != want).sum()), unit="values")
    np.testing.assert_array_equal(got, want)


@requires(missing_codegen())
def test_torch_eval_vs_codegen_batchnorm_divergences_are_named():
    """A real 16-bit SCNN1d-bn: golden's torch-eval network vs its codegen network (Qualia's deployment, LONG 64 so
    nothing wraps). Where they part at a BatchNorm, diff_networks names torch's float32 ("float32 arithmetic"),
    never "unexplained"."""
    import golden
    from golden.network.diff import diff_networks
    from golden.qualia.deployment import deploy
    from golden.refs import codegen_model as cm
    from golden.refs import qualia_models as qm

    b = qm.build(**dict(qm.configs(["SCNN1d-bn"], ["IF-soft"], (16,), ("s",), (3,))[0][1]))
    dep = deploy(b, long_width=64)
    te, cg = golden.from_torch(b.model), golden.from_torch(dep, profile="codegen")
    d = diff_networks(te, cg, cm.quantize_input(dep, b.sample_inputs(6, seed=7)))
    firsts = [f for f in d.first if f is not None]
    assert firsts and all(f.layer.startswith("layers.bn") and f.cause == "float32 arithmetic" for f in firsts), str(d)
