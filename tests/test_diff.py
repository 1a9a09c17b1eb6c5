"""``golden diff``: the report, the classification of each known cause, the minimal input, and the CLI output."""

from __future__ import annotations

import json

import numpy as np
import pytest

import golden
from golden import causes as gcauses
from golden import cli as golden_cli
from golden import diff as gdiff

SMALL = ["--neurons", "96", "--steps", "60"]


def run_cli(capsys, *argv):
    rc = golden_cli.main(["diff", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_minimal_diverges(report):
    """The minimal input diverges for the same cause, and dropping any one of its steps makes it stop doing so."""
    f = report.first
    a, b = report.spec_a, report.spec_b
    m = f.minimal
    seq = np.array(m.x, np.int64)
    assert gdiff.diverges(a, b, seq[:, None])[0]
    # it ends at its first divergence
    if len(seq) > 1:
        assert not gdiff.diverges(a, b, seq[:-1, None])[0]
    # re-simulating it independently gives the traces the report shows
    ta, tb = golden.simulate(a, seq[:, None]), golden.simulate(b, seq[:, None])
    assert tuple((ta.v[:, 0] * 2.0 ** -a.fmt_v.frac).tolist()) == m.a_v
    assert tuple((tb.v[:, 0] * 2.0 ** -b.fmt_v.frac).tolist()) == m.b_v
    assert tuple(ta.spikes[:, 0].astype(int).tolist()) == m.a_spikes
    assert tuple(tb.spikes[:, 0].astype(int).tolist()) == m.b_spikes
    named = {c.name: c for c in gcauses.differing(a, b)}
    fixed = gcauses.aligned(a, b, [named[c] for c in f.cause.split(" + ")])
    assert not gdiff.diverges(a, fixed, seq[:, None])[0]  # the cause's knobs remove it
    for i in range(len(seq)):
        shorter = np.delete(seq, i)
        if len(shorter) and gdiff.diverges(a, b, shorter[:, None])[0]:
            # still diverging without step i: then not for the same cause
            assert gdiff.diverges(a, fixed, shorter[:, None])[0]


# ------------------------------------------------------------------------------------------- the Python API
def test_identical_specs():
    spec = golden.codegen("LIF", width=8, q_v=6, tau=3.0)
    r = gdiff.diff(spec, spec, steps=40, neurons=32)
    assert r.identical and r.first is None and r.causes == {}
    assert r.spike_mismatches == r.potential_mismatches == r.output_mismatches == 0
    assert "IDENTICAL" in str(r)


def test_rates_are_counts_over_neuron_steps():
    a, b = golden.torch_eval("LIF", q_v=6), golden.codegen("LIF", q_v=6)
    r = gdiff.diff(a, b, steps=50, neurons=64, seed=3)
    ta, tb = golden.simulate(a, r.x), golden.simulate(b, r.x)
    assert r.spike_mismatches == int((ta.spikes != tb.spikes).sum())
    assert r.potential_mismatches == int((ta.v != tb.v).sum())  # same format: raw and real agree
    assert r.spike_mismatch_rate == r.spike_mismatches / (50 * 64)
    assert sum(r.causes.values()) == r.diverging_neurons > 0
    # the first divergence is the lowest step, then the lowest neuron
    bad = (ta.spikes != tb.spikes) | (ta.v != tb.v) | (ta.out != tb.out)
    ts, ns = np.nonzero(bad)
    t0 = ts.min()
    assert (r.first.t, r.first.neuron) == (t0, ns[ts == t0].min())


def test_seeded_and_deterministic():
    a, b = golden.torch_eval("LIF", q_v=6, q_in=7), golden.codegen("LIF", q_v=6, q_in=7)
    r1 = gdiff.diff(a, b, steps=40, neurons=48, seed=5).to_dict()
    r2 = gdiff.diff(a, b, steps=40, neurons=48, seed=5).to_dict()
    assert r1 == r2
    assert gdiff.diff(a, b, steps=40, neurons=48, seed=6).to_dict() != r1


@pytest.mark.parametrize(("label", "a", "b", "cause"), [
    # Qualia starts at v_reset, the C at 0
    ("init", golden.torch_eval("LIF", v_reset=-0.25), golden.codegen("LIF", v_reset=-0.25), "init potential"),
    # the C shifts the leak product by max(q_in, q_v) = 7 instead of q_v = 6
    ("tmp", golden.torch_eval("LIF", q_in=7), golden.codegen("LIF", q_in=7), "TMP shift"),
    # the C rounds the leak term before the spike test; PyTorch divides in float32
    ("leak", golden.torch_eval("LIF"), golden.codegen("LIF"), "leak rounding"),
    # QAT (train) quantizes before it fires; eval fires on the unrounded potential
    ("order", golden.torch_train("LIF", v_reset=-0.5, tau=3.0), golden.torch_eval("LIF", v_reset=-0.5, tau=3.0),
     "compare-before-round"),
    # int8 build, q_out = 15: 1 << 15 wraps to -32768 in the int16 LONG_NUMBER_T, clamps to -128
    ("spike", golden.torch_eval("LIF", q_out=15), golden.codegen("LIF", q_out=15), "spike-value clamp"),
    # the same C with the default int16 LONG_NUMBER_T (a), which wraps, and an int32 one (b)
    ("wrap", golden.codegen("LIF", q_v=7, q_in=10, tau=1.01, v_threshold=0.9, v_reset=-0.9),
     golden.codegen("LIF", q_v=7, q_in=10, tau=1.01, v_threshold=0.9, v_reset=-0.9, long_width=32),
     "saturation width"),
    # an int16 C of an 8-bit model: the potential saturates at -2.0 in PyTorch, not in the C
    ("width", golden.torch_eval("LIF", tau=3.0, decay_input=False, q_v=6),
     golden.codegen("LIF", tau=3.0, decay_input=False, q_v=6, width=16, bits=8), "saturation width"),
    # one LSB of threshold
    ("hyper", golden.codegen("IF", tau=None, v_threshold=0.5),
     golden.codegen("IF", tau=None, v_threshold=0.5).replace(v_threshold=33), "hyperparameter rounding"),
])
def test_each_known_cause(label, a, b, cause):
    r = gdiff.diff(a, b, steps=80, neurons=128, seed=1)
    assert not r.identical
    assert cause in r.causes, r.causes
    assert r.first.cause in r.causes
    assert "unexplained" not in r.causes
    assert_minimal_diverges(r)


def test_first_cause_and_minimal_input_of_the_default_layer():
    """torch-eval vs codegen at the defaults (8 bits, q = 6, tau = 2): x = 127 at step 0 fires in the C only.

    PyTorch: v = 0 + (127/64 - 0) / 2 = 0.9921875 < 1, no spike. C: (127 * 32 + 32) >> 6 = 64 >= 64: spike.
    """
    r = gdiff.diff(golden.torch_eval("LIF"), golden.codegen("LIF"), steps=100, neurons=256)
    assert r.first.cause == "leak rounding"
    assert r.first.minimal.x == (127,)
    assert r.first.minimal.a_spikes == (0,) and r.first.minimal.b_spikes == (1,)
    assert r.first.fields[0] == "spike" and (r.first.a, r.first.b) == (0, 1)


def test_different_input_formats_go_through_real_values():
    """An int16 C of an 8-bit model: spec_b reads the same real inputs in its own (wider) format."""
    a = golden.torch_eval("LIF", bits=8, q_v=6)
    b = golden.codegen("LIF", width=16, bits=8, q_v=6)
    assert a.fmt_in != b.fmt_in
    r = gdiff.diff(a, b, steps=30, neurons=32)
    xa, xb = gdiff._inputs(a, b, r.x)
    assert np.array_equal(xa * 2.0 ** -a.fmt_in.frac, xb * 2.0 ** -b.fmt_in.frac)


def test_refuses_bad_input():
    spec = golden.codegen("LIF")
    with pytest.raises(golden.SpecError, match="raw integers"):
        gdiff.diff(spec, spec, np.zeros((3, 2)))
    with pytest.raises(golden.SpecError, match="shape"):
        gdiff.diff(spec, spec, np.zeros(3, np.int64))
    with pytest.raises(golden.SpecError, match="spec_b"):
        gdiff.diff(spec, "codegen")


# ------------------------------------------------------------------------------------------------- the CLI
def test_cli_text_report(capsys):
    rc, out, err = run_cli(capsys, *SMALL)
    assert rc == 1 and err == ""
    lines = out.splitlines()
    assert lines[0] == "golden diff: torch-eval (a) vs codegen (b)"
    assert lines[1].startswith("  a           torch-eval LIF") and "arith=float32" in lines[1]
    assert lines[2].startswith("  b           codegen LIF") and "arith=int" in lines[2]
    assert lines[3] == "  stimulus    96 neurons x 60 steps = 5760 neuron-steps, seed 0"
    assert lines[4].startswith("  spikes      ") and "% of neuron-steps differ (" in lines[4]
    assert lines[5].startswith("  potentials  ")
    assert lines[6].startswith("  neurons     ") and "of 96 diverge at some step" in lines[6]
    assert lines[7] == "  causes      (of each diverging neuron's first divergence)"
    assert any(line.strip().startswith("leak rounding") for line in lines[8:])
    first = next(line for line in lines if line.startswith("  first       neuron "))
    assert "cause: " in first
    minimal = next(line for line in lines if line.startswith("  minimal     input ["))
    assert "(raw, Q8.6; shrunk from" in minimal
    head = lines.index(next(line for line in lines if "a.spike b.spike" in line))
    assert lines[head].split() == ["step", "x", "a.v", "b.v", "a.spike", "b.spike", "a.out", "b.out"]
    assert len(lines) > head + 1


def test_cli_json_report(capsys):
    rc, out, _ = run_cli(capsys, *SMALL, "--q-in", "7", "--json")
    assert rc == 1
    d = json.loads(out)
    assert d["a"]["profile"] == "torch-eval" and d["b"]["profile"] == "codegen"
    assert golden.Spec.from_toml(d["b"]["spec"]).leak_shift == "max_q"
    assert d["neuron_steps"] == 96 * 60 and d["identical"] is False
    assert d["spike_mismatch_rate"] == d["spike_mismatches"] / d["neuron_steps"]
    assert d["potential_mismatch_rate"] == d["potential_mismatches"] / d["neuron_steps"]
    assert sum(d["causes"].values()) == d["diverging_neurons"]
    assert "TMP shift" in d["causes"]
    f = d["first_divergence"]
    assert set(f) == {"t", "index", "fields", "a", "b", "cause", "history", "minimal", "shrink_evaluations"}
    assert set(f["minimal"]) == set(f["history"]) == {"x", "a_v", "b_v", "a_spikes", "b_spikes", "a_out", "b_out"}
    assert len(f["history"]["x"]) == f["t"] + 1 and len(f["minimal"]["x"]) <= len(f["history"]["x"])


def test_cli_identical_exit_0(capsys, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(golden.codegen("IF", tau=None).to_toml())
    rc, out, _ = run_cli(capsys, "--spec-a", str(spec), "--spec-b", str(spec), *SMALL)
    assert rc == 0
    assert "IDENTICAL" in out


def test_cli_profiles_and_layer_options(capsys):
    rc, out, _ = run_cli(capsys, "--a", "torch-train", "--b", "torch-eval", "--kind", "LIF", "--v-reset", "-0.5",
                         "--tau", "3", "--neurons", "256", "--steps", "100", "--json")
    d = json.loads(out)
    assert rc == 1 and "compare-before-round" in d["causes"]
    rc, out, _ = run_cli(capsys, "--b", "hardware", "--kind", "IF", "--soft", *SMALL, "--json")
    assert rc in (0, 1)
    assert golden.Spec.from_toml(json.loads(out)["b"]["spec"]).reset == "soft"


def test_cli_input_file(capsys, tmp_path):
    x = np.array([[127], [0]], np.int16)
    np.save(tmp_path / "x.npy", x)
    rc, out, _ = run_cli(capsys, "--input", str(tmp_path / "x.npy"), "--json")
    d = json.loads(out)
    assert rc == 1 and d["steps"] == 2 and d["neurons"] == 1 and d["seed"] is None
    assert d["first_divergence"]["minimal"]["x"] == [127]


@pytest.mark.parametrize(("argv", "message"), [
    (["--a", "pytorch"], "unknown profile 'pytorch'"),
    (["--input", "/nonexistent/x.npy"], "input file not found"),
    (["--spec-a", "/nonexistent/a.toml"], "spec file not found"),
    (["--kind", "ATIF", "--soft"], "ATIF"),
])
def test_cli_errors_exit_2(capsys, argv, message):
    rc, out, err = run_cli(capsys, *argv, *SMALL)
    assert rc == 2 and out == ""
    assert err.startswith("golden: error: ") and message in err and "Traceback" not in err


def _sparse_npy(path, shape, dtype=np.int8):
    """A .npy whose header declares ``shape`` and whose file really holds that many bytes, sparse (no disk)."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,) * len(shape), dtype))
    header["shape"] = tuple(shape)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.truncate(f.tell() + int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize)
    return str(path)


def _net_dirs(tmp_path):
    from golden.network.demo import DATA, DEFAULT
    return ["--net-a", str(DATA / DEFAULT), "--net-b", str(DATA / DEFAULT)]


def _precious(tmp_path):
    (tmp_path / "precious.txt").write_text("mine")
    (tmp_path / "p.png").symlink_to(tmp_path / "precious.txt")
    return ["--plot", str(tmp_path / "p.png")]


def _existing_png(tmp_path):
    (tmp_path / "old.png").write_text("not golden's")
    return ["--plot", str(tmp_path / "old.png")]


def _plot_dir(tmp_path):
    (tmp_path / "DIR").mkdir()
    return ["--plot", str(tmp_path / "DIR")]


#: (setup(tmp_path) -> extra argv, message): each refused up front, one line, exit 2, nothing written or changed
BAD_INPUTS = [
    (lambda tmp: ["--exhaustive", "--bits", "16", "--q-v", "12"], "4294967296 (v, x) pairs"),
    (lambda tmp: ["--exhaustive", "--bits", "16", "--q-v", "12"], "give --allow-long"),
    (lambda tmp: ["--exhaustive", "--bits", "14", "--width", "16", "--q-v", "12"], "268435456 (v, x) pairs"),
    (lambda tmp: ["--input", _sparse_npy(tmp / "big.npy", (100_000, 100_000))], "more than golden diff holds"),
    (lambda tmp: ["--neurons", "100000", "--steps", "100000"], "more than golden diff holds"),
    (lambda tmp: [*_net_dirs(tmp), "--samples", "10000000000"], "10000000000 samples x 60 steps"),
    (lambda tmp: [*_net_dirs(tmp), "--input", _sparse_npy(tmp / "big.npy", (1 << 20, 1 << 10, 1, 16))],
     "1048576 samples x 1024 steps"),
    (lambda tmp: [*_net_dirs(tmp), "--input", _sparse_npy(tmp / "flat.npy", (1 << 33,))], "8589934592 samples"),
    (lambda tmp: ["--exhaustive", "--bits", "16", "--q-v", "12", "--allow-long", "--plot", str(tmp / "m.png")],
     "and its plot: about 2"),
    (_precious, "is a symlink; refusing to write through it"),
    (_plot_dir, "is a directory"),
    (lambda tmp: ["--plot", str(tmp / "x.json")], "expected a .png file name"),
    (_existing_png, "already exists (use --force"),
    (lambda tmp: ["--plot", str(tmp / "missing" / "d.png")], "does not exist"),
    (lambda tmp: [*_net_dirs(tmp), "--plot", str(tmp / "n.png")], "not available for --net-a/--net-b"),
    (lambda tmp: ["--cause", "TMP leek shift"], "unknown cause 'TMP leek shift'"),
]


def _tree(tmp_path) -> list:
    def head(p):
        with open(p, "rb") as f:
            return f.read(64)
    return sorted((str(p), p.is_symlink(), p.is_file() and not p.is_symlink() and (p.stat().st_size, head(p)))
                  for p in tmp_path.rglob("*"))


@pytest.mark.parametrize(("setup", "message"), BAD_INPUTS)
def test_cli_bad_inputs_refused_up_front(capsys, tmp_path, setup, message):
    """Refused before any run or allocation: one line on stderr naming the cause and the fix, exit 2, no output,
    and nothing in the directory changed (the symlink's target included)."""
    import time

    argv = setup(tmp_path)
    before = _tree(tmp_path)
    t0 = time.perf_counter()
    rc, out, err = run_cli(capsys, *SMALL, *argv)
    assert rc == 2 and out == "", out
    assert len(err.splitlines()) == 1 and err.startswith("golden: error: ") and message in err, err
    assert time.perf_counter() - t0 < 30  # refused, not run
    assert _tree(tmp_path) == before
    if (tmp_path / "precious.txt").exists():
        assert (tmp_path / "precious.txt").read_text() == "mine"


def test_cli_input_past_a_memory_limit_is_refused_before_loading(tmp_path):
    """Under ``ulimit -v`` (3 GiB), a 40M neuron-step --input (a 40 MB file, about 3.6 GiB to diff) is refused
    from its header, in one line, before anything is loaded."""
    import resource
    import subprocess
    import sys
    from pathlib import Path

    x = tmp_path / "x.npy"
    np.save(x, np.zeros((400, 100_000), np.int8))
    root = Path(__file__).resolve().parents[1]

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    proc = subprocess.run([sys.executable, "-m", "golden", "diff", "--input", str(x)], capture_output=True,
                          text=True, cwd=root, preexec_fn=limit, env={"PYTHONPATH": str(root), "PATH": "/usr/bin"})
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "40000000 neuron-steps" in line and "this process can get" in line and "ulimit -v" in line


def test_cli_cause_aliases_are_the_same_cause(capsys):
    """The names earlier releases printed (network diff) select the same cause."""
    assert gcauses.canonical("TMP leak shift") == "TMP shift"
    assert gcauses.canonical("LONG wrap + init potential") == "init potential + saturation width"
    rc, out, _ = run_cli(capsys, "--q-in", "7", *SMALL, "--cause", "TMP leak shift")
    assert rc == 1 and next(ln for ln in out.splitlines() if ln.startswith("  first of it ")).endswith(
        "cause: TMP shift")


def test_one_vocabulary_for_a_layer_a_map_and_a_network():
    """Each network example of docs/quirks.md differs in one cause's knobs: the single-layer diff of its two
    layer specs, the exhaustive map of them and diff_networks all name that cause, and nothing else."""
    from golden.network.diff import diff_networks
    from golden.network.layers import Neuron
    from golden.prove import divergence_map

    for ex in _quirks_tool().network_examples():
        (f,) = diff_networks(ex.a, ex.b, ex.x).first
        assert f.cause == ex.cause
        la, lb = ex.a[f.layer].layer, ex.b[f.layer].layer
        if not isinstance(la, Neuron):
            continue
        r = gdiff.diff(la.spec, lb.spec, steps=40, neurons=256, seed=2)
        assert set(r.causes) == {ex.cause}, (ex.slug, r.causes)
        m = divergence_map(la.spec, lb.spec)
        if ex.cause == "init potential":  # one step from the same (v, x): only v0 differs
            assert m.any == 0 and m.v0[0] != m.v0[1]
        else:
            assert set(m.causes) == {ex.cause}, (ex.slug, m.causes)


def test_divergence_map_cost_is_stated_before_it_runs():
    from golden.budget import refuse
    from golden.prove import divergence_cost

    c = divergence_cost(golden.torch_eval("LIF", bits=16, q_v=12), golden.codegen("LIF", width=16, q_v=12))
    assert "4294967296 (v, x) pairs" in str(c) and c.bytes >= 2 * (1 << 32) and c.seconds > 3600
    with pytest.raises(golden.GoldenError, match="past the 2 min budget"):
        refuse(c, "map")


def test_cli_plot_force_replaces_golden_s_png(capsys, tmp_path):
    """A plot golden wrote is refused without --force (unchanged), replaced with it; no temporary file is left."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "d.png"
    assert run_cli(capsys, *SMALL, "--plot", str(png))[0] == 1
    first = png.read_bytes()
    rc, out, err = run_cli(capsys, *SMALL, "--seed", "1", "--plot", str(png))
    assert rc == 2 and out == "" and "already exists" in err and png.read_bytes() == first
    rc, _, _ = run_cli(capsys, *SMALL, "--seed", "1", "--plot", str(png), "--force")
    assert rc == 1 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]


def test_cli_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "d.png"
    rc, out, _ = run_cli(capsys, *SMALL, "--plot", str(png))
    assert rc == 1
    assert f"  plot        {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, out, _ = run_cli(capsys, *SMALL, "--plot", str(tmp_path / "j.png"), "--json")
    assert json.loads(out)["plot"] == str(tmp_path / "j.png")


def test_golden_main_delegates(capsys):
    """``golden diff ...`` goes through golden.cli; '--' passes options through argparse's REMAINDER."""
    rc = golden_cli.main(["diff", "--", *SMALL, "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 1 and d["neurons"] == 96


def test_golden_main_option_first(capsys):
    rc = golden_cli.main(["diff", *SMALL, "--json"])
    assert rc == 1
    assert json.loads(capsys.readouterr().out)["neurons"] == 96


def test_quirks_doc_is_what_golden_produces():
    """docs/quirks.md is generated by tools/quirks.py from golden's profiles and golden diff; it must be current."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "tools" / "quirks.py"), "--check"], capture_output=True,
                          text=True, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_cause_filter(capsys):
    rc, out, _ = run_cli(capsys, "--q-in", "7", *SMALL, "--cause", "TMP shift")
    assert rc == 1
    line = next(ln for ln in out.splitlines() if ln.startswith("  first of it neuron "))
    assert line.endswith("cause: TMP shift")
    rc, out, _ = run_cli(capsys, *SMALL, "--cause", "TMP shift")  # q_in == q_v: no TMP shift at all
    assert rc == 1
    assert "  first       no diverging neuron has the cause 'TMP shift'" in out
    rc, out, _ = run_cli(capsys, *SMALL, "--cause", "TMP shift", "--json")
    d = json.loads(out)
    assert d["first_divergence"] is None and d["cause_filter"] == "TMP shift" and not d["identical"]


def test_cli_exhaustive_is_the_exact_divergence_map(capsys):
    """``golden diff --exhaustive``: one step from every (v, x), the counts of golden.prove's map; exit 1 if
    any differ."""
    from golden.prove import divergence_map
    rc, out, _ = run_cli(capsys, "--exhaustive", "--q-in", "7", "--json")
    d = json.loads(out)
    assert rc == 1
    m = divergence_map(golden.torch_eval("LIF", bits=8, q_v=6, q_in=7, tau=2.0),
                       golden.codegen("LIF", width=8, q_v=6, q_in=7, tau=2.0))
    assert d == json.loads(json.dumps(m.to_dict(), sort_keys=True))
    assert d["pairs"] == 256 * 256
    assert sum(c["count"] for c in d["causes"].values()) == d["differ"]["any"]["count"] > 0
    assert "TMP shift" in d["causes"]
    rc, out, _ = run_cli(capsys, "--exhaustive", "--a", "codegen", "--b", "codegen", "--kind", "IF")
    assert rc == 0 and "0 differ" in out, out


def _variant(tmp_path, **knobs):
    """The embedded network with every neuron's spec changed by ``knobs``, saved to tmp_path/b."""
    import dataclasses

    from golden.network import Network, Neuron, Node
    from golden.network.demo import DATA, DEFAULT

    net = Network.load(DATA / DEFAULT)
    nodes = [Node(n.name, n.layer.replace(spec=dataclasses.replace(n.layer.spec, **knobs)), n.inputs)
             if isinstance(n.layer, Neuron) else n for n in net.nodes]
    Network(net.input_shape, net.fmt_input, nodes, net.params, net.round_input, net.output, net.meta).save(
        tmp_path / "b")
    return str(DATA / DEFAULT), str(tmp_path / "b"), net


def test_cli_networks_identical_and_different(capsys, tmp_path):
    """``golden diff --net-a DIR --net-b DIR``: per-layer rates and the first divergence per sample, equal to
    golden.network.diff_networks on the same stimulus; exit 0 identical, 1 they differ."""
    from golden.network import Network, diff_networks
    from golden.network.demo import stimulus

    a, b, net = _variant(tmp_path, order="round_then_fire")
    rc, out, _ = run_cli(capsys, "--net-a", a, "--net-b", a, "--samples", "2")
    assert rc == 0 and "IDENTICAL" in out
    rc, out, _ = run_cli(capsys, "--net-a", a, "--net-b", b, "--samples", "3", "--steps", "6", "--json")
    d = json.loads(out)
    assert rc == 1 and d["identical"] is False
    want = diff_networks(net, Network.load(b), stimulus(net, 3, 6, 0))
    assert d == json.loads(json.dumps(want.to_dict()))
    assert [n for n, r in d["layers"].items() if r["mismatches"]] and len(d["first_divergence"]) == 3
    x = tmp_path / "x.npy"
    np.save(x, stimulus(net, 2, 5, 1))
    rc, out, _ = run_cli(capsys, "--net-a", a, "--net-b", b, "--input", str(x))
    assert rc in (0, 1) and "2 samples" in out


# ------------------------------------------------------------- docs/quirks.md: the whole-network examples
def _quirks_tool():
    """tools/quirks.py (the generator of docs/quirks.md) as a module."""
    import importlib.util
    import sys
    from pathlib import Path

    if "quirks_tool" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tools" / "quirks.py"
        spec = importlib.util.spec_from_file_location("quirks_tool", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["quirks_tool"] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return sys.modules["quirks_tool"]


def test_quirks_network_examples_name_their_cause():
    """Each whole-network example of docs/quirks.md parts on its minimal input, diff_networks assigns it the cause
    the doc states, every cause but 'other' has one, and the generator refuses an example whose cause changed."""
    import dataclasses

    from golden.network.diff import CAUSES, diff_networks

    q = _quirks_tool()
    exs = q.network_examples()
    assert [ex.cause for ex in exs] == [c.name for c in CAUSES]
    for ex in exs:
        d = diff_networks(ex.a, ex.b, ex.x)
        (f,) = d.first
        assert f is not None and f.cause == ex.cause, (ex.slug, f)
        assert not d.identical and d.causes[ex.cause] == 1
        assert q.check_cause(ex)[1] == f
        # the networks differ in the one layer, by the one knob diff_networks re-runs
        assert [n.name for n in ex.a] == [n.name for n in ex.b] == [f.layer]
        assert ex.a[f.layer].layer != ex.b[f.layer].layer
        # no input of fewer steps parts them (the search tried them all); drop the last step: identical
        if ex.x.shape[1] > 1:
            assert diff_networks(ex.a, ex.b, ex.x[:, :-1]).identical
        for other in (c.name for c in CAUSES):
            if other != ex.cause:
                with pytest.raises(SystemExit, match=f"names {ex.cause!r}, expected {other!r}"):
                    q.check_cause(dataclasses.replace(ex, cause=other))


def test_quirks_float32_example_is_what_torch_computes():
    """The float32 example: golden (both networks) outputs the exact integer, diff_networks counts the value at
    risk, and real torch (F.linear in float32, then Qualia's floor(y * 2^q + 1/2)) outputs one LSB more, the
    value the doc derives from the float32 neighbours."""
    import torch

    from golden.network.diff import diff_networks

    q = _quirks_tool()
    a, b, xr, P, s = q.float32_example()
    lin = a["lin"].layer
    w = int(a.params["lin"]["weight"][0, 0])
    assert xr * w == P and P > 1 << 24
    x = np.array([[[xr]]], a.fmt_input.dtype)
    d = diff_networks(a, b, x)
    assert d.identical and d.f32_risk == {"lin": 1}
    exact = int(a.simulate(x).out[0, 0, 0])
    assert exact == int(b.simulate(x).out[0, 0, 0]) == (P + (1 << (s - 1))) >> s
    xt = torch.tensor([[lin.fmt_in.real(xr)]], dtype=torch.float32)
    wt = torch.tensor([[lin.fmt_w.real(w)]], dtype=torch.float32)
    y = torch.nn.functional.linear(xt, wt)
    assert y.dtype == torch.float32
    f32 = int(torch.tensor(float(P), dtype=torch.float32).item())  # P (exact in float64) rounded to float32
    assert int(y.item() * 2 ** lin.acc_frac) == q._f32_round(P) == f32
    out = torch.floor(y * 2.0 ** lin.fmt_out.frac + 0.5)
    assert int(out.item()) == (q._f32_round(P) + (1 << (s - 1))) >> s == exact + 1


@pytest.mark.parametrize("P", [1, 2 ** 24 - 1, 2 ** 24, 2 ** 24 + 1, 2 ** 24 + 3, 2 ** 25 + 2, 2 ** 25 + 6,
                               2 ** 30 + 12345, 3 ** 19])
def test_quirks_float32_rounding_matches_ieee(P):
    """The doc's integer round-to-nearest-even equals numpy's and torch's float32 conversion (ties included)."""
    import torch

    q = _quirks_tool()
    lo, hi = q._f32_neighbours(P)
    assert lo <= P <= hi and int(np.float32(lo)) == lo and int(np.float32(hi)) == hi
    assert q._f32_round(P) == int(np.float32(P)) == int(torch.tensor(P, dtype=torch.float64).float().item())


def test_quirks_save_recipe_reproduces(tmp_path, capsys):
    """The doc's recipe as written: tools/quirks.py --save DIR, then golden diff --net-a/--net-b/--input per example."""
    q = _quirks_tool()
    d = tmp_path / "nets"
    assert q.main(["--save", str(d)]) == 0
    capsys.readouterr()
    want = {ex.slug: ex.cause for ex in q.network_examples()}
    assert sorted(p.name for p in d.iterdir()) == sorted([*want, "float32-accumulation"])
    for slug, cause in want.items():
        rc, out, _ = run_cli(capsys, "--net-a", str(d / slug / "a"), "--net-b", str(d / slug / "b"),
                             "--input", str(d / slug / "x.npy"))
        assert rc == 1 and f"[{cause}]" in out and f"first divergences by cause: {cause} 1" in out, out
    f = d / "float32-accumulation"
    rc, out, _ = run_cli(capsys, "--net-a", str(f / "a"), "--net-b", str(f / "b"), "--input", str(f / "x.npy"))
    assert rc == 0 and "IDENTICAL" in out and "1 values a's float32 may round" in out, out


def _exists(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "keep.txt").write_text("mine")
    return tmp / "out"


def _file_parent(tmp):
    (tmp / "f").write_text("x")
    return tmp / "f" / "out"


def _dangling_link(tmp):
    (tmp / "out").symlink_to(tmp / "nowhere")
    return tmp / "out"


@pytest.mark.parametrize("make, why", [
    (_exists, "already exists"),
    (lambda tmp: tmp / "missing" / "out", "parent directory .* does not exist"),
    (_file_parent, "parent directory .* does not exist"),
    (_dangling_link, "already exists"),
])
def test_quirks_save_bad_inputs(tmp_path, make, why):
    """tools/quirks.py --save refuses, in one line with exit 2 and no traceback, writing nothing."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    target = make(tmp_path)
    before = sorted((str(p), p.is_file() and p.read_text()) for p in tmp_path.rglob("*"))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "tools" / "quirks.py"), "--save", str(target)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(rf"quirks: error: --save .*{why}", lines[0]), proc.stderr
    assert proc.stdout == ""
    assert sorted((str(p), p.is_file() and p.read_text()) for p in tmp_path.rglob("*")) == before


def test_diff_networks_names_tmp_shift_on_a_real_torch_eval_codegen_pair():
    """Real profiles, q_in = 7 > q_v = 6, v_threshold 0.5: minimal input [82, 86] (Q8.7). After t=0 the codegen
    potential is 11 (its charge halved by the TMP shift) against torch's 21; at t=1 torch fires and the C does not.
    The exact leak shift alone (leak_shift = q_v) restores torch's output, as does the whole float32 arithmetic."""
    import dataclasses

    from golden.network import Network, Node
    from golden.network.diff import diff_networks
    from golden.network.layers import Neuron

    kw = {"q_in": 7, "v_threshold": 0.5}
    sa, sb = golden.make("torch-eval", "LIF", **kw), golden.make("codegen", "LIF", **kw)

    def net(s):
        return Network((1,), s.fmt_in, [Node("lif", Neuron.of(s, (1,), s.fmt_in))])

    x = np.array([[[82], [86]]], np.int8)
    assert net(sa).simulate(x).layers["lif"].v.ravel().tolist() == [21, 0]
    assert net(sb).simulate(x).layers["lif"].v.ravel().tolist() == [11, 19]
    fixed = net(dataclasses.replace(sb, leak_shift=sa.leak_shift)).simulate(x).out
    assert (fixed == net(sa).simulate(x).out).all()
    (f,) = diff_networks(net(sa), net(sb), x).first
    assert (f.t, f.a, f.b) == (1, 64, 0)
    assert f.cause == "TMP shift", f.cause
