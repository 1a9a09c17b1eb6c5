"""A saved network directory: ``network.toml`` + ``weights.npz``, written and read back byte-exact and type-checked.

**Writing** (:func:`render`, :func:`save`). The bytes are a function of the network alone:
``network.toml`` is golden's canonical TOML; ``weights.npz`` a zip of stored (uncompressed)
``<layer>.<array>.npy`` members in layer order, each in the layer's declared dtype, with fixed zip
timestamps. :func:`save` commits the directory through :mod:`golden.fileio` (built beside, one
atomic rename or swap; replacing only a directory golden wrote, see :func:`foreign_entries`).

**Reading** (:func:`read`). Everything in ``network.toml`` is type-checked field by field (one
:class:`NetworkError` naming the field: never a KeyError or a traceback). ``weights`` names a plain
file inside the directory (no path, no ``..``, no symlink); both files are opened relative to the
directory without following a symlink. The weights file's sha256 is checked against
``weights_sha256`` *before* it is parsed; then each zip member's ``.npy`` header is checked against
the layer's declared array (integer dtype, exact shape, exact size) before its data is read, so a
zip bomb or a header claiming 2**40 elements is refused cheaply. Exactly the declared arrays must
be present (an extra array is refused). ``np.load`` is never used.

This module sits below :mod:`golden.network.graph`: it knows a network only through its attributes
(``input_shape``, ``fmt_input``, ``round_input``, ``output``, ``meta``, ``nodes``, ``params``) and
returns what it reads as a :class:`Doc`; ``Network.load`` builds the network from it.
"""

from __future__ import annotations

import ast
import dataclasses
import errno
import hashlib
import io
import json
import math
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import fileio
from ..spec import QFormat, Spec, SpecError, tomllib
from .layers import LAYERS, ROUNDS, Layer, NetworkError, type_name

SCHEMA = 1
KIND = "golden-network"
INPUT = "input"
TOML, WEIGHTS = "network.toml", "weights.npz"
FILES = (TOML, WEIGHTS)
MAX_TOML = 16 << 20  # bytes: a network.toml is a few KiB per layer
MAX_WEIGHTS = 4 << 30  # bytes: far beyond any network golden simulates
MAX_DIM = 1 << 24
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SHA = re.compile(r"[0-9a-f]{64}")
_TOP = {"schema", "kind", "input_shape", "output", "weights", "weights_sha256", "input", "meta", "layer"}
_ENTRY = {"name", "type", "inputs", "spec", "arrays"}


class Doc(NamedTuple):
    """What a network directory holds, checked: the arguments of ``Network(...)``."""

    input_shape: tuple
    fmt_input: QFormat
    nodes: list  # (name, layer, inputs) per layer, in execution order
    params: dict
    round_input: str
    output: str
    meta: dict


# ------------------------------------------------------------------ writing
def array_digest(arr: np.ndarray) -> str:
    """sha256 of an array's int64 values and shape: what network.toml pins for every raw array."""
    a = np.ascontiguousarray(arr, dtype="<i8")
    return hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()


def array_digests(params: dict) -> dict:
    return {n: {k: array_digest(a) for k, a in arrs.items()} for n, arrs in params.items()}


def to_toml(net, digests: dict, weights_sha256: str = "") -> str:
    """The canonical network.toml of ``net`` (``weights_sha256`` "" in the identity digest)."""
    doc = {"schema": SCHEMA, "kind": KIND, "input_shape": list(net.input_shape),
           "output": net.output, "weights": WEIGHTS, "weights_sha256": weights_sha256,
           "input": {"bits": net.fmt_input.bits, "frac": net.fmt_input.frac, "round": net.round_input},
           "meta": net.meta}
    lines = ["# golden network: layers in execution order; raw integer arrays in weights.npz (sha256 below)"]
    lines += _emit(doc, "")
    for node in net.nodes:
        lines += ["", "[[layer]]", f"name = {json.dumps(node.name)}", f"type = {json.dumps(type_name(node.layer))}",
                  f"inputs = {json.dumps(list(node.inputs))}"]
        lines += _emit({"spec": _layer_doc(node.layer), "arrays": digests.get(node.name, {})}, "layer")
    return "\n".join(lines) + "\n"


def digest(net) -> str:
    """sha256 of the canonical TOML with every array's digest: the identity of the network."""
    return hashlib.sha256(to_toml(net, array_digests(net.params)).encode()).hexdigest()


def weights_bytes(net) -> bytes:
    """The canonical weights.npz: stored members ``<layer>.<array>.npy`` in layer order, fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for node in net.nodes:
            specs = node.layer.param_specs()
            for key, arr in net.params.get(node.name, {}).items():
                one = io.BytesIO()
                np.lib.format.write_array(one, np.asarray(arr, specs[key][1].dtype), version=(1, 0),
                                          allow_pickle=False)
                info = zipfile.ZipInfo(f"{node.name}.{key}.npy", date_time=ZIP_TIME)
                info.create_system, info.external_attr = 3, 0o644 << 16
                z.writestr(info, one.getvalue())
    return buf.getvalue()


def render(net) -> dict:
    """file name -> bytes of the saved directory: a function of the network alone."""
    w = weights_bytes(net)
    return {TOML: to_toml(net, array_digests(net.params), hashlib.sha256(w).hexdigest()).encode(), WEIGHTS: w}


def foreign_entries(d: Path) -> list:
    """What in directory ``d`` stops golden replacing it: [] for a network directory golden wrote.

    That is a real directory holding exactly network.toml and weights.npz, regular files, the
    first a golden network (``kind = "golden-network"``).
    """
    if os.path.islink(d):
        return [f"{d} itself is a symlink"]
    bad = []
    for e in sorted(os.scandir(d), key=lambda e: e.name):
        if e.is_symlink() or not e.is_file(follow_symlinks=False):
            bad.append(f"{e.name} ({'a symlink' if e.is_symlink() else 'not a regular file'})")
        elif e.name not in FILES:
            bad.append(f"{e.name} (not a file of a saved network)")
    if not bad:
        try:
            text = (d / TOML).read_bytes()[:MAX_TOML].decode("utf-8")
            ours = tomllib.loads(text).get("kind") == KIND
        except (OSError, ValueError, RecursionError):
            ours = False
        if not ours:
            bad.append(f"{TOML} is missing or not a golden network")
    return bad


def save(net, directory, *, overwrite: bool = False) -> Path:
    """Write ``directory``/network.toml + weights.npz all or nothing (built beside, committed atomically).

    An existing ``directory`` is replaced only with ``overwrite`` and only when golden wrote it
    (:func:`foreign_entries`); anything else is refused and left untouched.
    """
    out = Path(os.path.abspath(directory))
    try:
        fileio.check_replaceable(out, overwrite, foreign_entries, what="network directory",
                                 flag="overwrite=True")
    except fileio.BundleError as e:
        raise NetworkError(str(e)) from None
    files = render(net)
    if not out.parent.is_dir():
        raise NetworkError(f"{out}: the directory {out.parent} does not exist")
    work = fileio.work_dir(out)
    try:
        built = work / "bundle"
        built.mkdir()
        os.chmod(built, 0o777 & ~_umask())
        for name, data in files.items():
            with open(built / name, "xb") as f:
                f.write(data)
        fileio.commit(built, out, work, overwrite, foreign_entries, what="network directory")
    except fileio.BundleError as e:
        raise NetworkError(str(e)) from None
    finally:
        fileio.remove_work_dir(work)
    return Path(directory)


def _umask() -> int:
    u = os.umask(0)
    os.umask(u)
    return u


# ------------------------------------------------------------------ reading
def read(directory) -> Doc:
    """Read and check a saved network directory (see the module doc); NetworkError names what is wrong."""
    d = Path(directory)
    try:
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise NetworkError(f"{d}: not a directory, so no network.toml ({e.strerror or e}); expected a saved golden "
                           f"network (network.toml + weights.npz)") from None
    try:
        raw = _read_at(dfd, d, TOML, MAX_TOML)
        doc = parse_toml(raw, d / TOML)
        layers = [(e["name"], layer_from_doc(e["name"], e["type"], e["spec"]), e["inputs"], e["arrays"])
                  for e in doc["layer"]]
        blob = _read_at(dfd, d, doc["weights"], MAX_WEIGHTS)
    finally:
        os.close(dfd)
    wpath = d / doc["weights"]
    if hashlib.sha256(blob).hexdigest() != doc["weights_sha256"]:
        raise NetworkError(f"{wpath}: sha256 mismatch with network.toml (tampered or corrupt weights file)")
    params = read_weights(blob, wpath, {name: (layer, arrays) for name, layer, _, arrays in layers})
    inp = doc["input"]
    return Doc(tuple(doc["input_shape"]), QFormat(inp["bits"], inp["frac"]),
               [(name, layer, inputs) for name, layer, inputs, _ in layers], params, inp["round"],
               doc["output"], doc["meta"])


def _read_at(dfd: int, d: Path, name: str, limit: int) -> bytes:
    """The bytes of regular file ``name`` in the directory open as ``dfd``: no symlink followed, at most ``limit``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except FileNotFoundError:
        if name == TOML:
            raise NetworkError(f"{d}: no network.toml (not a golden network directory)") from None
        raise NetworkError(f"{d / name}: missing weights file") from None
    except OSError as e:
        why = "a symlink; copy the network directory" if e.errno == errno.ELOOP else (e.strerror or str(e))
        raise NetworkError(f"{d / name}: cannot open it ({why})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NetworkError(f"{d / name}: not a regular file")
        if st.st_size > limit:
            raise NetworkError(f"{d / name}: {st.st_size} bytes, more than any saved network holds ({limit})")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)


def _need(doc: dict, key: str, typ, where: str):
    if key not in doc:
        raise NetworkError(f"{where}: missing {key!r}")
    v = doc[key]
    if typ is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    else:
        ok = isinstance(v, typ)
    if not ok:
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise NetworkError(f"{where}: {key} = {_show(v)}: expected {_NAMES.get(names, names)}")
    return v


_NAMES = {"str": "a string", "int": "an integer", "dict": "a table", "list": "an array"}


def _show(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _keys(doc: dict, allowed: set, where: str) -> None:
    extra = sorted(set(doc) - allowed, key=str)
    if extra:
        raise NetworkError(f"{where}: unknown key {str(extra[0])[:40]!r} (expected: {', '.join(sorted(allowed))})")


def parse_toml(raw: bytes, where: Path) -> dict:
    """The checked document of a network.toml (every field's type, every name, the weights file name)."""
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise NetworkError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise NetworkError(f"{where}: malformed TOML: {str(e)[:120]}") from None
    except RecursionError:
        raise NetworkError(f"{where}: malformed TOML: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of thousands of digits
        raise NetworkError(f"{where}: malformed TOML: {str(e)[:120]}") from None
    w = str(where)
    if doc.get("kind") != KIND or doc.get("schema") != SCHEMA or isinstance(doc.get("schema"), bool):
        raise NetworkError(f"{w}: not a golden network of schema {SCHEMA} (kind = {KIND!r}, schema = {SCHEMA})")
    _keys(doc, _TOP, w)
    shape = _need(doc, "input_shape", list, w)
    if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_DIM for n in shape):
        raise NetworkError(f"{w}: input_shape = {_show(shape)}: expected a non-empty array of integers "
                           f"1..{MAX_DIM} (channels-first, one sample)")
    _need(doc, "output", str, w)
    weights = _need(doc, "weights", str, w)
    if not _FILE_NAME.fullmatch(weights) or ".." in weights:
        raise NetworkError(f"{w}: weights = {_show(weights)}: must name a file inside the network directory "
                           f"(a plain file name such as \"weights.npz\": no path, no '..')")
    if not _SHA.fullmatch(_need(doc, "weights_sha256", str, w)):
        raise NetworkError(f"{w}: weights_sha256: expected 64 lowercase hex digits")
    inp = _need(doc, "input", dict, w)
    _keys(inp, {"bits", "frac", "round"}, f"{w}: [input]")
    for k in ("bits", "frac"):
        _need(inp, k, int, f"{w}: [input]")
    rnd = _need(inp, "round", str, f"{w}: [input]")
    if rnd not in ROUNDS:
        raise NetworkError(f"{w}: [input] round = {_show(rnd)}: expected one of {', '.join(ROUNDS)}")
    try:
        QFormat(inp["bits"], inp["frac"])
    except SpecError as e:
        raise NetworkError(f"{w}: [input] {e}") from None
    doc.setdefault("meta", {})
    _check_meta(_need(doc, "meta", dict, w), f"{w}: meta", 0)
    entries = _need(doc, "layer", list, w)
    for i, e in enumerate(entries):
        at = f"{w}: [[layer]] #{i + 1}"
        if not isinstance(e, dict):
            raise NetworkError(f"{at}: expected a table")
        _keys(e, _ENTRY, at)
        at = f"{w}: layer {_show(_need(e, 'name', str, at))}"
        _need(e, "type", str, at)
        e.setdefault("inputs", [INPUT])
        if not all(isinstance(s, str) for s in _need(e, "inputs", list, at)):
            raise NetworkError(f"{at}: inputs = {_show(e['inputs'])}: expected an array of layer names")
        _need(e, "spec", dict, at)
        e.setdefault("arrays", {})
        arrays = _need(e, "arrays", dict, at)
        for k, sha in arrays.items():
            if not isinstance(sha, str) or not _SHA.fullmatch(sha):
                raise NetworkError(f"{at}: arrays.{str(k)[:40]}: expected a sha256 (64 lowercase hex digits)")
    return doc


def _check_meta(v, at: str, depth: int) -> None:
    """meta: free-form notes golden writes back (strings, integers, booleans, arrays and tables of them)."""
    if depth > 8:
        raise NetworkError(f"{at}: nested too deeply (at most 8 levels)")
    if isinstance(v, dict):
        for k, x in v.items():
            _check_meta(x, f"{at}.{k}", depth + 1)
    elif isinstance(v, list):
        for x in v:
            _check_meta(x, at, depth + 1)
    elif not isinstance(v, (str, int)):
        raise NetworkError(f"{at} = {_show(v)}: expected strings, integers, booleans, arrays or tables")


def _layer_doc(layer: Layer) -> dict:
    out = {}
    defaults = {f.name: f.default for f in dataclasses.fields(layer)}
    for k, v in layer.fields().items():
        if k in layer.OPTIONAL and v == defaults[k]:
            continue  # a field added later, at its default: written as before it existed (same bytes, same digest)
        if isinstance(v, QFormat):
            out[k] = {"bits": v.bits, "frac": v.frac}
        elif isinstance(v, Spec):
            out[k] = tomllib.loads(v.to_toml())
        elif v is None:
            out[k] = None
        else:
            out[k] = list(v) if isinstance(v, tuple) else v
    if out.get("fmt_b", 0) is None:
        out["fmt_b"] = {"none": True}
    return out


def _field_value(name: str, k: str, v):
    """One field of a layer's [layer.spec] table as the layer spec takes it (types checked, never trusted)."""
    at = f"layer {name!r}: spec.{k}"
    if k == "spec":
        if not isinstance(v, dict):
            raise NetworkError(f"{at} = {_show(v)}: expected a table (a neuron spec)")
        try:
            return Spec.from_dict(v)
        except SpecError as e:
            raise NetworkError(f"{at}.{e}") from None
    if k == "fmt_b" and v == {"none": True}:
        return None
    if k.startswith("fmt_"):
        if not isinstance(v, dict) or set(v) != {"bits", "frac"}:
            raise NetworkError(f"{at} = {_show(v)}: expected a table {{bits, frac}}")
        try:
            return QFormat(v["bits"], v["frac"])
        except SpecError as e:
            raise NetworkError(f"{at}.{e}") from None
    if isinstance(v, list):
        if not all(isinstance(x, int) and not isinstance(x, bool) and abs(x) <= MAX_DIM for x in v):
            raise NetworkError(f"{at} = {_show(v)}: expected an array of integers (|n| <= {MAX_DIM})")
        return tuple(v)
    if isinstance(v, dict):
        raise NetworkError(f"{at}: unexpected table")
    return v


def layer_from_doc(name: str, tname: str, doc: dict) -> Layer:
    """The layer spec of one [[layer]] entry: its type by name, every field type-checked by the spec."""
    cls = LAYERS.get(tname) if isinstance(tname, str) else None
    if cls is None:
        known = ", ".join(LAYERS.names())
        raise NetworkError(f"layer {name!r}: unknown layer type {str(tname)[:40]!r} (known: {known})")
    kw = {k: _field_value(name, k, v) for k, v in doc.items()}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    unknown = sorted(set(kw) - set(fields))
    if unknown:
        raise NetworkError(f"layer {name!r}: {tname}: unknown field(s) {', '.join(unknown)}")
    missing = sorted(k for k, f in fields.items() if k not in kw and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise NetworkError(f"layer {name!r}: {tname}: missing field(s) {', '.join(missing)}")
    try:
        return cls(**kw)
    except SpecError as e:
        raise NetworkError(f"layer {name!r}: {e}") from None
    except (TypeError, ValueError, OverflowError) as e:  # a value of the wrong type deep in a layer's checks
        raise NetworkError(f"layer {name!r}: {tname}: a field has the wrong type ({str(e)[:100]})") from None


def read_weights(blob: bytes, wpath: Path, layers: dict) -> dict:
    """{layer: {array: int64 array}} from the bytes of a weights.npz (its sha256 already checked).

    ``layers``: name -> (layer spec, {array: sha256}). Exactly those arrays, each header checked
    against the layer's declared shape before its data is read; each array's digest checked.
    """
    try:
        z = zipfile.ZipFile(io.BytesIO(blob))
        infos = {i.filename: i for i in z.infolist()}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise NetworkError(f"{wpath}: unreadable .npz ({type(e).__name__}: {str(e)[:80]})") from None
    want = {f"{n}.{k}.npy": (n, k) for n, (_, arrays) in layers.items() for k in arrays}
    extra = sorted(set(infos) - set(want))
    if extra:
        raise NetworkError(f"{wpath}: holds {extra[0][:60]!r}, an array network.toml does not list "
                           f"(a weights file holds exactly the listed arrays)")
    params = {}
    for member, (n, k) in want.items():
        if member not in infos:
            raise NetworkError(f"{n}.{k}: missing from {wpath}")
        layer, arrays = layers[n]
        specs = layer.param_specs()
        if k not in specs:
            raise NetworkError(f"{n}.{k}: layer {n!r} has no array {k!r} (it takes {', '.join(sorted(specs))})")
        arr = _member(z, infos[member], tuple(specs[k][0]), f"{wpath}: {member}")
        if array_digest(arr) != arrays[k]:
            raise NetworkError(f"{n}.{k}: sha256 mismatch in {wpath} (tampered or corrupt weights)")
        params.setdefault(n, {})[k] = arr
    return params


def _member(z: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple, what: str) -> np.ndarray:
    """One .npy member: header parsed from its first bytes and checked before the data is read."""
    try:
        with z.open(info) as f:
            head = f.read(10)
            if len(head) < 10 or head[:6] != b"\x93NUMPY" or head[6] not in (1, 2, 3):
                raise NetworkError(f"{what}: not a .npy array")
            hlen_bytes = head[8:10] if head[6] == 1 else head[8:10] + f.read(2)
            hlen = int.from_bytes(hlen_bytes, "little")
            if hlen > 4096:
                raise NetworkError(f"{what}: .npy header of {hlen} bytes (corrupt)")
            hdr = f.read(hlen)
            dtype, fortran, got = _npy_header(hdr, what)
            if dtype.kind not in "iu" or dtype.itemsize > 8:
                raise NetworkError(f"{what}: dtype {dtype}: raw weights must be integers of at most 64 bits")
            if got != shape:
                raise NetworkError(f"{what}: shape {got}, the layer declares {shape}")
            n = math.prod(shape) * dtype.itemsize
            if n > MAX_WEIGHTS:
                raise NetworkError(f"{what}: {n} bytes of weights, more than any saved network holds ({MAX_WEIGHTS})")
            if info.file_size != len(head) + len(hlen_bytes) - 2 + hlen + n:
                raise NetworkError(f"{what}: {info.file_size} bytes, its header promises "
                                   f"{len(head) + len(hlen_bytes) - 2 + hlen + n}")
            data = f.read(n + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise NetworkError(f"{what}: unreadable ({type(e).__name__}: {str(e)[:80]})") from None
    if len(data) != n:
        raise NetworkError(f"{what}: truncated ({len(data)} data bytes, expected {n})")
    a = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(a, dtype=np.int64)


def _npy_header(hdr: bytes, what: str) -> tuple:
    """(dtype, fortran_order, shape) of a .npy header dict, parsed as a literal (never evaluated)."""
    try:
        d = ast.literal_eval(hdr.decode("latin1"))
        if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
            raise ValueError("not a .npy header")
        if not isinstance(d["descr"], str) or not isinstance(d["fortran_order"], bool):
            raise ValueError("not a .npy header")
        shape = d["shape"]
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ValueError("bad shape")
        return np.dtype(d["descr"]), d["fortran_order"], shape
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise NetworkError(f"{what}: corrupt .npy header") from None


def _emit(doc: dict, prefix: str) -> list:
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict) and v is not None]
    for k, v in doc.items():
        if isinstance(v, dict):
            head = f"{prefix}.{_key(k)}" if prefix else _key(k)
            lines += [f"[{head}]"] + _emit(v, head)
    return lines


def _key(k: str) -> str:
    """A TOML key: bare when it may be, else quoted (a meta key with a space or a dot stays readable back)."""
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, str)):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")  # pragma: no cover
