"""golden: the bit-exact golden model for quantized spiking neurons.

spec -> kernels -> trace -> vectors/reports:

- :class:`Spec` / :class:`QFormat` (golden.spec): the declarative datapath;
- :mod:`golden.profiles`: presets reproducing real references;
- :func:`simulate` / :class:`Simulator` (golden.simulate): the Numba kernels;
- :mod:`golden.reference`: the same semantics in plain Python;
- :mod:`golden.ckernel`: the same step in C, compiled (a second executable model).

Every deliberate error is a :class:`GoldenError`. The README's "Architecture" lists every module.
"""

from .errors import GoldenError
from .profiles import PROFILES, codegen, hardware, make, torch_eval, torch_train
from .simulate import SimulationOverflow, Simulator, Trace, simulate
from .spec import QFormat, Spec, SpecError, quantize_real
from .version import __version__

__all__ = [
    "PROFILES", "GoldenError", "QFormat", "SimulationOverflow", "Simulator", "Spec", "SpecError", "Trace",
    "__version__", "codegen", "hardware", "make", "quantize_real", "simulate", "torch_eval", "torch_train",
]


def __getattr__(name):  # heavy, optional parts load on first use
    if name in ("from_torch", "check_model"):
        from . import torch_bridge
        return getattr(torch_bridge, name)
    if name == "from_qualia":
        from .qualia.project import from_qualia
        return from_qualia
    if name == "Network":
        from .network import Network
        return Network
    if name in ("spec_from_module", "network_from_module", "network_from_deployment", "from_qualia"):
        # the explicit factories beside from_torch; functions of golden.qualia, not classmethods, because
        # Spec and Network sit above the Qualia readers in the one-direction layering (they know no torch)
        from . import qualia
        return getattr(qualia, name)
    if name == "prove_network":
        from .netprove import prove_network
        return prove_network
    if name in ("network", "prove", "qualia", "strategies", "testing", "vectors"):
        import importlib
        return importlib.import_module(f"golden.{name}")
    raise AttributeError(name)
