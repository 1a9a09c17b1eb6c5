"""The bench's real-size whole-network rows (tools/bench/realnet.py) and the physical-limit row (tools/bench/gemm.py).

Not timed tests: at the --quick toy sizes the rows must appear with every candidate, their ratios and verdicts, the
checks made before timing (golden torch-eval = the Qualia model, golden codegen = the model C) must hold, and the
options refuse bad values in one line. Nothing here depends on the instruction set."""

from __future__ import annotations

import json

import pytest
from test_bench_networks import check_bad_bench_option

from golden import cli
from golden.cli.bench import harness

from proofs import missing_codegen, missing_torch, record, requires

FAST = ["--profiles", "codegen", "--kinds", "IF", "--sizes", "64", "--steps", "10", "--no-qualia", "--no-users",
        "--no-stimuli", "--no-lanes", "--no-gemm", "--no-networks", "--no-fresh", "--rounds", "1", "--min-time",
        "0.001"]
KEYS = {"te_1", "cg_1", "c", "torch_1", "te_b", "cg_b", "torch_b"}


@requires(missing_torch() or missing_codegen())
def test_real_rows_at_quick_sizes(tmp_path):
    rn = harness().realnet_module()
    labels = ["GSC SResNet-8 int16", "SHD-size SMLP int8"]
    rr = rn.real_rows(tmp_path, rounds=1, min_time=0.001, labels=labels, batch=3, quick=True)
    assert [r["model"] for r in rr["rows"]] == labels and rr["batch"] == 3 and rr["quick"]
    for r in rr["rows"]:
        record("real-size rows (quick)", "the Qualia model in .eval(), model outputs at batch 1 and 3",
               r["checked_torch"], r["differ_torch"], unit="model outputs")
        assert r["differ_torch"] == 0 and r["checked_torch"] == 4 * r["T"] * 10  # batch 3 + batch 1, 10 classes
        assert r["checked_c"] == r["c_samples"] * r["T"] * 10 and r["c_samples"] == 2
        assert set(r["per_step"]) == KEYS and all(v > 0 for v in r["per_step"].values())
        q, p = r["ratios"], r["per_step"]
        assert q["cg_vs_c_1"] == p["c"] / p["cg_1"] and q["te_vs_torch_b"] == p["torch_b"] / p["te_b"]
        missed = sorted(k for k, v in q.items() if v < rn.TARGET)
        assert (r["profile"] is None) == (not missed)  # a miss comes with where golden's time goes
        if missed:
            pr = r["profile"]
            assert sorted(pr["missed"]) == missed and pr["calls"] >= 3 and pr["whole"] > 0
            assert "neurons" in pr["groups"] and all(v > 0 for v in pr["groups"].values())
        assert len(q) == 6 and r["macs"] > 0 and r["params"] > 0 and r["c_flags"].startswith("-O3 -march=native")
    assert rr["rows"][0]["bits"] == 16 and rr["rows"][1]["bits"] == 8
    text = "\n".join(rn.markdown(rr))
    assert "Whole networks at toy sizes" in text and "| GSC SResNet-8 int16 | 16 |" in text
    assert "golden codegen / model C -O3 native b3" in text and ("hit" in text or "missed" in text)
    names = [t[0] for t in rn.targets(rr)]
    assert len(names) == 7 and sum("batch 3" in n for n in names) == 3 and sum("batch 1," in n for n in names) == 3
    assert rn.targets(rr)[-1][2] is True  # the outputs equal the Qualia model's


def test_quick_entries_keep_the_template_and_shrink_it():
    rn = harness().realnet_module()
    for label, entry in rn.models().items():
        q = rn.quick_entry(entry)
        assert q[0] == entry[0] and q[1] == entry[1] and q[4] == 2, label  # template, bits kept; T 2
        assert all(f <= 4 for k in ("filters", "units", "fc_units") for f in q[6].get(k) or ()), label
        assert len(q[5]) == len(entry[5]) and q[5][-1] == entry[5][-1], label  # same dims and channels


@requires(missing_torch() or missing_codegen())
def test_golden_bench_writes_the_real_rows(tmp_path):
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    rc = cli.main(["bench", *FAST, "--quick", "--real-models", "SHD-size SMLP int8", "--real-batch", "2", "--quiet",
                   "--json", str(out), "--markdown", str(md)])
    assert rc == 0
    rr = json.loads(out.read_text())["real"]
    assert [r["model"] for r in rr["rows"]] == ["SHD-size SMLP int8"] and rr["batch"] == 2 and rr["quick"]
    text = md.read_text()
    assert "Whole networks at toy sizes" in text and "real-size networks: golden codegen / model C" in text
    assert "Numba compiles for" in text  # the file records the instruction set of its run
    assert text.startswith("# golden bench\n") and "OPENBLAS_CORETYPE" in text and "BLAS (numpy" in text
    assert "Load average" in text.split("\n\n")[1] and "CPU: " in text


def test_no_real_and_a_missing_reference_skip_the_rows(tmp_path, monkeypatch):
    rn = harness().realnet_module()
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    assert cli.main(["bench", *FAST, "--no-c", "--no-real", "--quiet", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "real" not in res and "real_missing" not in res
    assert cli.main(["bench", *FAST, "--no-c", "--quiet", "--force", "--json", str(out), "--markdown", str(md)]) == 0
    assert "The real-size whole-network rows are skipped: --no-c" in md.read_text()
    monkeypatch.setattr(rn, "available", lambda: "gcc is not on PATH")
    assert cli.main(["bench", *FAST, "--quiet", "--force", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["real_missing"] == "gcc is not on PATH"


def test_physical_limit_row_is_the_time_weighted_fraction_of_each_dtype_peak():
    gm = harness().gemm_module()
    peak = {"float32_1t": 4e10, "float64_1t": 2e10, "float32_2t": 1.0, "float64_2t": 1.0}
    rows = [{"layer": "a", "route": "gemm", "dtype": "float32", "macs_per_row": 10 ** 6, "rows": 8,
             "seconds": {"kernel": 1.0, "gemm_1t": 8e-4, "torch_1t": 1e-3}},  # 1e10 MAC/s: 1/4 of its peak
            {"layer": "b", "route": "gemm", "dtype": "float64", "macs_per_row": 10 ** 6, "rows": 8,
             "seconds": {"kernel": 1.0, "gemm_1t": 4e-4, "torch_1t": 1e-3}},  # 2e10: its peak
            {"layer": "c", "route": "kernel", "dtype": "float32", "macs_per_row": 10, "rows": 8,
             "seconds": {"kernel": 5.0, "gemm_1t": 1.0, "torch_1t": 1e-3}}]  # not on the route: not counted
    m = {"model": "m", "rows": rows}
    assert gm.of_peak(m, peak) == pytest.approx((8e6 / 4e10 + 8e6 / 2e10) / 12e-4)  # 0.5
    assert gm.of_peak({"model": "k", "rows": rows[2:]}, peak) is None
    res = {"peak": peak, "models": [m]}
    (limit,) = [t for t in gm.targets(res) if t[0].startswith("physical limit")]
    assert limit[1] == "50% (m)" and limit[2] is True
    assert "of the measured 1-thread peak of their dtype" in gm._limit_text(m, peak)


def test_blas_text_names_the_kernels_and_the_variable():
    gm = harness().gemm_module()
    assert gm._blas_text(None) == ""
    t = gm._blas_text({"architecture": "Haswell", "coretype_env": "Haswell",
                       "own_choice": {"architecture": "SkylakeX", "float32_1t": 1.1e11, "float64_1t": 5e10}})
    assert "Haswell kernels" in t and "OPENBLAS_CORETYPE=Haswell" in t and "SkylakeX" in t and "1.1e+11" in t
    assert "OPENBLAS_CORETYPE" not in gm._blas_text({"architecture": "Zen", "coretype_env": None, "own_choice": None})


BAD = [
    (["--real-models", "ResNet50"], ["--real-models ResNet50", "not a real-size network", "SHD-size SMLP int8"]),
    (["--real-models"], ["--real-models", "expected at least one argument"]),
    (["--real-batch", "0"], ["--real-batch", "positive integer"]),
    (["--real-batch", "x"], ["--real-batch", "positive integer"]),
    (["--no-real", "yes"], ["unrecognized arguments", "yes"]),
]


@pytest.mark.parametrize("argv,words", BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_real_options_are_one_line_exit_2(argv, words, tmp_path, capsys, monkeypatch):
    check_bad_bench_option(argv, words, tmp_path, capsys, monkeypatch)
