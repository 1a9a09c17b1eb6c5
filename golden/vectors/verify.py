"""Reading and verifying bundles: every byte of a bundle is either checked or refused.

The manifest must be golden's canonical JSON and equal, field by field and type by type, to the
manifest golden would write for its spec, dimensions and stimulus; the directory must hold exactly
the regular files it lists; ``spec.toml`` must be the manifest's spec; the arrays are re-simulated
and every export is re-rendered and compared byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..simulate import Runner, SimulationOverflow, initial_v
from ..spec import STAGES, Spec, SpecError
from .. import fileio as atomic
from .bundle import (
    COMPARED,
    FORMAT,
    MAX_STEPS,
    SCHEMA,
    _Progress,
    base_manifest,
    dump_manifest,
    sha256_file,
)
from .formats import CHUNK, EXPORTS, FIELDS, check_prefix, check_width, safe_text
from .npy import MAX_ELEMENTS, BundleError, open_nofollow, open_npy


def _strict_diff(a, b, path: str = ""):
    """The first key path where ``a`` and ``b`` differ in value or JSON type (8.0 is not 8, true is not 1)."""
    if type(a) is not type(b):
        return path or "(top)"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}".lstrip(".")
            d = _strict_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d.lstrip(".")
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b)):
            d = _strict_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else path


def _need(m: dict, key: str, typ, where: str = ""):
    if not isinstance(m, dict):
        raise BundleError(f"manifest.json: {where.rstrip('.') or 'manifest'}: expected an object")
    if key not in m:
        raise BundleError(f"manifest.json: missing {where}{key}")
    v = m[key]
    if type(v) is not typ:
        raise BundleError(f"manifest.json: {where}{key}: expected {typ.__name__}, got {type(v).__name__}")
    return v


def _count(m: dict, key: str, lo: int, hi: int, where: str = "") -> int:
    v = _need(m, key, int, where)
    if not lo <= v <= hi:
        raise BundleError(f"manifest.json: {where}{key} = {v}: out of range {lo}..{hi}")
    return v


def _read_manifest(bundle: Path) -> dict:
    if not bundle.is_dir():
        raise BundleError(f"not a directory: {bundle}")
    path = bundle / "manifest.json"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BundleError("missing manifest.json: not a golden bundle") from None
    if stat.S_ISLNK(st.st_mode):
        raise BundleError("manifest.json: is a symlink (a bundle holds regular files only)")
    if not stat.S_ISREG(st.st_mode):
        raise BundleError("manifest.json: not a regular file")
    if st.st_size > atomic.MAX_MANIFEST:
        raise BundleError(f"manifest.json: {st.st_size} bytes, far larger than any golden manifest")
    with open_nofollow(path) as f:
        raw = f.read()
    try:
        text = raw.decode("ascii")
        m = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"manifest.json: not valid JSON ({str(e)[:80]})") from None
    except RecursionError:
        raise BundleError("manifest.json: JSON nested too deeply") from None
    if not isinstance(m, dict):
        raise BundleError("manifest.json: not a JSON object")
    if m.get("format") != FORMAT:
        raise BundleError(f"manifest.json: format is {str(m.get('format'))[:40]!r}, not {FORMAT!r}")
    if type(m.get("schema")) is not int or m["schema"] != SCHEMA:
        raise BundleError(f"manifest.json: unknown schema version {str(m.get('schema'))[:20]} "
                          f"(this golden reads the integer {SCHEMA})")
    if text != dump_manifest(m):
        raise BundleError("manifest.json: not in golden's canonical form (sorted keys, 2-space indent, ASCII): edited")
    return m


def load_manifest(bundle: Path):
    """(manifest, spec) after checking every manifest field against what golden writes (BundleError otherwise)."""
    m = _read_manifest(bundle)
    if m.get("kind") == "network":
        raise BundleError("manifest.json: a network bundle (golden.vectors.read_network_bundle reads it)")
    sp = _need(m, "spec", dict)
    toml = _need(sp, "toml", str, "spec.")
    spec_sha = _need(sp, "sha256", str, "spec.")
    import hashlib
    if hashlib.sha256(toml.encode()).hexdigest() != spec_sha:
        raise BundleError("manifest.json: spec.sha256 does not match the spec text (manifest edited or corrupt)")
    try:
        spec = Spec.from_toml(toml)
        safe_text("profile", spec.profile)
    except (SpecError, ValueError, TypeError) as e:
        raise BundleError(f"manifest.json: invalid spec: {e}") from None
    T = _count(m, "steps", 1, MAX_STEPS)
    N = _count(m, "neurons", 1, MAX_STEPS)
    if T * N > MAX_ELEMENTS:
        raise BundleError(f"manifest.json: steps x neurons = {T} x {N} is beyond any bundle golden writes")
    st = _need(m, "stimulus", dict)
    gen = _need(st, "generator", str, "stimulus.")
    if "seed" not in st:
        raise BundleError("manifest.json: missing stimulus.seed")
    seed = st["seed"]
    if seed is not None and (type(seed) is not int or seed < 0):
        raise BundleError("manifest.json: stimulus.seed: expected a non-negative integer or null")
    version = _need(m, "golden_version", str)
    try:
        safe_text("stimulus.generator", gen)
        safe_text("golden_version", version)
    except SpecError as e:
        raise BundleError(f"manifest.json: {e}") from None
    ovf = _need(m, "overflow", dict)
    if set(ovf) != set(STAGES) or not all(type(v) is int and v >= 0 for v in ovf.values()):
        raise BundleError("manifest.json: overflow must count every stage (non-negative integers): "
                          + ", ".join(STAGES))
    expected = base_manifest(spec, T, N, gen, seed, ovf, version)
    exports = _need(m, "exports", dict)
    for name in exports:
        if name not in EXPORTS:
            raise BundleError(f"manifest.json: exports: unknown format {str(name)[:20]!r}")
        prefix = "golden"
        if EXPORTS[name].prefixed:
            try:
                prefix = check_prefix(_need(exports[name], "prefix", str, f"exports.{name}."))
            except SpecError as e:
                raise BundleError(f"manifest.json: exports.{name}.{e}") from None
        expected["exports"][name] = EXPORTS[name].meta(expected, prefix)
    files = _need(m, "files", dict)
    expected["files"] = files
    diff = _strict_diff(m, json.loads(json.dumps(expected)))  # as written: enums and tuples become JSON
    if diff:
        what = "format mismatch with the spec" if diff.startswith(("arrays", "exports")) else "edited or corrupt"
        raise BundleError(f"manifest.json: {diff}: not what golden writes for this spec and these dimensions ({what})")
    wanted = {"spec.toml"} | {a["file"] for a in m["arrays"].values()}
    wanted |= {f for name in exports for f in EXPORTS[name].files(m)}
    if set(files) != wanted:
        odd = min(set(files) ^ wanted)
        raise BundleError(f"manifest.json: files: {str(odd)[:60]!r} is {'missing' if odd in wanted else 'unexpected'} "
                          f"(files must list exactly the bundle's files)")
    for fname, info in files.items():
        if (not isinstance(info, dict) or set(info) != {"sha256", "bytes"} or type(info["bytes"]) is not int
                or info["bytes"] < 0 or not isinstance(info["sha256"], str)
                or not re.fullmatch(r"[0-9a-f]{64}", info["sha256"])):
            raise BundleError(f"manifest.json: files.{fname}: expected {{sha256: 64 hex digits, bytes: integer}}")
    return m, spec


def check_listing(bundle: Path, m: dict) -> None:
    """The directory rule: exactly manifest.json and the listed files, all regular files (no symlink)."""
    listed = set(m["files"]) | {"manifest.json"}
    with os.scandir(bundle) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_symlink():
            raise BundleError(f"{e.name}: is a symlink (a bundle holds regular files only)")
        if not e.is_file(follow_symlinks=False):
            what = "a directory" if e.is_dir(follow_symlinks=False) else "not a regular file"
            raise BundleError(f"{e.name}: {what} (a bundle holds regular files only)")
        if e.name not in listed:
            raise BundleError(f"{e.name}: not listed in manifest.json (a bundle holds only the files it lists)")
    present = {e.name for e in entries}
    for fname in sorted(listed - present):
        raise BundleError(f"{fname}: missing (listed in manifest.json)")
    for e in entries:
        if e.name in m["files"] and e.stat(follow_symlinks=False).st_size != m["files"][e.name]["bytes"]:
            raise BundleError(f"{e.name}: truncated or corrupt ({e.stat(follow_symlinks=False).st_size} bytes, "
                              f"manifest says {m['files'][e.name]['bytes']})")


def load_arrays(bundle: Path, m: dict) -> dict:
    arrays = {}
    for name in FIELDS:
        a = m["arrays"][name]
        arrays[name] = open_npy(bundle / a["file"], a["dtype"], a["shape"])
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
                check_width(c, bits, f"{name}.npy")
            except SpecError as e:
                what = "stimulus outside the input format" if name == "x" else "format mismatch"
                raise BundleError(f"{e} ({what} {m['arrays'][name]['q']})") from None
    return arrays


def read_bundle(bundle) -> tuple:
    """(spec, {name: (T, N) array}, manifest) of a bundle, after the structural checks (not the re-simulation)."""
    bundle = Path(bundle)
    m, spec = load_manifest(bundle)
    check_listing(bundle, m)
    arrays = load_arrays(bundle, m)
    return spec, {k: np.array(a) for k, a in arrays.items()}, m


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
    m0 = _read_manifest(bundle)
    if m0.get("kind") == "network":  # a whole network (network.py, netverify.py)
        from .netverify import verify_network
        return verify_network(bundle, m0)
    res = Result(bundle)
    name = str(bundle)
    m, spec = load_manifest(bundle)
    res.manifest, res.spec = m, spec
    check_listing(bundle, m)
    arrays = load_arrays(bundle, m)
    T, N = m["steps"], m["neurons"]
    with open_nofollow(bundle / "spec.toml") as f:
        if f.read() != m["spec"]["toml"].encode():
            res.add(Diff(name, None, None, "spec.toml", "the manifest's spec.toml", "different text"))
    runner = Runner(spec)
    v = initial_v(spec, None, (N,))
    counts = np.zeros(len(STAGES), np.int64)
    bar = _Progress(T, progress, f"golden vectors verify {bundle.name}")
    try:
        for t0 in range(0, T, 1024):
            x = np.asarray(arrays["x"][t0:t0 + 1024])
            try:
                o, vt, sp, c = runner.run(x, v, t0=t0)
            except SimulationOverflow as e:
                res.add(Diff(name, e.t, e.neuron, "overflow", "no strict overflow", str(e)))
                return res
            counts += c
            got = {k: np.asarray(arrays[k][t0:t0 + 1024]) for k in COMPARED}
            first, n = _first_mismatch({"out": (o, got["out"]), "v": (vt, got["v"]), "spikes": (sp, got["spikes"])},
                                       t0, N)
            if n:
                res.add(Diff(name, *first), n)
            bar.update(min(t0 + 1024, T))
    finally:
        bar.close()
    for k, c in zip(STAGES, counts.tolist()):
        if m["overflow"][k] != c:
            res.add(Diff(name, None, None, f"overflow.{k}", c, m["overflow"][k]))
    content_checked = {"spec.toml"} | {f"{k}.npy" for k in FIELDS}
    for fmt_name in sorted(m["exports"]):
        fmt = EXPORTS[fmt_name]
        prefix = m["exports"][fmt_name].get("prefix", "golden")
        content_checked |= set(fmt.files(m))
        for fname in _differing(bundle, fmt.render(arrays, spec, m, prefix)):
            _locate(res, name, bundle / fname, fmt, m, arrays, prefix)
    for fname in sorted(m["files"]):
        got = sha256_file(bundle / fname)
        if got != m["files"][fname]["sha256"] and (res.count == 0 or fname not in content_checked):
            res.add(Diff(name, None, None, f"{fname} sha256", m["files"][fname]["sha256"], got))
    return res


def _differing(bundle: Path, chunks) -> list:
    """The files whose bytes differ from the rendered chunks (content or length)."""
    handles, differing = {}, set()
    try:
        for fname, chunk in chunks:
            if fname in differing:
                continue
            if fname not in handles:
                handles[fname] = open_nofollow(bundle / fname)
            if handles[fname].read(len(chunk)) != chunk:
                differing.add(fname)
        differing |= {f for f, fh in handles.items() if fh.read(1)}  # trailing bytes
    finally:
        for fh in handles.values():
            fh.close()
    return sorted(differing)


def _locate(res: Result, name: str, path: Path, fmt, m: dict, arrays: dict, prefix: str) -> None:
    """An export's bytes differ from its arrays: find the first differing element (malformed text is exit 2)."""
    T, N = m["steps"], m["neurons"]
    parsed = fmt.parse(path, m, prefix)
    pairs = {f"{path.name}:{k}": (np.asarray(arrays[k]).reshape(T, N).astype(np.int64),
                                  a.astype(np.int64).reshape(T, N))
             for k, a in parsed.items()}
    first, n = _first_mismatch(pairs, 0, N)
    if n:
        res.add(Diff(name, *first), n)
    else:  # same values, different text (spacing, the preamble, bundle.vh, the CSV's t/neuron columns, ...)
        res.add(Diff(name, None, None, path.name, "golden's rendering", "different text"))


def scan(paths):
    """(bundle directories, notes): each path holding a manifest.json, else every manifest.json below it.

    Hidden directories are searched too; golden's own work directories are reported in the notes,
    symlinked directories are reported and not followed.
    """
    found, notes = [], []
    for p in map(Path, paths):
        if p.is_dir() and os.path.lexists(p / "manifest.json"):
            found.append(p)
            continue
        if not p.exists():
            raise BundleError(f"{p}: no such directory")
        if not p.is_dir():
            raise BundleError(f"{p}: not a directory")
        below = []
        for root, dirs, files in os.walk(p, followlinks=False):
            r = Path(root)
            keep = []
            for d in sorted(dirs):
                if os.path.islink(r / d):
                    notes.append(f"{r / d}: a symlinked directory, not followed")
                elif atomic.is_work_dir(r / d):
                    notes.append(f"{r / d}: a golden work directory (a run in progress or interrupted), not a bundle")
                else:
                    keep.append(d)
            dirs[:] = keep
            if "manifest.json" in files and r != p:
                below.append(r)
        if not below:
            raise BundleError(f"{p}: no manifest.json here or below (not a bundle)")
        found.extend(sorted(below))
    return found, notes


def find_bundles(paths) -> list:
    return scan(paths)[0]


def verify(paths, *, out=None, err=None, progress: bool | None = None) -> int:
    """Verify bundles; 0 all hold, 1 some differ, 2 some cannot be read. Each bundle gets one line at most."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        bundles, notes = scan(paths)
    except BundleError as e:
        print(f"golden: error: {e}", file=err)
        return 2
    except OSError as e:
        print(f"golden: error: {e.filename or ''}: {e.strerror or e}", file=err)
        return 2
    for n in notes:
        print(f"golden: note: {n}", file=err)
    ok = differ = broken = total = 0
    for b in bundles:
        try:
            r = verify_bundle(b, progress=progress)
        except (BundleError, SpecError) as e:
            print(f"golden: error: {b}: {e}", file=err)
            broken += 1
            continue
        except OSError as e:
            where = Path(e.filename).name if e.filename else "a file"
            print(f"golden: error: {b}: {where}: cannot read ({e.strerror or e})", file=err)
            broken += 1
            continue
        except Exception as e:  # a verdict for every bundle, never a traceback: a bug of golden, named as such
            print(f"golden: error: {b}: internal error while verifying ({type(e).__name__}: {str(e)[:200]}); "
                  f"please report it", file=err)
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
