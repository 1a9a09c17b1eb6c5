"""What every bundle kind shares: the manifest, the listing, hashing, build and commit, the verify ``Result``.

A bundle is a directory with a ``manifest.json`` (golden's canonical JSON: ``format``
``golden-vectors``, ``schema`` 1, a ``kind``) listing every other file with its sha256 and size.
The kinds (``layer.py``: one neuron layer; ``network.py``: a whole network) build on this module;
``bundles.py`` dispatches ``verify`` and ``export`` on the manifest's ``kind``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .. import fileio
from .npy import BundleError, open_nofollow

FORMAT = "golden-vectors"
SCHEMA = 1
_SHA = re.compile(r"[0-9a-f]{64}")


# ------------------------------------------------------------------ manifest
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open_nofollow(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dump_manifest(m: dict) -> str:
    return json.dumps(m, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def read_manifest(bundle: Path) -> dict:
    """The manifest of ``bundle``: a regular file, golden's format and schema, in canonical form (else BundleError)."""
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
    if st.st_size > fileio.MAX_MANIFEST:
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


def strict_diff(a, b, path: str = ""):
    """The first key path where ``a`` and ``b`` differ in value or JSON type (8.0 is not 8, true is not 1)."""
    if type(a) is not type(b):
        return path or "(top)"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}".lstrip(".")
            d = strict_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d.lstrip(".")
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b)):
            d = strict_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else path


def same_as_written(m: dict, expected: dict, what: str) -> None:
    """Refuse a manifest that is not, field by field and type by type, what golden writes (``what``: for what)."""
    diff = strict_diff(m, json.loads(json.dumps(expected)))  # as written: enums and tuples become JSON
    if diff:
        kind = "format mismatch with the spec" if diff.startswith(("arrays", "exports")) else "edited or corrupt"
        raise BundleError(f"manifest.json: {diff}: not what golden writes for {what} ({kind})")


def need(m: dict, key: str, typ, where: str = ""):
    """``m[key]``, of exactly JSON type ``typ`` (BundleError naming the field otherwise)."""
    if not isinstance(m, dict):
        raise BundleError(f"manifest.json: {where.rstrip('.') or 'manifest'}: expected an object")
    if key not in m:
        raise BundleError(f"manifest.json: missing {where}{key}")
    v = m[key]
    if type(v) is not typ:
        raise BundleError(f"manifest.json: {where}{key}: expected {typ.__name__}, got {type(v).__name__}")
    return v


def count(m: dict, key: str, lo: int, hi: int, where: str = "") -> int:
    """An integer field inside ``lo..hi``."""
    v = need(m, key, int, where)
    if not lo <= v <= hi:
        raise BundleError(f"manifest.json: {where}{key} = {v}: out of range {lo}..{hi}")
    return v


def is_sha256(s) -> bool:
    return isinstance(s, str) and _SHA.fullmatch(s) is not None


def check_files_entries(files: dict, name_ok) -> None:
    """Every ``files`` entry: a bundle file name (``name_ok``) -> {sha256: 64 hex digits, bytes: integer}."""
    for fname, info in files.items():
        if not name_ok(fname):
            raise BundleError(f"manifest.json: files: {fname[:60]!r} is not a bundle file name")
        if (not isinstance(info, dict) or set(info) != {"sha256", "bytes"} or type(info["bytes"]) is not int
                or info["bytes"] < 0 or not isinstance(info["sha256"], str) or not _SHA.fullmatch(info["sha256"])):
            raise BundleError(f"manifest.json: files.{fname}: expected {{sha256: 64 hex digits, bytes: integer}}")


def check_listed(files: dict, wanted: set) -> None:
    if set(files) != wanted:
        odd = min(set(files) ^ wanted)
        raise BundleError(f"manifest.json: files: {str(odd)[:60]!r} is {'missing' if odd in wanted else 'unexpected'} "
                          f"(files must list exactly the bundle's files)")


# ------------------------------------------------------------------- listing
def check_listing(bundle: Path, files: dict, subdirs=()) -> None:
    """The directory rule: exactly manifest.json and the listed files, regular files, in ``subdirs`` at most one
    level down; no symlink, fifo or extra entry; sizes as listed."""
    top = {f for f in files if "/" not in f} | {"manifest.json"}
    for where in ("", *subdirs):
        allowed = top if not where else {f.split("/", 1)[1] for f in files if f.startswith(where + "/")}
        with os.scandir(bundle / where if where else bundle) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            name = f"{where}/{e.name}" if where else e.name
            if e.is_symlink():
                raise BundleError(f"{name}: is a symlink (a bundle holds regular files only)")
            if not where and e.name in subdirs and e.is_dir(follow_symlinks=False):
                continue
            if not e.is_file(follow_symlinks=False):
                what = "a directory" if e.is_dir(follow_symlinks=False) else "not a regular file"
                more = f" and {', '.join(d + '/' for d in subdirs)} only" if subdirs else " only"
                raise BundleError(f"{name}: {what} (a bundle holds regular files{more})")
            if e.name not in allowed:
                raise BundleError(f"{name}: not listed in manifest.json (a bundle holds only the files it lists)")
        if not where:
            for sub in subdirs:
                if not any(e.name == sub for e in entries):
                    raise BundleError(f"{sub}/: missing (listed in manifest.json)")
    for fname in sorted(files):
        p = bundle / fname
        if not os.path.lexists(p):
            raise BundleError(f"{fname}: missing (listed in manifest.json)")
        size = os.lstat(p).st_size
        if size != files[fname]["bytes"]:
            raise BundleError(f"{fname}: truncated or corrupt ({size} bytes, manifest says {files[fname]['bytes']})")


def check_hashes(bundle: Path, files: dict) -> None:
    """Every listed file's sha256, before anything in it is parsed: a changed file never reaches a parser."""
    for fname in sorted(files):
        if sha256_file(bundle / fname) != files[fname]["sha256"]:
            raise BundleError(f"{fname}: sha256 differs from the manifest's (the file was changed or is corrupt)")


# ----------------------------------------------------------------- writing
def finish(d: Path, m: dict) -> None:
    """Hash every file (one level of subdirectories too) into ``m["files"]`` and write manifest.json."""
    files = {}
    for p in sorted(d.iterdir()):
        if p.name == "manifest.json":
            continue
        for q in (sorted(p.iterdir()) if p.is_dir() else [p]):
            files[q.relative_to(d).as_posix()] = {"sha256": sha256_file(q), "bytes": q.stat().st_size}
    m["files"] = files
    with open(d / "manifest.json", "x") as f:
        f.write(dump_manifest(m))


def umask() -> int:
    u = os.umask(0)
    os.umask(u)
    return u


def build(out: Path, force: bool, fill) -> Path:
    """Run ``fill(bundle_dir)`` in a fresh work directory, then commit it to ``out``; nothing is left on failure."""
    out = Path(os.path.abspath(out))  # "." and ".." name their real directory
    fileio.check_replaceable(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = fileio.work_dir(out)
    try:
        built = work / "bundle"
        built.mkdir()
        os.chmod(built, 0o777 & ~umask())
        fill(built)
        fileio.commit(built, out, work, force)
    finally:
        fileio.remove_work_dir(work)
    return out


def copy_listed(bundle: Path, d: Path, files: dict, skip) -> None:
    """Copy ``bundle``'s listed files (but ``skip``) into ``d`` without following symlinks, re-checking each hash."""
    for fname in sorted(files):
        if fname in skip:
            continue
        dst = d / fname
        if not dst.parent.exists():
            dst.parent.mkdir()
            os.chmod(dst.parent, 0o777 & ~umask())
        with open_nofollow(bundle / fname) as src, open(dst, "xb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        if sha256_file(dst) != files[fname]["sha256"]:
            raise BundleError(f"{bundle}: {fname} changed during the export; nothing was written")


# ---------------------------------------------------------------- resources
def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def existing_parent(out: Path) -> Path:
    """The nearest existing directory above ``out`` (where its disk space is measured; nothing is created yet)."""
    parent = Path(out).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_disk(where: Path, need_bytes: int) -> None:
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if need_bytes > free:
        raise BundleError(f"{where}: the bundle needs up to {gib(need_bytes)}, only {gib(free)} free on that disk; "
                          f"use fewer steps or neurons, or other formats")


class Progress:
    """A one-line progress bar on stderr (on a terminal, unless told)."""

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


# ------------------------------------------------------------------- result
@dataclass
class Result:
    """The verdict on one bundle: ``count`` differences, the ``first`` (a kind's diff: ``.text()``)."""

    bundle: Path
    manifest: dict = None
    spec: object = None  # a single-layer bundle's Spec
    first: object = None
    count: int = 0
    notes: list = field(default_factory=list)
    view: object = None  # what its exports render (formats.View), once verified

    def add(self, diff, n: int = 1) -> None:
        if self.first is None:
            self.first = diff
        self.count += n

    def first_text(self) -> str:
        return self.first.text() if self.first else "no difference"


class BundleKind(Protocol):
    """What a bundle kind offers ``bundles.py`` (implemented by the modules ``layer`` and ``network``).

    ``KIND``: its name; ``view(manifest, arrays)``: its named arrays and parameters for the exports
    (:class:`~golden.vectors.formats.View`); ``verify(bundle, manifest, progress)``: the whole check, a
    :class:`Result` (BundleError when the bundle cannot be trusted); ``export_plan(result, names,
    prefix)``: (prefix, the manifest without its files and the replaced exports, a size bound);
    ``export_view(copy_dir, result, manifest)``: the view of a verified bundle's copy.
    """

    KIND: str

    def view(self, m: dict, *args): ...

    def verify(self, bundle: Path, m: dict, progress: bool | None = None) -> Result: ...

    def export_plan(self, res: Result, names, prefix: str | None) -> tuple: ...

    def export_view(self, d: Path, res: Result, m: dict): ...
