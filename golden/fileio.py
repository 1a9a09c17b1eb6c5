"""Atomic writes that never lose data: golden's work directories, the directory rule, commit by rename.

Every write builds its result in a *work directory* beside the target,
``.<target>.golden-<pid>-<random>.tmp``, marked by a ``golden-owner.json`` written first
(pid, host, target). The result is renamed into place with ``RENAME_NOREPLACE`` (fails if the
target appeared meanwhile); replacing a bundle first moves it into the work directory, checks it
there against the directory rule and moves it back untouched if anything else appeared. A work
directory whose owner process is dead is stale: :func:`clean_stale` removes it (only directories
carrying golden's marker; anything else is left alone).

**One file** (``--out``, ``--plot``, certificates) is written by :func:`write_atomic`: a
``.<name>.golden-<pid>-<random>.part`` file beside it, stamped as golden's (:func:`owned_file`:
an extended attribute holding the hash of its bytes), committed by an atomic rename or swap; an
existing file is replaced only with ``force`` and only when it carries golden's intact stamp.

**The directory rule.** A directory is golden's to replace only when it is a real directory (not a
symlink), its ``manifest.json`` is a golden manifest, and it holds nothing else than the regular
files that manifest lists.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from .errors import BundleError

MARKER = "golden-owner.json"
SWAPPING = "golden-swapping"  # in a work directory during a swap: what work/bundle is ("bundle", ...)
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
_AT_FDCWD, _RENAME_NOREPLACE, _RENAME_EXCHANGE = -100, 1, 2


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


def exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically (renameat2 RENAME_EXCHANGE); False where the kernel or file system cannot."""
    if _RENAMEAT2 is None:  # pragma: no cover - not glibc >= 2.28
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(e, os.strerror(e), str(b))


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


def _part_pid(d: Path):
    """The writer's pid of a golden ``.NAME.golden-PID-RANDOM.part`` file (a regular file), else None."""
    name = d.name
    if not (name.startswith(".") and name.endswith(".part") and _TAG in name):
        return None
    pid = name[:-len(".part")].rsplit(_TAG, 1)[1].split("-", 1)[0]
    try:
        return int(pid) if pid.isdigit() and stat.S_ISREG(os.lstat(d).st_mode) else None
    except OSError:
        return None


def clean_stale(parent: Path, err=None) -> list:
    """Remove golden's leftovers in ``parent`` whose writer is dead; report each on stderr.

    Two kinds: work directories (marked, on this host) and ``.part`` files of single-file writes
    (recognised by name; a pid is checked on this host). A work directory holding ``old``, the
    bundle a killed run had moved aside, is never deleted: it goes back to its name if that is free,
    else it is kept beside as ``.<name>.previous-<pid>``.
    """
    err = err or sys.stderr
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for d in entries:
        pid = _part_pid(d)
        if pid is not None:
            if not _alive(pid):
                try:
                    os.unlink(d)
                except OSError:
                    continue
                removed.append(d)
                print(f"golden: note: removed {d}, the partial file of an interrupted write (pid {pid})", file=err)
            continue
        info = _owner(d)
        if info is None or info.get("host") != socket.gethostname() or _alive(info["pid"]):
            continue
        if not _rescue(d, info, err):
            continue  # something worth keeping could not be moved out: leave the whole directory
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
        print(f"golden: note: removed {d}, the work directory of an interrupted run (pid {info['pid']})", file=err)
    return removed


def _rescue(d: Path, info: dict, err) -> bool:
    """Move out of dead work directory ``d`` any previous bundle a killed run had taken in; True when ``d`` may go.

    Two cases: ``old`` (moved aside where ``RENAME_EXCHANGE`` is missing) is always a previous
    bundle; ``bundle`` is normally golden's own unfinished output, but during a swap (``SWAPPING``
    present) it may be the previous one: kept unless it is a bundle that obeys the directory rule.
    """
    keep = [d / "old"] if (d / "old").is_dir() and not (d / "old").is_symlink() else []
    b = d / "bundle"
    try:
        swapping = (d / SWAPPING).read_text().strip()
    except OSError:
        swapping = None
    if swapping is not None and b.is_dir() and not b.is_symlink() and (swapping != "bundle" or foreign_entries(b)):
        keep.append(b)
    name = str(info.get("target", ""))
    for old in keep:
        if name and "/" not in name and name not in (".", ".."):
            try:
                rename_noreplace(old, d.parent / name)
                print(f"golden: note: restored {d.parent / name}, which an interrupted run (pid {info['pid']}) "
                      f"had moved aside", file=err)
                continue
            except OSError:
                pass
        kept = d.parent / f".{(name or 'bundle')[:80]}.previous-{info['pid']}-{old.name}"
        try:
            rename_noreplace(old, kept)
        except OSError:
            return False
        print(f"golden: note: kept {kept}, the bundle an interrupted run (pid {info['pid']}) had moved aside",
              file=err)
    return True


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


def check_replaceable(out: Path, force: bool, foreign=None, *, what: str = "bundle", flag: str = "--force") -> None:
    """Refuse, naming what is in the way, unless ``out`` is absent or (with ``force``) golden's to replace.

    ``foreign(d)`` lists what in directory ``d`` is not golden's ([] when golden may replace it):
    :func:`foreign_entries` (a bundle) unless given (a saved network directory has its own).
    """
    foreign = foreign or foreign_entries
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise BundleError(f"{out}: already exists (use {flag} to replace a golden {what})")
    if out.is_symlink():
        raise BundleError(f"{out}: is a symlink; refusing to replace it (give the real path)")
    if not out.is_dir():
        raise BundleError(f"{out}: exists and is not a directory; refusing to replace it")
    try:
        bad = foreign(out)
    except OSError as e:
        raise BundleError(f"{out}: cannot list it ({e.strerror or e}); refusing to replace it") from None
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise BundleError(f"{out}: not golden's to replace (not a {what} golden wrote): {', '.join(bad[:3])}{more}")


def remove_work_dir(work: Path) -> None:
    """Remove a finished (or failed) run's own work directory."""
    shutil.rmtree(work, ignore_errors=True)


def commit(built: Path, out: Path, work: Path, force: bool, foreign=None, *, what: str = "bundle") -> None:
    """Move the finished bundle ``built`` to ``out``: never over anything but the golden bundle checked before.

    A replacement is one atomic swap (``RENAME_EXCHANGE``): at every instant ``out`` is either the
    previous bundle or the new one. The bundle swapped out is checked again against the directory
    rule (something may have been added after the check); if it is no longer golden's it is swapped
    back untouched. Without ``RENAME_EXCHANGE`` the previous bundle is moved to ``work/old`` first;
    a run killed then leaves it for :func:`clean_stale` to restore, never to delete.
    """
    if not (out.exists() or out.is_symlink()):
        try:
            rename_noreplace(built, out)
        except FileExistsError:
            raise BundleError(f"{out}: appeared while golden was writing (another run or a user); "
                              f"left it untouched") from None
        return
    if not force:
        raise BundleError(f"{out}: appeared while golden was writing (another run or a user); left it untouched")
    foreign = foreign or foreign_entries
    check_replaceable(out, force, foreign, what=what)
    swapping = work / SWAPPING  # while it exists, work/bundle may be the previous one: clean_stale keeps it
    swapping.write_text(what + "\n")
    try:
        swapped = exchange(built, out)
    except OSError as e:
        swapping.unlink()
        raise BundleError(f"{out}: cannot move the new {what} into place ({e.strerror or e}); "
                          f"the previous {what} is untouched") from None
    if swapped:
        bad = foreign(built)  # built now holds what was at out
        if bad:
            try:
                exchange(built, out)
            except OSError:  # cannot swap back: keep what was there beside, never in the work directory
                kept = out.parent / f".{out.name}.previous-{os.getpid()}"
                os.rename(built, kept)
                swapping.unlink()
                raise BundleError(f"{out}: changed while golden was writing ({', '.join(bad[:3])}); its previous "
                                  f"content is kept in {kept}") from None
            swapping.unlink()
            raise BundleError(f"{out}: changed while golden was writing ({', '.join(bad[:3])}); left it as it was")
        swapping.unlink()
        return
    swapping.unlink()
    _commit_moving_aside(built, out, work, foreign)  # pragma: no cover - a file system without RENAME_EXCHANGE


def _commit_moving_aside(built: Path, out: Path, work: Path, foreign) -> None:  # pragma: no cover
    old = work / "old"
    os.rename(out, old)  # now private: re-check what we moved, in case something arrived after the check
    bad = foreign(old)
    if bad:
        _restore(old, out)
        raise BundleError(f"{out}: changed while golden was writing ({', '.join(bad[:3])}); left it as it was")
    try:
        rename_noreplace(built, out)
    except OSError as e:
        _restore(old, out)
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
STAMP = "user.golden"  # the extended attribute that marks a file golden wrote (see write_atomic)
HASH_CHUNK = 1 << 20


def _sha256_fd(fd: int) -> str:
    h = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, HASH_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _stamp_of(fd: int):
    """The golden stamp on the open file ``fd`` (a dict), or None when it has none or the file system keeps none."""
    try:
        info = json.loads(os.getxattr(fd, STAMP))
    except (OSError, ValueError, RecursionError):
        return None
    ok = isinstance(info, dict) and info.get("tool") == "golden" and isinstance(info.get("sha256"), str)
    return info if ok else None


def _identity(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def owned_file(path) -> tuple | None:
    """The identity of ``path`` when it is a file golden wrote and nobody changed since, else None.

    **How golden recognises its own file.** :func:`write_atomic` stamps every file it commits with
    the extended attribute ``user.golden`` = ``{"tool": "golden", "sha256": <hash of its bytes>}``.
    A file is golden's own when it is a regular file (not a symlink, opened with ``O_NOFOLLOW``),
    carries that stamp, and its bytes still hash to the stamped value: a file a user edited
    afterwards, copied without its attributes, or made by anything else is not golden's, so
    ``--force`` will not replace it. On a file system without user extended attributes nothing is
    golden's own: ``--force`` refuses and the user deletes the file himself. The stamp travels with
    the content, not the name, so it needs no sidecar file and cannot be forged by renaming.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        info = _stamp_of(fd)
        if info is None or _sha256_fd(fd) != info["sha256"]:
            return None
        return _identity(st)
    except OSError:
        return None
    finally:
        os.close(fd)


def _check_target(path: Path, force: bool):
    """Refuse what ``path`` may not be replaced by; the checked identity of a golden file to replace, or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BundleError(f"{path}: cannot inspect it ({e.strerror or e}); nothing was written") from None
    if stat.S_ISLNK(st.st_mode):
        raise BundleError(f"{path}: is a symlink; refusing to write through it (give the real path)")
    if stat.S_ISDIR(st.st_mode):
        raise BundleError(f"{path}: is a directory; refusing to write over it (give a file name)")
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{path}: is not a regular file (a device or fifo); refusing to replace it")
    if not force:
        raise BundleError(f"{path}: already exists (use --force to replace a file golden wrote)")
    ident = owned_file(path)
    if ident is None:
        raise BundleError(f"{path}: not golden's to replace (it carries no intact golden stamp: a file golden did "
                          f"not write, or one changed since); delete or move it yourself")
    return _Vetted(ident, stamped=True)


def check_new_file(path, option: str, *, force: bool, suffix: str | None = None) -> Path | None:
    """Refuse, before any work, a file golden must not or cannot write, by the very rule :func:`write_atomic`
    applies at the end (:func:`_check_target`), so a long run never ends in a refusal: a symlink (never
    followed), a directory, a device or fifo; an existing file unless ``force``, and with ``force`` unless it
    is golden's own (:func:`owned_file`); then a wrong extension, a missing or unwritable directory.
    ``option`` names the path in the message (``--out``). None passes through (no output asked for)."""
    if path is None:
        return None
    target = Path(path)
    try:
        _check_target(target, force)
    except BundleError as e:
        raise BundleError(f"{option} {e}") from None
    if suffix and target.suffix.lower() != suffix:
        raise BundleError(f"{option} {path}: expected a {suffix} file name (the format is {suffix[1:].upper()})")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise BundleError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BundleError(f"{option} {path}: its directory is not writable")
    return target


class _Vetted(NamedTuple):
    """The file ``write_atomic`` checked it may replace: its identity, and whether its golden stamp was required."""

    identity: tuple
    stamped: bool


def _still(path: Path, old: _Vetted) -> bool:
    """Whether ``path`` is still the very file vetted as ``old`` (judged the same way)."""
    if old.stamped:
        return owned_file(path) == old.identity
    try:
        return _identity(os.lstat(path)) == old.identity
    except OSError:
        return False


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, writer, *, force: bool, mode: int | None = None) -> Path:
    """Write one file all or nothing, never over anything golden does not own.

    ``writer(f)`` fills a temporary file beside ``path``
    (``.<name>.golden-<pid>-<random>.part``), which is fsynced, stamped as golden's (see
    :func:`owned_file`) and committed by a rename. The target rule:

    - absent: the rename refuses to replace anything that appeared meanwhile (``RENAME_NOREPLACE``);
    - an existing file: refused unless ``force`` and it is golden's own (an intact golden stamp);
      then it is swapped atomically with the new file (``RENAME_EXCHANGE``), checked to be the
      very file that was vetted, and only then removed; a file that changed in between is put back;
    - a symlink, a directory, a device or a fifo: always refused (a symlink is never written through).

    At every instant ``path`` holds either its previous content or the complete new file. On any
    failure (a full disk, ``ulimit -f``, an exception in ``writer``) the temporary file is removed and
    the error is a :class:`BundleError` naming the path. A ``.part`` file left by a writer that was
    killed is removed by the next golden write in that directory (:func:`clean_stale`).

    ``force`` is required (the command's ``--force``): every caller states it. A command checks its
    target up front with :func:`check_new_file` (the same rule), so a long run never ends in a refusal.
    """
    path = Path(path)
    old = _check_target(path, force)
    parent = path.absolute().parent
    if not parent.is_dir():
        raise BundleError(f"{path}: the directory {parent} does not exist")
    clean_stale(parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:80]}{_TAG}{os.getpid()}-", suffix=".part", dir=parent)
    except OSError as e:
        raise BundleError(f"{path}: cannot write ({e.strerror or e})") from None
    tmp = Path(tmp)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, (0o666 & ~umask) if mode is None else mode)
        with os.fdopen(fd, "w+b") as f:
            writer(f)
            f.flush()
            digest = _sha256_fd(f.fileno())
            _stamp(f.fileno(), digest)
            os.fsync(f.fileno())
        _commit_file(tmp, path, old)
        _fsync_dir(parent)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, BundleError):
            raise
        if isinstance(e, OSError):
            raise BundleError(f"{path}: cannot write ({e.strerror or e}); nothing was written") from None
        raise
    return path


def _stamp(fd: int, digest: str) -> None:
    try:
        os.setxattr(fd, STAMP, json.dumps({"tool": "golden", "sha256": digest}).encode())
    except OSError as e:
        if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            raise  # no user xattrs here (tmpfs, some NFS): the file is written, just never golden's to replace


def _commit_file(tmp: Path, path: Path, old: _Vetted | None) -> None:
    """Move the finished ``tmp`` to ``path``: a new name without replacing, or a swap with the vetted ``old``."""
    if old is None:
        try:
            rename_noreplace(tmp, path)
        except FileExistsError:
            raise BundleError(f"{path}: appeared while golden was writing (another run or a user); "
                              f"left it untouched") from None
        return
    if not exchange(tmp, path):  # pragma: no cover - a file system without RENAME_EXCHANGE
        if not _still(path, old):
            raise BundleError(f"{path}: changed while golden was writing; left it as it was")
        os.replace(tmp, path)
        return
    if not _still(tmp, old):  # tmp now holds what was at path: is it the file vetted before?
        exchange(tmp, path)  # no: put it back untouched
        raise BundleError(f"{path}: changed while golden was writing; left it as it was")
    os.unlink(tmp)
