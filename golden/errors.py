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


class SpecError(GoldenError, ValueError):
    """An invalid spec, always naming the offending field."""


class TorchBridgeError(SpecError):
    """A Qualia module golden refuses to describe; the message names the cause (and the fix, when there is one)."""


class DeployError(GoldenError, RuntimeError):
    """Qualia's deployment path, the compiler or the compiled model failed; the message says where."""


class ModelConfigError(GoldenError, ValueError):
    """A test-factory build() argument outside what the factory supports; the message names the argument."""


class CRunError(GoldenError, RuntimeError):
    """A compiled C driver exited with an error (e.g. a sanitizer trap)."""

    def __init__(self, msg: str, returncode: int, stderr: str) -> None:
        super().__init__(msg)
        self.returncode = returncode
        self.stderr = stderr
