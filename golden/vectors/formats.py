"""The export formats of a bundle: one :class:`Format` object each, owning its files, manifest entry, renderer, parser.

A format renders a :class:`View`: the bundle's **named arrays with their formats** (``x``, ``out``,
... of a single-layer bundle; ``x``, ``<layer>.out``, ... of a network bundle) plus the few lines
only a bundle kind can state (the ``bundle.vh`` parameters, the C header's macros, which arrays
the C header carries, the CSV tables). So every format serves both kinds of bundle, and adding a
format is adding one object to :data:`EXPORTS`. ``npy`` (the arrays every bundle holds) is
written by the kinds; verification re-renders every export from the checked arrays and compares
bytes, then parses a differing file back to locate the first differing element.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..spec import SpecError
from .npy import BundleError

CHUNK = 1 << 16  # elements per rendered chunk (a multiple of the C header's 16 values per line)
SPIKE_FMT = {"bits": 1, "frac": 0}
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def c_preamble(P: str) -> list:
    """The lines every golden C header opens with after its comments: include guard, <stdint.h>, ``P_UNUSED``."""
    return ["#pragma once", "#include <stdint.h>", "",
            f"#ifndef {P}_UNUSED", "#if defined(__GNUC__) || defined(__clang__)",
            f"#define {P}_UNUSED __attribute__((unused))", "#else", f"#define {P}_UNUSED", "#endif", "#endif", ""]


def safe_text(what: str, value) -> str:
    """Free text that reaches spec.toml, C and Verilog: a plain token, or SpecError (nothing is ever escaped)."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise SpecError(f"{what}: {value!r} is not a plain name (letters, digits and . _ + -, at most 64, "
                        f"starting with a letter or digit); it would be written into C, Verilog and TOML")
    return value


def check_prefix(prefix) -> str:
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", prefix):
        raise SpecError(f"prefix: {prefix!r} is not a C identifier")
    return prefix


def check_width(a: np.ndarray, bits: int, what: str) -> None:
    lo, hi = (0, 1) if bits == 1 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if a.size and (a.min() < lo or a.max() > hi):
        bad = a[(a < lo) | (a > hi)].flat[0]
        raise SpecError(f"{what}: value {int(bad)} does not fit the declared {bits}-bit width")


# ====================================================================== hex
_HEXDIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)
_HEXVAL = np.full(256, 255, np.uint8)
_HEXVAL[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_HEXVAL[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)
# two hex digits per byte value, as one little-endian uint16: a byte-pair lookup
_HEXPAIR = (_HEXDIGITS[np.arange(256) >> 4].astype(np.uint16)
            | (_HEXDIGITS[np.arange(256) & 15].astype(np.uint16) << 8))


def hex_digits(bits: int) -> int:
    return (bits + 3) // 4


def hex_bytes(a, bits: int, what: str = "array") -> bytes:
    """``$readmemh`` text: one word per line, ``ceil(bits/4)`` lowercase digits, two's complement masked to ``bits``.

    Vectorised (a lookup per digit pair, no loop per word). Values that do not
    fit a signed ``bits``-wide word (0/1 for ``bits == 1``) are refused.
    """
    a = np.asarray(a).reshape(-1)
    if not 1 <= bits <= 32:
        raise SpecError(f"{what}: hex width {bits} bits is out of range (1..32)")
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    check_width(a, bits, what)
    d = hex_digits(bits)
    u = (a.astype(np.int64) & ((1 << bits) - 1)).astype(np.uint32)
    nbytes = (d + 1) // 2  # whole bytes, most significant first: two digits per table lookup
    pairs = np.empty((u.size, nbytes), "<u2")
    for k in range(nbytes):
        pairs[:, k] = _HEXPAIR[(u >> np.uint32(8 * (nbytes - 1 - k))) & np.uint32(0xFF)]
    digits = pairs.view(np.uint8).reshape(u.size, 2 * nbytes)
    buf = np.empty((u.size, d + 1), np.uint8)
    buf[:, :d] = digits[:, 2 * nbytes - d:]  # odd digit count: drop the leading (always 0) digit
    buf[:, d] = 10
    return buf.tobytes()


def parse_hex(data, bits: int, what: str = "hex") -> np.ndarray:
    """Words of a golden ``.hex`` file (bytes or path), sign-extended to int64. Malformed text raises BundleError."""
    if isinstance(data, (str, Path)):
        what = Path(data).name
        data = Path(data).read_bytes()
    d = hex_digits(bits)
    b = np.frombuffer(data, np.uint8)
    if b.size % (d + 1):
        nl = np.flatnonzero(b == 10)
        lens = np.diff(np.concatenate([[-1], nl])) - 1
        bad = np.flatnonzero(lens != d)
        line = int(bad[0]) + 1 if bad.size else int(nl.size) + 1
        raise BundleError(f"{what}: line {line}: expected {d} hex digits per word ({bits}-bit words); "
                          f"a word is wider or narrower than the declared width, or the file is truncated")
    rows = b.reshape(-1, d + 1)
    if rows.size and not np.all(rows[:, d] == 10):
        line = int(np.flatnonzero(rows[:, d] != 10)[0]) + 1
        raise BundleError(f"{what}: line {line}: a word is wider than the declared {d} hex digits ({bits} bits)")
    vals = _HEXVAL[rows[:, :d]]
    if np.any(vals == 255):
        line = int(np.flatnonzero(np.any(vals == 255, axis=1))[0]) + 1
        raise BundleError(f"{what}: line {line}: not a hex digit")
    u = np.zeros(rows.shape[0], np.int64)
    for k in range(d):
        u = (u << 4) | vals[:, k]
    if np.any(u >> bits):
        line = int(np.flatnonzero(u >> bits)[0]) + 1
        raise BundleError(f"{what}: line {line}: word exceeds the declared {bits}-bit width")
    if bits > 1:
        u = np.where(u >= 1 << (bits - 1), u - (1 << bits), u)
    return u


# ======================================================================== C
CTYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.int16): "int16_t", np.dtype(np.int32): "int32_t",
          np.dtype(np.bool_): "int8_t"}
_C_ARRAY = re.compile(r"const\s+(u?int(?:8|16|32)_t)\s+(\w+)\[(\d{1,15})\]\s*(?:\w+\s*)?=\s*\{(.*?)\};", re.DOTALL)


def c_numbers(a: np.ndarray) -> str:
    """Decimal values, 16 per line, each followed by a comma."""
    vals = a.reshape(-1).astype(np.int64).tolist()
    lines = ["    " + ", ".join(map(str, vals[i:i + 16])) + "," for i in range(0, len(vals), 16)]
    text = "\n".join(lines) + "\n" if lines else ""
    return text.replace("-2147483648", "(-2147483647 - 1)")


def parse_h(data) -> dict:
    """The arrays of a golden C header (text or path): name -> int64 array."""
    if isinstance(data, Path):
        data = data.read_text(errors="replace")
    arrays = {}
    for m in _C_ARRAY.finditer(data):
        body = m.group(4).replace("(-2147483647 - 1)", "-2147483648")
        nums = [s for s in re.split(r"[\s,]+", body) if s]
        if not all(re.fullmatch(r"-?[0-9]{1,11}", s) for s in nums):
            raise BundleError(f"C header: array {m.group(2)}: not a list of integers")
        arr = np.array([int(s) for s in nums], np.int64)
        if arr.size != int(m.group(3)):
            raise BundleError(f"C header: array {m.group(2)} declares {m.group(3)} values, holds {arr.size}")
        arrays[m.group(2)] = arr
    return arrays


def parse_csv(data, what: str = "vectors.csv", header=("t", "neuron", "x", "out", "v", "spike")) -> dict:
    """{column: int64 array} of a golden CSV file (text or path) with this header (BundleError when malformed)."""
    if isinstance(data, Path):
        what = data.name
        data = data.read_text(errors="replace")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    head = ",".join(header)
    if not lines or lines[0] != head:
        raise BundleError(f"{what}: missing header {head}")
    cell = re.compile(r"-?[0-9]{1,20}")
    rows = [ln.split(",") for ln in lines[1:]]
    if not all(len(r) == len(header) and all(cell.fullmatch(s) for s in r) for r in rows):
        raise BundleError(f"{what}: malformed row")
    a = np.array([[int(s) for s in r] for r in rows], np.int64).reshape(-1, len(header))
    return {h: a[:, i] for i, h in enumerate(header)}


# ==================================================================== views
@dataclass(frozen=True)
class Named:
    """One array of a bundle as its exports see it: name, values (any shape, rendered flat in C order), format."""

    key: str
    data: object  # an array or memmap; None where only the metadata is needed (manifest entries, sizes)
    bits: int
    frac: int
    dtype: str
    shape: tuple

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    def chunks(self):
        """The values, flat, in chunks of :data:`CHUNK` (a memmap is read a chunk at a time)."""
        a = self.data.reshape(-1)
        for i in range(0, a.size, CHUNK):
            yield np.asarray(a[i:i + CHUNK])


@dataclass(frozen=True)
class Table:
    """A CSV table: one row per element of ``dims``, its index columns then one column per array."""

    file: str
    index: tuple  # column names of the index, one per dim
    dims: tuple
    columns: tuple  # (column header, array key)


@dataclass
class View:
    """What a bundle kind hands its exports: the named arrays and the lines only the kind can state.

    ``vh()``: (comment lines, [(localparam, value)]) of ``bundle.vh``; ``h``: a function of the prefix
    giving (comment lines, [(macro suffix, value)], [(C array suffix, array key)]) of ``vectors.h``;
    ``tables``: the CSV tables.
    """

    kind: str
    arrays: dict  # key -> Named, in the kind's order
    vh: object = None
    h: object = None
    tables: tuple = ()
    extra: dict = field(default_factory=dict)  # anything else a kind offers (the manifest, the spec, ...)


def unique_names(names, what: str) -> None:
    """Refuse two declarations of one name (a macro, a file): never write a header that defines one twice."""
    seen = set()
    for n in names:
        if n in seen:
            raise BundleError(f"{what}: {n} would be declared twice (two names that meet once mapped); rename one")
        seen.add(n)


# ================================================================== formats
class Format:
    """One export: its name (the manifest's ``exports`` key), files, manifest entry, renderer and parser.

    Every method takes a :class:`View`, so one format serves single-layer and network bundles.
    """

    name = ""
    prefixed = False  # takes the C name prefix

    def files(self, view: View) -> list:
        """The file names this export owns in a bundle."""
        raise NotImplementedError

    def meta(self, view: View, prefix: str) -> dict:
        """Its entry in ``manifest["exports"]``."""
        raise NotImplementedError

    def render(self, view: View, prefix: str):
        """Yield (file name, bytes) chunks, rendered from ``view.arrays``."""
        raise NotImplementedError

    def parse(self, path: Path, view: View, prefix: str) -> dict:
        """{array key: flat int64 array} read back from one of its files (BundleError when malformed)."""
        raise NotImplementedError

    def size_bound(self, view: View) -> int:
        """An upper bound of the bytes it writes (the free-space check)."""
        raise NotImplementedError


def _max_chars(a: Named) -> int:
    return len(str(-(1 << (a.bits - 1)))) if a.bits > 1 else 1


class Hex(Format):
    """``<key>.hex`` per array (``$readmemh``: one word per line) and the kind's ``bundle.vh`` parameters."""

    name = "hex"
    PARAMS = "bundle.vh"

    def files(self, view):
        return [f"{k}.hex" for k in view.arrays] + [self.PARAMS]

    def meta(self, view, prefix):
        e = {k: {"file": f"{k}.hex", "bits": a.bits, "digits": hex_digits(a.bits), "words": a.size}
             for k, a in view.arrays.items()}
        e["params"] = self.PARAMS
        return e

    def render(self, view, prefix):
        for k, a in view.arrays.items():
            for c in a.chunks():
                yield f"{k}.hex", hex_bytes(c, a.bits, f"{k}.hex")
        head, params = view.vh()
        unique_names([n for n, _ in params], self.PARAMS)
        yield self.PARAMS, ("\n".join(head + [f"localparam integer {n} = {int(v)};" for n, v in params])
                            + "\n").encode()

    def parse(self, path, view, prefix):
        if path.name == self.PARAMS:
            return {}
        key = path.name[:-len(".hex")]
        a = view.arrays[key]
        got = parse_hex(path.read_bytes(), a.bits, path.name)
        if got.size != a.size:
            raise BundleError(f"{path.name}: holds {got.size} words, expected {a.size}")
        return {key: got}

    def size_bound(self, view):
        return sum(a.size * (hex_digits(a.bits) + 1) for a in view.arrays.values()) + 65536


class CHeader(Format):
    """``vectors.h``: the kind's macros and ``static const`` arrays (any number of translation units may include it)."""

    name = "h"
    FILE = "vectors.h"
    prefixed = True

    def files(self, view):
        return [self.FILE]

    def meta(self, view, prefix):
        return {"file": self.FILE, "prefix": prefix}

    def render(self, view, prefix):
        P = prefix.upper()
        comments, defs, arrays = view.h(prefix)
        unique_names([f"{P}_{k}" for k, _ in defs] + [f"{prefix}_{c}" for c, _ in arrays], self.FILE)
        width = max(len(k) for k, _ in defs) + len(P) + 1
        lines = [*comments, *c_preamble(P)]
        for k, v in defs:
            val = f"({v})" if isinstance(v, int) and v < 0 else str(v)
            lines.append(f"#define {(P + '_' + k).ljust(width)} {val}")
        yield self.FILE, ("\n".join(lines) + "\n").encode()
        for cname, key in arrays:
            a = view.arrays[key]
            ctype = CTYPES[np.dtype(a.dtype)]
            yield self.FILE, f"\nstatic const {ctype} {prefix}_{cname}[{a.size}] {P}_UNUSED = {{\n".encode()
            for c in a.chunks():
                yield self.FILE, c_numbers(c).encode()
            yield self.FILE, b"};\n"

    def parse(self, path, view, prefix):
        h = parse_h(path.read_text(errors="replace"))
        out = {}
        for cname, key in view.h(prefix)[2]:
            got = h.get(f"{prefix}_{cname}")
            if got is None or got.size != view.arrays[key].size:
                raise BundleError(f"{path.name}: array {prefix}_{cname} missing or of the wrong size")
            out[key] = got
        return out

    def size_bound(self, view):
        arrays = view.h("x")[2]
        return sum(view.arrays[k].size * (max(_max_chars(view.arrays[k]), 19) + 2) for _, k in arrays) + 65536


class Csv(Format):
    """One CSV file per table of the kind: index columns, then one column per array (raw integers)."""

    name = "csv"

    def files(self, view):
        return [t.file for t in view.tables]

    def meta(self, view, prefix):
        files = self.files(view)
        return {"file": files[0]} if len(files) == 1 else {"files": files}

    def render(self, view, prefix):
        for t in view.tables:
            yield t.file, (",".join((*t.index, *(c for c, _ in t.columns))) + "\n").encode()
            flats = [view.arrays[k].data.reshape(-1) for _, k in t.columns]
            n = flats[0].size
            for i in range(0, n, CHUNK):
                idx = np.unravel_index(np.arange(i, min(i + CHUNK, n)), t.dims)
                cols = np.stack([*idx, *(np.asarray(f[i:i + CHUNK]).astype(np.int64) for f in flats)], 1)
                yield t.file, ("\n".join(",".join(map(str, r)) for r in cols.tolist()) + "\n").encode()

    def parse(self, path, view, prefix):
        t = next(t for t in view.tables if t.file == path.name)
        cols = list(parse_csv(path.read_text(errors="replace"), path.name,
                              (*t.index, *(c for c, _ in t.columns))).values())
        n = view.arrays[t.columns[0][1]].size
        if cols[0].size != n:
            raise BundleError(f"{path.name}: holds {cols[0].size} rows, expected {n}")
        idx = np.unravel_index(np.arange(n), t.dims)
        if not all(np.array_equal(c, i) for c, i in zip(cols, idx)):
            return {}  # the index columns differ: reported as different text
        return {k: cols[len(t.index) + j] for j, (_, k) in enumerate(t.columns)}

    def size_bound(self, view):
        total = 65536
        for t in view.tables:
            per = sum(len(str(d)) + 1 for d in t.dims) + sum(_max_chars(view.arrays[k]) + 1 for _, k in t.columns)
            total += view.arrays[t.columns[0][1]].size * per
        return total


EXPORTS = {f.name: f for f in (Hex(), CHeader(), Csv())}
FORMATS = ("npy",) + tuple(EXPORTS)  # npy: the arrays, always written
DEFAULT_FORMATS = ("npy", "hex", "h")


def parse_formats(formats) -> tuple:
    """Validated format names, in canonical order, npy always included."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    try:
        formats = tuple(formats)
    except TypeError:
        raise SpecError(f"formats: expected names, got {formats!r}") from None
    known = ("npy", *EXPORTS)  # read now: registering a Format in EXPORTS is all a new format needs
    for f in formats:
        if f not in known:
            raise SpecError(f"formats: unknown format {f!r} (expected some of: {', '.join(known)})")
    return tuple(f for f in known if f in formats or f == "npy")


def export_files(view: View, names) -> list:
    """Every file the exports ``names`` write, refused when two would share a name."""
    files = [f for n in names for f in EXPORTS[n].files(view)]
    unique_names(files, "export files")
    return files


def write_exports(d: Path, view: View, names, prefix: str) -> dict:
    """Render the exports ``names`` into directory ``d`` (files created, never replaced); their manifest entries."""
    export_files(view, names)
    entries = {}
    for name in names:
        fmt = EXPORTS[name]
        with contextlib.ExitStack() as stack:
            handles = {}
            for fname, chunk in fmt.render(view, prefix):
                if fname not in handles:
                    handles[fname] = stack.enter_context(open(d / fname, "xb"))
                handles[fname].write(chunk)
        entries[name] = fmt.meta(view, prefix)
    return entries


def differing_files(bundle: Path, chunks, opener) -> list:
    """The files whose bytes differ from the rendered chunks (content or length); ``opener`` opens a bundle file."""
    handles, differing = {}, set()
    try:
        for fname, chunk in chunks:
            if fname in differing:
                continue
            if fname not in handles:
                handles[fname] = opener(bundle / fname)
            if handles[fname].read(len(chunk)) != chunk:
                differing.add(fname)
        differing |= {f for f, fh in handles.items() if fh.read(1)}  # trailing bytes
    finally:
        for fh in handles.values():
            fh.close()
    return sorted(differing)
