"""Atomic writes that never lose data: golden's work directories, the directory rule, commit by rename.

Every write builds its result in a *work directory* beside the target,
``.<target>.golden-<pid>-<random>.tmp``, marked by a ``golden-owner.json`` written first
(pid, host, target). The result is renamed into place with ``RENAME_NOREPLACE`` (fails if the
target appeared meanwhile); replacing a bundle first moves it into the work directory, checks it
there against the directory rule and moves it back untouched if anything else appeared. A work
directory whose owner process is dead is stale: :func:`clean_stale` removes it (only directories
carrying golden's marker; anything else is left alone).

**The directory rule.** A directory is golden's to replace only when it is a real directory (not a
symlink), its ``manifest.json`` is a golden manifest, and it holds nothing else than the regular
files that manifest lists.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path

from .errors import BundleError

MARKER = "golden-owner.json"
_TAG = ".golden-"
MAX_MANIFEST = 64 << 20  # bytes: a manifest is a few KiB; anything far larger is refused before parsing


# --------------------------------------------------------------- rename
def _renameat2():
    try:
        f = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # pragma: no cover - not glibc >= 2.28
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return f


_RENAMEAT2 = _renameat2()
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError if ``dst`` exists (atomically where the kernel supports it)."""
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        e = ctypes.get_errno()
        if e not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(e, os.strerror(e), str(dst))
    # no RENAME_NOREPLACE here: claim the name with an exclusive mkdir, then rename over that empty directory
    # (which fails with ENOTEMPTY if anything was put into it meanwhile)
    os.mkdir(dst)
    try:
        os.rename(src, dst)
    except OSError:
        try:
            os.rmdir(dst)
        except OSError:
            pass
        raise FileExistsError(errno.EEXIST, "appeared meanwhile", str(dst)) from None


# -------------------------------------------------------- work directories
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def work_dir(target: Path) -> Path:
    """A fresh, marked work directory beside ``target`` (cleaning stale ones of dead runs first)."""
    parent = target.absolute().parent
    clean_stale(parent)
    d = Path(tempfile.mkdtemp(prefix=f".{target.name[:80]}{_TAG}{os.getpid()}-", suffix=".tmp", dir=parent))
    (d / MARKER).write_text(json.dumps({"tool": "golden", "pid": os.getpid(), "host": socket.gethostname(),
                                        "target": target.name}) + "\n")
    return d


def _owner(d: Path):
    """The marker of a golden work directory, or None when ``d`` is not one."""
    try:
        if not d.name.endswith(".tmp") or _TAG not in d.name or d.is_symlink() or not d.is_dir():
            return None
        info = json.loads((d / MARKER).read_text())
        ours = isinstance(info, dict) and info.get("tool") == "golden" and type(info.get("pid")) is int
        return info if ours else None
    except (OSError, ValueError, RecursionError):
        return None


def clean_stale(parent: Path, err=None) -> list:
    """Remove golden work directories in ``parent`` whose process is dead (on this host); report each on stderr."""
    err = err or sys.stderr
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for d in entries:
        info = _owner(d)
        if info is None or info.get("host") != socket.gethostname() or _alive(info["pid"]):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
        print(f"golden: note: removed {d}, the work directory of an interrupted run (pid {info['pid']})", file=err)
    return removed


def is_work_dir(d: Path) -> bool:
    return _owner(d) is not None


# ------------------------------------------------------- the directory rule
def golden_manifest(d: Path):
    """The parsed manifest.json of ``d`` when it is a golden manifest (a regular file), else None."""
    p = d / "manifest.json"
    try:
        st = os.lstat(p)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST:
            return None
        m = json.loads(p.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return m if isinstance(m, dict) and m.get("format") == "golden-vectors" else None


def foreign_entries(d: Path) -> list:
    """What in bundle directory ``d`` the directory rule forbids: [] when ``d`` is golden's to replace."""
    if os.path.islink(d):
        return [f"{d} itself is a symlink"]
    m = golden_manifest(d)
    if m is None:
        return ["manifest.json is missing or not a golden manifest (not a bundle)"]
    files = m.get("files") if isinstance(m.get("files"), dict) else {}
    bad = []
    for e in sorted(os.scandir(d), key=lambda e: e.name):
        if e.name == "manifest.json":
            continue
        if e.is_symlink():
            bad.append(f"{e.name} (a symlink)")
        elif e.is_dir(follow_symlinks=False) and any(str(f).startswith(e.name + "/") for f in files):
            bad += _foreign_below(Path(e.path), e.name, files)  # a network bundle's network/
        elif not e.is_file(follow_symlinks=False):
            what = "a directory" if e.is_dir(follow_symlinks=False) else "not a regular file"
            bad.append(f"{e.name} ({what})")
        elif e.name not in files:
            bad.append(f"{e.name} (not listed in manifest.json)")
    return bad


def _foreign_below(d: Path, rel: str, files: dict) -> list:
    """A subdirectory the manifest lists files in: it may hold only those, as regular files."""
    bad = []
    for e in sorted(os.scandir(d), key=lambda e: e.name):
        name = f"{rel}/{e.name}"
        if e.is_symlink():
            bad.append(f"{name} (a symlink)")
        elif not e.is_file(follow_symlinks=False):
            bad.append(f"{name} ({'a directory' if e.is_dir(follow_symlinks=False) else 'not a regular file'})")
        elif name not in files:
            bad.append(f"{name} (not listed in manifest.json)")
    return bad


def check_replaceable(out: Path, force: bool) -> None:
    """Refuse, naming what is in the way, unless ``out`` is absent or (with ``force``) a golden bundle."""
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise BundleError(f"{out}: already exists (use --force to replace a golden bundle)")
    if out.is_symlink():
        raise BundleError(f"{out}: is a symlink; refusing to replace it (give the real path)")
    if not out.is_dir():
        raise BundleError(f"{out}: exists and is not a directory; refusing to replace it")
    try:
        bad = foreign_entries(out)
    except OSError as e:
        raise BundleError(f"{out}: cannot list it ({e.strerror or e}); refusing to replace it") from None
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise BundleError(f"{out}: not golden's to replace: {', '.join(bad[:3])}{more}")


def commit(built: Path, out: Path, work: Path, force: bool) -> None:
    """Move the finished bundle ``built`` to ``out``: never over anything but the golden bundle checked before."""
    old = None
    if out.exists() or out.is_symlink():
        if not force:
            raise BundleError(f"{out}: appeared while golden was writing (another run or a user); left it untouched")
        check_replaceable(out, force)
        old = work / "old"
        os.rename(out, old)  # now private: re-check what we moved, in case something arrived after the check
        bad = foreign_entries(old)
        if bad:
            _restore(old, out)
            raise BundleError(f"{out}: changed while golden was writing ({', '.join(bad[:3])}); left it as it was")
    try:
        rename_noreplace(built, out)
    except OSError as e:
        if old is None:
            if isinstance(e, FileExistsError):
                raise BundleError(f"{out}: appeared while golden was writing (another run or a user); "
                                  f"left it untouched") from None
            raise
        try:
            rename_noreplace(old, out)  # put the previous bundle back
        except OSError:
            kept = out.parent / f".{out.name}.previous-{os.getpid()}"
            os.rename(old, kept)  # out of the work directory, which is removed
            raise BundleError(f"{out}: appeared while golden was writing; the bundle it replaced is kept in "
                              f"{kept}") from None
        raise BundleError(f"{out}: cannot move the new bundle into place ({e.strerror or e}); "
                          f"the previous bundle is back") from None


def _restore(old: Path, out: Path) -> None:
    try:
        rename_noreplace(old, out)
    except OSError:
        kept = out.parent / f".{out.name}.previous-{os.getpid()}"
        os.rename(old, kept)  # out of the work directory, which is removed
        raise BundleError(f"{out}: changed while golden was writing, and a new {out} appeared; the previous "
                          f"content is kept in {kept}") from None


# ------------------------------------------------------------- one file
def write_atomic(path, writer, *, mode: int | None = None) -> Path:
    """Write one file all or nothing: ``writer(f)`` fills a temporary file beside ``path``, renamed over it at the end.

    On any failure (a full disk, ``ulimit -f``, an exception in ``writer``) the temporary file is
    removed and ``path`` is left as it was; the error is a :class:`BundleError` naming the path.
    Replaces only a regular file: refuses a directory, a symlink, a device or a fifo.
    """
    path = Path(path)
    if path.is_symlink() or path.is_dir():
        raise BundleError(f"{path}: is a {'symlink' if path.is_symlink() else 'directory'}; refusing to write over it")
    if path.exists() and not path.is_file():
        raise BundleError(f"{path}: is not a regular file (a device or fifo); refusing to replace it")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise BundleError(f"{path}: the directory {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:80]}{_TAG}{os.getpid()}-", suffix=".part", dir=parent)
    except OSError as e:
        raise BundleError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, (0o666 & ~umask) if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise BundleError(f"{path}: cannot write ({e.strerror or e}); nothing was written") from None
        raise
    return path
