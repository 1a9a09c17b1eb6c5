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


class NetworkError(SpecError):
    """A network or layer golden refuses; the message names the layer (and the fix)."""


class SimulationOverflow(GoldenError, OverflowError):
    """A strict overflow policy was violated; names the stage(s), step and neuron (flat index)."""

    def __init__(self, stages: list, t: int, neuron: int):
        super().__init__(f"strict overflow at stage {'/'.join(stages)}, step t={t}, neuron {neuron}")
        self.stages, self.stage, self.t, self.neuron = stages, stages[0], t, neuron


class CKernelError(GoldenError, RuntimeError):
    """golden's C step (golden.ckernel) cannot be written for this spec, or does not compile."""


class BudgetError(GoldenError, ValueError):
    """A job that does not fit its memory or time budget, refused before anything is allocated (golden.budget)."""


class NetProveError(GoldenError, ValueError):
    """``golden prove --network`` cannot run: a bad network, reference or output path (the message names the fix)."""


class PrimitiveError(GoldenError, RuntimeError):
    """number.hh's primitive could not be rendered, compiled or run (netprove): the message names the cause."""


class QuantizerError(GoldenError, RuntimeError):
    """The real Qualia Quantizer could not be built or run on a range (netprove): the message names the cause."""


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


class ProjectError(GoldenError, ValueError):
    """A Qualia project (config + run directory) golden cannot rebuild: one line naming the cause and the fix."""
