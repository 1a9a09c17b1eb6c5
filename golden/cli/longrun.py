"""What a long or large command needs before it starts: the memory it may use, its paths, a budget, progress.

- :func:`check_memory`: refuse a job whose estimated peak memory exceeds what this process may get
  (:func:`golden.budget.available_memory`: ``ulimit -v`` and free memory), before allocating anything.
- :class:`Progress`: one line on stderr, rewritten in place, only when stderr is a terminal (nothing in CI logs).
- :class:`Journal`: the finished chunks of a long proof, one JSON line each, appended beside the certificate,
  so that an interrupted run resumes where it stopped (``golden prove``).
- :class:`Interrupted`: Ctrl-C, reported by ``golden.cli.main`` as one line, exit 130.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

from .. import budget
from ..errors import BudgetError, GoldenError
from .options import OutputError, UsageError

GIB = 1 << 30


class Interrupted(KeyboardInterrupt):
    """Ctrl-C: the message says what was kept (``golden.cli.main`` prints it as one line, exit 130)."""


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n < 100 * GIB else f"{n / GIB:.3g} GiB"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_memory(need: int, what: str, fix: str) -> None:
    """Refuse ``what`` (one line naming ``fix``) when its estimated peak ``need`` bytes exceed what this process
    may get (:func:`golden.budget.available_memory`: free memory, ``ulimit -v``)."""
    have = budget.available_memory()
    if need > have:
        raise BudgetError(f"{what} needs about {gib(need)} of memory, and this process may get {gib(max(have, 0))} "
                            f"(free memory, ulimit -v): {fix}")


class Progress:
    """``update(done, total)`` rewrites one stderr line (done/total, elapsed, time left) when stderr is a terminal;
    otherwise it prints nothing, so that logs hold only results."""

    def __init__(self, what: str, stream=None, unit: str = "chunks"):
        self.what, self.stream, self.unit = what, stream or sys.stderr, unit
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0, self.first, self.shown = time.perf_counter(), None, False

    def update(self, done: int, total: int) -> None:
        if not self.tty:
            return
        now = time.perf_counter()
        if self.first is None:
            self.first = (done, now)
        d0, t0 = self.first
        rate = (done - d0) / (now - t0) if now > t0 and done > d0 else 0
        left = f", about {duration((total - done) / rate)} left" if rate else ""
        self.stream.write(f"\r\033[K{self.what}: {done}/{total} {self.unit} ({100 * done / total:.1f}%), "
                          f"{duration(now - self.t0)}{left}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


class Journal:
    """The finished chunks of one proof, beside its certificate: ``CERT.state``, JSON lines.

    Line 1 is ``{"format": "golden-prove-state", "key": ...}`` (:meth:`golden.prove.Proof.key`); each later line is
    one finished chunk, appended whole and fsynced, so the file is valid at every instant (a line cut by a crash
    is ignored). A file that is not such a journal, or the journal of another proof, is refused, never replaced.
    """

    FORMAT = "golden-prove-state"

    def __init__(self, cert: Path):
        self.path = cert.with_name(cert.name + ".state")
        self.fd = None
        self.saved = 0  # chunks the file holds

    def load(self, key: dict, parse) -> dict:
        """The saved chunks (index -> ``parse(dict)``) when the journal exists and belongs to ``key``; else {}."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return {}
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{self.path}: the resume state of this proof is not a regular file; remove it")
        try:
            with open(self.path, "rb") as f:
                lines = f.read().split(b"\n")
        except OSError as e:
            raise OutputError(f"{self.path}: cannot read the resume state ({e.strerror})") from None
        complete = lines[:-1]  # the last piece has no newline: empty, or a line cut by a crash
        try:
            head = json.loads(complete[0]) if complete else None
        except (ValueError, RecursionError):
            head = None
        if not isinstance(head, dict) or head.get("format") != self.FORMAT:
            raise OutputError(f"{self.path}: exists and is not golden's resume state; refusing to touch it "
                              f"(move it away, or choose another --out)")
        if head.get("key") != json.loads(json.dumps(key)):
            raise UsageError(f"{self.path}: holds the finished chunks of another proof (another spec, reference, "
                             f"config or golden version); remove it to start this one")
        done = {}
        for n, line in enumerate(complete[1:], 2):
            try:
                chunk = parse(json.loads(line))
            except (ValueError, RecursionError, GoldenError) as e:
                raise OutputError(f"{self.path}: line {n} is damaged ({str(e)[:80]}); remove the file to start "
                                  f"over") from None
            done[chunk.index] = chunk
        self.saved = len(done)
        return done

    def open(self, key: dict) -> None:
        """Create the journal (exclusively, never through a symlink) or open it to append."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            if os.path.lexists(self.path):
                self.fd = os.open(self.path, flags)
            else:
                self.fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o666)
                self.append({"format": self.FORMAT, "key": key}, chunk=False)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write the resume state ({e.strerror})") from None

    def append(self, record: dict, chunk: bool = True) -> None:
        data = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self.fd, data)  # one write of one line: O_APPEND makes it whole or absent
            os.fsync(self.fd)
            if chunk:
                self.saved += 1
        except OSError as e:
            raise OutputError(f"{self.path}: cannot save a finished chunk ({e.strerror}); the chunks before it "
                              f"are kept") from None

    def close(self, remove: bool) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
