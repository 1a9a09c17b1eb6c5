"""Real Qualia projects, end to end: Qualia's own pipeline -> ``golden from-qualia`` -> every layer vs the run's model.

For each project of the grid (``tests/qualia_projects/*.toml``), in a temporary directory holding a tiny data set
in the MNIST IDX format (``make_data.py``), Qualia's own ``qualia CONFIG preprocess_data`` and ``qualia CONFIG
train`` run (``run_qualia.py``: the ``qualia`` command's ``main``, all projects in one process): a float
model trained for one epoch, then the QuantizationAwareTraining postprocessing (calibration, optionally
quantization-aware training) writes ``out/learningmodel/<run>_r1.pth`` and ``<run>_r1_activations_range.txt``.
The driver also pickles the quantized model that postprocessing returned (the run's own model, calibrated).

Then ``golden from-qualia CONFIG --out NETDIR`` (the command, as a user runs it) reads only the config and
``out/``; the saved network is loaded and every layer, at every step, is compared with the run's own model in
``.eval()`` on random inputs (``golden.qualia.check.check_network``): values compared, mismatches (0), and
every neuron layer must spike. The codegen networks are checked against the C Qualia's own ``prepare_deploy``
wrote (tools/firmware/main.c) and, layer by layer, against the C rendered with ``dump_featuremaps``; a run Qualia
itself cannot deploy (FuseBatchNorm after QAT) is refused saying so, Qualia's own failure checked beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from proofs import missing_gcc, missing_torch, record, requires

pytestmark = requires(missing_torch())

PROJECTS = Path(__file__).parent / "qualia_projects"
SEED = 2  # every project's [bench] seed: one driver process runs them all (Qualia re-executes on another)
SAMPLES, STEPS = 4, 4
MIN_LAYER_RATE = 0.005  # every neuron layer spikes on >= 0.5% of its neuron-steps, as in the network tests
PROJECTS_RUN = ("smlp_lif8", "smlp_lif12", "scnn1d_lif6", "scnn1d_if_noinput", "scnn2d_bn_lif16", "scnn2d_gsp_forceq",
                "sresnet1d_lif_m", "sresnetstride2d_if_bias", "scnn2d_fuse_include", "scnn2d_bn_qat_fuse",
                "smlp_if4")  # tests/qualia_projects/<name>.toml (their includes: qualia_projects/conf/)
GRID = {  # id -> (project, --model or None, why golden refuses it or None: then xfail strict)
    "smlp_lif8": ("smlp_lif8", None, None),  # LIF hard, 8 bits, nearest, 's', timestep_mode duplicate
    "smlp_lif12": ("smlp_lif12", "0", None),  # LIF soft without decay_input, 12 bits (int16 C)
    "smlp_lif4_forceq2": ("smlp_lif12", "1", None),  # the same name, `update`: 4 bits, force_q = 2 (int16 C)
    "smlp_if4": ("smlp_if4", None, None),  # IF soft, 4 bits, force_q = 2 (int8 C), nearest
    "scnn1d_lif6": ("scnn1d_lif6", None, None),  # LIF hard, 6 bits (int8 C), 's', frames in the data, 'iterate'
    "scnn1d_if_noinput": ("scnn1d_if_noinput", None, None),  # IF soft, floor, input off, 'm'
    "scnn2d_bn_lif16": ("scnn2d_bn_lif16", None, None),  # batch_norm, 16 bits, one epoch of QAT
    "scnn2d_gsp_forceq": ("scnn2d_gsp_forceq", None, None),  # strides, global sum pool, force_q = 4, floor
    "sresnet1d_lif_m": ("sresnet1d_lif_m", None, None),  # SResNet 1-D, LIF soft, 'm'
    "sresnetstride2d_if_bias": ("sresnetstride2d_if_bias", None, None),  # IF hard, a separate bias quantizer
    "scnn2d_fuse_include": ("scnn2d_fuse_include", None, None),  # FuseBatchNorm before QAT, gsp, `includes`, 'm'
    "scnn2d_bn_qat_fuse": ("scnn2d_bn_qat_fuse", None, None),  # FuseBatchNorm after QAT (EuroSAT), bias q, 'm'
}
# also `qualia CONFIG prepare_deploy`: Qualia's converter writes the C it deploys ([deploy] quantize: int8, or int16)
# (not smlp_lif4_forceq2: prepare_deploy names each entry from the QAT postprocessing's own bits, ignoring
# `update`, so it deploys the 12-bit run's model under both entries)
DEPLOYED = ("smlp_lif8", "smlp_lif12", "smlp_if4", "scnn1d_lif6", "scnn2d_bn_lif16", "scnn2d_gsp_forceq",
            "sresnet1d_lif_m", "sresnetstride2d_if_bias", "scnn2d_fuse_include")  # GRID keys
ITERATE = ("scnn1d_lif6",)  # data with timesteps (Split2TimeSteps), deployed with timestep_mode = "iterate"
GSP = ("scnn2d_gsp_forceq", "scnn2d_fuse_include")  # SCNN with gsp = true: the model's output is the sum pool's
PER_LAYER_C = ("smlp_lif4_forceq2", "scnn1d_lif6", "scnn2d_gsp_forceq", "scnn2d_fuse_include")  # + every C layer


def _grid():
    return [pytest.param(key, marks=pytest.mark.xfail(strict=True, reason=why)) if why else key
            for key, (_, _, why) in GRID.items()]


@pytest.fixture(scope="session")
def qualia_runs(tmp_path_factory):
    """{project: its directory}, after Qualia's own pipeline ran there (once per session, all in one process)."""
    sys.path.insert(0, str(PROJECTS))
    try:
        import make_data
    finally:
        sys.path.remove(str(PROJECTS))
    root = tmp_path_factory.mktemp("qualia_projects")
    dirs = {}
    for name in PROJECTS_RUN:
        d = root / name
        (d / "conf").mkdir(parents=True)
        (d / f"{name}.toml").write_text((PROJECTS / f"{name}.toml").read_text())
        for inc in (PROJECTS / "conf").glob("*.toml"):  # Qualia looks for included files in conf/ first
            (d / "conf" / inc.name).write_text(inc.read_text())
        make_data.write(d / "data", seed=0)
        dirs[name] = d
    deployed = {GRID[k][0] for k in DEPLOYED}
    env = {**os.environ, "PYTHONHASHSEED": str(SEED), "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    cmd = [sys.executable, str(PROJECTS / "run_qualia.py"), "--record", "real", "preprocess_data,train",
           *(f"{name}:{name}.toml" + (":preprocess_data,train,prepare_deploy" if name in deployed else "")
             for name in PROJECTS_RUN)]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"Qualia's pipeline failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return dirs


def _checker():
    """golden's whole-network check."""
    from golden.qualia.check import BUG, F32, OFF_GRID, check_network

    return BUG, F32, OFF_GRID, check_network


def _real_model(d: Path, run_name: str):
    """The quantized model the run's QuantizationAwareTraining returned, as the driver pickled it."""
    import torch

    return torch.load(d / "real" / f"{run_name}_r1.pt", weights_only=False).eval()


def _inputs(net, seed: int, iterate: bool = False) -> np.ndarray:
    """Frames U(0, 2) (the training data's law): static, repeated over the steps as Qualia's 'duplicate' mode feeds
    them, or (``iterate``) one per step."""
    rng = np.random.default_rng(seed)
    if iterate:
        return rng.random((SAMPLES, STEPS, *net.input_shape), dtype=np.float32) * np.float32(2)
    x = rng.random((SAMPLES, *net.input_shape), dtype=np.float32) * np.float32(2)
    return np.repeat(x[:, None], STEPS, axis=1)


def _cli(*argv) -> int:
    from golden.cli import main

    return main(list(argv))


@pytest.mark.parametrize("key", _grid())
def test_from_qualia_every_layer_equals_the_runs_own_model(key, qualia_runs, monkeypatch, capsys):
    import golden
    BUG, F32, OFF_GRID, check_network = _checker()

    name, model, _ = GRID[key]
    d = qualia_runs[name]
    monkeypatch.chdir(d)  # Qualia's out/ is relative to where it ran: so is --run-dir's default
    argv = ["from-qualia", f"{name}.toml", "--out", f"net_{key}"] + (["--model", model] if model else [])
    assert _cli(*argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    net = golden.network.load(f"net_{key}")
    assert net.describe() in printed
    meta = net.meta["qualia_project"]
    assert meta["model"] == name and meta["iteration"] == 1 and meta["run_name"].startswith(f"{name}_")
    # as the learningframework feeds them: SpikingJelly* repeats a static frame, *TimeStepsInData one frame per step
    x = _inputs(net, seed=7, iterate=key in ITERATE)
    real = _real_model(d, meta["run_name"])
    report = check_network(real, x, net)
    rates = {c.name: c.spike_rate for c in report.layers if c.spike_rate is not None}
    print(f"\n{key}: {report.compared} values, {report.count(BUG)} mismatches, {report.count(F32)} float32 "
          f"accumulation; spike rates " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in rates.items()))
    bad = report.count(BUG) + report.count(OFF_GRID)
    record("from-qualia torch-eval", "the models Qualia's own pipeline trained and calibrated, every layer at every "
           "step", report.compared, bad, unit="layer values")
    record(f"from-qualia torch-eval {key}", "its run's own model; neuron-layer spike rates "
           + " / ".join(f"{100 * v:.1f}%" for v in rates.values()), report.compared, bad, unit="layer values")
    if key == "smlp_lif4_forceq2":  # prepare_deploy would name (and deploy) it as the 12-bit entry: said in meta
        assert meta["prepare_deploy_name"] == "smlp_lif12_q12_force_qoff_e0_LSQFalse"
    else:
        assert "prepare_deploy_name" not in meta
    if key == "scnn2d_bn_qat_fuse":  # the run's final model is FuseBatchNorm's, loaded from its own export
        assert meta["postprocessed_after_qat"] == "FuseBatchNorm" and meta["run_name"].endswith("_fused")
        assert meta["final_weights"].endswith(f"{meta['run_name']}_r1.pth")
    if key == "scnn2d_fuse_include":  # FuseBatchNorm before QAT: the quantized model has no BatchNorm left
        assert meta["run_name"].startswith(f"{name}_fused_q8") and not any("bn" in n.name for n in net)
    assert report.count(BUG) == 0 and report.count(OFF_GRID) == 0, str(report)
    assert report.end_to_end_mismatches == 0, str(report)
    if key in GSP:  # the output after the final global sum pool: its own quantizer_act on the sum (no activation)
        gsp = next(c for c in report.layers if c.name == "layers.gsp")
        module = dict(real.named_modules())["layers.gsp"]
        assert module.activation is None and net.output == "layers.gsp"
        assert net["layers.gsp"].layer.fmt_out.frac == module.activation_q
        assert gsp.compared == SAMPLES * STEPS * int(np.prod(net["layers.gsp"].layer.out_shape))
        assert gsp.total_mismatches == 0, str(gsp)
        print(f"{key}: layers.gsp (the output after the global sum pool): {gsp.compared} values, 0 mismatches")
    assert [c.name for c in report.layers] == [n.name for n in net]
    for c, node in zip(report.layers, net):
        assert c.compared >= SAMPLES * STEPS * int(np.prod(node.layer.out_shape)), c
    assert len(rates) >= 2 and min(rates.values()) >= MIN_LAYER_RATE, str(report)


def test_the_command_as_a_user_runs_it_and_the_api_agree(qualia_runs, tmp_path):
    """``python -m golden from-qualia`` in a fresh process, and ``golden.from_qualia``: the same network."""
    import golden

    d = qualia_runs["smlp_lif8"]
    out = tmp_path / "net"
    done = subprocess.run([sys.executable, "-m", "golden", "from-qualia", "smlp_lif8.toml", "--out", str(out)],
                          cwd=d, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith(f"{out}: smlp_lif8_q8_force_qoff_e0_LSQFalse run 1 (torch-eval)")
    saved = golden.network.load(out)
    api = golden.from_qualia(d / "smlp_lif8.toml", model="smlp_lif8", run_dir=d / "out")
    assert api.describe() == saved.describe()
    x = api.quantize_input(_inputs(api, seed=3))
    a, b = api.simulate(x), saved.simulate(x)
    for layer in a.layers:
        np.testing.assert_array_equal(a.layers[layer].out, b.layers[layer].out)
    # the parsed config (a dict) is accepted as well as the file
    from qualia_core.utils.config import parse_config

    cfg, _ = parse_config(d / "smlp_lif8.toml")
    assert golden.from_qualia(cfg, model=0, run_dir=d / "out").describe() == saved.describe()


@requires(missing_gcc())
@pytest.mark.parametrize("key", DEPLOYED)
def test_firmware_flow_from_a_qualia_project_to_the_c_qualia_deployed(key, qualia_runs, monkeypatch, capsys):
    """The README's firmware flow from a Qualia project, commands only: ``golden from-qualia --profile codegen``
    -> ``golden vectors generate`` -> tools/firmware/main.c compiled against the full_model.h that Qualia's own
    ``prepare_deploy`` wrote -> every output of every step equal. 4-, 6- and 12-bit models run as the int8 / int16
    C Qualia deploys them at; the deployment's timestep_mode (in full_model.h) is the network's, and its stimulus
    follows it (duplicate: one frame per sample, as Qualia's main loop feeds it; iterate: one per step)."""
    import golden
    from golden.qualia.project import rebuild
    from golden.qualia.target import model_bits

    name, model, _ = GRID[key]
    d = qualia_runs[name]
    monkeypatch.chdir(d)
    cnet, bundle = f"cnet_{key}", f"bundle_{key}"
    assert _cli("from-qualia", f"{name}.toml", "--profile", "codegen", "--out", cnet,
                *(["--model", model] if model else [])) == 0, capsys.readouterr().err
    net = golden.network.load(cnet)
    run_name = net.meta["qualia_project"]["run_name"]
    assert _cli("vectors", "generate", "--network", cnet, "--samples", "4", "--steps", str(STEPS), "--seed", "5",
                "--stimulus", "uniform", "--out", bundle) == 0, capsys.readouterr().err
    (header,) = (d / "out" / "qualia_codegen").glob(f"{run_name}_r1_*/full_model.h")
    mode = net.meta["timestep_mode"]
    assert mode == ("iterate" if key in ITERATE else "duplicate") and net.meta["timesteps"] == STEPS
    source = header.read_text()
    assert f"#define MODEL_INPUT_TIMESTEP_MODE_{mode.upper()}" in source
    assert f"#define MODEL_INPUT_TIMESTEPS {STEPS}" in source
    x = np.load(Path(bundle) / "x.npy")
    static = all(np.array_equal(x[:, t], x[:, 0]) for t in range(STEPS))
    assert static == (mode == "duplicate")
    bits = sorted(model_bits(rebuild(f"{name}.toml", model=model)[0]))
    width = net.meta["width"]
    assert f"MODEL_INPUT_NUMBER_T int{width}_t" in source and width >= max(bits)
    main_c = Path(__file__).resolve().parent.parent / "tools" / "firmware" / "main.c"
    exe = f"firmware_check_{key}"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", f"-I{header.parent}", f"-I{bundle}", str(main_c),
                    "-o", exe], check=True, capture_output=True, text=True)
    done = subprocess.run([f"./{exe}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("PASS"), done.stdout + done.stderr
    values = int(done.stdout.split(" values compared")[0].rsplit(" ", 1)[1].replace(",", ""))
    print(f"\n{key}: {bits} bits as int{width} C, timestep_mode {mode}: {values} output values, 0 mismatches")
    record("from-qualia codegen (firmware)", "the C Qualia's own prepare_deploy wrote, through tools/firmware/main.c",
           values, 0, unit="output values")
    record(f"from-qualia codegen {key}", f"{bits} bits as int{width} C, timestep_mode {mode}, through main.c",
           values, 0, unit="output values")


@requires(missing_gcc())
@pytest.mark.parametrize("key", PER_LAYER_C)
def test_every_layer_of_the_codegen_network_equals_the_c(key, qualia_runs, monkeypatch, capsys):
    """The saved codegen network of ``golden from-qualia`` vs the same project's model rendered by Qualia's
    deployment path with ``dump_featuremaps`` and compiled: every C layer at every step (golden.refs.codegen_model),
    on inputs of the deployment's timestep_mode."""
    import golden
    from golden.qualia.project import rebuild
    from golden.refs import codegen_model as cm

    name, model, _ = GRID[key]
    d = qualia_runs[name]
    monkeypatch.chdir(d)
    out = f"cnet_layers_{key}"
    assert _cli("from-qualia", f"{name}.toml", "--profile", "codegen", "--out", out,
                *(["--model", model] if model else [])) == 0, capsys.readouterr().err
    net = golden.network.load(out)
    qmodel, _ = rebuild(f"{name}.toml", model=model)
    dep = cm.deploy(qmodel, width=net.meta["width"], long_width=net.meta["long_width"])
    x = cm.quantize_input(dep, _inputs(net, seed=11, iterate=net.meta["timestep_mode"] == "iterate"))
    crun, sim = cm.run(dep, x), net.simulate(x)
    compared = 0
    for node in net:
        c = crun.cf[node.name]
        np.testing.assert_array_equal(sim.layers[node.name].out.reshape(c.shape), c, err_msg=node.name)
        compared += c.size
    assert [n.name for n in net] == [n for n in crun.cf if n != "input"]
    if key in GSP:  # the C's TSumLayer output (its activation q from the file) is golden's last layer
        assert type(net[net.output].layer).__name__ == "GlobalSumPool" and net.output == "layers.gsp"
    print(f"\n{key}: {compared} C layer values, 0 mismatches")
    record("from-qualia codegen (every C layer)", "the projects' codegen networks vs their C with dump_featuremaps, "
           "every layer at every step", compared, 0, unit="layer values")


def test_timestep_mode_changes_only_the_main_loops_define(qualia_runs):
    """Rendered through Qualia's deployment path in both modes, the model C differs in one line: the
    MODEL_INPUT_TIMESTEP_MODE_* define the example main loops read (cnn() is the same)."""
    from golden.qualia.deployment import deploy
    from golden.qualia.project import rebuild

    qmodel, _ = rebuild(qualia_runs["smlp_lif8"] / "smlp_lif8.toml", run_dir=qualia_runs["smlp_lif8"] / "out")
    a, b = (deploy(qmodel, timestep_mode=m, dump_featuremaps=False).source.splitlines() for m in ("duplicate",
                                                                                                 "iterate"))
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(a) == len(b) and diff == [("#define MODEL_INPUT_TIMESTEP_MODE_DUPLICATE",
                                          "#define MODEL_INPUT_TIMESTEP_MODE_ITERATE")]


def test_a_run_qualia_cannot_deploy_is_refused_naming_qualias_own_failure(qualia_runs, monkeypatch, capsys):
    """FuseBatchNorm after QAT (the EuroSAT configs): Qualia's own prepare_deploy fails on this run (it loads the
    `_fused` state_dict into the float model FuseBatchNorm folds); golden's codegen profile refuses it in one line
    saying so, writing nothing. (Its torch-eval network is in the grid above.)"""
    d = qualia_runs["scnn2d_bn_qat_fuse"]
    monkeypatch.chdir(d)
    env = {**os.environ, "PYTHONHASHSEED": str(SEED), "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    qualia = subprocess.run([sys.executable, str(PROJECTS / "run_qualia.py"), "prepare_deploy",
                             ".:scnn2d_bn_qat_fuse.toml"], capture_output=True, text=True, timeout=300, env=env)
    assert qualia.returncode != 0 and "Error(s) in loading state_dict for GraphModule" in qualia.stderr
    assert _cli("from-qualia", "scnn2d_bn_qat_fuse.toml", "--profile", "codegen", "--out", "refused") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Qualia's own prepare_deploy cannot deploy this run either (FuseBatchNorm " \
        "after QuantizationAwareTraining)" in err and "Error(s) in loading state_dict" in err, err
    assert not Path("refused").exists()


# ----------------------------------------------------------------------------- bad inputs
def _edit(d: Path, name: str, old: str, new: str) -> str:
    """A copy of project ``name``'s config with one line changed, beside it; returns its file name."""
    text = (d / f"{name}.toml").read_text()
    assert old in text
    target = d / f"edited_{abs(hash((old, new)))}.toml"
    target.write_text(text.replace(old, new))
    return target.name


def _two_models(d: Path) -> str:
    text = (d / "smlp_lif8.toml").read_text()
    target = d / "two_models.toml"
    target.write_text(text + '\n[[model]]\nname = "smlp_lif8"\nparams.units = [8]\n')
    return target.name


def _bare_run(d: Path) -> str:
    """A run directory holding the .pth and activation-range file but not the training set Qualia exported."""
    bare = d / "two_models_bare"  # (the 'two_models' prefix marks what a row made, for the nothing-written check)
    (bare / "learningmodel").mkdir(parents=True, exist_ok=True)
    for f in (d / "out" / "learningmodel").glob("smlp_lif8_q8*"):
        (bare / "learningmodel" / f.name).write_bytes(f.read_bytes())
    return bare.name


BAD = [  # (argv builder: project dir -> argv, what the one line must name)
    (lambda d: ["missing.toml"], "missing.toml: no such config file"),
    (lambda d: [_edit(d, "smlp_lif8", '[[model]]\nname = "smlp_lif8"\nparams.units = [16, 12]\n', "")],
     "no [[model]] entry"),
    (lambda d: ["smlp_lif8.toml", "--model", "nope"], "'nope' is not a [[model]] name"),
    (lambda d: ["smlp_lif8.toml", "--model", "7"], "index 7 is not a [[model]] entry"),
    (lambda d: [_two_models(d)], "2 enabled [[model]] entries"),
    (lambda d: [_two_models(d), "--model", "smlp_lif8"], "pick one by its index"),
    (lambda d: ["smlp_lif8.toml", "--run-dir", "nowhere"], "nowhere/learningmodel: no such directory"),
    (lambda d: ["smlp_lif8.toml", "--run", "5"], "smlp_lif8_q8_force_qoff_e0_LSQFalse_r5.pth: not found"),
    (lambda d: [_edit(d, "smlp_lif8", "params.units = [16, 12]", "params.units = [16, 10]")],
     "Qualia cannot build 'SMLP' 'smlp_lif8' from this config and run"),
    (lambda d: [_edit(d, "smlp_lif8", 'roundtype = "nearest"', 'roundtype = "floor"')],
     "disagrees with the model the config builds"),
    (lambda d: [_edit(d, "smlp_lif8", "LSQ = false", "LSQ = true")], "Qualia's own converter (QualiaCodeGen) refuses"),
    (lambda d: [_edit(d, "smlp_lif8", 'quantype = "fxp"', 'quantype = "fake"')],
     "quantype = 'fake'; golden models 'fxp' only"),
    (lambda d: [_edit(d, "smlp_lif8", 'kind = "QuantizationAwareTraining"', 'kind = "FuseBatchNorm"')],
     "0 [[postprocessing]] of kind 'QuantizationAwareTraining'"),
    (lambda d: ["smlp_lif8.toml", "--profile", "float"], "argument --profile: invalid choice"),
    (lambda d: ["smlp_lif8.toml", "--run-dir", _bare_run(d)], "no training set Qualia exported"),
    (lambda d: [_edit(d, "smlp_lif8", "[bench]", 'includes = ["other.toml"]\n[bench]')],
     "included file 'other.toml' not found in conf"),
    (lambda d: [_edit(d, "smlp_lif8", 'timestep_mode = "duplicate"', 'timestep_mode = "twice"'), "--profile",
                "codegen"], "converter.params.timestep_mode = 'twice'; QualiaCodeGen's main loop knows"),
    (lambda d: [_edit(d, "smlp_lif8", "[bench]", 'includes = "common.toml"\n[bench]')],
     "includes must be a list of file names"),
    (lambda d: [_edit(d, "smlp_lif8", "[bench]", "[bench\n")], "not a Qualia TOML configuration"),
]


@pytest.mark.parametrize("row", BAD, ids=lambda r: r[1][:40])
def test_bad_input_is_one_line_exit_2_nothing_written(row, qualia_runs, monkeypatch, capsys):
    build, says = row
    d = qualia_runs["smlp_lif8"]
    monkeypatch.chdir(d)
    before = sorted(p for p in d.rglob("*") if p.name != "__pycache__")
    argv = build(d)
    made = {Path(a) for a in argv if a.startswith(("edited_", "two_models"))}
    made |= {p.relative_to(d) for a in made for p in (d / a).rglob("*")}
    assert _cli("from-qualia", *argv, "--out", "bad_net") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("golden: error: ") and says in err, err
    assert not Path("bad_net").exists()
    after = sorted(p for p in d.rglob("*") if p.name != "__pycache__" and p.relative_to(d) not in made)
    assert after == before
    for p in sorted(made, key=lambda p: -len(p.parts)):
        p.rmdir() if p.is_dir() else p.unlink()


def test_the_api_refuses_a_profile_it_does_not_build(qualia_runs):
    import golden
    from golden.errors import ProjectError

    with pytest.raises(ProjectError, match="profile: 'torch-train' is not one from_qualia builds"):
        golden.from_qualia(qualia_runs["smlp_lif8"] / "smlp_lif8.toml", profile="torch-train")


def test_out_is_refused_unless_a_golden_network_and_forced(qualia_runs, monkeypatch, capsys):
    monkeypatch.chdir(qualia_runs["smlp_lif8"])
    Path("not_a_net").mkdir(exist_ok=True)
    (Path("not_a_net") / "keep.txt").write_text("mine")
    for argv, says in ((["--out", "not_a_net", "--force"], "is not a golden network directory"),
                       (["--out", "no/such/parent"], "its parent no/such does not exist"),
                       (["--out", "smlp_lif8.toml"], "exists and is not a directory")):
        assert _cli("from-qualia", "smlp_lif8.toml", *argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
    assert (Path("not_a_net") / "keep.txt").read_text() == "mine"
    assert _cli("from-qualia", "smlp_lif8.toml", "--out", "fresh") == 0
    stamp = (Path("fresh") / "network.toml").stat().st_mtime_ns
    assert _cli("from-qualia", "smlp_lif8.toml", "--out", "fresh") == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (Path("fresh") / "network.toml").stat().st_mtime_ns == stamp
    assert _cli("from-qualia", "smlp_lif8.toml", "--out", "fresh", "--force") == 0
