"""Test-vector bundles: generate, verify, export. The format is documented in ``vectors/README.md``.

A bundle is a directory: ``manifest.json``, ``spec.toml``, the raw arrays
(``x.npy``, ``out.npy``, ``v.npy``, ``spikes.npy``, shape (T, N), time-major,
neuron-minor) and exports (``*.hex`` + ``bundle.vh`` for ``$readmemh``,
``vectors.h`` for C, ``vectors.csv``). Everything streams in blocks of
:data:`BLOCK` steps, so memory is flat in T; every write goes to a temporary
directory renamed into place.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import GoldenError

from . import __version__
from .simulate import SimulationOverflow, _initial_v, Runner, check_raw
from .spec import OVERFLOWS, ROUND_MODES, STAGES, QFormat, Spec, SpecError

FORMAT = "golden-vectors"
SCHEMA = 1
BLOCK = 1024  # time steps per stimulus / simulation block
STIMULI = ("uniform", "poisson", "ties", "edges", "mixed")
BASE_STIMULI = STIMULI[:4]
FORMATS = ("npy", "hex", "h", "csv")
DEFAULT_FORMATS = ("npy", "hex", "h")
FIELDS = ("x", "out", "v", "spikes")
COMPARED = ("out", "v", "spikes")
LAYOUT = "time-major, neuron-minor: element (t, n) at flat index t*neurons + n"
HEX_PARAMS = "bundle.vh"
H_FILE = "vectors.h"
CSV_FILE = "vectors.csv"
CHUNK = 1 << 16  # elements per export chunk (a multiple of the C header's 16 values per line)
SPIKE_FMT = {"bits": 1, "frac": 0}


class BundleError(GoldenError):
    """A bundle that cannot be read or trusted (exit code 2): one line naming the bundle and file."""


# ====================================================================== npy
def _le(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype if dtype.itemsize == 1 else dtype.newbyteorder("<")


def npy_header(dtype, shape) -> bytes:
    """A NumPy format 1.0 header, byte-identical whatever NumPy writes today (64-byte aligned)."""
    d = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (_le(dtype).str, tuple(int(s) for s in shape))
    pad = -(10 + len(d) + 1) % 64
    d = d + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode("latin1")


def read_npy_header(path: Path):
    """(dtype, shape, data offset) of a C-order .npy; BundleError when the file is not a complete one."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            if major == 1:
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif major == 2:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {major}")
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, struct.error) as e:
        raise BundleError(f"{path.name}: not a valid .npy file ({str(e).splitlines()[0] if str(e) else 'corrupt header'})") from None
    if fortran:
        raise BundleError(f"{path.name}: Fortran-order array; bundles are C-order (time-major)")
    if dtype.hasobject:
        raise BundleError(f"{path.name}: object array refused")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise BundleError(f"{path.name}: truncated or corrupt ({size} bytes, header promises {expected})")
    return dtype, tuple(shape), offset


def _open_npy(path: Path, dtype, shape):
    got_dtype, got_shape, offset = read_npy_header(path)
    if got_dtype != _le(dtype):
        raise BundleError(f"{path.name}: wrong dtype: holds {got_dtype}, manifest says {np.dtype(dtype)}")
    if got_shape != tuple(shape):
        raise BundleError(f"{path.name}: wrong shape: holds {got_shape}, manifest says {tuple(shape)}")
    return np.memmap(path, dtype=got_dtype, mode="r", offset=offset, shape=got_shape)


class _NpyWriter:
    def __init__(self, path: Path, dtype, shape):
        self.dtype = _le(dtype)
        self.f = open(path, "wb")
        self.f.write(npy_header(self.dtype, shape))

    def write(self, a: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(a, dtype=self.dtype).tobytes())

    def close(self) -> None:
        self.f.close()


# ====================================================================== hex
_HEXDIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)
_HEXVAL = np.full(256, 255, np.uint8)
_HEXVAL[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_HEXVAL[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)
# two hex digits per byte value, as one little-endian uint16: a byte-pair lookup
_HEXPAIR = (_HEXDIGITS[np.arange(256) >> 4].astype(np.uint16) | (_HEXDIGITS[np.arange(256) & 15].astype(np.uint16) << 8))


def hex_digits(bits: int) -> int:
    return (bits + 3) // 4


def _check_width(a: np.ndarray, bits: int, what: str) -> None:
    if bits == 1:
        lo, hi = 0, 1
    else:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if a.size and (a.min() < lo or a.max() > hi):
        bad = a[(a < lo) | (a > hi)].flat[0]
        raise SpecError(f"{what}: value {int(bad)} does not fit the declared {bits}-bit width")


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
    _check_width(a, bits, what)
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


def _c_numbers(a: np.ndarray) -> str:
    """Decimal values, 16 per line, each followed by a comma."""
    vals = a.reshape(-1).astype(np.int64).tolist()
    lines = ["    " + ", ".join(map(str, vals[i:i + 16])) + "," for i in range(0, len(vals), 16)]
    text = "\n".join(lines) + "\n" if lines else ""
    return text.replace("-2147483648", "(-2147483647 - 1)")


def parse_h(data) -> dict:
    """The arrays of a golden C header (text or path): name -> int64 array."""
    if isinstance(data, Path):
        data = data.read_text()
    arrays = {}
    for m in re.finditer(r"const\s+(u?int(?:8|16|32)_t)\s+(\w+)\[(\d+)\]\s*=\s*\{(.*?)\};", data, re.S):
        body = m.group(4).replace("(-2147483647 - 1)", "-2147483648")
        nums = [s for s in re.split(r"[\s,]+", body) if s]
        try:
            arr = np.array([int(s) for s in nums], np.int64)
        except ValueError:
            raise BundleError(f"C header: array {m.group(2)}: not a list of integers") from None
        if arr.size != int(m.group(3)):
            raise BundleError(f"C header: array {m.group(2)} declares {m.group(3)} values, holds {arr.size}")
        arrays[m.group(2)] = arr
    return arrays


def parse_csv(data) -> dict:
    if isinstance(data, Path):
        data = data.read_text()
    lines = data.splitlines()
    if not lines or lines[0] != "t,neuron,x,out,v,spike":
        raise BundleError("vectors.csv: missing header t,neuron,x,out,v,spike")
    try:
        a = np.array([[int(s) for s in ln.split(",")] for ln in lines[1:]], np.int64).reshape(-1, 6)
    except ValueError:
        raise BundleError("vectors.csv: malformed row") from None
    return {"t": a[:, 0], "neuron": a[:, 1], "x": a[:, 2], "out": a[:, 3], "v": a[:, 4], "spikes": a[:, 5]}


# ================================================================= stimuli
class _Rng:
    """PCG64 raw 64-bit outputs mapped by integer multiply-shift: the same numbers on any machine and NumPy."""

    def __init__(self, seed: int, key: tuple):
        self.bg = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key))

    def raw(self, shape) -> np.ndarray:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = int(np.prod(shape, dtype=np.int64))
        return np.asarray(self.bg.random_raw(n), np.uint64).reshape(shape)

    def ints(self, lo: int, hi: int, shape) -> np.ndarray:
        """Integers in lo..hi inclusive (span <= 2**32)."""
        return _ints(self.raw(shape), lo, hi)

    def unit(self, shape) -> np.ndarray:
        """float64 in [0, 1): the top 53 bits times 2**-53."""
        return _unit(self.raw(shape))


def _ints(raw: np.ndarray, lo: int, hi: int) -> np.ndarray:
    span = np.uint64(hi - lo + 1)
    return (((raw >> np.uint64(32)) * span) >> np.uint64(32)).astype(np.int64) + np.int64(lo)


def _unit(raw: np.ndarray) -> np.ndarray:
    return (raw >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def _tie_probes(spec: Spec) -> list:
    """Spec pairs whose step results differ exactly where a candidate input is interesting.

    RND and RND_MIN_INF agree except on an exact tie, in any rounding of the
    step (leak, rescale, float32 quantization); v_threshold and v_threshold+1
    disagree only when the potential lands on the threshold. Probes never stop
    on overflow (strict becomes saturate).
    """
    quiet = {k: "saturate" for k in ("v_overflow", "acc_overflow") if getattr(spec, k) == "strict"}
    base = spec.replace(**quiet)
    pairs = [(base.replace(round="RND"), base.replace(round="RND_MIN_INF"))]
    if spec.v_threshold < spec.fmt_v.max:
        pairs.append((base, base.replace(v_threshold=spec.v_threshold + 1)))
    return [(Runner(a), Runner(b)) for a, b in pairs]


class _TieSeeker:
    """Closed-loop 'ties' stimulus: inputs that put a rounding on an exact tie or the potential on the threshold.

    Whether a candidate does is asked of golden's own kernel (:func:`_tie_probes`), so the stimulus needs no
    second model of the datapath.
    """

    MAX_CANDIDATES = 4096

    def __init__(self, spec: Spec, n: int):
        self.spec, self.n = spec, n
        self.runner = Runner(spec)
        self.probes = _tie_probes(spec)
        self.v = _initial_v(spec, None, (n,))
        f = spec.fmt_in
        self.full = f.max - f.min + 1 <= self.MAX_CANDIDATES

    def _candidates(self, rng: _Rng) -> np.ndarray:
        f = self.spec.fmt_in
        if self.full:
            c = np.arange(f.min, f.max + 1, dtype=np.int64)
            return np.broadcast_to(c, (self.n, c.size))
        extra = np.array([f.min, f.min + 1, -1, 0, 1, f.max - 1, f.max], np.int64)
        # values aligned to rescale / leak half-LSBs at several scales
        s = np.arange(1, min(f.bits - 1, 20), dtype=np.int64)
        halves = np.concatenate([(np.int64(1) << s) >> 1, -((np.int64(1) << s) >> 1), (np.int64(3) << s) >> 1])
        structured = np.concatenate([extra, halves[(halves >= f.min) & (halves <= f.max)]])
        rand = rng.ints(f.min, f.max, (self.n, self.MAX_CANDIDATES - structured.size))
        return np.concatenate([np.broadcast_to(structured, (self.n, structured.size)), rand], axis=1)

    def _hits(self, cand: np.ndarray) -> np.ndarray:
        """(N, K): candidate k of neuron n makes some probe pair disagree on this step."""
        n, k = cand.shape
        x = np.ascontiguousarray(cand.reshape(1, -1)).astype(self.spec.fmt_in.dtype)
        hit = np.zeros(n * k, bool)
        for a, b in self.probes:
            _, va, sa, _ = a.run(x, np.repeat(self.v, k), parallel=False)
            _, vb, sb, _ = b.run(x, np.repeat(self.v, k), parallel=False)
            hit |= (va[0] != vb[0]) | (sa[0] != sb[0])
        return hit.reshape(n, k)

    def block(self, rng: _Rng, rows: int) -> np.ndarray:
        s, n = self.spec, self.n
        out = np.empty((rows, n), np.int64)
        for t in range(rows):
            cand = self._candidates(rng)
            k = cand.shape[1]
            score = self._hits(cand)
            # a random pick among the candidates that hit a tie; one neuron-step in eight picks freely
            key = (rng.raw((n, k)) >> np.uint64(40)).astype(np.int64)
            free = rng.unit(n) < 0.125
            score = np.where(free[:, None], 0, score.astype(np.int64))
            pick = np.argmax(score * (np.int64(1) << 24) + key, axis=1)
            x = cand[np.arange(n), pick]
            out[t] = x
            self.runner.run(x.reshape(1, -1).astype(s.fmt_in.dtype), self.v, parallel=False)
        return out


class _Stimulus:
    """Blocks of raw inputs for ``generator`` (see README): deterministic in (spec, N, seed), independent of chunking."""

    def __init__(self, spec: Spec, neurons: int, seed: int, generator: str):
        if generator not in STIMULI:
            raise SpecError(f"stimulus: unknown generator {generator!r} (expected one of: {', '.join(STIMULI)})")
        _seed(seed)
        self.spec, self.seed = spec, seed
        cols = np.arange(neurons)
        if generator == "mixed":
            self.parts = [(g, cols[cols % 4 == i]) for i, g in enumerate(BASE_STIMULI)]
            self.parts = [(g, c) for g, c in self.parts if c.size]
        else:
            self.parts = [(generator, cols)]
        self.neurons = neurons
        self.state = {}
        f = spec.fmt_in
        for g, c in self.parts:
            gi = BASE_STIMULI.index(g)
            if g == "poisson":
                p = _Rng(seed, (gi,))
                rate = p.unit(c.size) * 0.5
                amp = p.ints(f.min // 4, f.max, c.size)
                self.state[g] = (rate, np.where(amp == 0, f.max, amp))
            elif g == "ties":
                self.state[g] = _TieSeeker(spec, c.size)

    def block(self, k: int, rows: int) -> np.ndarray:
        f = self.spec.fmt_in
        x = np.empty((rows, self.neurons), np.int64)
        for g, c in self.parts:
            rng = _Rng(self.seed, (BASE_STIMULI.index(g), k))
            n = c.size
            if g == "uniform":
                x[:, c] = rng.ints(f.min, f.max, (rows, n))
            elif g == "poisson":
                rate, amp = self.state[g]
                x[:, c] = np.where(rng.unit((rows, n)) < rate, amp, 0)
            elif g == "edges":
                values = np.array([f.min, f.min, f.min + 1, -1, 0, 1, f.max - 1, f.max, f.max], np.int64)
                raw = rng.raw((rows, n, 2))  # step by step, so a longer run extends a shorter one
                idx = _ints(raw[:, :, 0], 0, values.size - 1)
                change = _unit(raw[:, :, 1]) < 0.125
                change[0] = True
                last = np.maximum.accumulate(np.where(change, np.arange(rows)[:, None], 0), axis=0)
                x[:, c] = values[np.take_along_axis(idx, last, axis=0)]
            else:
                x[:, c] = self.state[g].block(rng, rows)
        return x.astype(f.dtype)


def stimulus(spec: Spec, steps: int, neurons: int, seed: int, generator: str) -> np.ndarray:
    """The whole (T, N) raw input a bundle of this stimulus holds (in memory; generate() streams it)."""
    _dims(steps, neurons)
    st = _Stimulus(spec, neurons, seed, generator)
    return np.concatenate([st.block(k, min(BLOCK, steps - k * BLOCK)) for k in range(-(-steps // BLOCK))])


# ================================================================= writing
def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def _dims(steps, neurons) -> None:
    for name, v in (("steps", steps), ("neurons", neurons)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SpecError(f"{name}: expected a positive integer, got {v!r}")


def _formats(formats) -> tuple:
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = tuple(formats)
    for f in formats:
        if f not in FORMATS:
            raise SpecError(f"formats: unknown format {f!r} (expected some of: {', '.join(FORMATS)})")
    return tuple(f for f in FORMATS if f in formats or f == "npy")


def _fmt_dict(f: QFormat) -> dict:
    return {"bits": f.bits, "frac": f.frac}


def _array_meta(spec: Spec, steps: int, neurons: int) -> dict:
    fmts = {"x": spec.fmt_in, "out": spec.fmt_out, "v": spec.fmt_v}
    meta = {}
    for name in FIELDS:
        if name == "spikes":
            meta[name] = {"file": "spikes.npy", "dtype": "bool", "shape": [steps, neurons], "format": dict(SPIKE_FMT),
                          "q": "Q1.0"}
        else:
            f = fmts[name]
            meta[name] = {"file": f"{name}.npy", "dtype": str(f.dtype), "shape": [steps, neurons],
                          "format": _fmt_dict(f), "q": str(f)}
    return meta


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dump_manifest(m: dict) -> str:
    return json.dumps(m, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


class _Progress:
    def __init__(self, total: int, enabled: bool | None, label: str):
        self.total, self.label = total, label
        self.on = sys.stderr.isatty() if enabled is None else enabled
        self.last = -1

    def update(self, done: int) -> None:
        if not self.on:
            return
        pct = 100 * done // max(self.total, 1)
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            sys.stderr.write(f"\r{self.label} [{bar}] {pct:3d}% ({done}/{self.total} steps)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _replace_dir(out: Path, force: bool):
    """Checks before an atomic write to ``out``; returns the temporary directory to fill."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not force:
            raise FileExistsError(f"{out}: already exists (use --force to replace it)")
        if not out.is_dir():
            raise FileExistsError(f"{out}: exists and is not a directory; refusing to replace it")
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            raise FileExistsError(f"{out}: a non-empty directory that is not a bundle; refusing to replace it")
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


def _commit_dir(tmp: Path, out: Path) -> None:
    out = Path(out)
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.absolute().parent))
        os.rename(out, old / "b")
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def _finish(tmp: Path, manifest: dict) -> None:
    """Fill in the sha256 and size of every file and write manifest.json."""
    files = {}
    for p in sorted(tmp.iterdir()):
        if p.name != "manifest.json" and p.is_file():
            files[p.name] = {"sha256": _sha256(p), "bytes": p.stat().st_size}
    manifest["files"] = files
    (tmp / "manifest.json").write_text(_dump_manifest(manifest))


def _base_manifest(spec: Spec, steps: int, neurons: int, generator: str, seed, overflow: dict) -> dict:
    toml = spec.to_toml()
    return {
        "format": FORMAT, "schema": SCHEMA, "golden_version": __version__,
        "spec": {"toml": toml, "sha256": hashlib.sha256(toml.encode()).hexdigest(), "file": "spec.toml"},
        "profile": spec.profile, "kind": spec.kind,
        "stimulus": {"generator": generator, "seed": seed, "block": BLOCK},
        "steps": steps, "neurons": neurons, "layout": LAYOUT, "v0": "spec",
        "arrays": _array_meta(spec, steps, neurons),
        "overflow": {k: int(overflow.get(k, 0)) for k in STAGES},
        "exports": {},
    }


def _seal(tmp: Path, out: Path, spec: Spec, manifest: dict, formats, prefix: str) -> None:
    """Arrays are written: add spec.toml and the exports, hash everything into the manifest, rename into place."""
    (tmp / "spec.toml").write_text(spec.to_toml())
    _export_into(tmp, manifest, spec, [f for f in formats if f != "npy"], prefix)
    _finish(tmp, manifest)
    _commit_dir(tmp, out)


def _keep_heap_flat() -> None:
    """Serve every block-sized buffer from mmap, so a long stream's RSS stays flat.

    glibc raises its mmap threshold each time a large buffer is freed, after
    which the per-block arrays come from the heap and fragment it: measured
    here, RSS grew from 200 MB to 477 MB over T = 1e6 (N = 1024) without
    this, and stays at ~180 MB with it. A no-op where there is no glibc.
    """
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD = 128 KiB, fixed
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def generate(spec, steps: int, neurons: int, seed: int, stimulus: str, out, formats=DEFAULT_FORMATS,
             force: bool = False, *, prefix: str = "golden", progress: bool | None = None) -> Path:
    """Write a bundle: the stimulus, simulated block by block (memory flat in T), then its exports.

    ``spec`` is a :class:`Spec` or a path to a TOML spec. Same arguments, same bytes.
    """
    if not isinstance(spec, Spec):
        spec = Spec.from_toml(Path(spec))
    _dims(steps, neurons)
    seed = _seed(seed)
    formats = _formats(formats)
    _prefix(prefix)
    stim = _Stimulus(spec, neurons, seed, stimulus)
    runner = Runner(spec)
    _keep_heap_flat()
    out = Path(out)
    tmp = _replace_dir(out, force)
    try:
        meta = _array_meta(spec, steps, neurons)
        writers = {k: _NpyWriter(tmp / meta[k]["file"], meta[k]["dtype"], (steps, neurons)) for k in FIELDS}
        v = _initial_v(spec, None, (neurons,))
        counts = np.zeros(len(STAGES), np.int64)
        bar = _Progress(steps, progress, f"golden vectors {out.name}")
        try:
            for k in range(-(-steps // BLOCK)):
                rows = min(BLOCK, steps - k * BLOCK)
                x = check_raw(stim.block(k, rows), spec.fmt_in, "stimulus")
                o, vt, sp, c = runner.run(x, v, t0=k * BLOCK)
                counts += c
                for name, a in zip(FIELDS, (x, o, vt, sp)):
                    writers[name].write(a)
                bar.update(k * BLOCK + rows)
        finally:
            for w in writers.values():
                w.close()
            bar.close()
        _seal(tmp, out, spec, _base_manifest(spec, steps, neurons, stimulus, seed, dict(zip(STAGES, counts.tolist()))),
              formats, prefix)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_bundle(out, spec: Spec, x, trace, stimulus: str = "custom", seed=None, force: bool = False,
                 formats=DEFAULT_FORMATS, prefix: str = "golden") -> Path:
    """Write a bundle from inputs already simulated (``golden demo --out``): ``x`` (T, *shape), its ``trace``."""
    if not isinstance(spec, Spec):
        raise SpecError(f"spec: expected a golden.Spec, got {type(spec).__name__}")
    x = check_raw(x, spec.fmt_in, "x")
    if x.ndim < 2:
        raise SpecError(f"x: expected shape (T, *neurons), got rank {x.ndim}")
    steps, neurons = x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64))
    _dims(steps, neurons)
    arrays = {"x": x, "out": trace.out, "v": trace.v, "spikes": trace.spikes}
    for k in COMPARED:
        if arrays[k].shape != x.shape:
            raise SpecError(f"trace.{k}: shape {arrays[k].shape} does not match x {x.shape}")
    formats = _formats(formats)
    _prefix(prefix)
    out = Path(out)
    tmp = _replace_dir(out, force)
    try:
        meta = _array_meta(spec, steps, neurons)
        for k in FIELDS:
            a = np.asarray(arrays[k]).reshape(steps, neurons)
            if k != "spikes":
                _check_width(a, meta[k]["format"]["bits"], f"{k}")
            w = _NpyWriter(tmp / meta[k]["file"], meta[k]["dtype"], (steps, neurons))
            w.write(a)
            w.close()
        _seal(tmp, out, spec, _base_manifest(spec, steps, neurons, stimulus, seed, trace.overflow), formats, prefix)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ================================================================= exports
def _prefix(prefix: str) -> None:
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise SpecError(f"prefix: {prefix!r} is not a C identifier")


def _flat_chunks(arrays: dict, name: str):
    a = arrays[name].reshape(-1)
    for i in range(0, a.size, CHUNK):
        yield i, np.asarray(a[i:i + CHUNK])


def _word_bits(manifest: dict, name: str) -> int:
    return manifest["arrays"][name]["format"]["bits"]


def _vh_text(spec: Spec, manifest: dict) -> str:
    s = spec
    p = {
        "GV_STEPS": manifest["steps"], "GV_NEURONS": manifest["neurons"],
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
    head = [f"// Generated by golden {manifest['golden_version']} (golden vectors); do not edit.",
            f"// {s.describe()}",
            f"// spec sha256 {manifest['spec']['sha256']}; stimulus {manifest['stimulus']['generator']} "
            f"seed {manifest['stimulus']['seed']}; round {s.round}",
            "// `include inside a module. Layout: word t*GV_NEURONS + n of each .hex file is step t, neuron n."]
    return "\n".join(head + [f"localparam integer {k} = {v};" for k, v in p.items()]) + "\n"


def _h_preamble(spec: Spec, manifest: dict, prefix: str) -> str:
    P = prefix.upper()
    s, T, N = spec, manifest["steps"], manifest["neurons"]
    defs = [("STEPS", T), ("NEURONS", N), ("SIZE", T * N),
            ("IN_BITS", s.fmt_in.bits), ("IN_FRAC", s.fmt_in.frac), ("V_BITS", s.fmt_v.bits),
            ("V_FRAC", s.fmt_v.frac), ("OUT_BITS", s.fmt_out.bits), ("OUT_FRAC", s.fmt_out.frac),
            ("V_THRESHOLD", s.v_threshold), ("V_RESET", s.v_reset), ("RECIPROCAL_TAU", s.reciprocal_tau),
            ("SPIKE_OUT", s.spike_out), ("V_INIT", s.v_start),
            ("VERSION", f'"{manifest["golden_version"]}"'), ("SPEC_SHA256", f'"{manifest["spec"]["sha256"]}"')]
    width = max(len(k) for k, _ in defs) + len(P) + 1
    lines = [f"// Generated by golden {manifest['golden_version']} (golden vectors); do not edit.",
             f"// {s.describe()}",
             f"// profile {s.profile}, spec sha256 {manifest['spec']['sha256']}, "
             f"stimulus {manifest['stimulus']['generator']} seed {manifest['stimulus']['seed']}",
             f"// Layout: time-major, neuron-minor; element (t, n) at index t * {P}_NEURONS + n.",
             "#pragma once", "#include <stdint.h>", ""]
    for k, v in defs:
        val = f"({v})" if isinstance(v, int) and v < 0 else str(v)
        lines.append(f"#define {(P + '_' + k).ljust(width)} {val}")
    return "\n".join(lines) + "\n\n"


def _render(kind: str, arrays: dict, spec: Spec, manifest: dict, prefix: str):
    """Yield (file name, bytes chunk) of one export format, rendered from the (T, N) arrays in ``arrays``."""
    if kind == "hex":
        for name in FIELDS:
            bits = _word_bits(manifest, name)
            for _, a in _flat_chunks(arrays, name):
                yield f"{name}.hex", hex_bytes(a, bits, f"{name}.hex")
        yield HEX_PARAMS, _vh_text(spec, manifest).encode()
    elif kind == "h":
        yield H_FILE, _h_preamble(spec, manifest, prefix).encode()
        n = manifest["steps"] * manifest["neurons"]
        for name in FIELDS:
            ctype = _CTYPE[np.dtype(manifest["arrays"][name]["dtype"])]
            yield H_FILE, f"const {ctype} {prefix}_{name}[{n}] = {{\n".encode()
            for _, a in _flat_chunks(arrays, name):
                yield H_FILE, _c_numbers(a).encode()
            yield H_FILE, b"};\n" + (b"\n" if name != FIELDS[-1] else b"")
    elif kind == "csv":
        yield CSV_FILE, b"t,neuron,x,out,v,spike\n"
        N = manifest["neurons"]
        flats = {k: arrays[k].reshape(-1) for k in FIELDS}
        for i in range(0, flats["x"].size, CHUNK):
            idx = np.arange(i, min(i + CHUNK, flats["x"].size))
            cols = np.stack([idx // N, idx % N] + [np.asarray(flats[k][i:i + CHUNK]).astype(np.int64) for k in FIELDS], 1)
            yield CSV_FILE, ("\n".join(",".join(map(str, r)) for r in cols.tolist()) + "\n").encode()
    else:  # pragma: no cover
        raise SpecError(f"format: unknown export {kind!r}")


def _export_meta(kind: str, manifest: dict, prefix: str) -> dict:
    if kind == "hex":
        m = {name: {"file": f"{name}.hex", "bits": _word_bits(manifest, name),
                    "digits": hex_digits(_word_bits(manifest, name)), "words": manifest["steps"] * manifest["neurons"]}
             for name in FIELDS}
        m["params"] = HEX_PARAMS
        return m
    if kind == "h":
        return {"file": H_FILE, "prefix": prefix}
    return {"file": CSV_FILE}


def _export_into(d: Path, manifest: dict, spec: Spec, kinds, prefix: str) -> None:
    arrays = {k: _open_npy(d / manifest["arrays"][k]["file"], manifest["arrays"][k]["dtype"],
                           manifest["arrays"][k]["shape"]) for k in FIELDS}
    for kind in kinds:
        files = {}
        try:
            for name, chunk in _render(kind, arrays, spec, manifest, prefix):
                if name not in files:
                    files[name] = open(d / name, "wb")
                files[name].write(chunk)
        finally:
            for f in files.values():
                f.close()
        manifest["exports"][kind] = _export_meta(kind, manifest, prefix)
    del arrays


def export(bundle, fmt, *, prefix: str | None = None) -> list:
    """Add exports (``hex``, ``h``, ``csv``; a list or comma-separated) to an existing bundle that verifies.

    The new files are written to a copy of the bundle, which then replaces it atomically.
    """
    bundle = Path(bundle)
    kinds = [f for f in _formats(fmt) if f != "npy"]
    if not kinds:
        raise SpecError("format: expected hex, h or csv")
    res = verify_bundle(bundle)
    if res.count:
        raise BundleError(f"{bundle}: does not verify ({res.first_text()}); refusing to export from it")
    manifest = res.manifest
    prefix = prefix or manifest["exports"].get("h", {}).get("prefix", "golden")
    _prefix(prefix)
    tmp = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.", suffix=".tmp", dir=bundle.absolute().parent))
    try:
        os.chmod(tmp, bundle.stat().st_mode & 0o777)
        for p in bundle.iterdir():
            if p.is_file() and p.name != "manifest.json":
                shutil.copy2(p, tmp / p.name)
        _export_into(tmp, manifest, res.spec, kinds, prefix)
        _finish(tmp, manifest)
        _commit_dir(tmp, bundle)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [e for k in kinds for e in _export_files(k, manifest)]


def _export_files(kind: str, manifest: dict) -> list:
    m = manifest["exports"].get(kind)
    if m is None:
        return []
    if kind == "hex":
        return [m[n]["file"] for n in FIELDS] + [m["params"]]
    return [m["file"]]


# ================================================================= reading
def read_bundle(bundle) -> tuple:
    """(spec, {name: (T, N) array}, manifest) of a bundle, after the structural checks (not the re-simulation)."""
    bundle = Path(bundle)
    manifest, spec = _load_manifest(bundle)
    arrays = _load_arrays(bundle, manifest, spec)
    return spec, {k: np.array(a) for k, a in arrays.items()}, manifest


def _need(m: dict, key: str, typ, where: str = ""):
    if key not in m:
        raise BundleError(f"manifest.json: missing {where}{key}")
    if not isinstance(m[key], typ) or (typ is int and isinstance(m[key], bool)):
        raise BundleError(f"manifest.json: {where}{key}: wrong type {type(m[key]).__name__}")
    return m[key]


def _load_manifest(bundle: Path):
    path = bundle / "manifest.json"
    if not bundle.is_dir():
        raise BundleError(f"not a directory: {bundle}")
    if not path.is_file():
        raise BundleError("missing manifest.json: not a golden bundle")
    try:
        m = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"manifest.json: not valid JSON ({e})") from None
    if not isinstance(m, dict):
        raise BundleError("manifest.json: not a JSON object")
    if m.get("format") != FORMAT:
        raise BundleError(f"manifest.json: format is {m.get('format')!r}, not {FORMAT!r}")
    if m.get("schema") != SCHEMA:
        raise BundleError(f"manifest.json: unknown schema version {m.get('schema')!r} (this golden reads {SCHEMA})")
    sp = _need(m, "spec", dict)
    toml = _need(sp, "toml", str, "spec.")
    if hashlib.sha256(toml.encode()).hexdigest() != _need(sp, "sha256", str, "spec."):
        raise BundleError("manifest.json: spec.sha256 does not match the spec text (manifest edited or corrupt)")
    try:
        spec = Spec.from_toml(toml)
    except SpecError as e:
        raise BundleError(f"manifest.json: invalid spec: {e}") from None
    T, N = _need(m, "steps", int), _need(m, "neurons", int)
    if T < 1 or N < 1:
        raise BundleError(f"manifest.json: steps={T}, neurons={N}: must be positive")
    if _need(m, "layout", str) != LAYOUT:
        raise BundleError(f"manifest.json: unsupported layout {m['layout']!r}")
    _need(m, "files", dict)
    _need(m, "exports", dict)
    ovf = _need(m, "overflow", dict)
    if set(ovf) != set(STAGES) or not all(isinstance(v, int) for v in ovf.values()):
        raise BundleError("manifest.json: overflow must count every stage: " + ", ".join(STAGES))
    arrays = _need(m, "arrays", dict)
    expected = _array_meta(spec, T, N)
    for name in FIELDS:
        a = _need(arrays, name, dict, "arrays.")
        for key in ("file", "dtype", "shape", "format"):
            _need(a, key, (str, list, dict), f"arrays.{name}.")
        e = expected[name]
        if a["format"] != e["format"]:
            raise BundleError(f"manifest.json: format mismatch: arrays.{name} says {a['format']}, the spec says {e['format']}")
        if a["dtype"] != e["dtype"]:
            raise BundleError(f"manifest.json: format mismatch: arrays.{name} dtype {a['dtype']!r} cannot be the "
                              f"{e['q']} format's {e['dtype']!r}")
        if a["shape"] != e["shape"] or a["file"] != e["file"]:
            raise BundleError(f"manifest.json: arrays.{name}: expected file {e['file']} shape {e['shape']}")
    return m, spec


def _load_arrays(bundle: Path, m: dict, spec: Spec) -> dict:
    files = m["files"]
    arrays = {}
    for name in FIELDS:
        a = m["arrays"][name]
        path = bundle / a["file"]
        if a["file"] not in files:
            raise BundleError(f"manifest.json: {a['file']} is not listed in files")
        if not path.is_file():
            raise BundleError(f"{a['file']}: missing")
        arrays[name] = _open_npy(path, a["dtype"], a["shape"])
    # the values must be inside the declared formats (a stored wider value is a format mismatch, not a pass)
    for name in FIELDS:
        bits = m["arrays"][name]["format"]["bits"]
        arr = arrays[name].reshape(-1)
        for i in range(0, arr.size, CHUNK * 16):
            c = np.asarray(arr[i:i + CHUNK * 16])
            if name == "spikes":
                if c.view(np.uint8).max(initial=0) > 1:
                    raise BundleError(f"{name}.npy: holds a bool byte other than 0/1 (corrupt)")
                continue
            try:
                _check_width(c, bits, f"{name}.npy")
            except SpecError as e:
                what = "stimulus outside the input format" if name == "x" else "format mismatch"
                raise BundleError(f"{e} ({what} {m['arrays'][name]['q']})") from None
    return arrays


@dataclass
class Diff:
    bundle: str
    t: int | None
    neuron: int | None
    field: str
    expected: object
    got: object

    def text(self) -> str:
        return (f"(bundle={self.bundle}, t={self.t}, neuron={self.neuron}, field={self.field}, "
                f"expected={self.expected}, got={self.got})")


@dataclass
class Result:
    bundle: Path
    manifest: dict = None
    spec: Spec = None
    first: Diff | None = None
    count: int = 0
    notes: list = field(default_factory=list)

    def add(self, diff: Diff, n: int = 1) -> None:
        if self.first is None:
            self.first = diff
        self.count += n

    def first_text(self) -> str:
        return self.first.text() if self.first else "no difference"


def _first_mismatch(fields: dict, t0: int, N: int):
    """Earliest (t, n, field, expected, got) among {field: (expected, got)} (T, N) blocks, and the mismatch count."""
    best, count = None, 0
    for name, (exp, got) in fields.items():
        bad = exp != got
        c = int(np.count_nonzero(bad))
        if not c:
            continue
        count += c
        i = int(np.argmax(bad.reshape(-1)))
        t, n = divmod(i, N)
        cand = (t, n, COMPARED.index(name) if name in COMPARED else 9)
        if best is None or cand < best[0]:
            e, g = exp.reshape(-1)[i], got.reshape(-1)[i]
            best = (cand, (t0 + t, n, name, _py(e), _py(g)))
    return (best[1] if best else None), count


def _py(v):
    return bool(v) if isinstance(v, (bool, np.bool_)) else int(v)


def verify_bundle(bundle, progress: bool | None = None) -> Result:
    """Check one bundle (see README); BundleError when it cannot be read, else a Result with the differences."""
    bundle = Path(bundle)
    res = Result(bundle)
    name = str(bundle)
    m, spec = _load_manifest(bundle)
    res.manifest, res.spec = m, spec
    arrays = _load_arrays(bundle, m, spec)
    T, N = m["steps"], m["neurons"]
    # every listed file: present, the right size; sha256 compared after the content
    bad_sha = []
    for fname, info in sorted(m["files"].items()):
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or not isinstance(info.get("bytes"), int):
            raise BundleError(f"manifest.json: files.{fname}: expected {{sha256, bytes}}")
        p = bundle / fname
        if os.sep in fname or fname in ("manifest.json", "..", ".") or "/" in fname:
            raise BundleError(f"manifest.json: files: bad file name {fname!r}")
        if not p.is_file():
            raise BundleError(f"{fname}: missing (listed in manifest.json)")
        if p.stat().st_size != info["bytes"]:
            raise BundleError(f"{fname}: truncated or corrupt ({p.stat().st_size} bytes, manifest says {info['bytes']})")
        if _sha256(p) != info["sha256"]:
            bad_sha.append(fname)
    # re-simulate, block by block, and compare
    runner = Runner(spec)
    v = _initial_v(spec, None, (N,))
    counts = np.zeros(len(STAGES), np.int64)
    bar = _Progress(T, progress, f"golden vectors verify {bundle.name}")
    try:
        for t0 in range(0, T, BLOCK):
            x = np.asarray(arrays["x"][t0:t0 + BLOCK])
            try:
                o, vt, sp, c = runner.run(x, v, t0=t0)
            except SimulationOverflow as e:
                res.add(Diff(name, e.t, e.neuron, "overflow", "no strict overflow", str(e)))
                return res
            counts += c
            got = {k: np.asarray(arrays[k][t0:t0 + BLOCK]) for k in COMPARED}
            first, n = _first_mismatch({"out": (o, got["out"]), "v": (vt, got["v"]), "spikes": (sp, got["spikes"])}, t0, N)
            if n:
                res.add(Diff(name, *first), n)
            bar.update(min(t0 + BLOCK, T))
    finally:
        bar.close()
    for k, c in zip(STAGES, counts.tolist()):
        if m["overflow"][k] != c:
            res.add(Diff(name, None, None, f"overflow.{k}", c, m["overflow"][k]))
    # exports: re-rendered from the (checked) arrays, compared byte for byte
    exp_files = set()
    for kind, meta in sorted(m["exports"].items()):
        if kind not in FORMATS[1:]:
            raise BundleError(f"manifest.json: exports: unknown format {kind!r}")
        prefix = meta.get("prefix", "golden") if kind == "h" else "golden"
        if kind == "h":
            _prefix(prefix)
        if meta != _export_meta(kind, m, prefix):
            raise BundleError(f"manifest.json: exports.{kind} does not describe this bundle's arrays (format mismatch)")
        wanted = _export_files(kind, m)
        for f in wanted:
            if f not in m["files"]:
                raise BundleError(f"manifest.json: {f} is not listed in files")
        exp_files |= set(wanted)
        handles, differing = {}, set()
        try:
            for fname, chunk in _render(kind, arrays, spec, m, prefix):
                if fname in differing:
                    continue
                fh = handles.get(fname) or handles.setdefault(fname, open(bundle / fname, "rb"))
                if fh.read(len(chunk)) != chunk:
                    differing.add(fname)
        finally:
            for fh in handles.values():
                fh.close()
        for fname in sorted(differing):
            _locate_export_diff(res, name, bundle / fname, kind, m, arrays, prefix)
    for fname in bad_sha:
        if res.count == 0 or fname not in exp_files | {f"{k}.npy" for k in FIELDS}:
            res.add(Diff(name, None, None, f"{fname} sha256", m["files"][fname]["sha256"], _sha256(bundle / fname)))
    return res


def _locate_export_diff(res: Result, name: str, path: Path, kind: str, m: dict, arrays: dict, prefix: str) -> None:
    """An export's bytes differ from its arrays: find the first differing element (malformed text is exit 2)."""
    T, N = m["steps"], m["neurons"]
    if kind == "hex":
        field_ = path.stem
        got = parse_hex(path.read_bytes(), _word_bits(m, field_), path.name)
        if got.size != T * N:
            raise BundleError(f"{path.name}: holds {got.size} words, expected {T * N}")
        parsed = {field_: got}
    elif kind == "h":
        h = parse_h(path.read_text(errors="replace"))
        parsed = {k: h.get(f"{prefix}_{k}") for k in FIELDS}
        missing = [k for k, a in parsed.items() if a is None or a.size != T * N]
        if missing:
            raise BundleError(f"{path.name}: array {prefix}_{missing[0]} missing or of the wrong size")
    else:
        c = parse_csv(path.read_text(errors="replace"))
        if c["x"].size != T * N:
            raise BundleError(f"{path.name}: holds {c['x'].size} rows, expected {T * N}")
        idx = np.arange(T * N)
        if not (np.array_equal(c["t"], idx // N) and np.array_equal(c["neuron"], idx % N)):
            res.add(Diff(name, None, None, f"{path.name} t/neuron columns", "layout order", "other"))
            return
        parsed = {k: c[k] for k in FIELDS}
    pairs = {f"{path.name}:{k}": (np.asarray(arrays[k]).reshape(-1).astype(np.int64), a.astype(np.int64))
             for k, a in parsed.items()}
    first, n = _first_mismatch({k: (e.reshape(T, N), g.reshape(T, N)) for k, (e, g) in pairs.items()}, 0, N)
    if n:
        res.add(Diff(name, *first), n)
    else:  # same values, different text (spacing, the preamble, bundle.vh, ...)
        res.add(Diff(name, None, None, path.name, "golden's rendering", "different text"))


def find_bundles(paths) -> list:
    """Bundle directories: each path that holds a manifest.json, else every */manifest.json below it."""
    found = []
    for p in map(Path, paths):
        if (p / "manifest.json").is_file():
            found.append(p)
        elif p.is_dir():
            below = sorted(q.parent for q in p.rglob("manifest.json") if not any(s.startswith(".") for s in q.relative_to(p).parts))
            if not below:
                raise BundleError(f"{p}: no manifest.json here or below (not a bundle)")
            found.extend(below)
        elif not p.exists():
            raise BundleError(f"{p}: no such directory")
        else:
            raise BundleError(f"{p}: not a directory")
    return found


def verify(paths, *, out=None, err=None, progress: bool | None = None) -> int:
    """Verify bundles; 0 all hold, 1 some differ, 2 some cannot be read."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        bundles = find_bundles(paths)
    except BundleError as e:
        print(f"golden: error: {e}", file=err)
        return 2
    ok = differ = broken = total = 0
    for b in bundles:
        try:
            r = verify_bundle(b, progress=progress)
        except (BundleError, SpecError) as e:
            print(f"golden: error: {b}: {e}", file=err)
            broken += 1
            continue
        if r.count:
            differ += 1
            total += r.count
            print(f"FAIL {b}: first difference {r.first.text()}; {r.count} differing", file=out)
        else:
            ok += 1
    print(f"golden vectors verify: {len(bundles)} bundle(s): {ok} ok, {differ} differ ({total} differences), "
          f"{broken} unreadable", file=out)
    return 2 if broken else 1 if differ else 0


# ===================================================================== CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="golden vectors", description="Test-vector bundles (see vectors/README.md).")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="simulate a stimulus and write a bundle")
    g.add_argument("--spec", required=True, help="TOML spec (golden spec new ...)")
    g.add_argument("--steps", type=int, required=True)
    g.add_argument("--neurons", type=int, required=True)
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--stimulus", required=True, choices=STIMULI)
    g.add_argument("--out", required=True)
    g.add_argument("--formats", default=",".join(DEFAULT_FORMATS), help="comma-separated: npy,hex,h,csv (npy always)")
    g.add_argument("--prefix", default="golden", help="C header name prefix")
    g.add_argument("--force", action="store_true", help="replace an existing bundle")
    v = sub.add_parser("verify", help="re-simulate bundles and check every file")
    v.add_argument("dirs", nargs="+", metavar="DIR")
    e = sub.add_parser("export", help="add hex / C header / CSV exports to a bundle")
    e.add_argument("dir", metavar="DIR")
    e.add_argument("--format", required=True, help="hex, h or csv (comma-separated for several)")
    e.add_argument("--prefix", help="C header name prefix")
    return p


def cli(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        a = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        if a.cmd == "generate":
            out = generate(Path(a.spec), a.steps, a.neurons, a.seed, a.stimulus, Path(a.out), a.formats, a.force,
                           prefix=a.prefix)
            print(f"{out}: {a.steps} steps x {a.neurons} neurons, stimulus {a.stimulus} seed {a.seed}")
            return 0
        if a.cmd == "verify":
            return verify(a.dirs)
        files = export(Path(a.dir), a.format, prefix=a.prefix)
        print(f"{a.dir}: wrote {', '.join(files)}")
        return 0
    except (SpecError, BundleError, SimulationOverflow, FileExistsError, FileNotFoundError, OSError) as e:
        print(f"golden: error: {e}", file=sys.stderr)
        return 2
