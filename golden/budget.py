"""What a job costs before it runs: work, memory and time, refused up front past a budget.

A long or large job states its :class:`Cost` first. :func:`refuse` raises (one line naming the work, the
memory, the time and the fix) when the memory is more than this machine can give (always: it would fail
anyway, late) or the time is past the budget (unless the caller was told to go ahead, e.g. ``--allow-long``).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from .errors import BudgetError

__all__ = ["DEFAULT_SECONDS", "BudgetError", "Cost", "available_memory", "refuse"]

DEFAULT_SECONDS = 120.0  # a job estimated longer is refused unless told


def _size(n: float) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{int(n)} B"


def _time(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.3g} h"
    if s >= 60:
        return f"{s / 60:.3g} min"
    return f"{s:.2g} s"


@dataclass(frozen=True)
class Cost:
    """``work`` (e.g. ``"4294967296 (v, x) pairs"``), the peak memory in bytes and the estimated seconds."""

    work: str
    bytes: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.work}: about {_size(self.bytes)} of memory" + (
            f" and {_time(self.seconds)}" if self.seconds else "")


def available_memory() -> int:
    """Bytes this process can still allocate: the smaller of MemAvailable and the address-space limit."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            avail = 1 << 62
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            used = 0
        avail = min(avail, max(soft - used, 0))
    return avail


def refuse(cost: Cost, what: str, *, allow_long: bool = False, seconds: float = DEFAULT_SECONDS,
           fix: str = "--allow-long") -> None:
    """BudgetError naming ``what`` when ``cost`` does not fit the memory this machine has, or (unless
    ``allow_long``) takes more than ``seconds``; ``fix`` is the option that lifts the time budget."""
    free = available_memory()
    if cost.bytes > free:
        raise BudgetError(f"{what}: {cost}, more than the {_size(free)} this process can get (free memory, "
                          f"ulimit -v); make it smaller")
    if not allow_long and cost.seconds > seconds:
        raise BudgetError(f"{what}: {cost}, past the {_time(seconds)} budget; make it smaller, or give {fix} "
                          f"to run it anyway")
