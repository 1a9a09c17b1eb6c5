"""The bench's whole-network rows (tools/bench/netc.py): Network.simulate against the real generated model C and the
Qualia model. Not timed tests: the rows must appear with sane fields, the C and golden agree before timing, a
missing reference says why the rows are skipped, and the new options refuse bad values in one line."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from golden import cli
from golden.cli.bench import harness

from proofs import missing_codegen, missing_torch, record, requires

FAST = ["--profiles", "codegen", "--kinds", "IF", "--sizes", "64", "--steps", "10", "--no-qualia", "--no-users",
        "--no-stimuli", "--no-lanes", "--no-gemm", "--no-real", "--no-fresh", "--no-coldstart", "--rounds", "1",
        "--min-time", "0.001"]


def _files(d: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in d.rglob("*")}


@requires(missing_torch() or missing_codegen())
def test_network_rows_have_sane_fields():
    nc = harness().netc_module()
    with tempfile.TemporaryDirectory() as tmp:
        nw = nc.network_rows(Path(tmp), rounds=1, min_time=0.001, labels=["SMLP", "SResNet2d"], S=3, T=6)
    assert [r["model"] for r in nw["rows"]] == ["SMLP", "SResNet2d"] and (nw["S"], nw["T"]) == (3, 6)
    for r in nw["rows"]:
        record("network codegen", "the model C of Qualia's deployment path, compiled with gcc (bench driver)",
               r["checked"], 0, unit="model outputs")
        assert r["checked"] == 3 * 6 * 4 and r["torch_equal"] and r["torch_checked"] == 3 * 6 * 4
        assert set(r["per_step"]) == {"golden", "golden_torch_eval", "c_O2", "c_O3native", "torch"}
        assert all(v > 0 for v in r["per_step"].values())
        assert r["ratio_c"] == r["per_step"]["c_O2"] / r["per_step"]["golden"]
        assert r["ratio_torch_eval"] == r["per_step"]["torch"] / r["per_step"]["golden_torch_eval"]
        assert r["macs"] > 0 and r["layers"] >= 5 and 0 < r["spike_rate"] < 1
        assert r["c_flags"]["O2"].startswith("-O2")
        if r["ratio_c"] < nc.C_TARGET:  # a miss comes with where the time goes: every layer, then the whole call
            prof = r["profile"]
            assert len(prof) == r["layers"] + 1 and prof[-1]["layer"] == "(whole simulate)"
            assert all(p["seconds"] > 0 for p in prof)
            assert all((p["ns_per_update"] is not None) == (p["type"] == "Neuron") for p in prof[:-1])
        else:
            assert r["profile"] is None
    text = "\n".join(nc.markdown(nw))
    assert "| SMLP |" in text and "| SResNet2d |" in text and "golden / C -O2" in text
    names = [t[0] for t in nc.targets(nw)]
    assert any("model C" in n for n in names) and any("Qualia model" in n for n in names)


@requires(missing_torch() or missing_codegen())
def test_golden_bench_writes_the_network_rows(tmp_path):
    out = tmp_path / "b.json"
    md = tmp_path / "b.md"
    rc = cli.main(["bench", *FAST, "--net-models", "SMLP", "--net-samples", "2", "--net-steps", "4", "--quiet",
                   "--json", str(out), "--markdown", str(md)])
    assert rc == 0
    nw = json.loads(out.read_text())["networks"]
    assert [r["model"] for r in nw["rows"]] == ["SMLP"] and (nw["S"], nw["T"]) == (2, 4)
    text = md.read_text()
    assert "Whole networks (issue 12)" in text and "whole-network simulate >= 1.0x" in text


def test_no_networks_and_a_missing_reference_skip_the_rows(tmp_path, monkeypatch):
    nc = harness().netc_module()
    out = tmp_path / "b.json"
    assert cli.main(["bench", *FAST, "--no-c", "--no-networks", "--quiet", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "networks" not in res and "networks_missing" not in res
    monkeypatch.setattr(nc, "available", lambda: "qualia_codegen_core is not installed (the [test] extra)")
    md = tmp_path / "b.md"
    assert cli.main(["bench", *FAST, "--quiet", "--force", "--json", str(out), "--markdown", str(md)]) == 0
    assert json.loads(out.read_text())["networks_missing"].startswith("qualia_codegen_core is not installed")
    assert "The whole-network rows are skipped: qualia_codegen_core is not installed" in md.read_text()
    assert cli.main(["bench", *FAST, "--no-c", "--quiet", "--force", "--markdown", str(md)]) == 0
    assert "The whole-network rows are skipped: --no-c" in md.read_text()


@requires(missing_torch())
def test_real_size_gemm_rows(tmp_path):
    """tools/bench/gemm.py on the smallest real model (GSC SResNet-8, one sample): every synaptic layer checked equal
    (GEMM route = Numba kernel) and timed; the rows, the GEMM peak, the markdown and the targets; and through
    ``golden bench --gemm-models``."""
    gm = harness().gemm_module()
    res = gm.gemm_rows(["GSC SResNet-8 int16"], samples=1, min_time=0.001, rounds=1, whole_samples=1)
    (m,) = res["models"]
    assert m["model"] == "GSC SResNet-8 int16" and m["T"] == 4 and len(m["rows"]) == 8  # 7 Conv1d + the Linear
    for r in m["rows"]:
        record("gemm route, real sizes", "golden.network.kernels (ops.core), each accumulator", r["checked"], 0,
               unit="values")
        assert r["rows"] == 4 and r["checked"] == 2 * 4 * int(np.prod(r["out_shape"])) and r["macs_per_row"] > 0
        assert set(r["seconds"]) == {"kernel", "gemm_1t", "gemm_2t", "torch_1t", "torch_2t", "gemm_spikes_1t"}
        assert r["spike_dtype"] == "float32"  # 16 bits: the weights' row sums fit float32, the plain bound does not
        assert all(v > 0 for v in r["seconds"].values())
        assert r["dtype"] in ("float32", "float64") and r["bound_log2"] <= 53
        assert r["route"] == ("kernel" if r["layer"] == "linear" else "gemm")  # 640 MACs a row: not worth a GEMM
    (w,) = res["whole"]  # the whole network with its synaptic layers on the GEMM route: every layer's trace equal
    record("gemm route, whole networks", "Network.simulate on golden.network.kernels, every layer's output",
           w["values"], w["differ"], unit="values")
    assert w["differ"] == 0 and w["values"] > 0 and all(v > 0 for v in w["seconds"].values())
    assert set(res["peak"]) == {"float32_1t", "float32_2t", "float64_1t", "float64_2t"}
    text = "\n".join(gm.markdown(res))
    assert "**GSC SResNet-8 int16**" in text and "Whole torch-eval networks" in text
    assert "| conv1 | Conv1d | (10, 49) -> (64, 49) |" in text
    names = [t[0] for t in gm.targets(res)]
    assert any("Qualia modules" in n for n in names) and any("Numba kernels" in n for n in names)
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    argv = [a for a in FAST if a != "--no-gemm"]
    assert cli.main(["bench", *argv, "--no-networks", "--gemm-models", "GSC SResNet-8 int16", "--gemm-samples", "1",
                     "--quiet", "--json", str(out), "--markdown", str(md)]) == 0
    assert [m["model"] for m in json.loads(out.read_text())["gemm"]["models"]] == ["GSC SResNet-8 int16"]
    assert "Synaptic layers at real sizes" in md.read_text() and "Numba compiles for" in md.read_text()


BAD = [
    (["--gemm-models", "ResNet50"], ["--gemm-models ResNet50", "not a real-size model", "GSC SResNet-8 int16"]),
    (["--gemm-samples", "0"], ["--gemm-samples", "positive integer"]),
    (["--no-gemm", "yes"], ["unrecognized arguments", "yes"]),
    (["--net-samples", "0"], ["--net-samples", "positive integer"]),
    (["--net-samples", "x"], ["--net-samples", "positive integer"]),
    (["--net-steps", "-3"], ["--net-steps", "positive integer"]),
    (["--net-steps", "1.5"], ["--net-steps", "positive integer"]),
    (["--net-models", "SMLP", "AlexNet"], ["--net-models AlexNet", "not a whole-network model", "SResNet2d"]),
    (["--net-models"], ["--net-models", "expected at least one argument"]),
    (["--no-networks", "yes"], ["unrecognized arguments", "yes"]),
]


@pytest.mark.parametrize("argv,words", BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_network_options_are_one_line_exit_2(argv, words, tmp_path, capsys, monkeypatch):
    check_bad_bench_option(argv, words, tmp_path, capsys, monkeypatch)


def check_bad_bench_option(argv, words, tmp_path, capsys, monkeypatch):
    """``golden bench`` with a bad option: one ``golden: error:`` line naming it, exit 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    rc = cli.main(["bench", *argv, "--json", "b.json", "--markdown", "b.md"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("golden: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert _files(tmp_path) == before and not os.path.exists("b.json")
