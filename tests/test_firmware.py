"""The test a firmware team would adopt (issue 12): the real generated model C, a golden network bundle's
``vectors.h`` and golden's host program ``tools/firmware/main.c``, compiled with gcc and run.

Per model: Qualia's own deployment path renders ``full_model.h`` from the installed packages
(:func:`golden.refs.codegen_model.deploy`, nothing of it committed); ``golden.from_torch(dep, profile="codegen")``
is saved; the real CLI ``golden vectors generate --network`` writes the bundle; ``main.c`` runs every sample from
``reset()`` and compares every output of every step. The count of compared values is asserted, so the test cannot
pass on nothing. A deliberately wrong expected value is named (sample, t, index); a header made for another model
stops the build naming what differs. With ``dump_featuremaps`` the same C writes every layer's output at every step:
each equals the bundle's per-layer array, which checks the bundle's channels-last layout against the real C. The
committed network bundles (vectors/networks, tools/regen_network_corpus.py) pass the same check on their model's C.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import golden
from golden import cli

from proofs import missing_codegen, missing_torch, record, requires

pytestmark = requires(missing_torch() or missing_codegen())

MAIN_C = Path(__file__).resolve().parents[1] / "tools" / "firmware" / "main.c"
FIRMWARE_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra")
# dump_featuremaps: the single-file model leaves the includes of its JSON dump to the includer and uses mkdir
DUMP_CFLAGS = ("-std=gnu11", "-O2", "-Wall", "-Wextra", "-include", "errno.h", "-include", "stdlib.h",
               "-include", "sys/stat.h", "-include", "sys/types.h")
SAMPLES, SEED = 8, 5
SUMMARY = re.compile(r"^(PASS|FAIL): (\d+) samples, (\d+) steps, (\d+) values compared, (\d+) mismatches$", re.M)
MAIN_WARNINGS = re.compile(r"main\.c:\d+:\d+: (?:warning|error)")
MISMATCH = re.compile(r"^MISMATCH sample (\d+) t (\d+) index (\d+): expected (-?\d+), got (-?\d+)$", re.M)

# every template at 8-bit LIF; the batch_norm and gsp variants; 16 bits; IF; LONG 32; each stimulus
CASES = [("SMLP", "LIF-soft", 8, None, "uniform"), ("SCNN1d", "LIF-soft", 8, None, "uniform"),
         ("SCNN2d", "LIF-soft", 8, None, "uniform"), ("SResNet2d", "LIF-soft", 8, None, "uniform"),
         ("SCNN1d", "LIF-hard", 16, None, "uniform"), ("SResNet1d", "IF-soft", 8, None, "uniform"),
         ("SCNN1d-bn", "LIF-hard", 8, None, "edges"), ("SCNN2d-gsp", "LIF-tau3", 8, None, "poisson"),
         ("SCNN2d-bn", "IF-soft", 16, 32, "edges")]
CI_CASES = tuple(CASES)  # chosen so that the neurons fire on their stimulus (asserted)
if os.environ.get("GOLDEN_HYPOTHESIS") == "deep":  # every model variant, LIF and IF, both widths, each stimulus;
    # some are silent (q_v forced low, weak poisson drive): 0 mismatches still, the firing is not asserted
    _MODELS = ("SMLP", "SCNN1d", "SCNN1d-bn", "SCNN1d-gsp", "SCNN2d", "SCNN2d-bn", "SCNN2d-gsp", "SResNet1d",
               "SResNet2d")
    CASES += [(m, n, b, lw, ("uniform", "poisson", "edges")[i % 3]) for i, (m, n, b, lw) in enumerate(
        (m, n, b, lw) for m in _MODELS for n in ("LIF-soft", "LIF-qin>qv", "IF-hard") for b in (8, 16)
        for lw in (None, 32))]
IDS = [f"{m}-{n}-{b}b-long{lw or 2 * b}-{st}" for m, n, b, lw, st in CASES]
_CACHE: dict = {}


def _deployed(model: str, neuron: str, bits: int, long_width: int | None, dump: bool):
    from golden.refs import codegen_model as cm
    from golden.refs import qualia_models as qm

    key = ("dep", model, neuron, bits, long_width, dump)
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            try:
                built = _CACHE.get(("built", model, neuron, bits))
                if built is None:
                    built = qm.build(**qm.MODELS[model], **qm.neuron_kwargs(neuron, bits), bits=bits, seed=0)
                    _CACHE[("built", model, neuron, bits)] = built
                _CACHE[key] = cm.deploy(built, long_width=long_width, dump_featuremaps=dump)
            finally:
                logging.disable(logging.NOTSET)
    return _CACHE[key]


def _bundle(case, tmp_path_factory) -> Path:
    """The network bundle of ``case``'s codegen network, written by the real CLI (cached per case)."""
    key = ("bundle", *case)
    if key not in _CACHE:
        d = tmp_path_factory.mktemp("fw")
        dep = _deployed(*case[:4], dump=False)
        netdir = golden.from_torch(dep, profile="codegen").save(d / "net")
        out = d / "bundle"
        rc = cli.main(["vectors", "generate", "--network", str(netdir), "--samples", str(SAMPLES),
                       "--steps", str(dep.built.timesteps), "--seed", str(SEED), "--stimulus", case[4],
                       "--out", str(out)])
        assert rc == 0
        _CACHE[key] = out
    return _CACHE[key]


def build_and_run(dep, include: Path, where: Path, flags=FIRMWARE_CFLAGS) -> tuple[subprocess.CompletedProcess, str]:
    """Compile the deployment's full_model.h + ``include``/vectors.h + main.c, run it in ``where``/run.

    Returns (the run, gcc's stderr). The build must succeed."""
    model = where / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "full_model.h").write_text(dep.source)
    exe = where / "firmware_check"
    cc = subprocess.run(["gcc", *flags, "-I", str(model), "-I", str(include), str(MAIN_C), "-o", str(exe)],
                        capture_output=True, text=True, check=False)
    assert cc.returncode == 0, cc.stderr
    run_dir = where / "run"
    run_dir.mkdir(exist_ok=True)
    return subprocess.run([str(exe)], cwd=run_dir, capture_output=True, text=True, check=False, timeout=60), cc.stderr


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _summary(stdout: str) -> tuple:
    m = SUMMARY.findall(stdout)
    assert len(m) == 1, stdout
    verdict, s, t, values, mismatches = m[0]
    return verdict, int(s), int(t), int(values), int(mismatches)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_firmware_check_passes_on_the_real_c(case, tmp_path, tmp_path_factory):
    dep = _deployed(*case[:4], dump=False)
    bundle = _bundle(case, tmp_path_factory)
    m = _manifest(bundle)
    n_out = int(np.prod(dep.layers[-1].c_shape))
    run, cc_err = build_and_run(dep, bundle, tmp_path)
    # main.c is warning-clean with -std=c99 -O2 -Wall -Wextra (the generated C may warn: Qualia's 1-D global sum
    # pool has an unused variable)
    assert not MAIN_WARNINGS.findall(cc_err), cc_err
    verdict, s, t, values, mismatches = _summary(run.stdout)
    record("firmware main.c", "the generated model C (Qualia's deployment path, gcc -std=c99) on the bundle's "
           "vectors.h", values, mismatches, unit="output values")
    assert (run.returncode, verdict, mismatches) == (0, "PASS", 0), run.stdout
    assert (s, t) == (m["samples"], m["steps"]) == (SAMPLES, dep.built.timesteps)
    assert values == SAMPLES * dep.built.timesteps * n_out
    if case not in CI_CASES:
        return
    # the expected outputs are not trivial and the neurons fire
    expected = np.load(bundle / m["output"]["file"])
    assert len(np.unique(expected)) > 2
    rates = [np.load(bundle / e["arrays"]["spikes"]["file"]).mean() for e in m["layers"] if "spikes" in e["arrays"]]
    assert rates and max(rates) >= 0.02, rates


def _edit_array(text: str, name: str, edits: dict) -> str:
    """``text`` with the elements of C array ``name`` at ``edits``' keys set to its values."""
    m = re.search(rf"\b{name}\[(\d+)\][^=]*=\s*\{{([^}}]*)\}}", text)
    assert m, name
    vals = [int(v) for v in m.group(2).replace("\n", " ").split(",") if v.strip()]
    assert len(vals) == int(m.group(1))
    for k, v in edits.items():
        vals[k] = v
    return text[:m.start(2)] + "\n" + ",".join(map(str, vals)) + "\n" + text[m.end(2):]


@pytest.mark.parametrize("n_wrong", [1, 13])
def test_wrong_expected_values_are_named(n_wrong, tmp_path, tmp_path_factory):
    """Expected outputs changed by one in a copy of vectors.h: exit 1, each named (sample, t, index, expected, got)
    in run order up to MAX_REPORTED = 10, the rest counted."""
    case = CASES[2]
    dep = _deployed(*case[:4], dump=False)
    bundle = _bundle(case, tmp_path_factory)
    T, n_out = dep.built.timesteps, int(np.prod(dep.layers[-1].c_shape))
    want = np.load(bundle / _manifest(bundle)["output"]["file"]).reshape(-1)  # (s, t, i) flat, as golden_out
    assert want.size == SAMPLES * T * n_out
    ks = sorted(np.random.default_rng(n_wrong).choice(want.size, n_wrong, replace=False).tolist())
    edits = {k: int(want[k]) + 1 if want[k] < 127 else int(want[k]) - 1 for k in ks}
    sab = tmp_path / "sabotaged"
    sab.mkdir()
    (sab / "vectors.h").write_text(_edit_array((bundle / "vectors.h").read_text(), "golden_out", edits))
    run, _ = build_and_run(dep, sab, tmp_path)
    assert run.returncode == 1, run.stdout
    named = [(k // (T * n_out), k // n_out % T, k % n_out, edits[k], int(want[k])) for k in ks]
    assert [tuple(map(int, g)) for g in MISMATCH.findall(run.stdout)] == named[:10]
    assert (f"... {n_wrong - 10} more mismatches not shown" in run.stdout) == (n_wrong > 10)
    assert _summary(run.stdout) == ("FAIL", SAMPLES, T, SAMPLES * T * n_out, n_wrong)


def _macro(text: str, name: str, value) -> str:
    new, n = re.subn(rf"^#define {name}\s+\S+$", f"#define {name} {value}", text, flags=re.M)
    assert n == 1, name
    return new


# a header made for another model stops the build, the array named in gcc's error saying what differs
_BAD_HEADERS = [
    ("input size", lambda h, o: _macro(h, "GOLDEN_IN_SIZE", 65), "vectors_h_input_size_differs_from_input_t"),
    ("output size", lambda h, o: _macro(h, "GOLDEN_OUT_SIZE", 5), "vectors_h_output_size_differs_from_output_t"),
    ("input bits", lambda h, o: _macro(h, "GOLDEN_IN_BITS", 16), "vectors_h_input_bits_wider_than_MODEL_INPUT"),
    ("output bits", lambda h, o: _macro(h, "GOLDEN_OUT_BITS", 16), "vectors_h_output_bits_wider_than_MODEL_OUTPUT"),
    ("another model's bundle", lambda h, o: o, "vectors_h_input_size_differs_from_input_t"),
    ("not a network bundle", lambda h, o: "#define GOLDEN_STEPS 8\n#define GOLDEN_NEURONS 4\n",
     "'GOLDEN_SAMPLES' undeclared"),
]


@pytest.mark.parametrize("label,edit,error", _BAD_HEADERS, ids=[b[0] for b in _BAD_HEADERS])
def test_a_header_for_another_model_does_not_build(label, edit, error, tmp_path, tmp_path_factory):
    case = CASES[2]  # input 8x8x1 = 64 values, 4 outputs, int8
    dep = _deployed(*case[:4], dump=False)
    text = (_bundle(case, tmp_path_factory) / "vectors.h").read_text()
    other = (_bundle(CASES[0], tmp_path_factory) / "vectors.h").read_text()  # input 16
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "vectors.h").write_text(edit(text, other))
    model = tmp_path / "model"
    model.mkdir()
    (model / "full_model.h").write_text(dep.source)
    cc = subprocess.run(["gcc", *FIRMWARE_CFLAGS, "-I", str(model), "-I", str(bad), str(MAIN_C), "-o",
                         str(tmp_path / "x")], capture_output=True, text=True, check=False)
    assert cc.returncode != 0
    assert error in cc.stderr.replace("\u2018", "'").replace("\u2019", "'"), cc.stderr


def _featuremaps(dep, run_dir: Path, samples: int, steps: int) -> dict:
    """Every C layer's dumped output {c_name: (S, T, *c_shape)}. main.c calls reset() BEFORE each sample and the
    generated reset() advances the dump's sample counter, so sample s is dumped as s + 1."""
    base = run_dir / "out" / "qualia_codegen" / f"golden_qint{dep.width}" / "featuremaps"
    out = {}
    for la in dep.layers:
        out[la.c_name] = np.array([[json.loads((base / str(s + 1) / str(t) / f"{la.c_name}.json").read_text())["data"]
                                    for t in range(steps)] for s in range(samples)],
                                  dtype=np.int64).reshape(samples, steps, *la.c_shape)
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_layer_of_the_real_c_equals_the_bundle(case, tmp_path, tmp_path_factory):
    """The same main.c on the model deployed with dump_featuremaps: every layer, every step, channels-last."""
    dep = _deployed(*case[:4], dump=True)
    assert golden.from_torch(dep, profile="codegen").digest() == \
        golden.from_torch(_deployed(*case[:4], dump=False), profile="codegen").digest()
    bundle = _bundle(case, tmp_path_factory)
    m = _manifest(bundle)
    run, cc_err = build_and_run(dep, bundle, tmp_path, DUMP_CFLAGS)
    assert not MAIN_WARNINGS.findall(cc_err), cc_err
    assert run.returncode == 0, run.stdout + run.stderr
    c = _featuremaps(dep, tmp_path / "run", m["samples"], m["steps"])
    # the bundle has one layer per C node but the input, under the C's names
    layers = {e["c_name"]: e for e in m["layers"]}
    assert set(layers) == {la.c_name for la in dep.layers[1:]}
    checked = {"cnn_input": np.load(bundle / m["input"]["file"])}
    checked.update({n: np.load(bundle / e["arrays"]["out"]["file"]) for n, e in layers.items()})
    values = mismatches = 0
    for la in dep.layers:
        want = checked[la.c_name]
        assert want.shape == c[la.c_name].shape == (m["samples"], m["steps"], *la.c_shape), la.c_name
        values += want.size
        mismatches += int((want != c[la.c_name]).sum())
    record("firmware per-layer dump", "every layer of the generated model C (dump_featuremaps) vs the bundle's "
           "channels-last arrays", values, mismatches, unit="layer values")
    assert mismatches == 0
    assert values >= SAMPLES * dep.built.timesteps * sum(int(np.prod(la.c_shape)) for la in dep.layers)


def _corpus() -> dict:
    """tools/regen_network_corpus.py's CORPUS: name -> (build kwargs, deploy kwargs, samples, steps, stimulus, seed)."""
    import importlib.util

    path = MAIN_C.parents[1] / "regen_network_corpus.py"
    spec = importlib.util.spec_from_file_location("regen_network_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CORPUS


@pytest.mark.parametrize("name", sorted(_corpus()))
def test_committed_network_bundles_pass_the_firmware_check(name, tmp_path):
    """Each committed vectors/networks bundle's vectors.h, on the model C its network was deployed from."""
    from golden.refs import codegen_model as cm
    from golden.refs import qualia_models as qm

    build_kw, deploy_kw, samples, steps, _, _ = _corpus()[name]
    bundle = MAIN_C.parents[2] / "vectors" / "networks" / name
    m = _manifest(bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            dep = cm.deploy(qm.build(**build_kw), dump_featuremaps=False, **deploy_kw)
        finally:
            logging.disable(logging.NOTSET)
    assert m["network"]["digest"] == golden.from_torch(dep, profile="codegen").digest()  # the C of that network
    run, cc_err = build_and_run(dep, bundle, tmp_path)
    assert not MAIN_WARNINGS.findall(cc_err), cc_err
    n_out = int(np.prod(dep.layers[-1].c_shape))
    verdict, s, t, values, mismatches = _summary(run.stdout)
    record("firmware main.c", "the generated model C (Qualia's deployment path, gcc -std=c99) on the bundle's "
           "vectors.h", values, mismatches, unit="output values")
    assert (run.returncode, verdict, mismatches) == (0, "PASS", 0), run.stdout
    assert (s, t, values) == (samples, steps, samples * steps * n_out)


@requires(None if shutil.which("make") else "make is not installed (.ci/run installs it)")
@pytest.mark.parametrize("dump", [False, True])
def test_the_makefile_builds_and_runs_it(dump, tmp_path, tmp_path_factory):
    case = CASES[3]
    dep = _deployed(*case[:4], dump=dump)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "full_model.h").write_text(dep.source)
    bundle = _bundle(case, tmp_path_factory)
    out = tmp_path / "build" / "firmware"  # does not exist yet: the Makefile creates it
    run = subprocess.run(["make", "-f", str(MAIN_C.parent / "Makefile"), f"MODEL={tmp_path / 'model'}",
                          f"BUNDLE={bundle}", f"OUT={out}", *(["DUMP=1"] if dump else []), "check"],
                         capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    n_out = int(np.prod(dep.layers[-1].c_shape))
    assert _summary(run.stdout) == ("PASS", SAMPLES, dep.built.timesteps, SAMPLES * dep.built.timesteps * n_out, 0)
    assert (out / "firmware_check").is_file() and (out / "out" / "qualia_codegen").is_dir() == dump
