"""Reading, verifying and exporting network bundles (``manifest["kind"] == "network"``; see ``network.py``).

Integrity first, each failure exit 2 (untrustworthy): the manifest's fields and types; the directory
(exactly manifest.json, the listed files and ``network/`` holding exactly network.toml + weights.npz,
all regular files, no symlink, sizes as listed); the sha256 of every file; the embedded network (its
array hashes, its digest = the manifest's); the manifest equal, field by field and type by type, to
what golden writes for that network, S, T and stimulus; every .npy header exactly golden's, values
inside their formats; ``x`` is the stimulus the manifest names. Then the content,
exit 1 (differs, with the first (layer, sample, t, index)): the re-simulation of ``x`` reproduces every
layer at every step and the overflow counts; every export re-rendered is byte-identical. Exit 1 is
thus left for a bundle consistent in itself whose content golden does not reproduce (one rewritten
with matching hashes, or golden's semantics changed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..network.graph import Network
from ..spec import SpecError
from . import network as nb
from .bundle import _build, check_disk, sha256_file, verified
from .formats import check_prefix, check_width, parse_formats, parse_h, parse_hex, safe_text
from .npy import MAX_ELEMENTS, BundleError, le, npy_header, open_nofollow
from .verify import Result, _count, _need, _strict_diff

_FILE = re.compile(r"(network/)?[A-Za-z0-9_][A-Za-z0-9_.]{0,120}")


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


# ------------------------------------------------------------------ manifest
def _fields(m: dict) -> tuple:
    S = _count(m, "samples", 1, MAX_ELEMENTS)
    T = _count(m, "steps", 1, MAX_ELEMENTS)
    st = _need(m, "stimulus", dict)
    gen = _need(st, "generator", str, "stimulus.")
    if gen not in nb.STIMULI:
        raise BundleError(f"manifest.json: stimulus.generator {gen[:20]!r} is not a network stimulus")
    seed = _count(st, "seed", 0, 1 << 4096, "stimulus.")
    version = _need(m, "golden_version", str)
    try:
        safe_text("golden_version", version)
    except SpecError as e:
        raise BundleError(f"manifest.json: {e}") from None
    digest = _need(_need(m, "network", dict), "digest", str, "network.")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise BundleError("manifest.json: network.digest: expected 64 lowercase hex digits")
    files = _need(m, "files", dict)
    for fname, info in files.items():
        if not _FILE.fullmatch(fname) or ".." in fname:
            raise BundleError(f"manifest.json: files: {fname[:60]!r} is not a bundle file name")
        if (not isinstance(info, dict) or set(info) != {"sha256", "bytes"} or type(info["bytes"]) is not int
                or info["bytes"] < 0 or not isinstance(info["sha256"], str)
                or not re.fullmatch(r"[0-9a-f]{64}", info["sha256"])):
            raise BundleError(f"manifest.json: files.{fname}: expected {{sha256: 64 hex digits, bytes: integer}}")
    for f in nb.NET_FILES:
        if f"{nb.NET_DIR}/{f}" not in files:
            raise BundleError(f"manifest.json: files: {nb.NET_DIR}/{f} is missing (the embedded network)")
    exports = _need(m, "exports", dict)
    prefix = "golden"
    for name in exports:
        if name not in nb.EXPORT_NAMES:
            raise BundleError(f"manifest.json: exports: {str(name)[:20]!r} is not a network bundle export")
    if "h" in exports:
        try:
            prefix = check_prefix(_need(exports["h"], "prefix", str, "exports.h."))
        except SpecError as e:
            raise BundleError(f"manifest.json: exports.h.{e}") from None
    return S, T, gen, seed, version, digest, files, sorted(exports), prefix


def check_listing(bundle: Path, files: dict) -> None:
    """Exactly manifest.json, the listed files and network/ with exactly its two files; regular files only."""
    top = {f for f in files if "/" not in f} | {"manifest.json"}
    below = {f.split("/", 1)[1] for f in files if "/" in f}
    if below != set(nb.NET_FILES):
        raise BundleError(f"manifest.json: files: {nb.NET_DIR}/ must hold exactly {', '.join(nb.NET_FILES)}")
    for where, allowed in (("", top), (f"{nb.NET_DIR}/", below)):
        with os.scandir(bundle / where if where else bundle) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            name = where + e.name
            if e.is_symlink():
                raise BundleError(f"{name}: is a symlink (a bundle holds regular files only)")
            if not where and e.name == nb.NET_DIR and e.is_dir(follow_symlinks=False):
                continue
            if not e.is_file(follow_symlinks=False):
                what = "a directory" if e.is_dir(follow_symlinks=False) else "not a regular file"
                raise BundleError(f"{name}: {what} (a bundle holds regular files and network/ only)")
            if e.name not in allowed:
                raise BundleError(f"{name}: not listed in manifest.json (a bundle holds only the files it lists)")
        if not where and not any(e.name == nb.NET_DIR for e in entries):
            raise BundleError(f"{nb.NET_DIR}/: missing (the embedded network)")
    for fname in sorted(files):
        p = bundle / fname
        if not os.path.lexists(p):
            raise BundleError(f"{fname}: missing (listed in manifest.json)")
        size = os.lstat(p).st_size
        if size != files[fname]["bytes"]:
            raise BundleError(f"{fname}: truncated or corrupt ({size} bytes, manifest says {files[fname]['bytes']})")


def load_network(bundle: Path, files: dict, digest: str) -> Network:
    """The embedded network (its files' sha256 already checked: a tampered network.toml is never parsed)."""
    with open_nofollow(bundle / nb.NET_DIR / "network.toml") as fh:
        text = fh.read().decode("utf-8", errors="replace")
    if not re.search(r'^weights = "weights\.npz"$', text, re.M):
        raise BundleError(f"{nb.NET_DIR}/network.toml: its weights file is not weights.npz")
    try:
        net = Network.load(bundle / nb.NET_DIR)
    except (SpecError, KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{nb.NET_DIR}/: not a loadable golden network ({str(e)[:160]})") from None
    if net.digest() != digest:
        raise BundleError(f"{nb.NET_DIR}/: its digest {net.digest()[:16]}... differs from the manifest's "
                          f"network.digest {digest[:16]}...")
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
    """(net, manifest, prefix) after the structural checks 1-3 (fields, directory, network, equality)."""
    S, T, gen, seed, version, digest, files, exports, prefix = _fields(m)
    check_listing(bundle, files)
    for fname in sorted(files):  # before anything is parsed: a changed file never reaches a parser
        if sha256_file(bundle / fname) != files[fname]["sha256"]:
            raise BundleError(f"{fname}: sha256 differs from the manifest's (the file was changed or is corrupt)")
    net = load_network(bundle, files, digest)
    try:
        nb.check_size(net, S, T)
        expected = nb.base_manifest(net, S, T, gen, seed, _overflow_of(m), version)
    except SpecError as e:
        raise BundleError(f"manifest.json: {e}") from None
    for name in exports:
        expected["exports"][name] = nb.export_meta(name, expected, prefix)
    expected["files"] = files
    diff = _strict_diff(m, json.loads(json.dumps(expected)))
    if diff:
        raise BundleError(f"manifest.json: {diff}: not what golden writes for the embedded network, these "
                          f"samples, steps and stimulus (edited or corrupt)")
    wanted = {f"{nb.NET_DIR}/{f}" for f in nb.NET_FILES} | {a["file"] for a in nb.arrays_of(m).values()}
    wanted |= {f for name in exports for f in nb.export_files(name, m)}
    if set(files) != wanted:
        odd = min(set(files) ^ wanted)
        raise BundleError(f"manifest.json: files: {odd[:60]!r} is {'missing' if odd in wanted else 'unexpected'} "
                          f"(files must list exactly the bundle's files)")
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
    from .verify import _read_manifest

    bundle = Path(bundle)
    m = _read_manifest(bundle)
    if m.get("kind") != nb.KIND:
        raise BundleError("manifest.json: not a network bundle (kind is not 'network')")
    net, m, _ = load_manifest(bundle, m)
    arrays = {k: open_array(bundle / a["file"], a) for k, a in nb.arrays_of(m).items()}
    return net, arrays, m


# ------------------------------------------------------------------ content
def _position(m: dict, key: str, flat: int) -> tuple:
    a = nb.arrays_of(m)[key]
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
    order = list(nb.arrays_of(m))
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


def _differs(path: Path, data: bytes) -> bool:
    with open_nofollow(path) as f:
        return f.read(len(data) + 1) != data


def verify_network(bundle: Path, m: dict) -> Result:
    """Check one network bundle (see the module doc); BundleError when it cannot be read or trusted."""
    res = Result(bundle)
    name = str(bundle)
    net, m, prefix = load_manifest(bundle, m)
    res.manifest = m
    arrays = {k: open_array(bundle / a["file"], a) for k, a in nb.arrays_of(m).items()}
    st = m["stimulus"]
    x_exp = nb.network_stimulus(net, m["samples"], m["steps"], st["seed"], st["generator"])
    if not np.array_equal(x_exp, arrays["x"]):
        s, t, idx = _position(m, "x", int(np.argmax((x_exp != arrays["x"]).reshape(-1))))
        raise BundleError(f"x.npy: not the stimulus the manifest names ({st['generator']} seed {st['seed']}): first "
                          f"difference at sample {s}, t {t}, index {idx}")
    try:
        sim, overflow = nb.simulate_c(net, arrays["x"])
    except SpecError as e:
        res.add(NetDiff(name, None, None, None, None, "simulation", "a completed simulation", str(e)[:200]))
        return res
    _compare(res, name, m, {k: (sim[k], arrays[k]) for k in arrays if k != "x"})
    for e in m["layers"]:
        if e["overflow"] != dict(sorted(overflow[e["name"]].items())):
            res.add(NetDiff(name, e["name"], None, None, None, "overflow", overflow[e["name"]], e["overflow"]))
    for ex in m["exports"]:
        for fname, data in nb.render(ex, m, arrays, prefix).items():
            if _differs(bundle / fname, data):
                _locate(res, name, bundle / fname, m, arrays, prefix)
    return res


def _locate(res: Result, name: str, path: Path, m: dict, arrays: dict, prefix: str) -> None:
    """An export differs from the arrays: the first differing element, or 'different text'."""
    before = res.count
    if path.name == nb.H_FILE:
        parsed = parse_h(path.read_text(errors="replace"))
        pairs = {}
        for cname, key in nb.header_arrays(m, prefix).items():
            got = parsed.get(cname)
            if got is None or got.size != arrays[key].size:
                raise BundleError(f"{path.name}: array {cname} missing or of the wrong size")
            pairs[key] = (arrays[key], got)
        _compare(res, name, m, pairs, f"{path.name}:")
    elif path.name.endswith(".hex"):
        key = path.name[:-4]
        meta = nb.arrays_of(m)[key]
        got = parse_hex(path.read_bytes(), meta["format"]["bits"], path.name)
        if got.size != arrays[key].size:
            raise BundleError(f"{path.name}: holds {got.size} words, expected {arrays[key].size}")
        _compare(res, name, m, {key: (arrays[key], got)}, f"{path.name}:")
    if res.count == before:
        res.add(NetDiff(name, None, None, None, None, path.name, "golden's rendering", "different text"))


# ------------------------------------------------------------------ export
def export_network(bundle, fmt, *, prefix: str | None = None) -> list:
    """Add ``hex`` / ``h`` exports to a network bundle that verifies (replaced atomically, like ``export``)."""
    bundle = Path(bundle)
    names = [f for f in parse_formats(fmt) if f != "npy"]
    for f in names:
        if f not in nb.EXPORT_NAMES:
            raise SpecError(f"format: {f!r} is not written for network bundles (expected some of: "
                            f"{', '.join(nb.EXPORT_NAMES)})")
    if not names:
        raise SpecError(f"format: expected some of {', '.join(nb.EXPORT_NAMES)}")
    res = verified(bundle)
    m = res.manifest
    prefix = check_prefix(prefix or m["exports"].get("h", {}).get("prefix", "golden"))
    replaced = {f for n in names if n in m["exports"] for f in nb.export_files(n, m)}
    old_files = m["files"]
    m = {k: v for k, v in m.items() if k != "files"}
    m["exports"] = {k: v for k, v in m["exports"].items() if k not in names}
    check_disk(bundle.absolute().parent, nb.size_bound(m, ["npy", *names, *m["exports"]]))

    def fill(d: Path) -> None:
        (d / nb.NET_DIR).mkdir()
        for fname in sorted(old_files):
            if fname in replaced:
                continue
            with open_nofollow(bundle / fname) as src, open(d / fname, "xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if sha256_file(d / fname) != old_files[fname]["sha256"]:
                raise BundleError(f"{bundle}: {fname} changed during the export; nothing was written")
        os.chmod(d / nb.NET_DIR, 0o777 & ~_umask())
        arrays = {k: open_array(d / a["file"], a) for k, a in nb.arrays_of(m).items()}
        nb.write_files(d, m, arrays, [n for n in nb.EXPORT_NAMES if n in names], prefix)
        nb.finish(d, m)

    _build(bundle, True, fill)
    return [f for n in names for f in nb.export_files(n, m)]


def _umask() -> int:
    u = os.umask(0)
    os.umask(u)
    return u


__all__ = ["NetDiff", "export_network", "read_network_bundle", "verify_network"]
