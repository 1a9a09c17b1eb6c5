"""The export formats of a bundle: one :class:`Format` object each, owning its files, manifest entry, renderer, parser.

Adding a format is adding one object to :data:`EXPORTS`. ``npy`` (the arrays every bundle holds)
is described by :func:`array_meta` and written by ``bundle.py``; verification re-renders every
export from the checked arrays and compares bytes, then parses a differing file back to locate
the first differing element.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..spec import OVERFLOWS, ROUND_MODES, QFormat, Spec, SpecError
from .npy import BundleError

FIELDS = ("x", "out", "v", "spikes")
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


def array_meta(spec: Spec, steps: int, neurons: int) -> dict:
    """The manifest's ``arrays`` entry: the npy files, their dtypes, shapes and Q formats."""
    fmts = {"x": spec.fmt_in, "out": spec.fmt_out, "v": spec.fmt_v}
    meta = {}
    for name in FIELDS:
        if name == "spikes":
            meta[name] = {"file": "spikes.npy", "dtype": "bool", "shape": [steps, neurons], "format": dict(SPIKE_FMT),
                          "q": "Q1.0"}
        else:
            f: QFormat = fmts[name]
            meta[name] = {"file": f"{name}.npy", "dtype": str(f.dtype), "shape": [steps, neurons],
                          "format": {"bits": f.bits, "frac": f.frac}, "q": str(f)}
    return meta


def check_width(a: np.ndarray, bits: int, what: str) -> None:
    lo, hi = (0, 1) if bits == 1 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if a.size and (a.min() < lo or a.max() > hi):
        bad = a[(a < lo) | (a > hi)].flat[0]
        raise SpecError(f"{what}: value {int(bad)} does not fit the declared {bits}-bit width")


def _flat_chunks(arrays: dict, name: str):
    a = arrays[name].reshape(-1)
    for i in range(0, a.size, CHUNK):
        yield np.asarray(a[i:i + CHUNK])


def _bits(m: dict, name: str) -> int:
    return m["arrays"][name]["format"]["bits"]


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
_CTYPE = {np.dtype(np.int8): "int8_t", np.dtype(np.int16): "int16_t", np.dtype(np.int32): "int32_t",
          np.dtype(np.bool_): "int8_t"}
_C_ARRAY = re.compile(r"const\s+(u?int(?:8|16|32)_t)\s+(\w+)\[(\d{1,15})\]\s*(?:\w+\s*)?=\s*\{(.*?)\};", re.DOTALL)


def _c_numbers(a: np.ndarray) -> str:
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


def parse_csv(data) -> dict:
    if isinstance(data, Path):
        data = data.read_text(errors="replace")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != "t,neuron,x,out,v,spike":
        raise BundleError("vectors.csv: missing header t,neuron,x,out,v,spike")
    cell = re.compile(r"-?[0-9]{1,20}")
    rows = [ln.split(",") for ln in lines[1:]]
    if not all(len(r) == 6 and all(cell.fullmatch(s) for s in r) for r in rows):
        raise BundleError("vectors.csv: malformed row")
    a = np.array([[int(s) for s in r] for r in rows], np.int64).reshape(-1, 6)
    return {"t": a[:, 0], "neuron": a[:, 1], "x": a[:, 2], "out": a[:, 3], "v": a[:, 4], "spikes": a[:, 5]}


# ================================================================== formats
class Format:
    """One export: its name (the manifest's ``exports`` key), files, manifest entry, renderer and parser."""

    name = ""
    prefixed = False  # takes the C name prefix

    def files(self, m: dict) -> list:
        """The file names this export owns in a bundle with manifest ``m``."""
        raise NotImplementedError

    def meta(self, m: dict, prefix: str) -> dict:
        """Its entry in ``manifest["exports"]``."""
        raise NotImplementedError

    def render(self, arrays: dict, spec: Spec, m: dict, prefix: str):
        """Yield (file name, bytes) chunks, rendered from the (T, N) arrays."""
        raise NotImplementedError

    def parse(self, path: Path, m: dict, prefix: str) -> dict:
        """{field: flat int64 array} read back from one of its files (BundleError when malformed)."""
        raise NotImplementedError

    def size_bound(self, m: dict) -> int:
        """An upper bound of the bytes it writes (the free-space check)."""
        raise NotImplementedError


def _check_count(path: Path, got: int, m: dict, unit: str) -> None:
    if got != m["steps"] * m["neurons"]:
        raise BundleError(f"{path.name}: holds {got} {unit}, expected {m['steps'] * m['neurons']}")


def _max_chars(m: dict, name: str) -> int:
    bits = _bits(m, name)
    return len(str(-(1 << (bits - 1)))) if bits > 1 else 1


class Hex(Format):
    name = "hex"
    PARAMS = "bundle.vh"

    def files(self, m):
        return [f"{n}.hex" for n in FIELDS] + [self.PARAMS]

    def meta(self, m, prefix):
        words = m["steps"] * m["neurons"]
        e = {n: {"file": f"{n}.hex", "bits": _bits(m, n), "digits": hex_digits(_bits(m, n)), "words": words}
             for n in FIELDS}
        e["params"] = self.PARAMS
        return e

    def render(self, arrays, spec, m, prefix):
        for name in FIELDS:
            for a in _flat_chunks(arrays, name):
                yield f"{name}.hex", hex_bytes(a, _bits(m, name), f"{name}.hex")
        yield self.PARAMS, vh_text(spec, m).encode()

    def parse(self, path, m, prefix):
        if path.name == self.PARAMS:
            return {}
        got = parse_hex(path.read_bytes(), _bits(m, path.stem), path.name)
        _check_count(path, got.size, m, "words")
        return {path.stem: got}

    def size_bound(self, m):
        return m["steps"] * m["neurons"] * sum(hex_digits(_bits(m, n)) + 1 for n in FIELDS) + 4096


class CHeader(Format):
    """``vectors.h``: ``static const`` arrays, so any number of translation units may include it."""

    name = "h"
    FILE = "vectors.h"
    prefixed = True

    def files(self, m):
        return [self.FILE]

    def meta(self, m, prefix):
        return {"file": self.FILE, "prefix": prefix}

    def render(self, arrays, spec, m, prefix):
        yield self.FILE, h_preamble(spec, m, prefix).encode()
        n = m["steps"] * m["neurons"]
        for name in FIELDS:
            ctype = _CTYPE[np.dtype(m["arrays"][name]["dtype"])]
            yield self.FILE, f"static const {ctype} {prefix}_{name}[{n}] {prefix.upper()}_UNUSED = {{\n".encode()
            for a in _flat_chunks(arrays, name):
                yield self.FILE, _c_numbers(a).encode()
            yield self.FILE, b"};\n" + (b"\n" if name != FIELDS[-1] else b"")

    def parse(self, path, m, prefix):
        h = parse_h(path.read_text(errors="replace"))
        parsed = {k: h.get(f"{prefix}_{k}") for k in FIELDS}
        missing = [k for k, a in parsed.items() if a is None or a.size != m["steps"] * m["neurons"]]
        if missing:
            raise BundleError(f"{path.name}: array {prefix}_{missing[0]} missing or of the wrong size")
        return parsed

    def size_bound(self, m):
        per = sum(max(_max_chars(m, n), 19) + 2 for n in FIELDS)
        return m["steps"] * m["neurons"] * per + 8192


class Csv(Format):
    name = "csv"
    FILE = "vectors.csv"
    HEADER = "t,neuron,x,out,v,spike"

    def files(self, m):
        return [self.FILE]

    def meta(self, m, prefix):
        return {"file": self.FILE}

    def render(self, arrays, spec, m, prefix):
        yield self.FILE, (self.HEADER + "\n").encode()
        N = m["neurons"]
        flats = {k: arrays[k].reshape(-1) for k in FIELDS}
        for i in range(0, flats["x"].size, CHUNK):
            idx = np.arange(i, min(i + CHUNK, flats["x"].size))
            cols = np.stack([idx // N, idx % N] + [np.asarray(flats[k][i:i + CHUNK]).astype(np.int64) for k in FIELDS],
                            1)
            yield self.FILE, ("\n".join(",".join(map(str, r)) for r in cols.tolist()) + "\n").encode()

    def parse(self, path, m, prefix):
        c = parse_csv(path.read_text(errors="replace"))
        _check_count(path, c["x"].size, m, "rows")
        T, N = m["steps"], m["neurons"]
        idx = np.arange(T * N)
        if not (np.array_equal(c["t"], idx // N) and np.array_equal(c["neuron"], idx % N)):
            return {}
        return {k: c[k] for k in FIELDS}

    def size_bound(self, m):
        per = len(str(m["steps"])) + len(str(m["neurons"])) + sum(_max_chars(m, n) for n in FIELDS) + 6
        return m["steps"] * m["neurons"] * per + 64


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


# ============================================================== text renders
def vh_text(spec: Spec, m: dict) -> str:
    s = spec
    p = {
        "GV_STEPS": m["steps"], "GV_NEURONS": m["neurons"],
        "GV_IN_BITS": s.fmt_in.bits, "GV_IN_FRAC": s.fmt_in.frac, "GV_V_BITS": s.fmt_v.bits,
        "GV_V_FRAC": s.fmt_v.frac, "GV_OUT_BITS": s.fmt_out.bits, "GV_OUT_FRAC": s.fmt_out.frac,
        "GV_IN_DIGITS": hex_digits(s.fmt_in.bits), "GV_V_DIGITS": hex_digits(s.fmt_v.bits),
        "GV_OUT_DIGITS": hex_digits(s.fmt_out.bits), "GV_SPIKES_DIGITS": 1,
        "GV_KIND": ("IF", "LIF", "ATIF").index(s.kind), "GV_SOFT_RESET": int(s.reset == "soft"),
        "GV_DECAY_INPUT": int(s.decay_input), "GV_V_THRESHOLD": s.v_threshold, "GV_V_RESET": s.v_reset,
        "GV_RECIPROCAL_TAU": s.reciprocal_tau, "GV_SPIKE_OUT": s.spike_out, "GV_V_INIT": s.v_start,
        "GV_ROUND": ROUND_MODES.index(s.round), "GV_V_OVERFLOW": OVERFLOWS.index(s.v_overflow),
        "GV_ACC_OVERFLOW": OVERFLOWS.index(s.acc_overflow), "GV_ACC_BITS": s.acc_bits,
        "GV_ORDER": int(s.order == "round_then_fire"), "GV_ARITH_INT": int(s.arith == "int"),
        "GV_WORK_FRAC": s.work_frac, "GV_SHIFT_IN": s.shift_in, "GV_SHIFT_V": s.shift_v, "GV_LEAK_SHIFT": s.leak_s,
    }
    st = m["stimulus"]
    version = safe_text("golden_version", m["golden_version"])
    head = [f"// Generated by golden {version} (golden vectors); do not edit.",
            f"// {_describe(s)}",
            (f"// spec sha256 {m['spec']['sha256']}; stimulus {safe_text('stimulus.generator', st['generator'])} "
             f"seed {int_or_none(st['seed'])}; round {s.round}"),
            "// `include inside a module. Layout: word t*GV_NEURONS + n of each .hex file is step t, neuron n."]
    return "\n".join(head + [f"localparam integer {k} = {v};" for k, v in p.items()]) + "\n"


def int_or_none(v) -> str:
    return "None" if v is None else str(int(v))


def _describe(spec: Spec) -> str:
    safe_text("profile", spec.profile)
    return spec.describe()


def h_preamble(spec: Spec, m: dict, prefix: str) -> str:
    P = prefix.upper()
    s, T, N = spec, m["steps"], m["neurons"]
    version = safe_text("golden_version", m["golden_version"])
    sha = m["spec"]["sha256"]
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise BundleError("manifest.json: spec.sha256 is not 64 lowercase hex digits")
    defs = [("STEPS", T), ("NEURONS", N), ("SIZE", T * N),
            ("IN_BITS", s.fmt_in.bits), ("IN_FRAC", s.fmt_in.frac), ("V_BITS", s.fmt_v.bits),
            ("V_FRAC", s.fmt_v.frac), ("OUT_BITS", s.fmt_out.bits), ("OUT_FRAC", s.fmt_out.frac),
            ("V_THRESHOLD", s.v_threshold), ("V_RESET", s.v_reset), ("RECIPROCAL_TAU", s.reciprocal_tau),
            ("SPIKE_OUT", s.spike_out), ("V_INIT", s.v_start),
            ("VERSION", f'"{version}"'), ("SPEC_SHA256", f'"{sha}"')]
    width = max(len(k) for k, _ in defs) + len(P) + 1
    st = m["stimulus"]
    lines = [f"// Generated by golden {version} (golden vectors); do not edit.",
             f"// {_describe(s)}",
             (f"// profile {s.profile}, spec sha256 {sha}, "
              f"stimulus {safe_text('stimulus.generator', st['generator'])} seed {int_or_none(st['seed'])}"),
             f"// Layout: time-major, neuron-minor; element (t, n) at index t * {P}_NEURONS + n.",
             "// The arrays are static const: include this header from any number of translation units.",
             *c_preamble(P)]
    for k, v in defs:
        val = f"({v})" if isinstance(v, int) and v < 0 else str(v)
        lines.append(f"#define {(P + '_' + k).ljust(width)} {val}")
    return "\n".join(lines) + "\n\n"
