"""Network bundles: what a whole :class:`golden.Network` does on S samples of T steps, in the generated C's layout.

A network bundle (``manifest["kind"] == "network"``) holds the embedded network directory
(``network/network.toml`` + ``network/weights.npz``, byte-identical), the input ``x.npy``
(S, T, *c_input_shape), every layer's outputs ``<layer>.out.npy`` (S, T, *c_shape) and, for
neuron layers, ``<layer>.v.npy`` / ``<layer>.spikes.npy``; exports ``hex`` (one ``$readmemh``
file per array + ``bundle.vh``) and ``h`` (``vectors.h``). Every array is channels-last (the C's
order, :func:`to_c`). Every sample starts from fresh state (the C's ``reset()`` between samples).
The format is in vectors/README.md ("Network bundles"); verification is in ``netverify.py``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

from .. import __version__
from ..network.graph import Network
from ..network.layers import Flatten, NetworkError, Neuron, type_name
from ..spec import QFormat, Spec, SpecError
from ..stimuli import BLOCK, Stimulus, check_seed
from .bundle import FORMAT, SCHEMA, _build, _parent, check_disk, dump_manifest, sha256_file
from .formats import _CTYPE, _c_numbers, c_preamble, check_prefix, hex_bytes, hex_digits, parse_formats, safe_text
from .npy import BundleError, NpyWriter, open_nofollow

KIND = "network"
NET_DIR = "network"
NET_FILES = ("network.toml", "weights.npz")
STIMULI = ("uniform", "poisson", "edges")  # ties / mixed seek ties of one neuron spec: no meaning at a network input
EXPORT_NAMES = ("hex", "h")
DEFAULT_FORMATS = ("npy", "hex", "h")
H_FILE, VH_FILE = "vectors.h", "bundle.vh"
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
_NAME = re.compile(r"[A-Za-z0-9_.]{1," + str(MAX_NAME) + "}")


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
                           f"'_' and '.' (at most {MAX_NAME}): they become C identifiers and file names; rename it")
    return name.replace(".", "_")


def idents(net: Network) -> list:
    """(node, ident) per layer; two names that meet once '.' -> '_' and upper case are refused."""
    out, seen = [], {}
    for node in net.nodes:
        ident = layer_ident(node.name)
        key = ident.upper()
        if key in seen:
            raise NetworkError(f"layer names {seen[key]!r} and {node.name!r}: both become the C name cnn_{ident} "
                               f"(up to case); rename one")
        seen[key] = node.name
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
    (input format, input shape, S, T, seed, generator); a shorter T is a prefix of a longer one.
    """
    check_stimulus(generator)
    shape = c_shape(net.input_shape)
    n_in = int(np.prod(shape))
    st = Stimulus(_input_spec(net.fmt_input), samples * n_in, check_seed(seed), generator)
    x = np.concatenate([st.block(k, min(BLOCK, steps - k * BLOCK)) for k in range(-(-steps // BLOCK))])
    return np.ascontiguousarray(x.reshape(steps, samples, *shape).swapaxes(0, 1)).astype(net.fmt_input.dtype)


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


def hex_meta(m: dict) -> dict:
    e = {}
    for key, a in arrays_of(m).items():
        bits = a["format"]["bits"]
        e[key] = {"file": f"{key}.hex", "bits": bits, "digits": hex_digits(bits), "words": int(np.prod(a["shape"]))}
    e["params"] = VH_FILE
    return e


def export_meta(name: str, m: dict, prefix: str) -> dict:
    return hex_meta(m) if name == "hex" else {"file": H_FILE, "prefix": prefix}


def export_files(name: str, m: dict) -> list:
    if name == "hex":
        return [f"{k}.hex" for k in arrays_of(m)] + [VH_FILE]
    return [H_FILE]


def parse_export_formats(formats) -> tuple:
    formats = parse_formats(formats)
    for f in formats:
        if f not in ("npy", *EXPORT_NAMES):
            raise SpecError(f"formats: {f!r} is not written for network bundles (expected some of: "
                            f"npy, {', '.join(EXPORT_NAMES)})")
    return formats


# ------------------------------------------------------------------ renders
def render_hex(m: dict, arrays: dict) -> dict:
    """file name -> bytes: one ``$readmemh`` file per array (word (s*T + t)*size + i) and ``bundle.vh``."""
    files = {}
    for key, a in arrays_of(m).items():
        files[f"{key}.hex"] = hex_bytes(np.asarray(arrays[key]), a["format"]["bits"], f"{key}.hex")
    files[VH_FILE] = vh_text(m).encode()
    return files


def _version(m: dict) -> str:
    return safe_text("golden_version", m["golden_version"])


def _stim_line(m: dict) -> str:
    st = m["stimulus"]
    return (f"network sha256 {_hexdigest(m['network']['digest'])}; stimulus "
            f"{safe_text('stimulus.generator', st['generator'])} seed {int(st['seed'])}; "
            f"{int(m['samples'])} samples x {int(m['steps'])} steps")


def _hexdigest(d) -> str:
    if not isinstance(d, str) or not re.fullmatch(r"[0-9a-f]{64}", d):
        raise BundleError("manifest.json: network.digest is not 64 lowercase hex digits")
    return d


def vh_text(m: dict) -> str:
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
    return "\n".join(head + [f"localparam integer {k} = {int(v)};" for k, v in p]) + "\n"


def render_h(m: dict, arrays: dict, prefix: str) -> bytes:
    """``vectors.h``: golden_in / golden_out (``static const``, channels-last) and every layer's size macros."""
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
    width = max(len(k) for k, _ in defs) + len(P) + 1
    lines = [f"// Generated by golden {_version(m)} (golden vectors, network bundle); do not edit.",
             f"// {_stim_line(m)}",
             f"// Layout: channels-last (the generated C's order); element (s, t, i) at index "
             f"(s * {P}_STEPS + t) * SIZE + i.",
             f"// {P.lower()}_in: the cnn() input per step; {P.lower()}_out: the cnn() output per step; every "
             f"layer's output is in the bundle's .npy / .hex files ({P}_<C layer name>_SIZE values per step).",
             "// Every sample starts from fresh state: call reset() between samples.",
             "// The arrays are static const: include this header from any number of translation units.",
             *c_preamble(P)]
    for k, v in defs:
        val = f"({v})" if isinstance(v, int) and v < 0 else str(v)
        lines.append(f"#define {(P + '_' + k).ljust(width)} {val}")
    chunks = ["\n".join(lines) + "\n"]
    for cname, a, key in (("in", inp, "x"), ("out", out["arrays"]["out"], f"{out['ident']}.out")):
        n = int(np.prod(a["shape"]))
        ctype = _CTYPE[np.dtype(a["dtype"])]
        chunks.append(f"\nstatic const {ctype} {prefix}_{cname}[{n}] {P}_UNUSED = {{\n")
        chunks.append(_c_numbers(np.asarray(arrays[key])))
        chunks.append("};\n")
    return "".join(chunks).encode()


def render(name: str, m: dict, arrays: dict, prefix: str) -> dict:
    return render_hex(m, arrays) if name == "hex" else {H_FILE: render_h(m, arrays, prefix)}


def header_arrays(m: dict, prefix: str) -> dict:
    """C array name in vectors.h -> array key (``x``, ``<ident>.out``)."""
    return {f"{prefix}_in": "x", f"{prefix}_out": f"{_ident_of(m, m['output']['layer'])}.out"}


def _ident_of(m: dict, name: str) -> str:
    return next(e["ident"] for e in m["layers"] if e["name"] == name)


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
    from .bundle import _gib, available_memory

    for name, v in (("samples", samples), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SpecError(f"{name}: expected a positive integer, got {v!r}")
    if samples * steps > MAX_VALUES or count_values(net, samples, steps) > MAX_VALUES:
        raise SpecError(f"samples x steps: {samples} x {steps} is beyond what a network bundle holds "
                        f"({count_values(net, samples, steps)} values > 2**34); use fewer samples or steps")
    values = count_values(net, samples, steps)
    need, avail = values * BYTES_PER_VALUE, available_memory()
    if avail is not None and need > avail:
        raise SpecError(f"samples x steps: {samples} x {steps} need about {_gib(need)} of memory to simulate "
                        f"({values} values), only {_gib(avail)} available; use fewer samples or steps")
    return values


def size_bound(m: dict, formats) -> int:
    total = 1 << 20
    for a in arrays_of(m).values():
        n = int(np.prod(a["shape"]))
        bits = a["format"]["bits"]
        total += n * np.dtype(a["dtype"]).itemsize + 128
        if "hex" in formats:
            total += n * (hex_digits(bits) + 1)
        if "h" in formats:
            total += n * 2 * (len(str(-(1 << (bits - 1)))) + 2)
    return total


# ------------------------------------------------------------------ writing
def _load_dir(netdir: Path) -> Network:
    if not netdir.is_dir():
        raise NetworkError(f"{netdir}: not a directory (expected a saved golden network: network.toml + "
                           f"weights.npz)")
    for f in NET_FILES:
        p = netdir / f
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise NetworkError(f"{p}: not a regular file (a symlink or special file); copy the network directory")
    return Network.load(netdir)


def _write_npy(path: Path, meta: dict, a: np.ndarray) -> None:
    w = NpyWriter(path, meta["dtype"], meta["shape"])
    try:
        w.write(np.asarray(a))
    finally:
        w.close()


def _embed(net: Network, netdir: Path | None, d: Path) -> None:
    """``d/network``: NETDIR's two files byte for byte (or ``net.save``); the copy must be the same network."""
    dst = d / NET_DIR
    if netdir is None:
        net.save(dst)
    else:
        dst.mkdir()
        for f in NET_FILES:
            with open_nofollow(netdir / f) as src, open(dst / f, "xb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(dst, 0o777 & ~umask)
    if Network.load(dst).digest() != net.digest():
        raise BundleError(f"{netdir or 'network'}: changed while golden was reading it; nothing was written")


def write_files(d: Path, m: dict, arrays: dict, names, prefix: str) -> None:
    """The npy arrays (when absent) and the exports ``names`` into ``d``; fills ``m["exports"]``."""
    for key, a in arrays_of(m).items():
        if not (d / a["file"]).exists():
            _write_npy(d / a["file"], a, arrays[key])
    for name in names:
        for fname, data in render(name, m, arrays, prefix).items():
            with open(d / fname, "xb") as f:
                f.write(data)
        m["exports"][name] = export_meta(name, m, prefix)


def finish(d: Path, m: dict) -> None:
    files = {}
    for p in sorted(d.iterdir()):
        if p.name == "manifest.json":
            continue
        for q in (sorted(p.iterdir()) if p.is_dir() else [p]):
            rel = q.relative_to(d).as_posix()
            files[rel] = {"sha256": sha256_file(q), "bytes": q.stat().st_size}
    m["files"] = files
    with open(d / "manifest.json", "x") as f:
        f.write(dump_manifest(m))


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
        net = _load_dir(netdir)
    check_stimulus(stimulus)
    seed = check_seed(seed)
    formats = parse_export_formats(formats)
    check_prefix(prefix)
    idents(net)
    check_size(net, samples, steps)
    out = Path(os.path.abspath(out))
    if netdir is not None and _inside(out, netdir):
        raise BundleError(f"{out}: is inside the network directory {netdir}; write the bundle elsewhere")
    x = network_stimulus(net, samples, steps, seed, stimulus)
    arrays, overflow = simulate_c(net, x)
    m = base_manifest(net, samples, steps, stimulus, seed, overflow)
    check_disk(_parent(out), size_bound(m, formats))

    def fill(d: Path) -> None:
        _embed(net, netdir, d)
        write_files(d, m, arrays, [f for f in EXPORT_NAMES if f in formats], prefix)
        finish(d, m)

    _build(out, force, fill)
    return out


__all__ = ["DEFAULT_FORMATS", "KIND", "LAYOUT", "STIMULI", "base_manifest", "c_shape", "from_c",
           "generate_network", "header_arrays", "idents", "layer_ident", "network_stimulus", "render_h",
           "render_hex", "simulate_c", "to_c", "vh_text"]
