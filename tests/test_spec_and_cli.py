"""Spec validation, TOML round trip, bad inputs and the core CLI commands."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

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
    with pytest.raises(SpecError, match="v_threshold.*must be positive"):  # ATIF's graded spike is its threshold
        golden.torch_eval("ATIF", v_threshold=0.001)
    with pytest.raises(SpecError, match="v_threshold.*at least 0"):
        golden.torch_eval("LIF", v_threshold=-0.5)
    # a threshold that quantizes to 0 is what Qualia holds (a low-bit model): the neuron fires whenever v >= 0
    assert golden.torch_eval("LIF", v_threshold=0.001).v_threshold == 0


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
    assert r.stderr.count("\n") == 1
    assert r.returncode == 2 and r.stderr.startswith("golden: error:") and "Traceback" not in r.stderr
    r = run_cli("spec", "new", "--profile", "codegen", "--kind", "ATIF")
    assert r.returncode == 2 and "ATIF" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("spec", "new", "--profile", "torch-eval", "--kind", "LIF", "--v-threshold", "9")
    assert r.returncode == 2 and "saturates" in r.stderr


# ------------------------------------------------------------ the API's bad inputs
@pytest.mark.parametrize("shape", [-1, 0, "ab", 1.5, True, np.bool_(True), (4, 0), (), None, [2, "x"]])
def test_simulator_shape_refused(shape):
    with pytest.raises(SpecError, match="shape"):
        golden.Simulator(golden.codegen("IF"), shape)


def test_simulator_shape_numpy_ints():
    assert golden.Simulator(golden.codegen("IF"), np.int64(3)).shape == (3,)
    assert golden.Simulator(golden.codegen("IF"), (np.uint8(2), 3)).shape == (2, 3)


def test_no_time_steps_refused():
    with pytest.raises(SpecError, match="no neuron-step"):
        golden.simulate(golden.codegen("IF"), np.zeros((0, 4), np.int8))


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_v0_and_x_of_any_integer_dtype(dtype):
    """Range-checked against the format, then cast: the same trace as int64 inputs of the same values."""
    spec = golden.hardware("LIF", bits=8, q_v=6)
    rng = np.random.default_rng(1)
    x = rng.integers(0 if np.dtype(dtype).kind == "u" else -128, 128, (30, 6))
    v0 = rng.integers(0 if np.dtype(dtype).kind == "u" else -128, 128, 6)
    want = golden.simulate(spec, x.astype(np.int64), v0.astype(np.int64))
    got = golden.simulate(spec, x.astype(dtype), v0.astype(dtype))
    assert np.array_equal(got.v, want.v) and np.array_equal(got.out, want.out)
    sim = golden.Simulator(spec, 6)
    sim.reset(v0.astype(dtype))
    assert np.array_equal(sim.v, v0)
    if np.iinfo(dtype).max >= 200:  # outside Q8.6 in every dtype that holds it
        with pytest.raises(SpecError, match="v0: raw value 200 is outside the potential format Q8.6"):
            golden.simulate(spec, x.astype(dtype), np.full(6, 200, dtype))


@pytest.mark.parametrize("n", [5, 1 << 20])
def test_big_endian_inputs_of_any_size(n):
    spec = golden.codegen("LIF")
    x = (np.arange(n, dtype=np.int64) % 256 - 128).reshape(-1, 1 << 10 if n > 1024 else n)
    want = golden.simulate(spec, x.astype(np.int16))
    got = golden.simulate(spec, x.astype(">i2"), x[0].astype(">i2") // 2 if n > 1024 else None)
    if n > 1024:
        want = golden.simulate(spec, x.astype(np.int16), x[0].astype(np.int16) // 2)
    assert np.array_equal(got.v, want.v) and np.array_equal(got.spikes, want.spikes)


def test_v0_shape_that_does_not_broadcast():
    with pytest.raises(SpecError, match=r"v0: shape \(3,\) does not broadcast"):
        golden.simulate(golden.codegen("IF"), np.zeros((2, 4), np.int8), np.zeros(3, np.int8))


@pytest.mark.parametrize("make", [np.uint8, np.int8, np.int16, np.uint64, np.int64])
def test_numeric_fields_become_python_ints(make):
    f = QFormat(make(16), make(6))
    assert type(f.bits) is int and type(f.frac) is int and (f.min, f.max) == (-32768, 32767)
    base = golden.hardware("LIF", bits=16, q_v=6)
    fields = {k: make(getattr(base, k)) for k in ("v_threshold", "reciprocal_tau", "spike_out", "acc_bits")
              if 0 <= getattr(base, k) <= np.iinfo(make).max}
    spec = base.replace(fmt_in=QFormat(make(16), make(6)), **fields)
    for k in ("v_threshold", "v_reset", "reciprocal_tau", "spike_out", "acc_bits"):
        assert type(getattr(spec, k)) is int
    assert spec == base and hash(spec) == hash(base)
    x = np.array([[-64, 32, 640]])
    assert np.array_equal(golden.simulate(spec, x).v, golden.simulate(base, x).v)


def test_npy_header_declaring_more_than_the_file_is_refused_before_allocating(tmp_path):
    from golden.simulate import load_npy

    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:  # 1e12 int64 elements declared: 8 TB
        np.lib.format.write_array_header_2_0(f, {"descr": "<i8", "fortran_order": False, "shape": (10**6, 10**6)})
    with pytest.raises(SpecError, match="header declares shape"):
        load_npy(path)


def test_tau_too_small_is_one_clear_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SpecError, match="tau: 1/tau = 1e\\+30 saturates"):
            golden.torch_eval("LIF", tau=1e-30)


# ------------------------------------------------------------ options
def test_options_are_str_enums_with_codes():
    from golden import datapath
    from golden.spec import OPTIONS, Kind, Round

    spec = golden.torch_eval("ATIF", v_reset=None)
    assert spec.kind == "ATIF" and spec.kind is Kind.ATIF and f"{spec.kind}" == "ATIF" and repr(spec.kind) == "'ATIF'"
    assert spec.kind.graded_spike and spec.kind.soft_reset_only and not spec.kind.has_leak
    assert Kind.LIF.has_leak and not Kind.IF.has_leak
    for option in set(OPTIONS.values()):  # codes are 0..n-1, distinct, and fit their field
        assert sorted(m.code for m in option) == list(range(len(option)))
    assert (datapath.encode(spec) >> datapath._ROUND) & datapath.ROUND_MASK == spec.round.code
    assert datapath._VOVF - datapath._ROUND == Round.width()


# ------------------------------------------------------------ the kernel cache
@pytest.mark.parametrize("platform,env,want", [
    ("linux", {"XDG_CACHE_HOME": "/x/cache"}, "/x/cache/golden"),
    ("linux", {}, "~/.cache/golden"),
    ("darwin", {}, "~/Library/Caches/golden"),
    ("win32", {"LOCALAPPDATA": "C:/Users/u/AppData/Local"}, "C:/Users/u/AppData/Local/golden/Cache"),
    ("linux", {"GOLDEN_CACHE_DIR": "/y/z", "XDG_CACHE_HOME": "/x"}, "/y/z"),
])
def test_cache_dir_follows_the_platform(monkeypatch, platform, env, want):
    from golden import kernels

    for k in ("GOLDEN_CACHE_DIR", "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "platform", platform)
    assert kernels.cache_dir() == Path(want).expanduser()


def test_kernels_are_cached_in_the_cache_dir_not_the_package(tmp_path):
    """A fresh process with GOLDEN_CACHE_DIR: the specialised kernel lands there; nothing in golden/."""
    pkg = Path(golden.__file__).parent
    before = {p for p in pkg.rglob("*") if p.suffix in (".nbi", ".nbc")}
    code = ("import golden, numpy as np; s = golden.make('hardware', 'IF', bits=12, q_v=5);"
            "golden.simulate(s, np.zeros((2, 4), np.int16), parallel=True)")
    env = {**os.environ, "GOLDEN_CACHE_DIR": str(tmp_path / "c")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    assert list((tmp_path / "c").rglob("*.nbi")) and list((tmp_path / "c").rglob("*.nbc"))
    assert {p for p in pkg.rglob("*") if p.suffix in (".nbi", ".nbc")} == before


def test_demo_network_runs_the_embedded_network():
    """``golden demo --network``: the committed small network, every layer listed, its neurons spiking."""
    r = run_cli("demo", "--network", "--samples", "3", "--steps", "5")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "golden network demo: scnn1d_lif8" in out and "3 samples x 5 steps" in out
    rates = [float(line.split("spike rate")[1].split("%")[0]) for line in out.splitlines() if "spike rate" in line]
    assert len(rates) == 2 and all(r > 0 for r in rates), out
    assert "per-sample argmax" in out


def test_readme_architecture_names_every_module():
    """The README's architecture table keeps up with the package: every module and subpackage of golden/ is in it."""
    import re
    from pathlib import Path

    root = Path(golden.__file__).resolve().parent
    readme = (root.parent / "README.md").read_text()
    table = readme[readme.index("## Architecture"):readme.index("### Recipes")]
    named = set(re.findall(r"`golden/([\w/]+?)(?:\.py)?/?`", table))
    modules = {p.stem for p in root.glob("*.py") if not p.stem.startswith("__")}
    packages = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted((modules | packages) - named)
    assert not missing, f"README architecture table does not name: {missing}"
