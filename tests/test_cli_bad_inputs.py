"""Every subcommand, a table of bad inputs: exit 2, exactly one line on stderr naming the cause, nothing on
stdout, no traceback, and nothing written, deleted or changed anywhere under the test's directory.

(``golden vectors`` has its own table in tests/test_vectors.py.)
"""

from __future__ import annotations

import importlib
import io
import os
import pathlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import golden
from golden import budget, cli

simulate = importlib.import_module("golden.simulate")  # the module (golden.simulate is the function)

SPEC = "spec.toml"  # a valid spec, written by the fixture
X = "x.npy"  # valid raw inputs (20, 4) for it
NET = str(Path(__file__).resolve().parents[1] / "golden" / "data" / "scnn1d_lif8")  # the embedded network


def _npy_header_only(path, shape, dtype="<i1"):
    """A .npy whose header declares ``shape`` but holds no data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})


def _files(root: pathlib.Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def _deny(monkeypatch, what):
    """Make reading the spec, reading an input, or creating an output raise PermissionError (root ignores chmod);
    or ("lowmem") leave this process 1 GiB of memory, as ``ulimit -v`` would."""
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(a[0]) if a else None)

    if what == "lowmem":
        monkeypatch.setattr(budget, "available_memory", lambda: 1 << 30)
    elif what == "spec":
        monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
    elif what == "input":
        monkeypatch.setattr(simulate, "open", denied, raising=False)
    else:
        monkeypatch.setattr(tempfile, "mkstemp", denied)


SIM = ["simulate", "--spec", SPEC, "--input", X, "--out", "t.npz"]

# (argv, words the one line must contain, optional setup)
TABLE = [
    # --- top level
    ([], ["required", "command"]),
    (["frobnicate"], ["invalid choice", "frobnicate"]),
    # --- demo
    (["demo", "--neurons", "0"], ["--neurons", "positive integer", "'0'"]),
    (["demo", "--steps", "0"], ["--steps", "positive integer"]),
    (["demo", "--steps", "-1"], ["--steps", "positive integer"]),
    (["demo", "--seed", "-1"], ["--seed", "integer >= 0"]),
    (["demo", "--neurons", "1e11"], ["--neurons", "'1e11'"]),
    (["demo", "--neurons", "100000000000"], ["neuron-steps", "more than the demo holds"]),
    (["demo", "--kind", "XIF"], ["--kind", "XIF", "IF, LIF, ATIF"]),
    (["demo", "--profile", "pytorch"], ["--profile", "pytorch"]),
    (["demo", "--kind", "ATIF"], ["qualia-codegen has no mapping for ATIF"]),
    (["demo", "--network", "missing-net"], ["missing-net", "no network.toml"]),
    (["demo", "--network", X], ["no network.toml"]),
    (["demo", "--network", "--samples", "0"], ["--samples", "positive integer"]),
    (["demo", "--network", "--samples", "10000000000"], ["10000000000 samples", "memory", "fewer --samples"]),
    (["demo", "--network", "--out", "D"], ["--network writes no bundle", "vectors generate --network"]),
    # --- spec new
    (["spec", "new", "--kind", "LIF"], ["--profile", "required"]),
    (["spec", "new", "--profile", "torch-eval", "--tau", "1e-30"], ["tau", "1/tau", "saturates"]),
    (["spec", "new", "--profile", "torch-eval", "--tau", "0"], ["--tau", "> 0"]),
    (["spec", "new", "--profile", "torch-eval", "--tau", "nan"], ["--tau", "finite"]),
    (["spec", "new", "--profile", "torch-eval", "--v-threshold", "9"], ["v_threshold", "saturates"]),
    (["spec", "new", "--profile", "torch-eval", "--v-threshold", "inf"], ["--v-threshold", "finite"]),
    (["spec", "new", "--profile", "torch-eval", "--v-threshold", "1e308"], ["--v-threshold", "float32", "'1e308'"]),
    (["spec", "new", "--profile", "torch-eval", "--v-reset", "1e39"], ["--v-reset", "float32"]),
    (["spec", "new", "--profile", "torch-eval", "--tau", "1e300"], ["--tau", "float32"]),
    (["spec", "new", "--profile", "torch-eval", "--bits", "0"], ["--bits", "positive integer"]),
    (["spec", "new", "--profile", "hardware", "--bits", "40"], ["bits", "out of range"]),
    (["spec", "new", "--profile", "torch-eval", "--q-v", "six"], ["--q-v", "six"]),
    (["spec", "new", "--profile", "codegen", "--kind", "atif"], ["no mapping for ATIF"]),
    (["spec", "new", "--profile", "codegen", "--width", "12"], ["width", "8, 16 or 32"]),
    (["spec", "new", "--profile", "torch-eval", "--round", "banana"], ["round", "banana"]),
    (["spec", "new", "--profile", "hardware", "--round", "banana"], ["round", "banana"]),
    # --- simulate
    (["simulate", "--spec", SPEC, "--input", X], ["--out", "required"]),
    (["simulate", "--spec", "missing.toml", "--input", X, "--out", "t.npz"], ["spec file not found"]),
    (["simulate", "--spec", "latin1.toml", "--input", X, "--out", "t.npz"], ["not UTF-8"]),
    (["simulate", "--spec", X, "--input", X, "--out", "t.npz"], [".npy array", "TOML spec"]),
    (["simulate", "--spec", "bad.toml", "--input", X, "--out", "t.npz"], ["schema"]),
    (SIM, ["spec", "Permission denied"], "spec"),
    (SIM, ["input", "Permission denied"], "input"),
    (SIM, ["t.npz", "Permission denied"], "output"),
    (["simulate", "--spec", SPEC, "--input", "missing.npy", "--out", "t.npz"], ["input file not found"]),
    (["simulate", "--spec", SPEC, "--input", "empty.npy", "--out", "t.npz"], ["not a .npy", "empty"]),
    (["simulate", "--spec", SPEC, "--input", "t0.npy", "--out", "t.npz"], ["no neuron-step", "T >= 1"]),
    (["simulate", "--spec", SPEC, "--input", "x.npz", "--out", "t.npz"], [".npz archive", "expected a .npy"]),
    (["simulate", "--spec", SPEC, "--input", "huge.npy", "--out", "t.npz"], ["header declares", "holds"]),
    (["simulate", "--spec", SPEC, "--input", "float.npy", "--out", "t.npz"], ["expected raw integers"]),
    (["simulate", "--spec", SPEC, "--input", "range.npy", "--out", "t.npz"], ["outside the input format"]),
    (["simulate", "--spec", SPEC, "--input", "pickle.npy", "--out", "t.npz"], ["objects"]),
    (["simulate", "--spec", SPEC, "--input", "rank1.npy", "--out", "t.npz"], ["rank"]),
    (["simulate", "--spec", SPEC, "--input", X, "--out", "t.npz", "--v0", "v0shape.npy"], ["v0", "broadcast"]),
    (["simulate", "--spec", SPEC, "--input", X, "--out", "t.npz", "--v0", "v0range.npy"],
     ["v0", "outside the potential format"]),
    (["simulate", "--spec", SPEC, "--input", X, "--out", "nodir/t.npz"], ["nodir", "does not exist"]),
    (["simulate", "--spec", SPEC, "--input", X, "--out", "adir"], ["is a directory"]),
    (["simulate", "--spec", SPEC, "--input", X, "--out", "old.npz"], ["old.npz", "already exists", "--force"]),
    (["simulate", "--spec", SPEC, "--input", X, "--out", "link.npz", "--force"], ["link.npz", "symlink"]),
    (["simulate", "--spec", SPEC, "--input", X, "--out", "link"], ["link.npz", "symlink"]),
    (["simulate", "--spec", SPEC, "--input", "big.npy", "--out", "t.npz"], ["big.npy", "memory", "ulimit -v"],
     "lowmem"),
    # --- prove (the rows that need no reference stack; the others are in tests/test_prove.py)
    (["prove", "--spec", SPEC, "--against", "reference", "--out", "old.json"], ["old.json", "already exists"]),
    (["prove", "--spec", SPEC, "--against", "reference", "--out", "link.json"], ["link.json", "symlink"]),
    (["prove", "--spec", SPEC, "--against", "reference", "--out", "adir"], ["adir", "is a directory"]),
    (["prove", "--spec", SPEC, "--against", SPEC, "--plot", "link.png", "--force"], ["link.png", "symlink"]),
    (["prove", "--spec", SPEC, "--against", SPEC, "--plot", "pngdir.png"], ["pngdir.png", "is a directory"]),
    (["prove", "--spec", SPEC, "--against", SPEC, "--plot", "m.json"], ["--plot", "m.json", ".png"]),
    (["prove", "--spec", SPEC, "--against", SPEC, "--plot", "nodir/m.png"], ["nodir", "does not exist"]),
    (["prove", "--spec", SPEC, "--against", "reference", "--out", "c.json", "--plot", "c.json"], ["--plot"]),
    (["prove", "--spec", SPEC, "--against", "reference", "--config", "cfg.json"], ["drop --config"]),
    (["prove", "--spec", SPEC, "--against", SPEC, "--config", "cfg.json"], ["drop --config"]),
    (["prove", "--spec", SPEC, "--against", "reference", "--budget", "0"], ["--budget", "> 0"]),
    (["prove", "--spec", "wide.toml", "--against", "reference", "--out", "w.json"],
     ["4294967296 pairs", "more than --budget 120 s", "--allow-long"]),
    (["prove", "--spec", "wide.toml", "--against", "wide.toml"], ["divergence map", "memory"]),
    (["prove", "--spec", "wide.toml", "--against", "reference", "--out", "s.json"], ["s.json.state", "not golden's"]),
    # --- diff
    (["diff", "--a", "pytorch"], ["unknown profile 'pytorch'"]),
    (["diff", "--steps", "0"], ["--steps", "positive integer"]),
    (["diff", "--neurons", "-1"], ["--neurons", "positive integer"]),
    (["diff", "--neurons", "1000000", "--steps", "100000"], ["more than golden diff holds"]),
    (["diff", "--kind", "XIF"], ["--kind", "XIF"]),
    (["diff", "--tau", "1e-30"], ["tau", "saturates"]),
    (["diff", "--input", "empty.npy"], ["not a .npy"]),
    (["diff", "--input", "x.npz"], [".npz archive"]),
    (["diff", "--net-a", NET], ["--net-a and --net-b go together"]),
    (["diff", "--net-a", "nonet", "--net-b", "nonet"], ["nonet", "no network.toml"]),
    (["diff", "--net-a", NET, "--net-b", NET, "--input", X], ["x_raw", "expected shape"]),
    (["diff", "--net-a", NET, "--net-b", NET, "--samples", "0"], ["--samples", "positive integer"]),
    (["diff", "--spec-a", X], [".npy array", "TOML spec"]),
    (["diff", "--frobnicate"], ["unrecognized arguments", "--frobnicate"]),
    # --- bench (refused before any timing)
    (["bench", "--sizes", "0"], ["--sizes", "positive integer"]),
    (["bench", "--rounds", "0"], ["--rounds", "positive integer"]),
    (["bench", "--min-time", "-1"], ["--min-time", "> 0"]),
    (["bench", "--kinds", "XIF"], ["--kinds", "XIF"]),
    (["bench", "--profiles", "pytorch"], ["--profiles", "pytorch"]),
    (["bench", "--json", "nodir/b.json"], ["--json", "does not exist"]),
    (["bench", "--markdown", "nodir/b.md"], ["--markdown", "does not exist"]),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    spec = golden.codegen("LIF")
    (tmp_path / SPEC).write_text(spec.to_toml())
    (tmp_path / "latin1.toml").write_bytes(spec.to_toml().replace("#", "\xe9", 1).encode("latin-1"))
    (tmp_path / "bad.toml").write_text(spec.to_toml().replace("schema = 1", "schema = 9"))
    x = np.zeros((20, 4), np.int8)
    np.save(tmp_path / X, x)
    np.savez(tmp_path / "x.npz", x=x)
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "t0.npy", np.zeros((0, 4), np.int8))
    _npy_header_only(tmp_path / "huge.npy", (1_000_000, 1_000_000))
    np.save(tmp_path / "float.npy", np.zeros((3, 4), np.float32))
    np.save(tmp_path / "range.npy", np.full((3, 4), 300, np.int16))
    np.save(tmp_path / "pickle.npy", np.array([[None]], object), allow_pickle=True)
    np.save(tmp_path / "rank1.npy", np.zeros(4, np.int8))
    np.save(tmp_path / "v0shape.npy", np.zeros(3, np.int8))
    np.save(tmp_path / "v0range.npy", np.full(4, 1000, np.int16))
    (tmp_path / "adir").mkdir()
    (tmp_path / "pngdir.png").mkdir()
    (tmp_path / "precious.txt").write_text("a user's file\n")
    for name in ("old.npz", "old.json", "s.json.state"):
        (tmp_path / name).write_text("a user's file\n")
    for name in ("link.npz", "link.json", "link.png"):
        (tmp_path / name).symlink_to("precious.txt")
    (tmp_path / "link").symlink_to("precious.txt")
    (tmp_path / "cfg.json").write_text("{}")
    (tmp_path / "wide.toml").write_text(golden.codegen("IF", width=16, q_v=11, tau=None, v_reset=None).to_toml())
    with open(tmp_path / "big.npy", "wb") as f:  # a real 8 GiB array (sparse on disk)
        np.lib.format.write_array_header_1_0(f, {"descr": "<i1", "fortran_order": False, "shape": (1 << 20, 8192)})
        f.truncate(f.tell() + (1 << 33))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("row", TABLE, ids=lambda r: " ".join(r[0]) + (f" [{r[2]} denied]" if len(r) > 2 else ""))
def test_bad_input_is_one_line_exit_2_nothing_written(row, workdir, capsys, monkeypatch):
    argv, words = row[0], row[1]
    before = _files(workdir)
    if len(row) > 2:
        _deny(monkeypatch, row[2])
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("golden: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert _files(workdir) == before, "a bad input wrote, deleted or changed a file"


def test_the_table_covers_every_subcommand():
    """Every subcommand golden lists has rows above, but vectors (its table is in test_bundles.py) and from-qualia
    (test_from_qualia.py); prove's rows that need the torch or C stack are in test_prove.py."""
    names = {"demo", "spec", "simulate", *cli.SUBCOMMANDS} - {"vectors", "from-qualia"}
    assert names <= {r[0][0] for r in TABLE if r[0]}


def test_kind_in_any_case(capsys):
    assert cli.main(["spec", "new", "--profile", "torch-eval", "--kind", "lif"]) == 0
    assert 'kind = "LIF"' in capsys.readouterr().out
    assert cli.main(["spec", "new", "--profile", "hardware", "--kind", "atif"]) == 0  # ATIF implies --soft
    assert 'reset = "soft"' in capsys.readouterr().out


def test_simulate_output_replaces_atomically_only_with_force(tmp_path, capsys):
    """An existing --out is refused (left as it was) unless --force; then the .npz is written whole, nothing else
    is left beside it."""
    spec = golden.codegen("IF")
    (tmp_path / "s.toml").write_text(spec.to_toml())
    np.save(tmp_path / "x.npy", np.ones((5, 3), np.int8))
    (tmp_path / "u.npz").write_bytes(b"old")  # a user's file: refused, with --force too
    args = ["simulate", "--spec", str(tmp_path / "s.toml"), "--input", str(tmp_path / "x.npy")]
    for force in ([], ["--force"]):
        assert cli.main([*args, "--out", str(tmp_path / "u.npz"), *force]) == 2
        assert "u.npz" in capsys.readouterr().err and (tmp_path / "u.npz").read_bytes() == b"old"
    assert cli.main([*args, "--out", str(tmp_path / "t.npz")]) == 0
    first = (tmp_path / "t.npz").read_bytes()
    assert cli.main([*args, "--out", str(tmp_path / "t.npz")]) == 2  # golden's own: only with --force
    assert "already exists" in capsys.readouterr().err and (tmp_path / "t.npz").read_bytes() == first
    assert cli.main([*args, "--out", str(tmp_path / "t.npz"), "--force"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["s.toml", "t.npz", "u.npz", "x.npy"]
    assert np.array_equal(np.load(tmp_path / "t.npz")["v"], golden.simulate(spec, np.ones((5, 3), np.int8)).v)


def test_simulate_refuses_an_8_gib_input_under_ulimit_v(tmp_path):
    """The real limit, in a child under ``ulimit -v`` (3.5 GiB): refused from the .npy header, before loading."""
    (tmp_path / "s.toml").write_text(golden.codegen("IF").to_toml())
    with open(tmp_path / "big.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i1", "fortran_order": False, "shape": (1 << 20, 8192)})
        f.truncate(f.tell() + (1 << 33))
    limit = 3584 << 20

    def cap():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-m", "golden", "simulate", "--spec", "s.toml", "--input", "big.npy",
                        "--out", "t.npz"], cwd=tmp_path, env=env, preexec_fn=cap, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and r.stdout == "", r
    assert r.stderr.count("\n") == 1 and "memory" in r.stderr and "ulimit -v" in r.stderr, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["big.npy", "s.toml"]


def test_import_noise_is_dropped_exactly():
    """The Qualia packages' TensorFlow notices are dropped from golden's stderr; every other line passes, at once."""
    sink = io.StringIO()
    err = cli.QuietStderr(sink)
    print("Warning: cannot find TensorFlow, Keras models will be unavailable", file=err)
    print("Cannot find TensorFlow, Keras framework will be unavailable", file=err)
    print("Warning: cannot find TensorFlow, Keras models will be unavailable and more", file=err)
    err.write("\rprogress 1/2")
    assert sink.getvalue() == "Warning: cannot find TensorFlow, Keras models will be unavailable and more\n" \
                              "\rprogress 1/2"


def test_bench_outside_a_checkout_is_one_line(monkeypatch, capsys, tmp_path):
    """From an installed wheel there is no tools/bench/: golden bench says so, exit 2."""
    from golden.cli import bench

    monkeypatch.setattr(bench, "HARNESS", tmp_path / "tools" / "bench" / "harness.py")
    monkeypatch.delitem(__import__("sys").modules, "golden_bench_harness", raising=False)
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "source checkout" in err and "pip install -e ." in err
