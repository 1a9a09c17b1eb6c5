"""golden prove --network: whole-network certificates against the real references.

Proven: the committed embedded network against torch-eval; the network corpus' models against the generated C
(the 16-bit SResNet is proven where it can be and names what it cannot: its 16-bit neuron planes and a first
convolution whose int32 accumulation can overflow); a small network holding every other layer type (BatchNorm,
Add, GlobalSumPool, IF) against both references; a deployed SCNN2d against the converter's export (weights,
biases, shifts, the channels-last columns of the Dense after the Flatten). Broken on purpose: a layer whose
float32 bound fails, a tampered shift, permuted columns: each not proven, naming the layer. Bad inputs: one
line, exit 2, nothing written.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import golden
from golden import netprove as NP
from golden.network import (
    Add,
    BatchNorm,
    GlobalSumPool,
    Linear,
    MaxPool,
    Network,
    Neuron,
    Node,
    load,
)
from golden.spec import QFormat

from proofs import missing_codegen, missing_module, missing_torch, record, requires

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = ROOT / "golden" / "data" / "scnn1d_lif8"
CORPUS = ROOT / "vectors" / "networks"
TORCH = requires(missing_torch())
CODEGEN = requires(missing_codegen())


def _tally(cert: dict) -> None:
    c = cert["counts"]
    record(f"network proof vs {cert['against']}", cert["against"], c["values"] + c["neuron_pairs"], c["mismatches"],
           unit="layer values + neuron pairs")


def _layer(cert: dict, name: str) -> dict:
    return next(d for d in cert["layers"] if d["name"] == name)


# ------------------------------------------------------------------------------------------------ real networks
@TORCH
def test_embedded_network_is_proven_against_torch_eval():
    cert = NP.prove_network(load(EMBEDDED), "torch-eval")
    _tally(cert)
    assert cert["proven"], NP.summary(cert)
    assert [d["type"] for d in cert["layers"]] == ["Identity", "Conv1d", "Neuron", "MaxPool1d", "Conv1d", "Neuron",
                                                    "Flatten", "Linear"]
    for d in cert["layers"]:
        assert d["proven"] and d["preconditions"] is not None and d["method"] and d["argument"]
        if d["type"] != "Flatten":
            assert d["values"] > 0 and d["mismatches"] == 0, d["name"]
    conv = _layer(cert, "layers.conv1")
    assert conv["float32_bound"]["reachable"] <= 1 << 24
    assert {c["what"] for c in conv["checks"]} == {"input quantizer", "input quantizer: idempotent",
                                                   "output quantizer"}
    assert cert["counts"]["neuron_specs"] == 2 and cert["counts"]["neuron_pairs"] == 2 * 65536
    assert json.loads(NP.to_json(cert))["proven"] is True


@CODEGEN
@pytest.mark.parametrize("name", ["codegen-smlp-lif8", "codegen-scnn2d-lif8"])
def test_corpus_8bit_networks_are_proven_against_the_c(name):
    cert = NP.prove_network(load(CORPUS / name / "network"), "codegen")
    _tally(cert)
    assert cert["proven"], NP.summary(cert)
    for d in cert["layers"]:
        if d["type"] in ("Linear", "Conv2d"):  # 16-bit LONG: every LONG value through scale_and_clamp_to
            out = [c for c in d["checks"] if c["what"].startswith("output requantization")]
            assert out[0]["values"] == 65536 and out[0]["mismatches"] == 0
            assert any(p["name"] == "template include/number.hh" and p["holds"] for p in d["preconditions"])


@CODEGEN
def test_corpus_16bit_network_names_what_it_cannot_prove():
    cert = NP.prove_network(load(CORPUS / "codegen-sresnet1d-if16" / "network"), "codegen")
    _tally(cert)
    assert not cert["proven"]
    failing = {d["name"]: d["result"] for d in cert["layers"] if not d["proven"]}
    assert set(failing) == {"conv1", "neuron1", "layers.0.0.neuron1", "layers.0.0.neuron2", "layers.0.0.neuronr"}
    assert "2^32 pairs" in failing["neuron1"] and "distributed engine" in failing["neuron1"]
    assert "OUTSIDE int32_t" in failing["conv1"] and "undefined behaviour" in failing["conv1"]
    assert "2^31.18" in failing["conv1"] and "fix: deploy with QualiaCodeGen long_width=64" in failing["conv1"]
    assert "--scheduler local|ADDRESS" in failing["neuron1"]
    assert cert["result"].startswith("not proven: conv1, neuron1")
    # fed by spikes {0, 16384}, the later int32 layers are proven on every reachable accumulator
    for n in ("layers.0.0.conv1", "layers.0.0.sconv", "layers.0.0.add", "linear"):
        d = _layer(cert, n)
        assert d["proven"] and d["values"] > 0 and d["mismatches"] == 0, d["result"]


# ------------------------------------------------------------------------------------------------ every layer type
def _mixed(profile: str) -> Network:
    """input (2, 8) Q8.6 -> BatchNorm1d -> {LIF, IF} -> Add -> MaxPool1d -> GlobalSumPool1d -> Linear."""
    c = profile == "codegen"
    q = QFormat
    rng = np.random.default_rng(7)
    io = {"acc_bits": 16, "acc_overflow": "wrap"} if c else {}
    w = {"tmp_frac": 5} if c else {}
    fin = q(8, 6) if c else q(8, 5)  # torch: a real input quantizer Q8.6 -> Q8.5
    nodes = [Node("bn", BatchNorm(in_shape=(2, 8), fmt_src=q(8, 6), fmt_in=fin, fmt_out=q(8, 4), fmt_w=q(8, 5),
                                  fmt_b=q(8, 5), dims=1, num_features=2, **io, **w))]
    kw = {"width": 8, "long_width": 16} if c else {"bits": 8}
    lif = golden.make(profile, "LIF", q_v=4, q_in=4, q_out=6, tau=2.0, **kw)
    if_ = golden.make(profile, "IF", q_v=5, q_in=4, q_out=6, v_reset=None, **({"tau": None} if c else {}), **kw)
    nodes += [Node("lif", Neuron.of(lif, (2, 8), q(8, 4)), ("bn",)), Node("if", Neuron.of(if_, (2, 8), q(8, 4)),
                                                                          ("bn",))]
    nodes.append(Node("add", Add(in_shape=(2, 8), fmt_src=q(8, 6), fmt_in=q(8, 6), fmt_out=q(8, 5),
                                 fmt_src_b=q(8, 6), fmt_in_b=q(8, 6), **io), ("lif", "if")))
    nodes.append(Node("pool", MaxPool(in_shape=(2, 8), fmt_src=q(8, 5), fmt_in=q(8, 5), fmt_out=q(8, 5), dims=1,
                                      kernel=(2,), stride=(2,), padding=(0,), **io), ("add",)))
    nodes.append(Node("gsp", GlobalSumPool(in_shape=(2, 4), fmt_src=q(8, 5), fmt_in=q(8, 5), fmt_out=q(8, 3),
                                           dims=1, **io), ("pool",)))
    nodes.append(Node("fc", Linear(in_shape=(2,), fmt_src=q(8, 3), fmt_in=q(8, 3), fmt_out=q(8, 2), fmt_w=q(8, 3),
                                   fmt_b=None, in_features=2, out_features=3, **io, **w), ("gsp",)))
    params = {"bn": {"weight": rng.integers(-90, 90, 2), "bias": rng.integers(-40, 40, 2)},
              "fc": {"weight": rng.integers(-100, 100, (3, 2))}}
    return Network((2, 8), q(8, 6), nodes, params)


@pytest.mark.parametrize("against", [pytest.param("torch-eval", marks=TORCH), pytest.param("codegen", marks=CODEGEN)])
def test_every_layer_type_is_proven(against):
    cert = NP.prove_network(_mixed(against), against)
    _tally(cert)
    assert cert["proven"], NP.summary(cert)
    assert {d["type"] for d in cert["layers"]} == {"BatchNorm1d", "Neuron", "Add", "MaxPool1d", "GlobalSumPool1d",
                                                   "Linear"}
    assert all(d["values"] > 0 for d in cert["layers"] if d["type"] != "Neuron")
    assert [d["proof"]["compared"] for d in cert["layers"] if d["type"] == "Neuron"] == [65536, 65536]
    if against == "codegen":
        add = _layer(cert, "add")
        assert [c["what"] for c in add["checks"]] == ["input a aligned to ACC (scale)",
                                                      "input b aligned to ACC (scale)",
                                                      "output requantization (scale_and_clamp_to)"]


@CODEGEN
def test_an_output_stage_the_c_does_not_have_is_caught():
    net = _mixed("codegen")
    bn = dataclasses.replace(net["bn"].layer, out_overflow="wrap")  # golden would wrap where the C clamps
    cert = NP.prove_network(_swap(net, "bn", bn), "codegen")
    assert cert["result"] == "not proven: bn"
    check = [c for c in _layer(cert, "bn")["checks"] if c["what"].startswith("output requantization")][0]
    assert check["values"] == 65536 and check["mismatches"] > 0 and len(check["first"]) == 5
    assert cert["counts"]["mismatches"] == check["mismatches"]


@TORCH
def test_a_failing_float32_bound_is_named_never_hidden():
    q = QFormat
    fc = Linear(in_shape=(8,), fmt_src=q(16, 14), fmt_in=q(16, 14), fmt_out=q(16, 12), fmt_w=q(16, 13), fmt_b=None,
                in_features=8, out_features=2)
    ok = Linear(in_shape=(2,), fmt_src=q(16, 12), fmt_in=q(16, 12), fmt_out=q(8, 2), fmt_w=q(8, 6), fmt_b=None,
                in_features=2, out_features=1)
    w = np.array([[30000, -30000, 30000, -30000, 30000, -30000, 30000, -30000], [1, 2, 3, 4, 5, 6, 7, 8]])
    net = Network((8,), q(16, 14), [Node("fc", fc), Node("out", ok, ("fc",))],
                  {"fc": {"weight": w}, "out": {"weight": np.array([[3, -5]])}})
    cert = NP.prove_network(net, "torch-eval")
    assert not cert["proven"] and cert["result"] == "not proven: fc"
    fc = _layer(cert, "fc")
    assert fc["result"].startswith("not proven: float32 accumulation can round: fc's float32 bound 2^")
    assert fc["float32_bound"]["reachable"] > 1 << 24
    assert all(d["proven"] for d in cert["layers"] if d["name"] != "fc")


# ------------------------------------------------------------------------------------------------ the converter
@pytest.fixture(scope="module")
def deployed():
    from golden.refs import codegen_model, qualia_models

    dep = codegen_model.deploy(qualia_models.build(template="SCNN", dims=2, kind="LIF", bits=8, seed=1),
                               dump_featuremaps=False)
    return dep, load(CORPUS / "codegen-scnn2d-lif8" / "network")


def _swap(net: Network, name: str, layer=None, **arrays) -> Network:
    nodes = [Node(n.name, layer if n.name == name and layer is not None else n.layer, n.inputs) for n in net.nodes]
    params = copy.deepcopy({k: dict(v) for k, v in net.params.items()})
    params.setdefault(name, {}).update(arrays)
    return Network(net.input_shape, net.fmt_input, nodes, params, net.round_input, net.output, net.meta)


@CODEGEN
def test_the_deployment_is_checked_and_a_tampered_export_is_named(deployed):
    dep, net = deployed
    cert = NP.prove_network(net, "codegen", deployment=dep)
    _tally(cert)
    assert cert["proven"], NP.summary(cert)
    names = {p["name"] for d in cert["layers"] for p in d["preconditions"]}
    assert {"export: geometry", "export: input formats", "export: output format", "export: weights", "export: bias",
            "export: shifts", "export: LONG width", "export: rounding", "export: neuron integers"} <= names
    fc = _layer(cert, "layers.fc1")
    perm = [p for p in fc["preconditions"] if p["name"] == "export: weights"][0]
    assert perm["holds"] and "channels-last order of the flattened (4, 4, 6)" in perm["detail"]
    # a tampered shift: TMP_SCALE_FACTOR one off
    conv = net["layers.conv2"].layer
    cert = NP.prove_network(_swap(net, "layers.conv2", dataclasses.replace(conv, tmp_frac=conv.tmp_frac + 1)),
                            "codegen", deployment=dep)
    assert cert["result"] == "not proven: layers.conv2"
    assert "export: shifts: C: WEIGHTS 6, BIASES 6, TMP 6; network: q_w 6, q_b 6, tmp_frac 7" in \
        _layer(cert, "layers.conv2")["result"]
    # the Dense's columns in torch order instead of the C's channels-last order
    w = net.params["layers.fc1"]["weight"]
    cert = NP.prove_network(_swap(net, "layers.fc1", weight=w[:, ::-1].copy()), "codegen", deployment=dep)
    assert cert["result"] == "not proven: layers.fc1"
    assert "export: weights" in _layer(cert, "layers.fc1")["result"]


# ------------------------------------------------------------------------------------------------ CLI
SMLP = str(CORPUS / "codegen-smlp-lif8" / "network")


@CODEGEN
def test_cli_writes_and_rewrites_its_certificate(tmp_path, capsys):
    from golden.cli import main

    out = tmp_path / "cert.json"
    assert main(["prove", "--network", SMLP, "--against", "codegen", "--out", str(out)]) == 0
    first = out.read_text()
    assert json.loads(first)["kind"] == NP.KIND and json.loads(first)["proven"] is True
    assert "result: PROVEN" in capsys.readouterr().out
    assert main(["prove", "--network", SMLP, "--against", "codegen", "--out", str(out)]) == 2  # exists: --force
    assert "already exists" in capsys.readouterr().err
    assert main(["prove", "--network", SMLP, "--against", "codegen", "--out", str(out), "--force"]) == 0
    assert out.read_text() == first  # deterministic, and golden's own certificate is replaced with --force
    user = tmp_path / "notes.json"
    user.write_text("{}")  # a user's file: never replaced, --force or not
    assert main(["prove", "--network", SMLP, "--against", "codegen", "--out", str(user), "--force"]) == 2
    assert "not golden's to replace" in capsys.readouterr().err and user.read_text() == "{}"


def _bad_rows(tmp: Path):
    user = tmp / "user.txt"
    user.write_text("mine")
    (tmp / "link.json").symlink_to(user)
    return [
        (["--network", str(tmp / "missing"), "--against", "codegen"], "is not a directory"),
        (["--network", str(tmp), "--against", "codegen"], "no network.toml"),
        (["--network", SMLP, "--against", "torch"], "invalid choice: 'torch'"),
        (["--network", SMLP], "--against"),
        (["--network", SMLP, "--against", "codegen", "--out", str(user)], "already exists"),
        (["--network", SMLP, "--against", "codegen", "--out", str(tmp / "link.json")], "is a symlink"),
        (["--network", SMLP, "--against", "codegen", "--out", str(tmp / "no" / "c.json")], "does not exist"),
        (["--network", SMLP, "--against", "codegen", "--out", str(tmp)], "is a directory"),
        (["--network", SMLP, "--against", "codegen", "--max-values", "0"], "--max-values"),
        (["--network", SMLP, "--against", "codegen", "--workers", "2"], "--workers: only with --scheduler"),
        (["--network", SMLP, "--against", "codegen", "--allow-long"], "--allow-long: only with --scheduler"),
        (["--network", SMLP, "--against", "codegen", "--budget", "60"], "--budget: only with --scheduler"),
        (["--network", SMLP, "--against", "codegen", "--scheduler", "local", "--workers", "0"], "--workers"),
        (["--network", SMLP, "--against", "codegen", "--scheduler", "local", "--budget", "-1"], "--budget"),
        (["--network", SMLP, "--against", "codegen", "--scheduler", "tcp://127.0.0.1:9", "--out",
          str(tmp / "c.json")], "cannot reach a Dask scheduler"),
    ]


def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path, capsys):
    from golden.cli import main

    for argv, words in _bad_rows(tmp_path):
        before = sorted((p.name, p.is_symlink(), p.read_text() if p.is_file() else None) for p in tmp_path.iterdir())
        assert main(["prove", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("golden: error: ") and words in err, (argv, err)
        after = sorted((p.name, p.is_symlink(), p.read_text() if p.is_file() else None) for p in tmp_path.iterdir())
        assert after == before, argv
    assert (tmp_path / "user.txt").read_text() == "mine"


def test_api_refuses_bad_arguments():
    net = _mixed("codegen")
    with pytest.raises(NP.NetProveError, match="against: 'torch' is not one of"):
        NP.prove_network(net, "torch")
    with pytest.raises(NP.NetProveError, match="expected a golden.network.Network"):
        NP.prove_network("net/", "codegen")
    with pytest.raises(NP.NetProveError, match="only when proving against codegen"):
        NP.prove_network(net, "torch-eval", deployment=object())
    assert golden.prove_network is NP.prove_network


@CODEGEN
def test_a_neuron_plane_above_the_limit_is_stated_not_run():
    cert = NP.prove_network(_mixed("codegen"), "codegen", neuron_pairs=1 << 15)
    assert cert["result"] == "not proven: lif, if"
    for n in ("lif", "if"):
        d = _layer(cert, n)
        assert "8-bit plane (2^16 pairs) needs the distributed engine" in d["result"] and "compared" not in d["proof"]
    assert cert["counts"]["neuron_pairs"] == 0
    assert isinstance(NP.NetProveError("x"), golden.GoldenError)


# ------------------------------------------------------------------------------------------------ on the engine
DIST = requires(missing_module("distributed"))


@DIST
@CODEGEN
def test_neuron_planes_on_the_engine_resume_to_the_single_process_certificate(tmp_path, capsys, monkeypatch):
    """--scheduler local: the neuron planes above --neuron-pairs run as Dask tasks in chunks (8 of 2^13 pairs
    here), journaled beside --out. Stopped (Ctrl-C) after the first plane, the command exits 130 and keeps its
    journal; the same command resumes it (every chunk of that plane from the journal) and writes the certificate a
    single process writes, plus the ``run`` section; no journal is left behind."""
    from golden.cli import main
    from golden.cli import netprove as cli_np

    monkeypatch.setattr(cli_np, "NEURON_CHUNK", 1 << 13)
    plain = tmp_path / "plain.json"
    assert main(["prove", "--network", SMLP, "--against", "codegen", "--out", str(plain)]) == 0
    out = tmp_path / "cert.json"
    argv = ["prove", "--network", SMLP, "--against", "codegen", "--neuron-pairs", "1", "--scheduler", "local",
            "--workers", "2", "--out", str(out)]
    real = cli_np.DistProver.__call__
    calls = []

    def stop_at_the_second(self, spec, against):
        calls.append(spec.digest())
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, spec, against)

    monkeypatch.setattr(cli_np.DistProver, "__call__", stop_at_the_second)
    assert main(argv) == 130
    capsys.readouterr()
    states = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".state"))
    assert states == [f"cert.json.neuron-{calls[0][:12]}-codegen.state"] and not out.exists()
    monkeypatch.setattr(cli_np.DistProver, "__call__", real)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"neuron spec {calls[0][:12]}: 8 chunks (8 resumed)" in text and "(0 resumed)" in text
    cert = json.loads(out.read_text())
    run = cert.pop("run")
    assert cert == json.loads(plain.read_text())
    assert [r["chunks_resumed"] for r in run["neuron_planes"]] == [8, 0] and run["engine"] == "dask"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".state")]
    record("prove --network --scheduler local (8-bit planes, 2 workers)", "codegen",
           cert["counts"]["neuron_pairs"], cert["counts"]["mismatches"], unit="neuron pairs")


@TORCH
def test_a_16bit_float32_batchnorm_is_proven_on_every_value_and_the_integer_one_is_not():
    """torch's BatchNorm rounds twice in float32; golden's arith = float32 reproduces it: proven on every (channel,
    input) against the real module. The same layer in exact integers is refused by its float32 bound, named."""
    q = QFormat
    rng = np.random.default_rng(3)
    bn = BatchNorm(in_shape=(3, 4), fmt_src=q(16, 12), fmt_in=q(16, 12), fmt_out=q(16, 10), fmt_w=q(16, 13),
                   fmt_b=q(16, 12), dims=1, num_features=3, arith="float32")
    params = {"bn": {"weight": rng.integers(-32768, 32768, 3), "bias": rng.integers(-32768, 32768, 3)}}
    cert = NP.prove_network(Network((3, 4), q(16, 12), [Node("bn", bn)], params), "torch-eval")
    _tally(cert)
    assert cert["proven"], NP.summary(cert)
    d = _layer(cert, "bn")
    check = [c for c in d["checks"] if c["what"] == "float32 BatchNorm"][0]
    assert check["values"] == 3 * 65536 and check["mismatches"] == 0
    integer = dataclasses.replace(bn, arith="int")
    cert = NP.prove_network(Network((3, 4), q(16, 12), [Node("bn", integer)], params), "torch-eval")
    assert cert["result"] == "not proven: bn"
    assert _layer(cert, "bn")["result"].startswith("not proven: float32 accumulation can round: bn's float32 bound")
