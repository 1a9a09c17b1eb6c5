"""Test-vector bundles: determinism, tamper detection, bad input, exports, the committed corpus, streaming."""

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import golden
from golden import SpecError, cli, vectors
from golden.vectors import BundleError

from bundle_edits import edit_manifest, rehash
from proofs import missing_gcc, requires


def vcli(argv) -> int:
    """``golden vectors ...`` as the command runs it (one-line errors, exit 2)."""
    return cli.main(["vectors", *argv])

ROOT = Path(__file__).resolve().parent.parent
ALL = ("npy", "hex", "h", "csv")


def gen(out, spec=None, steps=24, neurons=16, seed=7, stimulus="mixed", formats=ALL, **kw):
    spec = spec or golden.codegen("LIF", q_in=8)
    return vectors.generate(spec, steps, neurons, seed, stimulus, out, formats, progress=False, **kw)


def run_verify(*dirs, capsys=None):
    rc = vcli(["verify", *map(str, dirs)])
    return rc, (capsys.readouterr() if capsys else None)


@pytest.fixture
def bundle(tmp_path):
    return gen(tmp_path / "b")


# ------------------------------------------------------------ determinism
@pytest.mark.parametrize("stimulus", vectors.STIMULI)
def test_byte_determinism(tmp_path, stimulus):
    spec = golden.hardware("LIF", q_in=8, decay_input=False)
    a = gen(tmp_path / "one", spec, stimulus=stimulus)
    b = gen(tmp_path / "two" / "nested", spec, stimulus=stimulus)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert {"manifest.json", "spec.toml", "x.npy", "out.npy", "v.npy", "spikes.npy", "x.hex", "spikes.hex",
            "bundle.vh", "vectors.h", "vectors.csv"} <= set(names)
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    assert vectors.verify([a, b]) == 0


def test_seed_changes_the_stimulus(tmp_path):
    a = gen(tmp_path / "a", seed=1, stimulus="uniform")
    b = gen(tmp_path / "b", seed=2, stimulus="uniform")
    assert (a / "x.npy").read_bytes() != (b / "x.npy").read_bytes()


def test_stimulus_is_independent_of_run_length():
    spec = golden.codegen("IF")
    for g in vectors.STIMULI:
        long = vectors.stimulus(spec, vectors.BLOCK + 5, 6, 3, g)
        short = vectors.stimulus(spec, 10, 6, 3, g)
        assert np.array_equal(long[:10], short), g


def test_npy_written_by_golden_reads_back(bundle):
    x = np.load(bundle / "x.npy")
    spikes = np.load(bundle / "spikes.npy")
    assert x.dtype == np.int8 and x.shape == (24, 16) and spikes.dtype == np.bool_
    assert vectors.npy_header(np.int8, (24, 16)) == (bundle / "x.npy").read_bytes()[:128]
    assert len(vectors.npy_header(np.int16, (3, 5))) % 64 == 0


@pytest.mark.parametrize("bits", [5, 8, 12, 16])
def test_stimuli_stay_inside_the_input_format(bits):
    spec = golden.hardware("LIF", bits=bits, q_v=bits - 3, q_in=bits - 1)
    f = spec.fmt_in
    for g in vectors.STIMULI:
        x = vectors.stimulus(spec, 40, 9, 11, g)
        assert x.dtype == f.dtype and x.min() >= f.min and x.max() <= f.max, g


def test_edges_hit_full_scale():
    spec = golden.codegen("IF", width=16, q_v=12)
    x = vectors.stimulus(spec, 64, 32, 0, "edges")
    assert (x == spec.fmt_in.max).mean() > 0.1 and (x == spec.fmt_in.min).mean() > 0.1


def test_ties_land_on_rescale_ties():
    # IF with q_in = q_v + 2: the rescale R(H, 2) ties exactly when x = 2 (mod 4). Ties also picks the least
    # input that fires (the threshold) among its qualifying candidates, so not every pick is a rescale tie.
    spec = golden.hardware("IF", bits=8, q_v=6, q_in=8, v_threshold=0.25)
    ties = vectors.stimulus(spec, 64, 32, 5, "ties")
    uniform = vectors.stimulus(spec, 64, 32, 5, "uniform")
    def frac(x):
        return np.mean(x.astype(np.int64) % 4 == 2)
    assert frac(ties) > 0.6 and frac(uniform) < 0.4


def test_ties_land_on_leak_ties():
    # LIF, decay_input, q_in = q_v, tau = 2: the leak R((x - v) * 32, 6) ties when x - v is odd.
    spec = golden.hardware("LIF", bits=8, q_v=6, tau=2.0)
    x = vectors.stimulus(spec, 48, 32, 9, "ties")
    tr = golden.simulate(spec, x)
    v_before = np.vstack([np.full((1, 32), spec.v_start), tr.v[:-1]]).astype(np.int64)
    assert np.mean((x - v_before) % 2 == 1) > 0.8


# ---------------------------------------------------------------- verify
def test_fresh_bundle_verifies(bundle, capsys):
    rc, out = run_verify(bundle, capsys=capsys)
    assert rc == 0, out
    assert "1 ok" in out.out


def test_flipped_array_byte_is_a_difference(bundle, capsys):
    p = bundle / "v.npy"
    data = bytearray(p.read_bytes())
    i = len(data) - 16 * 3 - 5  # t = 20, neuron 11 of a (24, 16) int8 array
    data[i] ^= 0x01
    p.write_bytes(bytes(data))
    rc, out = run_verify(bundle, capsys=capsys)
    assert rc == 1
    assert "t=20, neuron=11, field=v" in out.out and "differing" in out.out


def test_flipped_input_byte_is_a_difference(bundle, capsys):
    p = bundle / "x.npy"
    data = bytearray(p.read_bytes())
    data[128] ^= 0x40  # t = 0, neuron 0
    p.write_bytes(bytes(data))
    rc, out = run_verify(bundle, capsys=capsys)
    assert rc == 1 and "t=0, neuron=0" in out.out


@pytest.mark.parametrize("name", ["x.hex", "vectors.h", "vectors.csv"])
def test_flipped_export_byte_is_a_difference(bundle, capsys, name):
    p = bundle / name
    text = p.read_text()
    if name == "x.hex":
        lines = text.splitlines()
        lines[37] = format((int(lines[37], 16) + 1) % 256, "02x")
        text = "\n".join(lines) + "\n"
        where = "t=2, neuron=5, field=x.hex:x"
    elif name == "vectors.h":
        i = text.index("golden_v[")
        j = text.index("\n", i) + 5  # first value of golden_v
        digit = text[j] if text[j].isdigit() else text[j + 1]
        k = j if text[j].isdigit() else j + 1
        text = text[:k] + str((int(digit) + 1) % 10) + text[k + 1:]
        where = "t=0, neuron=0, field=vectors.h:v"
    else:
        lines = text.splitlines()
        cols = lines[1 + 3 * 16 + 2].split(",")
        cols[4] = str(int(cols[4]) ^ 1)
        lines[1 + 3 * 16 + 2] = ",".join(cols)
        text = "\n".join(lines) + "\n"
        where = "t=3, neuron=2, field=vectors.csv:v"
    if len(text) != p.stat().st_size:
        pytest.skip("edit changed the size")
    p.write_text(text)
    rc, out = run_verify(bundle, capsys=capsys)
    assert rc == 1, out
    assert where in out.out


def test_tampered_overflow_count_is_a_difference(bundle, capsys):
    edit_manifest(bundle, lambda m: m["overflow"].update(v=m["overflow"]["v"] + 1))
    rc, out = run_verify(bundle, capsys=capsys)
    assert rc == 1 and "field=overflow.v" in out.out


def test_tampered_spec_file_is_a_difference(bundle, capsys):
    p = bundle / "spec.toml"
    p.write_text(p.read_text().replace("RND", "TRN", 1))
    rc, out = run_verify(bundle, capsys=capsys)
    assert rc == 1 and "field=spec.toml" in out.out


def test_consistently_tampered_output_still_fails_resimulation(bundle, capsys):
    out = np.load(bundle / "out.npy")
    out[5, 3] = 0 if out[5, 3] else 1
    p = bundle / "out.npy"
    p.write_bytes(vectors.npy_header(out.dtype, out.shape) + out.tobytes())
    rehash(bundle, "out.npy")
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 1 and "t=5, neuron=3, field=out" in res.out


def test_spec_edit_in_manifest_is_caught(bundle, capsys):
    edit_manifest(bundle, lambda m: m["spec"].update(toml=m["spec"]["toml"].replace("RND", "TRN", 1)))
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "spec.sha256" in res.err


def test_truncated_file_is_corrupt(bundle, capsys):
    for name in ("v.npy", "x.hex"):
        b = gen(bundle.parent / f"t-{name}")
        p = b / name
        p.write_bytes(p.read_bytes()[:-7])
        rc, res = run_verify(b, capsys=capsys)
        assert rc == 2 and "truncated" in res.err and name in res.err
        assert len(res.err.strip().splitlines()) == 1


def test_truncated_npy_with_matching_manifest_is_corrupt(bundle, capsys):
    p = bundle / "v.npy"
    p.write_bytes(p.read_bytes()[:-7])
    rehash(bundle, "v.npy")
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "v.npy: truncated or corrupt" in res.err


def test_corrupt_npy_header(bundle, capsys):
    p = bundle / "out.npy"
    data = bytearray(p.read_bytes())
    data[0] ^= 0xFF
    p.write_bytes(bytes(data))
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "out.npy: not a valid .npy" in res.err


def test_missing_manifest(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.npy").write_bytes(b"")
    rc, res = run_verify(tmp_path / "empty", capsys=capsys)
    assert rc == 2 and "no manifest.json" in res.err


def test_missing_array_file(bundle, capsys):
    (bundle / "spikes.npy").unlink()
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "spikes.npy: missing" in res.err


def test_unknown_schema(bundle, capsys):
    edit_manifest(bundle, lambda m: m.update(schema=99))
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "unknown schema version 99" in res.err


def test_manifest_not_json(bundle, capsys):
    (bundle / "manifest.json").write_text("{not json")
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "not valid JSON" in res.err


def test_wrong_dtype(bundle, capsys):
    x = np.load(bundle / "x.npy").astype(np.int16)
    (bundle / "x.npy").write_bytes(vectors.npy_header(x.dtype, x.shape) + x.tobytes())
    rehash(bundle, "x.npy")
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "x.npy: wrong dtype" in res.err


def test_manifest_format_disagreeing_with_arrays(bundle, capsys):
    def edit(m):
        m["arrays"]["v"]["format"] = {"bits": 16, "frac": 6}
        m["arrays"]["v"]["dtype"] = "int16"
    edit_manifest(bundle, edit)
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "format mismatch" in res.err


def test_stored_values_outside_the_declared_format(tmp_path, capsys):
    spec = golden.hardware("IF", bits=6, q_v=3)  # int8 storage, 6-bit values
    b = gen(tmp_path / "b", spec, formats=("npy",))
    x = np.load(b / "x.npy")
    x[2, 2] = 100  # fits int8, not Q6
    (b / "x.npy").write_bytes(vectors.npy_header(x.dtype, x.shape) + x.tobytes())
    rehash(b, "x.npy")
    rc, res = run_verify(b, capsys=capsys)
    assert rc == 2 and "stimulus outside the input format" in res.err


def test_verify_parent_directory_finds_every_bundle(tmp_path, capsys):
    for i in range(3):
        gen(tmp_path / "set" / f"group{i % 2}" / f"b{i}", seed=i, formats=("npy",))
    rc, res = run_verify(tmp_path / "set", capsys=capsys)
    assert rc == 0 and "3 bundle(s): 3 ok" in res.out
    p = tmp_path / "set" / "group1" / "b1" / "v.npy"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x02
    p.write_bytes(bytes(data))
    rc, res = run_verify(tmp_path / "set", capsys=capsys)
    assert rc == 1 and "1 differ" in res.out and "b1" in res.out and "t=23, neuron=15, field=v" in res.out


def test_committed_corpus_verifies(capsys):
    corpus = ROOT / "vectors"
    bundles = vectors.find_bundles([corpus])
    assert len(bundles) >= 50
    rc, res = run_verify(corpus, capsys=capsys)
    assert rc == 0, res.out + res.err


def test_committed_corpus_covers_the_matrix():
    specs = [json.loads((b / "manifest.json").read_text()) for b in vectors.find_bundles([ROOT / "vectors"])]
    specs = [m for m in specs if m["kind"] != "network"]  # network bundles: tests/test_network_bundles.py
    seen = {(m["profile"], m["kind"], golden.Spec.from_toml(m["spec"]["toml"]).reset,
             golden.Spec.from_toml(m["spec"]["toml"]).decay_input) for m in specs}
    for profile in ("torch-eval", "torch-train", "codegen", "hardware"):
        for kind in ("IF", "LIF", "ATIF"):
            if profile == "codegen" and kind == "ATIF":
                continue
            for reset in (("soft",) if kind == "ATIF" else ("hard", "soft")):
                for decay in ((True, False) if kind == "LIF" else (True,)):
                    assert (profile, kind, reset, decay) in seen
    stims = {m["stimulus"]["generator"] for m in specs}
    assert {"ties", "edges"} <= stims
    fmts = {(m["arrays"]["x"]["format"]["bits"], m["arrays"]["x"]["format"]["frac"],
             m["arrays"]["v"]["format"]["frac"]) for m in specs}
    assert any(b == 8 for b, _, _ in fmts) and any(b == 16 for b, _, _ in fmts)
    assert any(qi != qv for _, qi, qv in fmts)


# ------------------------------------------------------------- bad input
def test_existing_directory_refused_unless_force(tmp_path, capsys):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(golden.codegen("IF").to_toml())
    args = ["generate", "--spec", str(spec_file), "--steps", "4", "--neurons", "3", "--seed", "0",
            "--stimulus", "uniform", "--out", str(tmp_path / "b")]
    assert vcli(args) == 0
    assert vcli(args) == 2 and "already exists" in capsys.readouterr().err
    assert vcli(args + ["--force"]) == 0
    (tmp_path / "notabundle").mkdir()
    (tmp_path / "notabundle" / "precious.txt").write_text("keep me")
    args[-1] = str(tmp_path / "notabundle")
    assert vcli(args + ["--force"]) == 2 and "not a bundle" in capsys.readouterr().err
    assert (tmp_path / "notabundle" / "precious.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directories left


def test_invalid_spec_refused(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(golden.codegen("IF").to_toml().replace("bits = 8", "bits = 99", 1))
    rc = vcli(["generate", "--spec", str(bad), "--steps", "4", "--neurons", "3", "--seed", "0",
                      "--stimulus", "uniform", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and "bits" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args", [["--steps", "0"], ["--neurons", "-3"], ["--seed", "-1"], ["--formats", "npy,xml"]])
def test_bad_generate_arguments(tmp_path, capsys, args):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(golden.codegen("IF").to_toml())
    base = {"--spec": str(spec_file), "--steps": "4", "--neurons": "3", "--seed": "0", "--stimulus": "uniform",
            "--out": str(tmp_path / "b")}
    base[args[0]] = args[1]
    assert vcli([x for kv in base.items() for x in kv]) == 2


def test_stimulus_outside_input_format_refused(tmp_path):
    spec = golden.hardware("IF", bits=6, q_v=3)
    x = np.zeros((4, 3), np.int8)
    x[1, 1] = 40  # outside Q6.3
    with pytest.raises(SpecError, match="outside the input format"):
        vectors.write_bundle(tmp_path / "b", spec, x, golden.simulate(spec, np.zeros((4, 3), np.int8)))
    assert not (tmp_path / "b").exists()


def test_hex_wider_than_declared_width_refused():
    with pytest.raises(SpecError, match="8-bit width"):
        vectors.hex_bytes(np.array([5, 200]), 8)
    with pytest.raises(SpecError, match="1-bit width"):
        vectors.hex_bytes(np.array([0, 2]), 1)
    with pytest.raises(BundleError, match="wider"):
        vectors.parse_hex(b"0f\n1ff\n", 8)
    with pytest.raises(BundleError, match="exceeds the declared 6-bit width"):
        vectors.parse_hex(b"3f\n40\n", 6)
    with pytest.raises(BundleError, match="not a hex digit"):
        vectors.parse_hex(b"0g\n", 8)


def test_hex_word_wider_than_declared_in_bundle(bundle, capsys):
    p = bundle / "v.hex"
    lines = p.read_text().splitlines()
    lines[3] = "1" + lines[3]
    lines[4] = lines[4][1:]  # same size: one word too wide, the next too narrow
    p.write_text("\n".join(lines) + "\n")
    rehash(bundle, "v.hex")
    rc, res = run_verify(bundle, capsys=capsys)
    assert rc == 2 and "v.hex: line 4" in res.err


# --------------------------------------------------------------- exports
@pytest.mark.parametrize("bits", [8, 12, 16, 32])
def test_hex_round_trip(bits):
    fmt = golden.QFormat(bits, 0)
    a = np.random.default_rng(bits).integers(fmt.min, fmt.max + 1, 5000).astype(fmt.dtype)
    a[:2] = fmt.min, fmt.max
    text = vectors.hex_bytes(a, bits)
    lines = text.decode().splitlines()
    assert all(len(w) == (bits + 3) // 4 and w == w.lower() and not w.startswith("0x") for w in lines)
    assert lines[0] == format(1 << (bits - 1), "x").zfill((bits + 3) // 4)
    assert np.array_equal(vectors.parse_hex(text, bits), a.astype(np.int64))


def test_hex_known_words():
    assert vectors.hex_bytes(np.array([-3, 5, 0, -128, 127], np.int8), 8) == b"fd\n05\n00\n80\n7f\n"
    assert vectors.hex_bytes(np.array([-1, 2047], np.int16), 12) == b"fff\n7ff\n"
    assert vectors.hex_bytes(np.array([True, False]), 1) == b"1\n0\n"


def test_export_round_trip(tmp_path, capsys):
    spec = golden.hardware("LIF", bits=12, q_v=8, q_in=10)
    b = gen(tmp_path / "b", spec, steps=20, neurons=7, formats=("npy",))
    assert not (b / "x.hex").exists()
    for fmt in ("hex", "h", "csv"):
        assert vcli(["export", str(b), "--format", fmt]) == 0, capsys.readouterr().err
    spec2, arrays, manifest = vectors.read_bundle(b)
    assert spec2 == spec and set(manifest["exports"]) == {"hex", "h", "csv"}
    for name in vectors.FIELDS:
        meta = manifest["exports"]["hex"][name]
        words = vectors.parse_hex(b / meta["file"], meta["bits"])
        assert np.array_equal(words, arrays[name].reshape(-1).astype(np.int64)), name
    h = vectors.parse_h(b / "vectors.h")
    csv = vectors.parse_csv(b / "vectors.csv")
    for name in vectors.FIELDS:
        assert np.array_equal(h[f"golden_{name}"], arrays[name].reshape(-1)), name
        assert np.array_equal(csv["spike" if name == "spikes" else name], arrays[name].reshape(-1)), name
    assert (b / "x.hex").read_text().count("\n") == 140 and len((b / "x.hex").read_text().splitlines()[0]) == 3
    assert run_verify(b)[0] == 0
    # identical to generating with every format at once
    c = gen(tmp_path / "c", spec, steps=20, neurons=7)
    for p in c.iterdir():
        assert p.read_bytes() == (b / p.name).read_bytes(), p.name


def test_export_refuses_a_bundle_that_does_not_verify(bundle, capsys):
    p = bundle / "v.npy"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01
    p.write_bytes(bytes(data))
    assert vcli(["export", str(bundle), "--format", "csv"]) == 2
    assert "does not verify" in capsys.readouterr().err


def test_bundle_vh_parameters(bundle):
    text = (bundle / "bundle.vh").read_text()
    params = dict(line[len("localparam integer "):-1].split(" = ") for line in text.splitlines()
                  if line.startswith("localparam"))
    spec = golden.Spec.from_toml((bundle / "spec.toml").read_text())
    assert int(params["GV_STEPS"]) == 24 and int(params["GV_NEURONS"]) == 16
    assert int(params["GV_V_THRESHOLD"]) == spec.v_threshold and int(params["GV_IN_FRAC"]) == spec.fmt_in.frac
    assert int(params["GV_KIND"]) == 1 and int(params["GV_ROUND"]) == 3


@requires(missing_gcc())
def test_c_header_compiles_and_holds_the_arrays(tmp_path):
    spec = golden.hardware("LIF", bits=32, q_v=20, q_in=22, v_threshold=1.0, acc_bits=64, overflow="wrap")
    x = np.zeros((4, 5), np.int32)
    x[0, 0] = -(2 ** 31)  # the most negative int32 needs its own spelling in C
    x[1] = [2 ** 31 - 1, -1, 1, 12345, -54321]
    b = vectors.write_bundle(tmp_path / "b32", spec, x, golden.simulate(spec, x), stimulus="custom", seed=0)
    b8 = gen(tmp_path / "b8", prefix="other")
    c = tmp_path / "t.c"
    c.write_text(f'#include "{b / "vectors.h"}"\n#include "{b8 / "vectors.h"}"\n#include <stdio.h>\n'
                 "int main(void) {\n"
                 "  long long s = 0; for (int i = 0; i < GOLDEN_SIZE; i++) s += (long long)golden_x[i] + golden_v[i];\n"
                 "  long long t = 0; for (int i = 0; i < OTHER_SIZE; i++) t += other_x[i] * 3 + other_spikes[i];\n"
                 '  printf("%lld %lld %d %d\\n", s, t, GOLDEN_IN_FRAC, (int)sizeof golden_x[0]);\n'
                 "  return 0;\n}\n")
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(c)], check=True)
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c99", "-O0", "-o", str(exe), str(c)], check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    _, a, _ = vectors.read_bundle(b)
    _, a8, _ = vectors.read_bundle(b8)
    assert int(got[0]) == int(a["x"].astype(np.int64).sum() + a["v"].astype(np.int64).sum())
    assert int(got[1]) == int(a8["x"].astype(np.int64).sum() * 3 + a8["spikes"].sum())
    assert got[2:] == ["22", "4"]
    text = (b / "vectors.h").read_text()
    assert text.startswith("// Generated by golden ") and "#pragma once" in text and "#include <stdint.h>" in text
    assert "const int32_t golden_x[20]" in text and "(-2147483647 - 1)" in text


# ------------------------------------------------------- streaming, demo
def test_streaming_memory_is_flat_in_T(tmp_path):
    spec = golden.codegen("LIF")
    gen(tmp_path / "warm", spec, steps=8, neurons=64, stimulus="uniform", formats=("npy",))

    def peak(steps, name):
        tracemalloc.start()
        try:
            gen(tmp_path / name, spec, steps=steps, neurons=64, stimulus="uniform", formats=("npy", "hex"))
            assert vectors.verify_bundle(tmp_path / name).count == 0
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small = peak(2 * vectors.BLOCK, "small")
    big = peak(200_000, "big")  # 12.8M neuron-steps: 51 MB of arrays + 38 MB of hex
    assert (tmp_path / "big" / "v.npy").stat().st_size == 128 + 12_800_000
    assert big < small + 4_000_000, (small, big)
    assert big < 16_000_000


def test_demo_writes_a_bundle_that_verifies(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--steps", "30", "--neurons", "40"]) == 0
    assert "bundle" in capsys.readouterr().out
    m = json.loads((out / "manifest.json").read_text())
    assert m["stimulus"] == {"generator": "demo", "seed": 0, "block": vectors.BLOCK}
    assert m["steps"] == 30 and m["neurons"] == 40 and m["profile"] == "codegen"
    assert run_verify(out)[0] == 0
    assert cli.main(["demo", "--out", str(out), "--steps", "30", "--neurons", "40"]) == 2
    assert cli.main(["demo", "--out", str(out), "--steps", "30", "--neurons", "40", "--force"]) == 0


def test_progress_bar_only_on_a_tty(tmp_path, capsys):
    gen(tmp_path / "b", steps=10, neurons=4)
    assert capsys.readouterr().err == ""
    vectors.generate(golden.codegen("IF"), 10, 4, 0, "uniform", tmp_path / "c", progress=True)
    assert "100%" in capsys.readouterr().err


def test_golden_vectors_via_the_main_cli(tmp_path):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(golden.hardware("ATIF", v_reset=None).to_toml())
    assert cli.main(["vectors", "generate", "--spec", str(spec_file), "--steps", "6", "--neurons", "5", "--seed", "2",
                     "--stimulus", "edges", "--out", str(tmp_path / "b"), "--formats", "npy,hex"]) == 0
    assert cli.main(["vectors", "verify", str(tmp_path)]) == 0


def test_committed_corpus_is_what_regen_corpus_writes(tmp_path):
    """The corpus is reproducible byte for byte on this machine (and shows drift of profiles or stimuli).

    If this fails after a deliberate change of semantics, run ``python tools/regen_corpus.py`` and commit the
    corpus in the same commit, with the reason in the message.
    """
    subprocess.run([sys.executable, str(ROOT / "tools" / "regen_corpus.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    ours = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(ROOT / "vectors") for p in (ROOT / "vectors").rglob("*")
                       if p.is_file() and p.parent != ROOT / "vectors"
                       and p.relative_to(ROOT / "vectors").parts[0] != "networks")  # tools/regen_network_corpus.py
    assert ours == committed
    changed = [str(p) for p in ours if (tmp_path / p).read_bytes() != (ROOT / "vectors" / p).read_bytes()]
    assert not changed, f"regenerate the corpus (tools/regen_corpus.py): {changed[:5]}"
