"""Network bundles (golden vectors generate --network): round trip, every layer = ``Network.simulate`` in the C's
channels-last layout (checked element by element on hand-built Conv1d / Conv2d / Flatten networks), hex and header
parsed back, determinism, export, the committed corpus (against the real generated C when torch/Qualia/gcc are
installed), and a table of bad inputs through the CLI: exit 2, one line, nothing written or deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import golden
from golden import cli, vectors
from golden.network import Conv, Flatten, Linear, MaxPool, Network, Neuron, Node
from golden.spec import QFormat
from golden.vectors import network as nb

from bundle_edits import edit_manifest, rehash
from proofs import missing_codegen, missing_gcc, missing_torch, record, requires


def vcli(argv) -> int:
    """``golden vectors ...`` as the command runs it (one-line errors, exit 2)."""
    return cli.main(["vectors", *argv])

ROOT = Path(__file__).resolve().parent.parent
Q = QFormat


# ------------------------------------------------------------ hand-built networks (no torch)
def _params(rng, layer) -> dict:
    return {k: rng.integers(fmt.min, fmt.max + 1, shape) for k, (shape, fmt) in layer.param_specs().items()}


def net2d(seed: int = 0) -> Network:
    """input (2, 3, 4) -> Conv2d (3, 4, 3) -> LIF -> MaxPool2d (3, 2, 1) -> Flatten (6,) -> Linear (5,)."""
    rng = np.random.default_rng(seed)
    fi = Q(8, 4)
    conv = Conv(in_shape=(2, 3, 4), fmt_src=fi, fmt_in=fi, fmt_out=Q(8, 3), fmt_w=Q(8, 5), fmt_b=Q(8, 5), dims=2,
                in_channels=2, out_channels=3, kernel=(2, 2), stride=(1, 1), padding=(1, 0), acc_bits=16)
    lif = Neuron.of(golden.hardware("LIF", bits=8, q_v=4, q_in=3, q_out=4, v_threshold=0.5), conv.out_shape,
                    conv.fmt_out)
    pool = MaxPool(in_shape=lif.out_shape, fmt_src=lif.fmt_out, fmt_in=lif.fmt_out, fmt_out=lif.fmt_out, dims=2,
                   kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    flat = Flatten(in_shape=pool.out_shape, fmt_src=pool.fmt_out, fmt_in=pool.fmt_out, fmt_out=pool.fmt_out)
    fc = Linear(in_shape=flat.out_shape, fmt_src=flat.fmt_out, fmt_in=flat.fmt_out, fmt_out=Q(16, 6),
                fmt_w=Q(8, 6), fmt_b=None, in_features=flat.out_shape[0], out_features=5)
    nodes = [Node("layers.conv1", conv), Node("layers.neuron1", lif, ("layers.conv1",)),
             Node("layers.pool1", pool, ("layers.neuron1",)), Node("layers.flatten", flat, ("layers.pool1",)),
             Node("layers.fc1", fc, ("layers.flatten",))]
    params = {n.name: _params(rng, n.layer) for n in nodes if n.layer.param_specs()}
    return Network((2, 3, 4), fi, nodes, params, meta={"model": "test-2d"})


def net1d(seed: int = 1) -> Network:
    """input (2, 5) -> Conv1d (3, 5) -> IF -> Flatten (15,) -> Linear (4,)."""
    rng = np.random.default_rng(seed)
    fi = Q(8, 5)
    conv = Conv(in_shape=(2, 5), fmt_src=fi, fmt_in=fi, fmt_out=Q(8, 4), fmt_w=Q(8, 6), fmt_b=Q(8, 6), dims=1,
                in_channels=2, out_channels=3, kernel=(3,), stride=(1,), padding=(1,))
    neuron = Neuron.of(golden.hardware("IF", bits=8, q_v=4, q_in=4, q_out=5, v_threshold=0.75), conv.out_shape,
                       conv.fmt_out)
    flat = Flatten(in_shape=neuron.out_shape, fmt_src=neuron.fmt_out, fmt_in=neuron.fmt_out, fmt_out=neuron.fmt_out)
    fc = Linear(in_shape=flat.out_shape, fmt_src=flat.fmt_out, fmt_in=flat.fmt_out, fmt_out=Q(8, 4),
                fmt_w=Q(8, 6), fmt_b=Q(8, 6), in_features=15, out_features=4)
    nodes = [Node("conv", conv), Node("neuron", neuron, ("conv",)), Node("flatten", flat, ("neuron",)),
             Node("fc", fc, ("flatten",))]
    params = {n.name: _params(rng, n.layer) for n in nodes if n.layer.param_specs()}
    return Network((2, 5), fi, nodes, params)


NETS = {"2d": net2d, "1d": net1d}


def gen(net, out, samples=3, steps=5, seed=7, stimulus="uniform", **kw) -> Path:
    return vectors.generate_network(net, out, samples=samples, steps=steps, seed=seed, stimulus=stimulus, **kw)


def verify(*dirs):
    out, err = io.StringIO(), io.StringIO()
    rc = vectors.verify([str(d) for d in dirs], out=out, err=err)
    return rc, out.getvalue() + err.getvalue()


def tree(root: Path) -> dict:
    """Every path below ``root`` -> sha256 of its bytes (None for a directory, the target for a symlink)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = None
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ------------------------------------------------------------ the independent channels-last conversion
def c_layout(a, in_shape=None):
    """(S, T, C, *spatial) -> (S, T, *spatial, C); a Flatten's output: its input (in_shape) taken channels-last."""
    a = np.asarray(a)
    if in_shape is not None and len(in_shape) >= 2:
        return np.moveaxis(a.reshape(*a.shape[:2], *in_shape), 2, -1).reshape(a.shape)
    return np.moveaxis(a, 2, -1) if a.ndim >= 4 else a


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(1, 3), st.integers(1, 3))
def test_to_c_is_the_index_mapping(shape, S, T):
    """nb.to_c / from_c against an explicit per-element mapping, for any rank (and a Flatten of any input)."""
    shape = tuple(shape)
    a = np.arange(S * T * int(np.prod(shape))).reshape(S, T, *shape)
    c = nb.to_c(a)
    assert c.shape == (S, T, *nb.c_shape(shape)) and np.array_equal(nb.from_c(c), a)
    flat = nb.to_c(a.reshape(S, T, -1), shape)
    for idx in np.ndindex(*a.shape):
        s, t, ch, *sp = idx
        assert (c[(s, t, *sp, ch)] if len(shape) >= 2 else c[idx]) == a[idx]
        pos = (int(np.ravel_multi_index((*sp, ch), (*shape[1:], shape[0]))) if len(shape) >= 2 else ch)
        assert flat[s, t, pos] == a[idx]


# ------------------------------------------------------------ round trip, every layer
@pytest.mark.parametrize("which", sorted(NETS))
@pytest.mark.parametrize("stimulus", nb.STIMULI)
def test_round_trip_every_layer_equals_simulate(which, stimulus, tmp_path):
    net = NETS[which]()
    b = gen(net, tmp_path / "b", stimulus=stimulus)
    rc, text = verify(b)
    assert rc == 0, text
    loaded, arrays, m = vectors.read_network_bundle(b)
    assert loaded.digest() == net.digest() == m["network"]["digest"]
    x = arrays["x"]
    assert x.shape == (3, 5, *net.input_shape[1:], net.input_shape[0])
    tr = net.simulate(np.moveaxis(x, -1, 2) if x.ndim >= 4 else x)
    compared = 0
    for e in m["layers"]:
        lt = tr.layers[e["name"]]
        src = lt.layer.in_shape if isinstance(lt.layer, Flatten) else None
        for field, want in (("out", lt.out), ("v", lt.v), ("spikes", lt.spikes)):
            if want is None:
                assert field not in e["arrays"]
                continue
            got = arrays[f"{e['ident']}.{field}"]
            assert np.array_equal(got, c_layout(want, src if field == "out" else None)), (e["name"], field)
            compared += got.size
    record("network-bundle", "Network.simulate, channels-last", compared, 0, unit="values")
    out = arrays[m["output"]["file"].removesuffix(".npy")]
    assert np.array_equal(out, c_layout(tr.out))
    assert m["layout"].startswith("channels-last") and m["kind"] == "network"


def test_layout_element_by_element(tmp_path):
    """Index by index: (C, H, W) stored (H, W, C); Flatten = its input channels-last, flattened; input likewise."""
    net = net2d()
    b = gen(net, tmp_path / "b", samples=2, steps=3)
    _, arrays, m = vectors.read_network_bundle(b)
    x = arrays["x"]
    S, T, H, W, C = x.shape
    x_cf = np.empty((S, T, C, H, W), x.dtype)
    for s, t, h, w, c in np.ndindex(S, T, H, W, C):
        x_cf[s, t, c, h, w] = x[s, t, h, w, c]
    tr = net.simulate(x_cf)
    conv = tr.layers["layers.conv1"].out  # (S, T, 3, 4, 3) torch
    got = arrays["layers_conv1.out"]
    assert got.shape == (S, T, 4, 3, 3)
    for s, t, c, h, w in np.ndindex(*conv.shape):
        assert got[s, t, h, w, c] == conv[s, t, c, h, w]
    pool = tr.layers["layers.pool1"].out  # (S, T, 3, 2, 1)
    flat = arrays["layers_flatten.out"]  # (S, T, 6): (h, w, c) order
    Cp, Hp, Wp = pool.shape[2:]
    for s, t, c, h, w in np.ndindex(S, T, Cp, Hp, Wp):
        assert flat[s, t, (h * Wp + w) * Cp + c] == pool[s, t, c, h, w]
    # the Linear after the Flatten still computes torch's function: golden's trace is in torch order
    assert np.array_equal(arrays["layers_fc1.out"], tr.layers["layers.fc1"].out)
    e = next(e for e in m["layers"] if e["name"] == "layers.conv1")
    assert (e["shape"], e["c_shape"], e["c_name"], e["type"]) == ([3, 4, 3], [4, 3, 3], "cnn_layers_conv1", "Conv2d")


def test_layout_of_a_1d_layer(tmp_path):
    """A (C, L) layer is stored (L, C): element (s, t, l, c) is torch's (s, t, c, l)."""
    net = net1d()
    b = gen(net, tmp_path / "b", samples=2, steps=4)
    _, arrays, m = vectors.read_network_bundle(b)
    tr = net.simulate(np.moveaxis(arrays["x"], -1, 2))
    for name in ("conv", "neuron"):
        want, got = tr.layers[name].out, arrays[f"{name}.out"]
        assert got.shape == (2, 4, 5, 3)
        for s, t, c, ll in np.ndindex(*want.shape):
            assert got[s, t, ll, c] == want[s, t, c, ll]
    flat, neuron = arrays["flatten.out"], tr.layers["neuron"].out
    for s, t, c, ll in np.ndindex(*neuron.shape):
        assert flat[s, t, ll * 3 + c] == neuron[s, t, c, ll]


# ------------------------------------------------------------ exports parse back
def test_hex_and_header_parse_back(tmp_path):
    net = net2d()
    b = gen(net, tmp_path / "b", samples=2, steps=4, stimulus="edges", prefix="fw")
    _, arrays, m = vectors.read_network_bundle(b)
    hexes = m["exports"]["hex"]
    assert set(hexes) == set(nb.arrays_of(m)) | {"params"}
    for key, a in arrays.items():
        h = hexes[key]
        text = (b / h["file"]).read_bytes()
        assert text.endswith(b"\n") and b"\r" not in text
        assert all(len(line) == h["digits"] for line in text.split(b"\n")[:-1])
        assert np.array_equal(vectors.parse_hex(b / h["file"], h["bits"]), a.reshape(-1).astype(np.int64)), key
    assert (b / "x.hex").read_bytes().split(b"\n")[0] == f"{int(arrays['x'].reshape(-1)[0]) & 0xFF:02x}".encode()
    text = (b / "vectors.h").read_text()
    parsed = vectors.parse_h(text)
    assert set(parsed) == {"fw_in", "fw_out"}
    assert np.array_equal(parsed["fw_in"], arrays["x"].reshape(-1))
    assert np.array_equal(parsed["fw_out"], arrays["layers_fc1.out"].reshape(-1))
    defs = dict(re.findall(r"^#define (FW_\w+)\s+(\S+)$", text, re.M))
    assert (defs["FW_SAMPLES"], defs["FW_STEPS"], defs["FW_IN_SIZE"], defs["FW_OUT_SIZE"]) == ("2", "4", "24", "5")
    assert (defs["FW_IN_BITS"], defs["FW_OUT_BITS"], defs["FW_CNN_LAYERS_CONV1_SIZE"]) == ("8", "16", "36")
    assert "static const int8_t fw_in[192]" in text and "static const int16_t fw_out[40]" in text
    vh = (b / "bundle.vh").read_text()
    assert "localparam integer GV_CNN_LAYERS_NEURON1_V_BITS = 8;" in vh and "GV_SAMPLES = 2;" in vh


@requires(missing_gcc())
def test_header_compiles_in_two_units_and_indexes_as_documented(tmp_path):
    b = gen(net1d(), tmp_path / "b", samples=2, steps=3)
    _, arrays, m = vectors.read_network_bundle(b)
    (tmp_path / "a.c").write_text('#include "vectors.h"\nint other(void) { return golden_in[0]; }\n')
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "vectors.h"\nint other(void);\n'
        "int main(void) { long long h = 0;\n"
        "  for (int s = 0; s < GOLDEN_SAMPLES; s++) for (int t = 0; t < GOLDEN_STEPS; t++)\n"
        "    for (int i = 0; i < GOLDEN_OUT_SIZE; i++)\n"
        "      h = h * 31 + golden_out[(s * GOLDEN_STEPS + t) * GOLDEN_OUT_SIZE + i] + (s + 1) * (t + 2) * (i + 3);\n"
        '  printf("%lld %d\\n", h, other()); return 0; }\n')
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(b), str(tmp_path / "main.c"),
                    str(tmp_path / "a.c"), "-o", str(exe)], check=True, capture_output=True)
    h = 0
    out = arrays["fc.out"]
    for s, t, i in np.ndindex(*out.shape):
        h = (h * 31 + int(out[s, t, i]) + (s + 1) * (t + 2) * (i + 3)) & ((1 << 64) - 1)
    h = h - (1 << 64) if h >= 1 << 63 else h
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert got == [str(h), str(int(arrays["x"].reshape(-1)[0]))]


# ------------------------------------------------------------ determinism, export
def test_same_arguments_same_bytes(tmp_path):
    net = net2d()
    net.save(tmp_path / "net")
    a = gen(net, tmp_path / "a", stimulus="poisson")
    b = gen(tmp_path / "net", tmp_path / "b", stimulus="poisson")  # from the directory: its canonical save embedded
    assert tree(a) == tree(b)
    assert (b / "network" / "weights.npz").read_bytes() == (tmp_path / "net" / "weights.npz").read_bytes()
    c = gen(net, tmp_path / "c", stimulus="poisson", seed=8)
    assert (c / "x.npy").read_bytes() != (a / "x.npy").read_bytes()
    long = vectors.read_network_bundle(gen(net, tmp_path / "d", steps=9, stimulus="poisson"))[1]["x"]
    assert np.array_equal(long[:, :5], vectors.read_network_bundle(a)[1]["x"])  # a shorter run is a prefix


def test_export_adds_hex_and_h(tmp_path):
    net = net1d()
    full = gen(net, tmp_path / "full")
    part = gen(net, tmp_path / "part", formats="npy")
    assert not (part / "vectors.h").exists()
    assert vcli(["export", str(part), "--format", "hex,h"]) == 0
    assert tree(part) == tree(full) and verify(part)[0] == 0


def test_csv_export_of_a_network_bundle_one_table_per_layer(tmp_path):
    """csv serves network bundles too: input.csv (sample, t, i, x) and <layer>.csv (sample, t, i, out[, v, spike])."""
    b = gen(net1d(), tmp_path / "b", samples=2, steps=3, formats="npy,csv")
    _, arrays, m = vectors.read_network_bundle(b)
    assert m["exports"]["csv"] == {"files": ["input.csv", "conv.csv", "neuron.csv", "flatten.csv", "fc.csv"]}
    rows = (b / "neuron.csv").read_text().splitlines()
    assert rows[0] == "sample,t,i,out,v,spike" and len(rows) == 1 + arrays["neuron.out"].size
    s, t, i, out, v, spike = map(int, rows[1 + 2 * 3 * 15 - 1].split(","))  # the last row: sample 1, t 2, i 14
    assert (s, t, i) == (1, 2, 14)
    assert (out, v, spike) == tuple(int(a.reshape(2, 3, -1)[1, 2, 14]) for a in
                                    (arrays["neuron.out"], arrays["neuron.v"], arrays["neuron.spikes"]))
    assert verify(b)[0] == 0
    p = b / "fc.csv"
    p.write_text(p.read_text().replace("\n0,0,0,", "\n0,0,0,1", 1) if "\n0,0,0,0" not in p.read_text()
                 else p.read_text().replace("\n0,0,0,0", "\n0,0,0,1", 1))
    rehash(b, "fc.csv")
    rc, out = verify(b)
    assert rc == 1 and "layer=fc, sample=0, t=0, index=(0,), field=fc.csv:out" in out, out


def test_every_macro_and_file_name_stays_distinct(tmp_path):
    """issue 21: layers `n` (a neuron) and `n_v` both gave GV_CNN_N_V_BITS in bundle.vh: refused up front."""
    from golden.network import NetworkError

    d = _renamed_net(tmp_path, {"neuron": "n", "flatten": "n_v"})
    with pytest.raises(NetworkError, match="'n' and 'n_v'.*GV_CNN_N_V_BITS"):
        gen(d, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    with pytest.raises(vectors.BundleError, match="declared twice"):
        vectors.formats.unique_names(["A", "B", "A"], "bundle.vh")


def test_network_save_follows_the_directory_rule(tmp_path):
    """issue 21: Network.save(DIR, overwrite=True) deleted a user's directory; now only a saved network is replaced,
    by one atomic swap, and nothing is left beside it."""
    from golden.network import NetworkError

    net, other = net1d(), net2d()
    user = tmp_path / "docs"
    user.mkdir()
    (user / "thesis.txt").write_text("four years")
    for target, cause in ((user, "not golden's to replace"), (tmp_path / "f.txt", "not a directory")):
        if target.suffix:
            target.write_text("mine")
        with pytest.raises(NetworkError, match=cause):
            net.save(target, overwrite=True)
    assert (user / "thesis.txt").read_text() == "four years" and (tmp_path / "f.txt").read_text() == "mine"
    (tmp_path / "link").symlink_to(user)
    with pytest.raises(NetworkError, match="symlink"):
        net.save(tmp_path / "link", overwrite=True)
    d = net.save(tmp_path / "n")
    with pytest.raises(NetworkError, match="already exists"):
        other.save(d)
    other.save(d, overwrite=True)
    assert Network.load(d).digest() == other.digest()
    (d / "notes.txt").write_text("mine")
    with pytest.raises(NetworkError, match="notes.txt"):
        net.save(d, overwrite=True)
    assert (d / "notes.txt").read_text() == "mine" and Network.load(d).digest() == other.digest()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert net.save(tmp_path / "m").joinpath("weights.npz").read_bytes() == \
        net.save(tmp_path / "m2").joinpath("weights.npz").read_bytes()  # the same network, the same bytes


def test_verify_opens_nothing_outside_the_bundle(tmp_path, monkeypatch):
    """issue 21: the probe's attack (weights named outside, a decoy line in a multi-line string, hashes redone):
    every file verify opens, traced by the real path of each opened descriptor, is inside the bundle."""
    net = net1d()
    b = gen(net, tmp_path / "b", samples=2, steps=3)
    assert verify(b)[0] == 0  # imports and kernels warm: what follows opens only what verify itself opens
    _weights_outside(b)
    opened = []
    real_os_open, real_open = os.open, open

    def where(fd):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None

    def traced_os_open(path, flags, mode=0o777, *, dir_fd=None):
        fd = real_os_open(path, flags, mode, dir_fd=dir_fd)
        opened.append(where(fd))
        return fd

    def traced_open(file, *a, **kw):
        f = real_open(file, *a, **kw)
        opened.append(where(f.fileno()))
        return f
    monkeypatch.setattr(os, "open", traced_os_open)
    monkeypatch.setattr("builtins.open", traced_open)
    monkeypatch.setattr(io, "open", traced_open)  # pathlib's read_bytes / open
    rc, err = verify(b)
    monkeypatch.undo()
    assert rc == 2 and "inside the network directory" in err, err
    mine = [p for p in opened if p and p.startswith(str(tmp_path))]
    assert mine and all(p.startswith(str(b.resolve()) + "/") or p == str(b.resolve()) for p in mine), mine
    assert str(tmp_path / "outside" / "weights.npz") not in opened


def test_force_replaces_a_network_bundle_only(tmp_path):
    net = net1d()
    b = gen(net, tmp_path / "b")
    gen(net, b, seed=9, force=True)
    assert json.loads((b / "manifest.json").read_text())["stimulus"]["seed"] == 9 and verify(b)[0] == 0
    (b / "network" / "notes.txt").write_text("mine")
    with pytest.raises(vectors.BundleError, match="network/notes.txt"):
        gen(net, b, force=True)
    assert (b / "network" / "notes.txt").read_text() == "mine"


def test_a_rewritten_but_consistent_bundle_reports_layer_sample_t_index(tmp_path):
    """Exit 1 with the first (layer, sample, t, index): a value changed and re-hashed, its exports re-rendered."""
    b = gen(net2d(), tmp_path / "b", samples=2, steps=4, formats="npy")
    p = b / "layers_pool1.out.npy"
    a = np.load(p)
    a[1, 2, 1, 0, 2] ^= 1
    p.write_bytes(vectors.npy_header(a.dtype, a.shape) + a.tobytes())
    rehash(b, p.name)
    rc, text = verify(b)
    assert rc == 1
    line = next(ln for ln in text.splitlines() if ln.startswith("FAIL"))
    assert "layer=layers.pool1, sample=1, t=2, index=(1, 0, 2), field=out" in line and "1 differing" in line


# ------------------------------------------------------------ the committed corpus
def test_committed_network_corpus_verifies():
    every = {json.loads((p / "manifest.json").read_text())["kind"] for p in vectors.find_bundles([ROOT / "vectors"])}
    assert "network" in every and len(every) > 1  # golden vectors verify vectors (CI) finds both kinds
    bundles = vectors.find_bundles([ROOT / "vectors" / "networks"])
    kinds = {json.loads((p / "manifest.json").read_text())["kind"] for p in bundles}
    assert len(bundles) >= 3 and kinds == {"network"}
    types = set()
    for p in bundles:
        m = json.loads((p / "manifest.json").read_text())
        types |= {e["type"] for e in m["layers"]}
    assert {"Linear", "Conv2d", "Conv1d", "Add", "Flatten", "Neuron", "MaxPool1d", "MaxPool2d"} <= types
    rc, text = verify(*bundles)
    assert rc == 0, text


@requires(missing_torch() or missing_codegen() or missing_gcc())
def test_committed_network_corpus_is_what_regen_writes_and_the_c_computes(tmp_path):
    """tools/regen_network_corpus.py rebuilds every bundle byte for byte, after comparing every layer of each with
    the real generated C (qualia-codegen rendered at test time, gcc) on the bundle's inputs."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "regen_network_corpus.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    values = [int(v) for v in re.findall(r"(\d+) values equal to the generated C", proc.stdout)]
    assert len(values) == 3
    record("network-bundle-c", "the generated C (qualia-codegen, gcc), every layer", sum(values), 0, unit="values")
    assert tree(tmp_path) == tree(ROOT / "vectors" / "networks")


# ------------------------------------------------------------ bad inputs: one line, exit 2, nothing touched
def _flip(path: Path, at: int = -3) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


@pytest.fixture
def world(tmp_path):
    """tmp/net (a saved network), tmp/bundle (a network bundle), tmp/mine (a user's directory)."""
    net = net1d()
    net.save(tmp_path / "net")
    gen(tmp_path / "net", tmp_path / "bundle", samples=2, steps=3)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    return tmp_path


def _evil_net(tmp_path, name):
    net = net1d()
    nodes = [Node(name if n.name == "neuron" else n.name, n.layer,
                  tuple(name if i == "neuron" else i for i in n.inputs)) for n in net.nodes]
    Network(net.input_shape, net.fmt_input, nodes, net.params).save(tmp_path / "evil")
    return tmp_path / "evil"


def _gen_args(w, **over):
    a = {"--network": str(w / "net"), "--samples": "2", "--steps": "3", "--seed": "1", "--stimulus": "uniform",
         "--out": str(w / "new")}
    a.update(over)
    return ["vectors", "generate"] + [t for k, v in a.items() if v is not None for t in ((k,) if v is True else
                                                                                           (k, v))]


def _edit(key, value):
    def f(m):
        ref = m
        for k in key[:-1]:
            ref = ref[k]
        ref[key[-1]] = value
    return f


def _bad_net(w, edit):
    """A copy of the saved network with ``edit(text)`` applied to its network.toml (hashes left as they are)."""
    shutil.copytree(w / "net", w / "bad")
    t = w / "bad" / "network.toml"
    t.write_text(edit(t.read_text()))
    return w / "bad"


def _sub(pattern, repl, count=1):
    return lambda text: re.sub(pattern, repl, text, count=count, flags=re.M | re.S)


def _rehash_weights(d: Path) -> None:
    """Redo network.toml's weights_sha256 after rewriting weights.npz (a hostile user can)."""
    sha = hashlib.sha256((d / "weights.npz").read_bytes()).hexdigest()
    t = d / "network.toml"
    t.write_text(re.sub(r'weights_sha256 = "\w+"', f'weights_sha256 = "{sha}"', t.read_text()))


def _npy_member(dtype, shape, data=b"") -> bytes:
    head = np.lib.format.header_data_from_array_1_0(np.zeros(0, dtype))
    head["shape"] = shape
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, head)
    return buf.getvalue() + data


def _bad_weights(w, member_bytes, *, name="conv.weight.npy", compress=False, rehash=True, extra=False):
    """A copy of the saved network whose weights.npz has ``name`` replaced (or, ``extra``, added)."""
    shutil.copytree(w / "net", w / "bad")
    wz = w / "bad" / "weights.npz"
    with zipfile.ZipFile(wz) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if extra:
        members[name] = member_bytes
    else:
        members[name] = member_bytes
    with zipfile.ZipFile(wz, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for n, b in members.items():
            z.writestr(n, b)
    if rehash:
        _rehash_weights(w / "bad")
    return w / "bad"


def _renamed_net(tmp_path, names: dict):
    net = net1d()
    nodes = [Node(names.get(n.name, n.name), n.layer, tuple(names.get(i, i) for i in n.inputs)) for n in net.nodes]
    Network(net.input_shape, net.fmt_input, nodes, {names.get(k, k): v for k, v in net.params.items()}).save(
        tmp_path / "evil")
    return tmp_path / "evil"


def _netrow(edit, cause):
    return (lambda w: _gen_args(w, **{"--network": str(_bad_net(w, edit))}), cause)


GENERATE_ROWS = {
    "missing network dir": (lambda w: _gen_args(w, **{"--network": str(w / "nope")}), "not a directory"),
    "network dir without network.toml": (lambda w: _gen_args(w, **{"--network": str(w / "mine")}), "network.toml"),
    "garbage network.toml": (lambda w: (shutil.copytree(w / "net", w / "bad"),
                                        (w / "bad" / "network.toml").write_text("[[[ not toml"),
                                        _gen_args(w, **{"--network": str(w / "bad")}))[-1], "malformed TOML"),
    "tampered weights": (lambda w: (shutil.copytree(w / "net", w / "bad"), _flip(w / "bad" / "weights.npz", 200),
                                    _gen_args(w, **{"--network": str(w / "bad")}))[-1], "weights"),
    "samples 0": (lambda w: _gen_args(w, **{"--samples": "0"}), "--samples"),
    "steps 0": (lambda w: _gen_args(w, **{"--steps": "0"}), "--steps"),
    "samples huge": (lambda w: _gen_args(w, **{"--samples": str(10 ** 12)}), "samples x steps"),
    "steps huge": (lambda w: _gen_args(w, **{"--steps": str(10 ** 9), "--samples": "1000"}), "samples x steps"),
    "negative seed": (lambda w: _gen_args(w, **{"--seed": "-1"}), "--seed"),
    "unknown stimulus": (lambda w: _gen_args(w, **{"--stimulus": "bogus"}), "--stimulus"),
    "ties at a network input": (lambda w: _gen_args(w, **{"--stimulus": "ties"}), "not a network stimulus"),
    "--network with --spec": (lambda w: _gen_args(w, **{"--spec": str(w / "s.toml")}), "--spec"),
    "--network with --neurons": (lambda w: _gen_args(w, **{"--neurons": "4"}), "--neurons"),
    "--network without --samples": (lambda w: _gen_args(w, **{"--samples": None}), "--samples"),
    "--spec with --samples": (lambda w: _gen_args(w, **{"--network": None, "--spec": str(w / "s.toml"),
                                                        "--neurons": "4"}), "--spec"),
    "out inside the network dir": (lambda w: _gen_args(w, **{"--out": str(w / "net" / "b")}), "inside the network"),
    "out is the network dir": (lambda w: _gen_args(w, **{"--out": str(w / "net"), "--force": True}), "net"),
    "out a user's dir": (lambda w: _gen_args(w, **{"--out": str(w / "mine")}), "already exists"),
    "out a user's dir, --force": (lambda w: _gen_args(w, **{"--out": str(w / "mine"), "--force": True}),
                                  "not golden's to replace"),
    "out an existing bundle": (lambda w: _gen_args(w, **{"--out": str(w / "bundle")}), "already exists"),
    # issue 21: network.toml type-checked field by field, the weights file inside the directory, hashed first
    "[input] renamed": _netrow(_sub(r"^\[input\]$", "[inputs]"), "unknown key 'inputs'"),
    "input_shape missing": _netrow(_sub(r"^input_shape = .*?\n", ""), "missing 'input_shape'"),
    "input_shape a string": _netrow(_sub(r"^input_shape = .*?$", 'input_shape = "ab"'), "input_shape"),
    "input_shape nan": _netrow(_sub(r"^input_shape = .*?$", "input_shape = [nan, 16]"), "input_shape"),
    "input_shape 1.5": _netrow(_sub(r"^input_shape = .*?$", "input_shape = [1.5, 16]"), "input_shape"),
    "[input] without round": _netrow(_sub(r'^round = "RND"\n', ""), "[input]: missing 'round'"),
    "weights = 5": _netrow(_sub(r"^weights = .*?$", "weights = 5"), "weights = 5: expected a string"),
    "meta a string": _netrow(lambda t: t.replace("[meta]\n", "").replace("schema = 1", 'schema = 1\nmeta = "abc"'),
                             "meta = 'abc': expected a table"),
    "output an array": _netrow(_sub(r"^output = .*?$", 'output = ["a"]'), "output = ['a']: expected a string"),
    "layer a string": _netrow(lambda t: t.split("\n[[layer]]")[0].replace("schema = 1", 'schema = 1\nlayer = "abc"'),
                              "layer = 'abc': expected an array"),
    "inputs = 5": _netrow(_sub(r"^inputs = .*?$", "inputs = 5"), "inputs = 5: expected an array"),
    "spec a string": _netrow(_sub(r'(name = "flatten"\ntype = "Flatten"\ninputs = \["neuron"\]\n)\[layer\.spec\]'
                                  r".*?(\[layer\.arrays\])", r'\1spec = "x"\n\2'), "spec = 'x': expected a table"),
    "5000-deep array": _netrow(_sub(r"^input_shape = .*?$", "input_shape = " + "[" * 5000 + "]" * 5000),
                               "nested too deeply"),
    "5000-digit integer": _netrow(_sub(r"^input_shape = .*?$", "input_shape = [" + "9" * 5000 + ", 16]"),
                                  "malformed TOML"),
    "a layer field of the wrong type": _netrow(_sub(r"^in_channels = 2$", 'in_channels = "two"'), "in_channels"),
    "weights an absolute path": _netrow(lambda t: t.replace('weights = "weights.npz"', 'weights = "/etc/passwd"'),
                                        "inside the network directory"),
    "weights ../x.npz": _netrow(lambda t: t.replace('weights = "weights.npz"', 'weights = "../net/weights.npz"'),
                                "inside the network directory"),
    "weights a symlink": (lambda w: (_bad_net(w, lambda t: t.replace('"weights.npz"', '"w2.npz"', 1)),
                                     (w / "bad" / "w2.npz").symlink_to(w / "net" / "weights.npz"),
                                     _gen_args(w, **{"--network": str(w / "bad")}))[-1], "symlink"),
    "bytes dtype weights, re-hashed": (lambda w: _gen_args(w, **{"--network": str(_bad_weights(
        w, _npy_member("S1", (3, 2, 3), b"x" * 18)))}), "must be integers"),
    "complex dtype weights, re-hashed": (lambda w: _gen_args(w, **{"--network": str(_bad_weights(
        w, _npy_member(np.complex64, (3, 2, 3), b"\0" * 144)))}), "must be integers"),
    "a 2**40-element header, re-hashed": (lambda w: _gen_args(w, **{"--network": str(_bad_weights(
        w, _npy_member(np.int8, (1 << 20, 1 << 20))))}), "the layer declares"),
    "a zip bomb": (lambda w: _gen_args(w, **{"--network": str(_bad_weights(
        w, _npy_member(np.int8, (3, 2, 3), bytes(50 << 20)), compress=True, rehash=False))}), "sha256 mismatch"),
    "a zip bomb, re-hashed": (lambda w: _gen_args(w, **{"--network": str(_bad_weights(
        w, _npy_member(np.int8, (3, 2, 3), bytes(50 << 20)), compress=True))}), "its header promises"),
    "an extra array, re-hashed": (lambda w: _gen_args(w, **{"--network": str(_bad_weights(
        w, _npy_member(np.int8, (1,), b"\0"), name="extra.npy", extra=True))}), "does not list"),
    "layer name ..": (lambda w: _gen_args(w, **{"--network": str(_evil_net(w, ".."))}), "layer name"),
    "layer name a..b": (lambda w: _gen_args(w, **{"--network": str(_evil_net(w, "a..b"))}), "layer name"),
    "layer names whose macros meet": (lambda w: _gen_args(w, **{"--network": str(_renamed_net(
        w, {"neuron": "n", "flatten": "n_v"}))}), "GV_CNN_N_V_BITS"),
    "prefix injection": (lambda w: _gen_args(w, **{"--prefix": 'g;system("x")'}), "not a C identifier"),
    "prefix newline": (lambda w: _gen_args(w, **{"--prefix": "g\n#include <x>"}), "not a C identifier"),
    "layer name injection": (lambda w: _gen_args(w, **{"--network": str(_evil_net(w, 'n";system("x'))}),
                             "layer name"),
    "layer name path": (lambda w: _gen_args(w, **{"--network": str(_evil_net(w, "../../etc"))}), "layer name"),
    "layer name slash": (lambda w: _gen_args(w, **{"--network": str(_evil_net(w, "a/b"))}), "layer name"),
    "layer names that meet": (lambda w: _gen_args(w, **{"--network": str(_evil_net(w, "Conv"))}), "rename one"),
}


def _weights_outside(b: Path) -> None:
    """The probe's attack: weights named outside the bundle, a decoy ``weights = "weights.npz"`` in a string."""
    outside = b.parent / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(b / "network" / "weights.npz", outside / "weights.npz")
    t = b / "network" / "network.toml"
    t.write_text(t.read_text().replace('weights = "weights.npz"', 'weights = "../../outside/weights.npz"')
                 .replace("[meta]\n", '[meta]\nnote = """\nweights = "weights.npz"\n"""\n'))
    rehash(b, "network/network.toml")


def _extra_array(b: Path) -> None:
    with zipfile.ZipFile(b / "network" / "weights.npz", "a") as z:
        z.writestr("extra.npy", _npy_member(np.int8, (1,), b"\0"))
    _rehash_weights(b / "network")
    rehash(b, "network/weights.npz")
    rehash(b, "network/network.toml")


def _malformed_toml(b: Path) -> None:
    (b / "network" / "network.toml").write_text("[[[ not toml\n")
    rehash(b, "network/network.toml")


def _with_bundle_copy(edit):
    def rows(w):
        shutil.copytree(w / "bundle", w / "b2", symlinks=True)
        edit(w / "b2")
        return ["vectors", "verify", str(w / "b2")]
    return rows


VERIFY_ROWS = {
    "a tampered layer file": (_with_bundle_copy(lambda b: _flip(b / "neuron.v.npy")), "sha256 differs"),
    "a tampered hex file": (_with_bundle_copy(lambda b: _flip(b / "fc.out.hex", 0)), "sha256 differs"),
    "a tampered header": (_with_bundle_copy(lambda b: _flip(b / "vectors.h", -10)), "sha256 differs"),
    "a foreign file": (_with_bundle_copy(lambda b: (b / "tb.v").write_text("x")), "tb.v: not listed"),
    "a foreign file in network/": (_with_bundle_copy(lambda b: (b / "network" / "x").write_text("x")),
                                   "network/x: not listed"),
    "a layer file deleted": (_with_bundle_copy(lambda b: (b / "conv.out.npy").unlink()), "conv.out.npy: missing"),
    "network/ deleted": (_with_bundle_copy(lambda b: shutil.rmtree(b / "network")), "network/"),
    "a symlinked layer file": (_with_bundle_copy(lambda b: ((b / "fc.out.npy").unlink(),
                                                            (b / "fc.out.npy").symlink_to(b.parent / "bundle" /
                                                                                          "fc.out.npy"))),
                               "symlink"),
    "network/ a symlink": (_with_bundle_copy(lambda b: (shutil.rmtree(b / "network"),
                                                        (b / "network").symlink_to(b.parent / "net"))), "symlink"),
    "tampered weights, re-hashed": (_with_bundle_copy(lambda b: (_flip(b / "network" / "weights.npz", 200),
                                                                 rehash(b, "network/weights.npz"))), "network"),
    "another network, re-hashed": (_with_bundle_copy(lambda b: (shutil.rmtree(b / "network"),
                                                                net2d().save(b / "network"),
                                                                rehash(b, "network/network.toml"),
                                                                rehash(b, "network/weights.npz"))), "digest"),
    "manifest: samples": (_with_bundle_copy(lambda b: edit_manifest(b, _edit(("samples",), 3))), "manifest.json"),
    "manifest: seed": (_with_bundle_copy(lambda b: edit_manifest(b, _edit(("stimulus", "seed"), 2))),
                       "not the stimulus"),
    "manifest: generator": (_with_bundle_copy(lambda b: edit_manifest(b, _edit(("stimulus", "generator"), "ties"))),
                            "not a network stimulus"),
    "manifest: layer name": (_with_bundle_copy(lambda b: edit_manifest(b, _edit(("layers", 0, "name"), "x"))),
                             "layers[0].name"),
    "manifest: c_name": (_with_bundle_copy(lambda b: edit_manifest(b, _edit(("layers", 1, "c_name"), "cnn_x"))),
                         "layers[1].c_name"),
    "manifest: layout": (_with_bundle_copy(lambda b: edit_manifest(b, _edit(("layout",), "channels-first"))),
                         "layout"),
    "manifest: digest": (_with_bundle_copy(lambda b: edit_manifest(b, _edit(("network", "digest"), "0" * 64))),
                         "digest"),
    "manifest: file outside": (_with_bundle_copy(lambda b: edit_manifest(
        b, _edit(("files", "../x"), {"sha256": "0" * 64, "bytes": 1}))), "not a bundle file name"),
    "manifest: prefix injection": (_with_bundle_copy(lambda b: edit_manifest(
        b, _edit(("exports", "h", "prefix"), "g;x"))), "prefix"),
    "manifest: not canonical": (_with_bundle_copy(lambda b: (b / "manifest.json").write_text(
        (b / "manifest.json").read_text().replace("\n", "\r\n"))), "canonical"),
    # issue 21: the embedded network's exact bytes; nothing outside the bundle is opened
    "weights outside, decoy in a string, re-hashed": (_with_bundle_copy(_weights_outside), "inside the network dir"),
    "an extra array in weights.npz, re-hashed": (_with_bundle_copy(_extra_array), "does not list"),
    "a comment in network.toml, re-hashed": (_with_bundle_copy(lambda b: (
        (b / "network" / "network.toml").write_text((b / "network" / "network.toml").read_text() + "# hi\n"),
        rehash(b, "network/network.toml"))), "not golden's canonical save"),
    "malformed network.toml, re-hashed": (_with_bundle_copy(_malformed_toml), "malformed TOML"),
    "export of a malformed network.toml, re-hashed": (lambda w: (_with_bundle_copy(_malformed_toml)(w),
                                                                 ["vectors", "export", str(w / "b2"), "--format",
                                                                  "csv"])[-1], "malformed TOML"),
}


@pytest.mark.parametrize("row", list(GENERATE_ROWS) + list(VERIFY_ROWS))
def test_bad_inputs(row, world, capsys):
    make, cause = {**GENERATE_ROWS, **VERIFY_ROWS}[row]
    (world / "s.toml").write_text(golden.codegen("IF").to_toml())
    argv = make(world)
    before = tree(world)
    rc = cli.main(argv)
    cap = capsys.readouterr()
    errs = [ln for ln in cap.err.splitlines() if ln]
    assert rc == 2, (row, cap.out, cap.err)
    assert len(errs) == 1 and errs[0].startswith("golden: error: ") and "Traceback" not in cap.err, errs
    assert cause in errs[0], (row, errs[0])
    assert tree(world) == before, row  # nothing written, deleted or replaced


# ------------------------------------------------------------ integrity: any flipped bit is caught
def test_every_flip_of_the_manifest_and_sampled_flips_of_every_file_are_caught(tmp_path):
    """XOR 0x01 on 512 bytes of manifest.json and 24 of every other file, drawn (every byte of every file under
    the deep profile: 16.7k flips, 97 s here): verify never passes (exit 1 or 2; every file's sha256 is checked
    before the content)."""
    from golden.vectors import verify_bundle

    b = gen(net1d(), tmp_path / "b", samples=1, steps=2)
    deep = os.environ.get("GOLDEN_HYPOTHESIS") == "deep"
    rng = np.random.default_rng(0)
    flips = 0
    for f in sorted(p for p in b.rglob("*") if p.is_file()):
        data = f.read_bytes()
        k = min(len(data), 512 if f.name == "manifest.json" else 24)
        offsets = range(len(data)) if deep else sorted(rng.choice(len(data), k, replace=False))
        for i in offsets:
            bad = bytearray(data)
            bad[i] ^= 1
            f.write_bytes(bytes(bad))
            try:
                res = verify_bundle(b)
                assert res.count > 0, (f.name, i)
            except vectors.BundleError:
                pass
            flips += 1
        f.write_bytes(data)
    assert verify_bundle(b).count == 0
    record("network-bundle-flips", "verify of a flipped network bundle", flips, 0, unit="flips")


def test_weights_declared_beyond_any_network_are_refused_before_reading():
    """A layer that declares 2**20 x 2**20 weights, and a member whose header agrees: refused on the header alone."""
    from golden.network import NetworkError, store

    big = 1 << 20
    fc = Linear(in_shape=(big,), fmt_src=QFormat(8, 5), fmt_in=QFormat(8, 5), fmt_out=QFormat(8, 4),
                fmt_w=QFormat(8, 6), in_features=big, out_features=big)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("fc.weight.npy", _npy_member(np.int8, (big, big)))
    with pytest.raises(NetworkError, match="more than any saved network holds"):
        store.read_weights(buf.getvalue(), Path("w.npz"), {"fc": (fc, {"weight": "0" * 64})})
