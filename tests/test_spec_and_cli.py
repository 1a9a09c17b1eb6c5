"""Spec validation, TOML round trip, bad inputs and the core CLI commands."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given

import golden
from golden import SpecError, cli
from golden.spec import QFormat, Spec, quantize_real
from golden.strategies import specs


@given(specs())
def test_toml_round_trip(spec):
    again = Spec.from_toml(spec.to_toml())
    assert again == spec and hash(again) == hash(spec) and again.digest() == spec.digest()


def test_profiles_build_and_describe():
    for name in golden.PROFILES:
        spec = golden.make(name, "LIF")
        assert spec.profile == name and name in spec.describe()


# ------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("bits", [0, 1, 33, 64])
def test_bits_out_of_range(bits):
    with pytest.raises(SpecError, match="bits"):
        QFormat(bits, 4)


def test_hyperparameter_unrepresentable():
    with pytest.raises(SpecError, match="tau"):  # 1/200 is 0 at q_v = 6
        golden.torch_eval("LIF", tau=200.0)
    with pytest.raises(SpecError, match="v_threshold"):  # quantizes to 0
        golden.torch_eval("LIF", v_threshold=0.001)


def test_saturating_threshold_is_refused():
    with pytest.raises(SpecError, match="v_threshold.*saturates"):
        golden.torch_eval("LIF", bits=8, q_v=6, v_threshold=2.5)


def test_nan_and_inf_real_inputs_refused():
    spec = golden.torch_eval("IF")
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(SpecError, match="NaN or inf"):
            spec.quantize_input(np.array([0.5, bad], np.float32))


def test_raw_inputs_outside_format_refused():
    spec = golden.codegen("IF", width=8)
    with pytest.raises(SpecError, match="outside the input format"):
        golden.simulate(spec, np.array([[0, 128]]))


def test_float_arrays_refused_where_raw_expected():
    spec = golden.codegen("IF")
    with pytest.raises(SpecError, match="expected raw integers"):
        golden.simulate(spec, np.zeros((3, 2), np.float32))


def test_wrong_rank_refused():
    spec = golden.codegen("IF")
    with pytest.raises(SpecError, match="rank"):
        golden.simulate(spec, np.zeros(5, np.int8))
    with pytest.raises(SpecError, match="shape"):
        golden.Simulator(spec, 4).step(np.zeros(3, np.int8))


@pytest.mark.parametrize("field,value", [("kind", "XIF"), ("round", "NEAREST"), ("reset", "medium")])
def test_unknown_names_refused(field, value):
    base = golden.codegen("LIF")
    with pytest.raises(SpecError, match=field):
        base.replace(**{field: value})
    with pytest.raises(SpecError, match="profile"):
        golden.make("torch-magic", "LIF")


@pytest.mark.parametrize("edit,match", [
    (lambda t: t.replace("[datapath]", "[datapath]\nrounding = 1"), "datapath.rounding: unknown key"),
    (lambda t: t.replace("kind =", "knd ="), "knd: unknown key"),
    (lambda t: t.replace("bits = 8", 'bits = "8"', 1), "bits: expected an integer"),
    (lambda t: t + "[[[", "malformed TOML"),
    (lambda t: t.replace("schema = 1", "schema = 9"), "schema"),
])
def test_malformed_or_unknown_toml(edit, match):
    with pytest.raises(SpecError, match=match):
        Spec.from_toml(edit(golden.codegen("LIF").to_toml()))


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        Spec.from_toml(tmp_path / "nope.toml")


def test_strict_overflow_names_stage_step_and_neuron():
    # soft reset, x = 127 at Q6, vth = 64: v = 63, then 126; at t=2, 126 + 127 - 64 = 189 > 127.
    spec = golden.hardware("IF", v_reset=None, overflow="strict")
    x = np.full((10, 3), 127, np.int8)
    x[:, 0] = 0
    with pytest.raises(golden.SimulationOverflow) as info:
        golden.simulate(spec, x)
    assert info.value.stage == "v" and info.value.t == 2 and info.value.neuron == 1


# ------------------------------------------------------------ quantizer
def test_qualia_nearest_is_float32_half_up():
    f = QFormat(8, 0)
    assert quantize_real(np.float32(0.49999997), f).item() == 1  # the float32 add rounds up
    assert quantize_real(-0.5, f).item() == 0 and quantize_real(-1.5, f).item() == -1
    assert quantize_real(127.5, f).item() == 127 and quantize_real(-300.0, f).item() == -128
    assert quantize_real(2.5, f, "RND_CONV").item() == 2 and quantize_real(-2.5, f, "RND_INF").item() == -3


# ------------------------------------------------------------------ CLI
def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "golden.cli", *args], capture_output=True, text=True, timeout=300)


def test_demo_prints_summary():
    r = run_cli("demo")
    assert r.returncode == 0, r.stderr
    for word in ("spike rate", "saturation", "throughput", "1024 neurons x 200 steps"):
        assert word in r.stdout


def test_spec_new_and_simulate(tmp_path, capsys):
    assert cli.main(["spec", "new", "--profile", "torch-eval", "--kind", "LIF", "--tau", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# golden datapath spec") and 'arith = "float32"' in text
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(text)
    spec = Spec.from_toml(spec_path)
    x = spec.quantize_input(np.linspace(-1, 2, 60, dtype=np.float32).reshape(20, 3))
    np.save(tmp_path / "x.npy", x)
    assert cli.main(["simulate", "--spec", str(spec_path), "--input", str(tmp_path / "x.npy"),
                     "--out", str(tmp_path / "t.npz")]) == 0
    saved = np.load(tmp_path / "t.npz")
    assert np.array_equal(saved["v"], golden.simulate(spec, x).v)


def test_cli_errors_are_one_line_and_exit_2(tmp_path):
    r = run_cli("simulate", "--spec", str(tmp_path / "missing.toml"), "--input", "x.npy", "--out", "t.npz")
    assert r.returncode == 2 and r.stderr.startswith("golden: error:") and "Traceback" not in r.stderr
    r = run_cli("spec", "new", "--profile", "codegen", "--kind", "ATIF")
    assert r.returncode == 2 and "ATIF" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("spec", "new", "--profile", "torch-eval", "--kind", "LIF", "--v-threshold", "9")
    assert r.returncode == 2 and "saturates" in r.stderr
