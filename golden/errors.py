"""The one base class of every error golden raises on purpose.

``golden.cli.main`` catches :class:`GoldenError` once and prints it as one line,
exit 2.  Each subclass also keeps the builtin base it always had
(``SpecError`` is a ``ValueError``, ``SimulationOverflow`` an ``OverflowError``),
so code written against those still works.
"""

from __future__ import annotations


class GoldenError(Exception):
    """Base of every error golden raises deliberately: a message that names the field and the fix."""


class BundleError(GoldenError):
    """A bundle or a file golden writes that cannot be read, trusted or written (exit 2): one line naming it."""


class ProjectError(GoldenError, ValueError):
    """A Qualia project (config + run directory) golden cannot rebuild: one line naming the cause and the fix."""
