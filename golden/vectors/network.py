"""The network bundle kind: what a whole :class:`golden.Network` does on S samples of T steps, in the C's layout.

A network bundle (``manifest["kind"] == "network"``) holds the embedded network directory
(``network/network.toml`` + ``network/weights.npz``: golden's canonical save of the network,
byte for byte a function of it), the input ``x.npy`` (S, T, *c_input_shape), every layer's outputs
``<layer>.out.npy`` (S, T, *c_shape) and, for neuron layers, ``<layer>.v.npy`` /
``<layer>.spikes.npy``; exports as for any bundle (``hex``, ``h``, ``csv``, ...: one
:class:`~golden.vectors.formats.Format` each, over this kind's :func:`view`). Every array is
channels-last (the C's order, :func:`to_c`). Every sample starts from fresh state (the C's
``reset()`` between samples). The format is in vectors/README.md ("Network bundles").

Verification, integrity first (each failure exit 2): the manifest's fields and types; the
directory (exactly manifest.json, the listed files and ``network/`` holding exactly network.toml +
weights.npz, all regular files, no symlink, sizes as listed); the sha256 of every file, before
anything is parsed; the embedded network read relative to ``network/`` (nothing outside the bundle
is ever opened), its digest = the manifest's, and both its files byte-identical to golden's
canonical save of it (an added comment or an extra array is refused); the manifest equal, field
by field and type by type, to what golden writes for that network, S, T and stimulus; every .npy
header exactly golden's, values inside their formats; ``x`` the stimulus the manifest names. Then
the content, exit 1 (the first (layer, sample, t, index)): the re-simulation reproduces every layer
at every step and the overflow counts; every export re-rendered is byte-identical.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..version import __version__
from ..network import store
from ..network.graph import Network
from ..network.layers import Flatten, NetworkError, Neuron, type_name
from ..spec import QFormat, Spec, SpecError
from ..stimuli import BLOCK, Stimulus, check_seed
from . import core
from .core import FORMAT, SCHEMA, BundleError, Result, need
from .formats import (
    DEFAULT_FORMATS,
    EXPORTS,
    Named,
    Table,
    View,
    check_prefix,
    check_width,
    differing_files,
    hex_digits,
    parse_formats,
    safe_text,
    write_exports,
)
from .npy import MAX_ELEMENTS, NpyWriter, le, npy_header, open_nofollow

KIND = "network"
NET_DIR = "network"
NET_FILES = store.FILES
STIMULI = ("uniform", "poisson", "edges")  # ties / mixed seek ties of one neuron spec: no meaning at a network input
H_FILE = "vectors.h"
RESET = "every sample starts from fresh state (the C's reset() between samples)"
LAYOUT = ("channels-last (the generated C's order): torch (C, L) is stored (L, C), (C, H, W) as (H, W, C), 1-D "
          "unchanged, a Flatten's output is its input taken channels-last then flattened; every array is "
          "(samples, steps, *c_shape), element (s, t, i) of a layer of `size` values at flat index "
          "(s * steps + t) * size + i")
MAX_VALUES = 1 << 34  # values of all arrays of one bundle: far beyond a few hundred MiB of simulation
# peak memory per value (all arrays of a bundle): simulate_c measured with tracemalloc at 8-9 bytes (the corpus
# networks, S = 32, T = 64); the exports are rendered in memory too (hex: up to ~20 bytes per value): a margin
BYTES_PER_VALUE = 48
MAX_NAME = 96
FIELDS = ("out", "v", "spikes")  # a layer's arrays, in this order everywhere (the manifest's JSON sorts keys)
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_]|\.(?=[A-Za-z0-9_])){0," + str(MAX_NAME - 1) + "}")
_FILE = re.compile(r"(network/)?[A-Za-z0-9_][A-Za-z0-9_.]{0,120}")


# ------------------------------------------------------------------ layout
def c_shape(shape) -> tuple:
    """A torch per-sample shape (C, *spatial) in the C's order (*spatial, C); 1-D unchanged."""
    shape = tuple(int(n) for n in shape)
    return shape if len(shape) < 2 else (*shape[1:], shape[0])


def to_c(a: np.ndarray, src_shape=None) -> np.ndarray:
    """(S, T, *torch shape) -> (S, T, *c_shape). ``src_shape``: a Flatten's input shape (flatten channels-last)."""
    a = np.asarray(a)
    if src_shape is not None and len(src_shape) >= 2:
        cf = a.reshape(*a.shape[:2], *src_shape)
        return np.ascontiguousarray(np.moveaxis(cf, 2, -1)).reshape(a.shape)
    return np.ascontiguousarray(np.moveaxis(a, 2, -1)) if a.ndim >= 4 else a


def from_c(a: np.ndarray) -> np.ndarray:
    """(S, T, *c_shape) -> (S, T, *torch shape) (not for a Flatten's output)."""
    a = np.asarray(a)
    return np.ascontiguousarray(np.moveaxis(a, -1, 2)) if a.ndim >= 4 else a


def flatten_source(node) -> tuple | None:
    return tuple(node.layer.in_shape) if isinstance(node.layer, Flatten) else None


# ------------------------------------------------------------------- names
def layer_ident(name) -> str:
    """A layer name as a C identifier part and a file stem: '.' -> '_'; anything else unsafe is refused."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise NetworkError(f"layer name {str(name)[:80]!r}: a network bundle needs layer names of letters, digits, "
                           f"'_' and single '.' between them (at most {MAX_NAME}; no '..', no leading or trailing "
                           f"'.'): they become C identifiers and file names; rename it")
    return name.replace(".", "_")


def _macros(ident: str, neuron: bool) -> list:
    """Every per-layer name the exports declare for a layer (bundle.vh, vectors.h), to keep them distinct."""
    C = f"CNN_{ident.upper()}"
    names = [f"GV_{C}_SIZE", f"{C}_SIZE", f"{C}_BITS", f"{C}_FRAC"]
    for k in (k for k in FIELDS if neuron or k == "out"):
        K = "" if k == "out" else f"_{k.upper()}"
        names += [f"GV_{C}{K}_{s}" for s in ("BITS", "FRAC", "DIGITS")]
    return names


def idents(net: Network) -> list:
    """(node, ident) per layer; refused when two layers' C names, file names or declared macros would meet."""
    out, seen, macros = [], {}, {}
    for node in net.nodes:
        ident = layer_ident(node.name)
        key = ident.upper()
        if key in seen:
            raise NetworkError(f"layer names {seen[key]!r} and {node.name!r}: both become the C name cnn_{ident} "
                               f"(up to case); rename one")
        seen[key] = node.name
        for mac in _macros(ident, isinstance(node.layer, Neuron)):
            if mac in macros:
                raise NetworkError(f"layer names {macros[mac]!r} and {node.name!r}: both would declare {mac} in "
                                   f"the exports (bundle.vh / vectors.h); rename one")
            macros[mac] = node.name
        out.append((node, ident))
    return out


# ----------------------------------------------------------------- stimulus
def _input_spec(fmt: QFormat) -> Spec:
    """A spec whose only role is its ``fmt_in``: the input format the stimuli draw from."""
    return Spec(kind="IF", fmt_in=fmt, fmt_v=fmt, fmt_out=fmt, reset="soft", decay_input=False, v_threshold=1,
                v_reset=0, reciprocal_tau=0, spike_out=1, profile="custom")


def check_stimulus(generator) -> str:
    if generator not in STIMULI:
        raise SpecError(f"stimulus: {generator!r} is not a network stimulus (expected one of: {', '.join(STIMULI)}; "
                        f"ties and mixed seek the ties of one neuron spec and have no meaning at a network input)")
    return generator


def network_stimulus(net: Network, samples: int, steps: int, seed: int, generator: str) -> np.ndarray:
    """The raw input (S, T, *c_input_shape), channels-last, in ``net.fmt_input``.

    golden.stimuli's generator over S * n_in "neurons" for T steps: sample s is columns
    s * n_in .. (s + 1) * n_in - 1, each in the C's input order. Deterministic in
    (input format, input shape, S, T, seed, generator); a shorter T is a prefix of a longer one. A network
    deployed with ``timestep_mode = 'duplicate'`` (``net.meta``) gets each sample's first frame at every step.
    """
    check_stimulus(generator)
    shape = c_shape(net.input_shape)
    n_in = int(np.prod(shape))
    st = Stimulus(_input_spec(net.fmt_input), samples * n_in, check_seed(seed), generator)
    x = np.concatenate([st.block(k, min(BLOCK, steps - k * BLOCK)) for k in range(-(-steps // BLOCK))])
    x = x.reshape(steps, samples, *shape).swapaxes(0, 1)
    if net.meta.get("timestep_mode") == "duplicate":  # Qualia's deployed main loop: one static frame per sample
        x = np.repeat(x[:, :1], steps, axis=1)
    return np.ascontiguousarray(x).astype(net.fmt_input.dtype)


# ------------------------------------------------------------------ manifest
def _meta(file: str, fmt: QFormat | None, shape) -> dict:
    if fmt is None:  # spikes
        return {"file": file, "dtype": "bool", "shape": list(shape), "format": {"bits": 1, "frac": 0}, "q": "Q1.0"}
    return {"file": file, "dtype": str(fmt.dtype), "shape": list(shape), "format": {"bits": fmt.bits,
                                                                                    "frac": fmt.frac}, "q": str(fmt)}


def layer_entry(node, ident: str, samples: int, steps: int, overflow: dict) -> dict:
    layer = node.layer
    cs = c_shape(layer.out_shape)
    dims = [samples, steps, *cs]
    arrays = {"out": _meta(f"{ident}.out.npy", layer.fmt_out, dims)}
    if isinstance(layer, Neuron):
        arrays["v"] = _meta(f"{ident}.v.npy", layer.spec.fmt_v, dims)
        arrays["spikes"] = _meta(f"{ident}.spikes.npy", None, dims)
    return {"name": node.name, "ident": ident, "c_name": f"cnn_{ident}", "type": type_name(layer),
            "inputs": list(node.inputs), "shape": list(layer.out_shape), "c_shape": list(cs),
            "size": int(np.prod(cs)), "arrays": arrays, "overflow": {k: int(v) for k, v in sorted(overflow.items())}}


def base_manifest(net: Network, samples: int, steps: int, generator: str, seed: int, overflow: dict,
                  version: str = __version__) -> dict:
    """Everything but ``exports`` and ``files``: a function of the network, S, T, the stimulus and the counts."""
    shape = c_shape(net.input_shape)
    entries = [layer_entry(node, ident, samples, steps, overflow.get(node.name, {})) for node, ident in idents(net)]
    out = next(e for e in entries if e["name"] == net.output)
    return {
        "format": FORMAT, "schema": SCHEMA, "kind": KIND, "golden_version": version,
        "network": {"dir": NET_DIR, "digest": net.digest(), "input_shape": list(net.input_shape),
                    "c_input_shape": list(shape), "output": net.output, "layers": len(entries)},
        "samples": samples, "steps": steps,
        "stimulus": {"generator": generator, "seed": seed, "block": BLOCK},
        "layout": LAYOUT, "reset": RESET,
        "input": _meta("x.npy", net.fmt_input, [samples, steps, *shape]) | {"size": int(np.prod(shape))},
        "layers": entries,
        "output": {"layer": out["name"], "c_name": out["c_name"], "file": out["arrays"]["out"]["file"],
                   "size": out["size"]},
        "exports": {},
    }


def arrays_of(m: dict) -> dict:
    """key -> array meta for every array of the bundle: 'x', '<ident>.out', '<ident>.v', '<ident>.spikes'."""
    out = {"x": m["input"]}
    for e in m["layers"]:
        for k in FIELDS:
            if k in e["arrays"]:
                out[f"{e['ident']}.{k}"] = e["arrays"][k]
    return out


# ---------------------------------------------------------------------- view
def view(m: dict, arrays: dict | None = None) -> View:
    """What the exports render: every array (channels-last), the per-layer parameters, one CSV table per layer."""
    named = {k: Named(k, None if arrays is None else arrays[k], a["format"]["bits"], a["format"]["frac"],
                      a["dtype"], tuple(a["shape"])) for k, a in arrays_of(m).items()}
    S, T = m["samples"], m["steps"]
    tables = [Table("input.csv", ("sample", "t", "i"), (S, T, m["input"]["size"]), (("x", "x"),))]
    for e in m["layers"]:
        cols = tuple((k if k != "spikes" else "spike", f"{e['ident']}.{k}") for k in FIELDS if k in e["arrays"])
        tables.append(Table(f"{e['ident']}.csv", ("sample", "t", "i"), (S, T, e["size"]), cols))
    return View(KIND, named, vh=lambda: vh_params(m), h=lambda prefix: h_parts(m, prefix), tables=tuple(tables),
                extra={"manifest": m})


def _version(m: dict) -> str:
    return safe_text("golden_version", m["golden_version"])


def _stim_line(m: dict) -> str:
    st = m["stimulus"]
    return (f"network sha256 {_hexdigest(m['network']['digest'])}; stimulus "
            f"{safe_text('stimulus.generator', st['generator'])} seed {int(st['seed'])}; "
            f"{int(m['samples'])} samples x {int(m['steps'])} steps")


def _hexdigest(d) -> str:
    if not core.is_sha256(d):
        raise BundleError("manifest.json: network.digest is not 64 lowercase hex digits")
    return d


def vh_params(m: dict) -> tuple:
    """(comment lines, [(localparam, value)]) of ``bundle.vh``."""
    inp = m["input"]
    p = [("GV_SAMPLES", m["samples"]), ("GV_STEPS", m["steps"]), ("GV_LAYERS", len(m["layers"])),
         ("GV_IN_SIZE", inp["size"]), ("GV_IN_BITS", inp["format"]["bits"]), ("GV_IN_FRAC", inp["format"]["frac"]),
         ("GV_IN_DIGITS", hex_digits(inp["format"]["bits"]))]
    for e in m["layers"]:
        P = f"GV_{e['c_name'].upper()}"
        p.append((f"{P}_SIZE", e["size"]))
        for k in (k for k in FIELDS if k in e["arrays"]):
            a = e["arrays"][k]
            K = "" if k == "out" else f"_{k.upper()}"
            p += [(f"{P}{K}_BITS", a["format"]["bits"]), (f"{P}{K}_FRAC", a["format"]["frac"]),
                  (f"{P}{K}_DIGITS", hex_digits(a["format"]["bits"]))]
    head = [f"// Generated by golden {_version(m)} (golden vectors, network bundle); do not edit.",
            f"// {_stim_line(m)}",
            "// `include inside a module. Layout: word (s*GV_STEPS + t)*SIZE + i of each .hex file is sample s,",
            "// step t, element i of the layer's channels-last output (the generated C's order)."]
    return head, p


def h_parts(m: dict, prefix: str) -> tuple:
    """(comment lines, [(macro, value)], [(C array, key)]) of ``vectors.h``: golden_in / golden_out, every layer's
    size macros."""
    P = prefix.upper()
    inp, out = m["input"], next(e for e in m["layers"] if e["name"] == m["output"]["layer"])
    ofmt = out["arrays"]["out"]["format"]
    defs = [("SAMPLES", m["samples"]), ("STEPS", m["steps"]), ("IN_SIZE", inp["size"]), ("OUT_SIZE", out["size"]),
            ("IN_BITS", inp["format"]["bits"]), ("IN_FRAC", inp["format"]["frac"]), ("OUT_BITS", ofmt["bits"]),
            ("OUT_FRAC", ofmt["frac"]), ("LAYERS", len(m["layers"])), ("VERSION", f'"{_version(m)}"'),
            ("NETWORK_SHA256", f'"{_hexdigest(m["network"]["digest"])}"')]
    for e in m["layers"]:
        f = e["arrays"]["out"]["format"]
        C = e["c_name"].upper()
        defs += [(f"{C}_SIZE", e["size"]), (f"{C}_BITS", f["bits"]), (f"{C}_FRAC", f["frac"])]
    comments = [f"// Generated by golden {_version(m)} (golden vectors, network bundle); do not edit.",
                f"// {_stim_line(m)}",
                f"// Layout: channels-last (the generated C's order); element (s, t, i) at index "
                f"(s * {P}_STEPS + t) * SIZE + i.",
                f"// {P.lower()}_in: the cnn() input per step; {P.lower()}_out: the cnn() output per step; every "
                f"layer's output is in the bundle's .npy / .hex files ({P}_<C layer name>_SIZE values per step).",
                "// Every sample starts from fresh state: call reset() between samples.",
                "// The arrays are static const: include this header from any number of translation units."]
    return comments, defs, [("in", "x"), ("out", f"{out['ident']}.out")]


# ------------------------------------------------------------------ simulate
def simulate_c(net: Network, x_c: np.ndarray) -> tuple:
    """(arrays in the C layout keyed like the manifest, {layer: overflow}) of ``net`` on channels-last ``x_c``."""
    tr = net.simulate(from_c(x_c))
    arrays, overflow = {"x": x_c}, {}
    for node, ident in idents(net):
        lt = tr.layers[node.name]
        src = flatten_source(node)
        arrays[f"{ident}.out"] = to_c(lt.out, src)
        if isinstance(node.layer, Neuron):
            arrays[f"{ident}.v"] = to_c(lt.v)
            arrays[f"{ident}.spikes"] = to_c(lt.spikes)
        overflow[node.name] = {k: int(v) for k, v in lt.overflow.items()}
    return arrays, overflow


def count_values(net: Network, samples: int, steps: int) -> int:
    per = int(np.prod(net.input_shape))
    for node in net.nodes:
        per += int(np.prod(node.layer.out_shape)) * (3 if isinstance(node.layer, Neuron) else 1)
    return samples * steps * per


def check_size(net: Network, samples: int, steps: int) -> int:
    for name, v in (("samples", samples), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SpecError(f"{name}: expected a positive integer, got {v!r}")
    if samples * steps > MAX_VALUES or count_values(net, samples, steps) > MAX_VALUES:
        raise SpecError(f"samples x steps: {samples} x {steps} is beyond what a network bundle holds "
                        f"({count_values(net, samples, steps)} values > 2**34); use fewer samples or steps")
    values = count_values(net, samples, steps)
    need_bytes, avail = values * BYTES_PER_VALUE, core.available_memory()
    if avail is not None and need_bytes > avail:
        raise SpecError(f"samples x steps: {samples} x {steps} need about {core.gib(need_bytes)} of memory to "
                        f"simulate ({values} values), only {core.gib(avail)} available; use fewer samples or steps")
    return values


def size_bound(m: dict, formats) -> int:
    total = 1 << 20
    for a in arrays_of(m).values():
        total += int(np.prod(a["shape"])) * np.dtype(a["dtype"]).itemsize + 128
    v = view(m)
    return total + sum(EXPORTS[f].size_bound(v) for f in formats if f in EXPORTS)


# ------------------------------------------------------------------ writing
def _write_npy(path: Path, meta: dict, a: np.ndarray) -> None:
    w = NpyWriter(path, meta["dtype"], meta["shape"])
    try:
        w.write(np.asarray(a))
    finally:
        w.close()


def _embed(net: Network, d: Path) -> None:
    """``d/network``: golden's canonical save of ``net`` (the bytes verify re-derives from the network)."""
    dst = d / NET_DIR
    dst.mkdir()
    for name, data in store.render(net).items():
        with open(dst / name, "xb") as f:
            f.write(data)
    os.chmod(dst, 0o777 & ~core.umask())


def _inside(a: Path, b: Path) -> bool:
    a, b = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return a == b or b in a.parents


def generate_network(net, out, *, samples: int, steps: int, seed: int, stimulus: str,
                     formats=DEFAULT_FORMATS, prefix: str = "golden", force: bool = False) -> Path:
    """Write a network bundle: ``net`` (a :class:`Network` or a saved network directory) on S x T steps of
    ``stimulus``; the C's layout (see the module doc). Same arguments, same bytes."""
    netdir = None
    if not isinstance(net, Network):
        if not isinstance(net, (str, os.PathLike)):
            raise SpecError(f"network: expected a golden.Network or a network directory, got {type(net).__name__}")
        netdir = Path(net)
        net = Network.load(netdir)
    check_stimulus(stimulus)
    seed = check_seed(seed)
    formats = parse_formats(formats)
    check_prefix(prefix)
    idents(net)
    check_size(net, samples, steps)
    out = Path(os.path.abspath(out))
    if netdir is not None and _inside(out, netdir):
        raise BundleError(f"{out}: is inside the network directory {netdir}; write the bundle elsewhere")
    x = network_stimulus(net, samples, steps, seed, stimulus)
    arrays, overflow = simulate_c(net, x)
    m = base_manifest(net, samples, steps, stimulus, seed, overflow)
    core.check_disk(core.existing_parent(out), size_bound(m, formats))

    def fill(d: Path) -> None:
        _embed(net, d)
        for key, a in arrays_of(m).items():
            _write_npy(d / a["file"], a, arrays[key])
        m["exports"].update(write_exports(d, view(m, arrays), [f for f in formats if f in EXPORTS], prefix))
        core.finish(d, m)

    core.build(out, force, fill)
    return out


# ------------------------------------------------------------------ reading
def _fields(m: dict) -> tuple:
    S = core.count(m, "samples", 1, MAX_ELEMENTS)
    T = core.count(m, "steps", 1, MAX_ELEMENTS)
    st = need(m, "stimulus", dict)
    gen = need(st, "generator", str, "stimulus.")
    if gen not in STIMULI:
        raise BundleError(f"manifest.json: stimulus.generator {gen[:20]!r} is not a network stimulus")
    seed = core.count(st, "seed", 0, 1 << 4096, "stimulus.")
    version = need(m, "golden_version", str)
    try:
        safe_text("golden_version", version)
    except SpecError as e:
        raise BundleError(f"manifest.json: {e}") from None
    digest = need(need(m, "network", dict), "digest", str, "network.")
    if not core.is_sha256(digest):
        raise BundleError("manifest.json: network.digest: expected 64 lowercase hex digits")
    files = need(m, "files", dict)
    core.check_files_entries(files, lambda f: bool(_FILE.fullmatch(f)) and ".." not in f)
    for f in NET_FILES:
        if f"{NET_DIR}/{f}" not in files:
            raise BundleError(f"manifest.json: files: {NET_DIR}/{f} is missing (the embedded network)")
    below = {f.split("/", 1)[1] for f in files if "/" in f}
    if below != set(NET_FILES):
        raise BundleError(f"manifest.json: files: {NET_DIR}/ must hold exactly {', '.join(NET_FILES)}")
    exports = need(m, "exports", dict)
    prefix = "golden"
    for name in exports:
        if name not in EXPORTS:
            raise BundleError(f"manifest.json: exports: unknown format {str(name)[:20]!r}")
        if EXPORTS[name].prefixed:
            try:
                prefix = check_prefix(need(exports[name], "prefix", str, f"exports.{name}."))
            except SpecError as e:
                raise BundleError(f"manifest.json: exports.{name}.{e}") from None
    return S, T, gen, seed, version, digest, files, sorted(exports), prefix


def load_network(bundle: Path, digest: str) -> Network:
    """The embedded network, read relative to ``network/`` (its files' sha256 already checked), and byte-identical
    to golden's canonical save of it."""
    d = bundle / NET_DIR
    try:
        net = Network.load(d)
    except SpecError as e:  # NetworkError, a bad layer spec: a malformed embedded network, named
        raise BundleError(f"{NET_DIR}/: not a loadable golden network ({str(e)[:200]})") from None
    if net.digest() != digest:
        raise BundleError(f"{NET_DIR}/: its digest {net.digest()[:16]}... differs from the manifest's "
                          f"network.digest {digest[:16]}...")
    for name, data in store.render(net).items():
        with open_nofollow(d / name) as f:
            if f.read(len(data) + 1) != data:
                raise BundleError(f"{NET_DIR}/{name}: not golden's canonical save of the embedded network (edited: "
                                  f"a comment, an extra array, another layout); regenerate the bundle")
    return net


def _overflow_of(m: dict) -> dict:
    out = {}
    layers = m.get("layers")
    for e in layers if isinstance(layers, list) else []:
        if isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("overflow"), dict) \
                and all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in e["overflow"].items()):
            out[e["name"]] = e["overflow"]
    return out


def load_manifest(bundle: Path, m: dict) -> tuple:
    """(net, manifest, prefix) after the structural checks (fields, directory, hashes, network, equality)."""
    S, T, gen, seed, version, digest, files, exports, prefix = _fields(m)
    core.check_listing(bundle, files, (NET_DIR,))
    core.check_hashes(bundle, files)
    net = load_network(bundle, digest)
    try:
        check_size(net, S, T)
        expected = base_manifest(net, S, T, gen, seed, _overflow_of(m), version)
    except SpecError as e:
        raise BundleError(f"manifest.json: {e}") from None
    v = view(expected)
    for name in exports:
        expected["exports"][name] = EXPORTS[name].meta(v, prefix)
    expected["files"] = files
    core.same_as_written(m, expected, "the embedded network, these samples, steps and stimulus")
    core.check_listed(files, {f"{NET_DIR}/{f}" for f in NET_FILES} | {a["file"] for a in arrays_of(m).values()}
                      | {f for name in exports for f in EXPORTS[name].files(v)})
    return net, m, prefix


def open_array(path: Path, meta: dict) -> np.ndarray:
    """A .npy whose header is byte for byte golden's for the manifest's dtype and shape; values in the format."""
    dtype, shape = le(meta["dtype"]), tuple(meta["shape"])
    head = npy_header(dtype, shape)
    with open_nofollow(path) as f:
        got = f.read(len(head))
        size = os.fstat(f.fileno()).st_size
        if got != head:
            raise BundleError(f"{path.name}: not a valid .npy file (its header is not golden's for "
                              f"{np.dtype(dtype)} {list(shape)})")
        want = len(head) + int(np.prod(shape)) * dtype.itemsize
        if size != want:
            raise BundleError(f"{path.name}: truncated or corrupt ({size} bytes, header promises {want})")
        a = np.frombuffer(f.read(), dtype=dtype).reshape(shape)
    if dtype == np.bool_:
        if a.view(np.uint8).max(initial=0) > 1:
            raise BundleError(f"{path.name}: holds a bool byte other than 0/1 (corrupt)")
    else:
        try:
            check_width(a, meta["format"]["bits"], path.name)
        except SpecError as e:
            raise BundleError(f"{e} (format mismatch {meta['q']})") from None
    return a


def read_network_bundle(bundle) -> tuple:
    """(network, {array key: array}, manifest) of a network bundle after the structural checks (no re-simulation)."""
    bundle = Path(bundle)
    m = core.read_manifest(bundle)
    if m.get("kind") != KIND:
        raise BundleError("manifest.json: not a network bundle (kind is not 'network')")
    net, m, _ = load_manifest(bundle, m)
    arrays = {k: open_array(bundle / a["file"], a) for k, a in arrays_of(m).items()}
    return net, arrays, m


@dataclass
class NetDiff:
    """The first difference of a network bundle: (layer, sample, t, index) and the field."""

    bundle: str
    layer: str | None
    sample: int | None
    t: int | None
    index: tuple | None
    field: str
    expected: object
    got: object

    def text(self) -> str:
        idx = None if self.index is None else tuple(int(i) for i in self.index)
        return (f"(bundle={self.bundle}, layer={self.layer}, sample={self.sample}, t={self.t}, index={idx}, "
                f"field={self.field}, expected={self.expected}, got={self.got})")


# ------------------------------------------------------------------ content
def _position(m: dict, key: str, flat: int) -> tuple:
    a = arrays_of(m)[key]
    S, T, *cs = a["shape"]
    s, t, *idx = np.unravel_index(flat, (S, T, *cs))
    return int(s), int(t), tuple(int(i) for i in idx)


def _layer_name(m: dict, key: str) -> str:
    if key == "x":
        return "input"
    ident, field = key.rsplit(".", 1)
    return next(e["name"] for e in m["layers"] if e["ident"] == ident)


def _compare(res: Result, name: str, m: dict, pairs: dict, where: str = "") -> None:
    """pairs: key -> (expected, got). Counts every difference; the first is the earliest (s, t), then layer order."""
    order = list(arrays_of(m))
    best = None
    for key, (exp, got) in pairs.items():
        exp, got = np.asarray(exp).reshape(-1).astype(np.int64), np.asarray(got).reshape(-1).astype(np.int64)
        bad = exp != got
        n = int(np.count_nonzero(bad))
        if not n:
            continue
        i = int(np.argmax(bad))
        s, t, idx = _position(m, key, i)
        cand = ((s, t, order.index(key), idx), key, i, int(exp[i]), int(got[i]), n)
        best = cand if best is None or cand[0] < best[0] else best
        res.count += n
    if best is not None and res.first is None:
        (s, t, _, idx), key, i, e, g, _ = best
        res.first = NetDiff(name, _layer_name(m, key), s, t, idx, where + key.rsplit(".", 1)[-1], e, g)


def verify(bundle: Path, m: dict, progress: bool | None = None) -> Result:
    """Check one network bundle (see the module doc); BundleError when it cannot be read or trusted."""
    res = Result(bundle)
    name = str(bundle)
    net, m, prefix = load_manifest(bundle, m)
    res.manifest = m
    arrays = {k: open_array(bundle / a["file"], a) for k, a in arrays_of(m).items()}
    st = m["stimulus"]
    x_exp = network_stimulus(net, m["samples"], m["steps"], st["seed"], st["generator"])
    if not np.array_equal(x_exp, arrays["x"]):
        s, t, idx = _position(m, "x", int(np.argmax((x_exp != arrays["x"]).reshape(-1))))
        raise BundleError(f"x.npy: not the stimulus the manifest names ({st['generator']} seed {st['seed']}): first "
                          f"difference at sample {s}, t {t}, index {idx}")
    try:
        sim, overflow = simulate_c(net, arrays["x"])
    except SpecError as e:
        res.add(NetDiff(name, None, None, None, None, "simulation", "a completed simulation", str(e)[:200]))
        return res
    _compare(res, name, m, {k: (sim[k], arrays[k]) for k in arrays if k != "x"})
    for e in m["layers"]:
        if e["overflow"] != dict(sorted(overflow[e["name"]].items())):
            res.add(NetDiff(name, e["name"], None, None, None, "overflow", overflow[e["name"]], e["overflow"]))
    vw = view(m, arrays)
    for ex in m["exports"]:
        fmt = EXPORTS[ex]
        p = m["exports"][ex].get("prefix", prefix)
        for fname in differing_files(bundle, fmt.render(vw, p), open_nofollow):
            _locate(res, name, bundle / fname, fmt, vw, p)
    res.view = vw
    return res


def _locate(res: Result, name: str, path: Path, fmt, vw: View, prefix: str) -> None:
    """An export differs from the arrays: the first differing element, or 'different text'."""
    before = res.count
    parsed = fmt.parse(path, vw, prefix)
    _compare(res, name, vw.extra["manifest"], {k: (vw.arrays[k].data, got) for k, got in parsed.items()},
             f"{path.name}:")
    if res.count == before:
        res.add(NetDiff(name, None, None, None, None, path.name, "golden's rendering", "different text"))


# ------------------------------------------------------------------- export
def export_plan(res: Result, names, prefix: str | None) -> tuple:
    """(prefix, manifest without files and the replaced exports, size bound) for ``export``."""
    m = res.manifest
    prefix = check_prefix(prefix or m["exports"].get("h", {}).get("prefix", "golden"))
    m = {k: v for k, v in m.items() if k != "files"}
    m["exports"] = {k: v for k, v in m["exports"].items() if k not in names}
    return prefix, m, size_bound(m, ["npy", *names, *m["exports"]])


def export_view(d: Path, res: Result, m: dict) -> View:
    """The view of the copied bundle in ``d`` (arrays read back from the copy, headers checked)."""
    return view(m, {k: open_array(d / a["file"], a) for k, a in arrays_of(m).items()})


__all__ = ["DEFAULT_FORMATS", "KIND", "LAYOUT", "STIMULI", "NetDiff", "arrays_of", "base_manifest", "c_shape",
           "from_c", "generate_network", "idents", "layer_ident", "network_stimulus", "read_network_bundle",
           "simulate_c", "to_c", "verify", "view"]
