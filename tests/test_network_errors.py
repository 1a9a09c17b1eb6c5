"""Bad input, one clear GoldenError line naming the layer; the embedded network and its demo.

Torch-free rows first (a network built or loaded by hand), then rows on real Qualia models.
"""

import shutil
import zipfile

import numpy as np
import pytest

from golden.errors import GoldenError
from golden.network import (
    Conv,
    Flatten,
    Identity,
    Linear,
    Network,
    NetworkError,
    Node,
    demo,
)
from golden.network.demo import DATA, DEFAULT
from golden.spec import QFormat

from proofs import missing_torch, requires

Q = QFormat


def _net(**change):
    fc_in = change.pop("fc_in", 32)
    nodes = [
        Node("id", Identity(in_shape=(2, 8), fmt_src=Q(8, 6), fmt_in=Q(8, 6), fmt_out=Q(8, 6))),
        Node("conv", Conv(in_shape=(2, 8), fmt_src=Q(8, 6), fmt_in=Q(8, 6), fmt_out=Q(8, 4), fmt_w=Q(8, 7),
                          fmt_b=Q(8, 7), dims=1, in_channels=2, out_channels=4, kernel=(3,), stride=(1,),
                          padding=(1,)), ("id",)),
        Node("flat", Flatten(in_shape=(4, 8), fmt_src=Q(8, 4), fmt_in=Q(8, 4), fmt_out=Q(8, 4)), ("conv",)),
        Node("fc", Linear(in_shape=(fc_in,), in_features=fc_in, out_features=3, fmt_src=Q(8, 4), fmt_in=Q(8, 5),
                          fmt_out=Q(8, 4), fmt_w=Q(8, 7)), ("flat",)),
    ]
    rng = np.random.default_rng(0)
    params = {"conv": {"weight": rng.integers(-128, 128, (4, 2, 3)), "bias": rng.integers(-128, 128, 4)},
              "fc": {"weight": rng.integers(-128, 128, (3, fc_in))}}
    params.update(change.pop("params", {}))
    return Network((2, 8), Q(8, 6), nodes, params)


def test_save_load_roundtrip(tmp_path):
    net = _net()
    net.save(tmp_path / "n")
    back = Network.load(tmp_path / "n")
    assert back.digest() == net.digest()
    x = net.quantize_input(np.random.default_rng(1).normal(0, 1, (2, 3, 2, 8)))
    for a, b in zip(net.simulate(x).layers.values(), back.simulate(x).layers.values()):
        np.testing.assert_array_equal(a.out, b.out)


def _tamper_value(d):
    """Rewrite one weight to a different on-grid value, keeping the zip valid (the hashes now disagree)."""
    with np.load(d / "weights.npz") as z:
        arrays = {k: z[k].copy() for k in z.files}
    key = next(k for k in arrays if k.endswith(".weight"))
    arrays[key].flat[0] ^= 1
    np.savez(d / "weights.npz", **arrays)
    _rehash(d)  # the file's own hash redone: the array's digest must still catch it


def _rehash(d):
    """Redo network.toml's weights_sha256 (the file hash is checked first, before anything is parsed)."""
    import hashlib
    import re

    sha = hashlib.sha256((d / "weights.npz").read_bytes()).hexdigest()
    text = (d / "network.toml").read_text()
    (d / "network.toml").write_text(re.sub(r'weights_sha256 = "\w+"', f'weights_sha256 = "{sha}"', text))


def _off_grid(d):
    """An exporter bug: a 9-bit value in a Q8 weight, with every hash updated to match."""
    import hashlib
    import re

    with np.load(d / "weights.npz") as z:
        arrays = {k: z[k].astype(np.int16) for k in z.files}
    arrays["fc.weight"].flat[3] = 300
    np.savez(d / "weights.npz", **arrays)
    from golden.network.store import array_digest as _digest

    text = (d / "network.toml").read_text()
    sha = hashlib.sha256((d / "weights.npz").read_bytes()).hexdigest()
    text = re.sub(r'weights_sha256 = "\w+"', f'weights_sha256 = "{sha}"', text)
    text = text.replace(_digest(_net().params["fc"]["weight"]), _digest(arrays["fc.weight"]))
    (d / "network.toml").write_text(text)


def _chain(d):
    text = (d / "network.toml").read_text()
    (d / "network.toml").write_text(text.replace("in_shape = [4, 8]", "in_shape = [4, 9]", 1))


def _unknown_type(d):
    text = (d / "network.toml").read_text()
    (d / "network.toml").write_text(text.replace('type = "Conv1d"', 'type = "Conv3d"'))


def _truncate(d):
    (d / "weights.npz").write_bytes((d / "weights.npz").read_bytes()[:100])
    _rehash(d)


def _drop_array(d):
    with zipfile.ZipFile(d / "weights.npz") as z:
        keep = {n: z.read(n) for n in z.namelist() if not n.startswith("fc.")}
    with zipfile.ZipFile(d / "weights.npz", "w") as z:
        for n, b in keep.items():
            z.writestr(n, b)
    _rehash(d)


@pytest.mark.parametrize("damage,message", [
    (_tamper_value, r"^conv\.weight: sha256 mismatch"),
    (_off_grid, r"^fc: weight|^fc\.weight: raw value 300 is off its declared grid Q8\.7"),
    (_chain, r"^flat: shapes do not chain"),
    (_unknown_type, r"^layer 'conv': unknown layer type 'Conv3d'"),
    (_truncate, r"unreadable \.npz"),
    (_drop_array, r"^fc\.weight: missing from"),
    (lambda d: (d / "network.toml").unlink(), r"no network\.toml"),
    (lambda d: (d / "network.toml").write_text("[[layer]\n"), r"malformed TOML"),
])
def test_load_refuses_a_damaged_directory(tmp_path, damage, message):
    d = _net().save(tmp_path / "n")
    damage(d)
    before = sorted(p.name for p in d.iterdir())
    with pytest.raises(NetworkError, match=message) as e:
        Network.load(d)
    assert isinstance(e.value, GoldenError) and "\n" not in str(e.value)
    assert sorted(p.name for p in d.iterdir()) == before  # nothing written or deleted


def _bn(**kw):
    from golden.network import BatchNorm

    args = dict(in_shape=(2, 4), fmt_src=Q(8, 6), fmt_in=Q(8, 6), fmt_out=Q(8, 4), fmt_w=Q(8, 7), fmt_b=Q(8, 7),
                dims=1, num_features=2)
    return BatchNorm(**{**args, **kw})


@pytest.mark.parametrize("build,message", [
    (lambda: _net(fc_in=31), r"^fc: shapes do not chain: Linear takes \(31,\) but 'flat' gives \(32,\)"),
    (lambda: _net(params={"fc": {"weight": np.full((3, 32), 200)}}), r"^fc\.weight: raw value 200 is off its declared"),
    (lambda: _net(params={"fc": {"weight": np.zeros((3, 32)) + 0.5}}), r"^fc\.weight: raw weights must be integers"),
    (lambda: _net(params={"fc": {"weight": np.zeros((3, 31), int)}}), r"^fc\.weight: shape \(3, 31\)"),
    (lambda: _net(params={"fc": {}}), r"^fc: expects arrays \['weight'\]"),
    (lambda: Conv(in_shape=(2, 8), fmt_src=Q(8, 6), fmt_in=Q(8, 6), fmt_out=Q(8, 4), fmt_w=Q(8, 7), dims=1,
                  in_channels=3, out_channels=4, kernel=(3,), stride=(1,), padding=(1,)), r"^in_shape: Conv1d takes"),
    (lambda: Linear(in_shape=(4,), in_features=4, out_features=2, fmt_src=Q(8, 6), fmt_in=Q(8, 6), fmt_out=Q(8, 4),
                    fmt_w=Q(8, 7), round_out="RND_CONV"), r"^round_out: 'RND_CONV' is not one of"),
    (lambda: Conv(in_shape=(4, 8), fmt_src=Q(8, 6), fmt_in=Q(8, 6), fmt_out=Q(8, 4), fmt_w=Q(8, 7), dims=1,
                  in_channels=4, out_channels=6, kernel=(3,), stride=(1,), padding=(1,), groups=4),
     r"^groups: 4 must divide in_channels 4 and out_channels 6 \(each group takes an equal block of both\)$"),
    (lambda: Conv(in_shape=(4, 8), fmt_src=Q(8, 6), fmt_in=Q(8, 6), fmt_out=Q(8, 4), fmt_w=Q(8, 7), dims=1,
                  in_channels=4, out_channels=4, kernel=(3,), stride=(1,), padding=(1,), groups=0),
     r"^groups: expected an int >= 1, got 0$"),
    (lambda: _bn(arith="double"), r"^arith: 'double' is not one of int, float32$"),
    (lambda: _bn(arith="float32", acc_bits=32), r"^arith: float32 is torch's datapath: it takes acc_bits = 64"),
    (lambda: _bn(arith="float32", fmt_src=Q(8, 48), fmt_in=Q(8, 48), fmt_w=Q(8, 48), fmt_b=None, fmt_out=Q(8, -20)),
     r"^arith: float32 with F = 96 and output shift 116: outside what golden reproduces"),
])
def test_construction_refuses(build, message):
    with pytest.raises(NetworkError, match=message) as e:
        build()
    assert "\n" not in str(e.value)


def test_simulate_refuses_bad_input():
    net = _net()
    with pytest.raises(NetworkError, match="expected raw integers"):
        net.simulate(np.zeros((1, 2, 2, 8)))
    with pytest.raises(NetworkError, match=r"expected shape \(S, T, \*\(2, 8\)\)"):
        net.simulate(np.zeros((2, 2, 8), int))
    with pytest.raises(NetworkError, match="outside the input format"):
        net.simulate(np.full((1, 1, 2, 8), 300))


def test_save_refuses_to_overwrite(tmp_path):
    d = _net().save(tmp_path / "n")
    with pytest.raises(NetworkError, match="already exists"):
        _net().save(d)


def test_embedded_network_demo_runs_without_torch():
    """The committed directory loads (hashes hold) and the demo runs on numpy + numba; figures are sane."""
    lines = []
    res = demo(out=lines.append)
    assert any("spike rate" in line for line in lines)
    assert all(0.01 < r < 0.9 for r in res["spike_rates"].values()), res["spike_rates"]
    assert res["trace"].out.shape == (8, 8, 4)
    with pytest.raises(NetworkError, match="samples: expected an int >= 1"):
        demo(samples=0)
    with pytest.raises(NetworkError, match="no network.toml"):
        demo("/nonexistent-dir")


def test_demo_imports_neither_torch_nor_qualia():
    import subprocess
    import sys

    code = ("import sys\n"
            "for m in ('torch', 'spikingjelly', 'qualia_core', 'qualia_plugin_snn'): sys.modules[m] = None\n"
            "import golden.network as gn\nr = gn.demo(samples=2, steps=4, out=lambda s: None)\n"
            "print(r['trace'].out.shape)")
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(2, 4, 4)"


def test_embedded_network_copy_is_tamper_checked(tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(DATA / DEFAULT, d)
    _tamper_value(d)
    with pytest.raises(NetworkError, match="sha256 mismatch"):
        demo(d)


# -------------------------------------------------------------- real models
torch_only = requires(missing_torch())


@torch_only
def test_embedded_network_is_what_its_tool_builds_and_equals_the_model():
    """golden/data/ holds exactly from_torch(the seeded model), and that network equals the model on the demo input."""
    import importlib.util
    from pathlib import Path

    import golden
    from golden.refs import qualia_models as qm

    spec = importlib.util.spec_from_file_location("ben", Path(__file__).parents[1] / "tools" /
                                                  "build_embedded_network.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert Network.load(DATA / DEFAULT).digest() == tool.build().digest()
    built = qm.build(**tool.CONFIG)
    x = np.random.default_rng(0).random((4, built.timesteps, *built.torch_input_shape), np.float32) * 2
    report = golden.check_model(built.model, x, network=True)
    assert report.exact, str(report)


def _models():
    from golden.refs import qualia_models as qm

    return qm


def _lsq(m):
    m.layers.fc1.quantizer_w.LSQ = True


def _asym(m):
    m.layers.conv1.quantizer_input.is_asymmetric = True


def _fake(m):
    m.layers.conv2.quantizer_act.quantype = "fake"


def _relu(m):
    import torch

    m.layers.maxpool1 = torch.nn.ReLU()


def _uncal(m):
    import torch

    m.layers.conv2.quantizer_w.global_max = torch.tensor(-float("inf"))


@torch_only
@pytest.mark.parametrize("damage,message", [
    (_lsq, r"^layers\.fc1 \(QuantizedLinear\): .*LSQ=True"),
    (_asym, r"^layers\.conv1 \(QuantizedConv1d\): .*is_asymmetric=True"),
    (_fake, r"^layers\.conv2 \(QuantizedConv1d\): .*quantype='fake'"),
    (_relu, r"^layers\.maxpool1 \(ReLU\): unsupported layer type"),
    (_uncal, r"^layers\.conv2 \(QuantizedConv1d\): .*uncalibrated quantizer"),
])
def test_from_torch_refuses_naming_the_layer(damage, message):
    import golden

    qm = _models()
    built = qm.build(template="SCNN", dims=1, kind="LIF", bits=8, seed=0)
    damage(built.model)
    with pytest.raises(GoldenError, match=message) as e:
        golden.from_torch(built.model)
    assert "\n" not in str(e.value)


@torch_only
def test_from_torch_refuses_an_uncalibrated_model():
    import golden

    qm = _models()
    built = qm.build(template="SMLP", kind="IF", bits=8, seed=0, calib_batches=0)
    with pytest.raises(GoldenError, match=r"^layers\.fc1 \(QuantizedLinear\): .*uncalibrated"):
        golden.from_torch(built.model)
