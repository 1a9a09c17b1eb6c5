"""tools/bench/coldstart.py: a command in a fresh interpreter with an empty kernel cache, its compiles timed, and
its rows in ``golden bench`` (unless --no-coldstart). Not a timing test: it checks what is measured and reported."""

import json

from golden import cli
from golden.cli.bench import tool

FAST = ["--profiles", "codegen", "--kinds", "IF", "--sizes", "64", "--steps", "10", "--no-qualia", "--no-users",
        "--no-stimuli", "--no-lanes", "--no-gemm", "--no-networks", "--no-fresh", "--no-c", "--rounds", "1",
        "--min-time", "0.001", "--quiet"]
SMALL_DEMO = ["demo", "--neurons", "64", "--steps", "10"]


def test_a_cold_command_reports_its_compiles(tmp_path):
    """A small demo from an empty cache: it succeeds, it compiles the spec's specialised kernel (timed, wall and
    CPU), and its own cache directory is gone afterwards."""
    cs = tool("coldstart")
    before = set(tmp_path.iterdir())
    r = cs.cold({"kind": "cli", "argv": SMALL_DEMO}, tmp_path)
    assert r["rc"] == 0 and r["wall"] > 0 and r["cpu"] > 0
    names = [name for _, name, _ in r["compiles"]]
    assert any("run_int" in n for n in names)  # the demo's spec, compiled afresh: the cache was empty
    row = cs.row_of("small demo", r)
    assert row["longest"] == max(w for w, _, _ in r["compiles"]) and row["longest"] <= row["compiled"]
    assert set(tmp_path.iterdir()) == before


def test_golden_bench_adds_the_rows_unless_no_coldstart(tmp_path, monkeypatch):
    """The rows, their targets and verdicts in the JSON and the markdown; --no-coldstart leaves them out."""
    cs = tool("coldstart")

    def one_row(torch=True):
        r = cs.row_of("golden demo (small)", cs.cold({"kind": "cli", "argv": SMALL_DEMO}, tmp_path))
        r.update(target="result <= 5 s", ok=r["wall"] <= 5)
        return {"load": 0.0, "load_end": 0.0, "rows": [r]}

    monkeypatch.setattr(cs, "coldstart_rows", one_row)
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    assert cli.main(["bench", *FAST, "--json", str(out), "--markdown", str(md)]) == 0
    rows = json.loads(out.read_text())["coldstart"]["rows"]
    assert [r["what"] for r in rows] == ["golden demo (small)"] and rows[0]["compiles"] >= 1
    text = md.read_text()
    assert "Cold start (issue 20, item 2)" in text and "| golden demo (small): result <= 5 s |" in text
    assert cli.main(["bench", *FAST, "--no-coldstart", "--force", "--json", str(out)]) == 0
    assert "coldstart" not in json.loads(out.read_text())
