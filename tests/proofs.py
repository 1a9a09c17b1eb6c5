"""The proofs against real references: one rule for a missing reference, and what each proof compared.

- :func:`requires` marks a test module (or test) that needs a reference: the torch/Qualia stack, gcc,
  qualia-codegen's templates, Icarus Verilog, cocotb. Where it is missing the tests skip, saying why;
  under ``CI=true`` they are ERRORS instead, so that a dependency change cannot leave CI green while
  proving nothing.
- :func:`record` is called by each comparison with the values it compared and how many differed;
  tests/conftest.py prints one line per proof at the end of the run (e.g. ``torch-eval: 13.6M
  neuron-steps, 0 mismatches``).
"""

from __future__ import annotations

import os
import shutil

import pytest

CI = os.environ.get("CI") == "true"
TALLY: dict = {}  # proof -> {"reference": str, "unit": str, "values": int, "mismatches": int}


def requires(missing: str | None):
    """A mark: nothing if the reference is there; else skip with ``missing`` as the reason, or under
    ``CI=true`` an error at setup (conftest.py's ``pytest_runtest_setup``)."""
    if missing is None:
        return pytest.mark.reference
    if CI:
        return pytest.mark.missing_reference(missing)
    return pytest.mark.skip(reason=missing)


def missing_gcc() -> str | None:
    return None if shutil.which("gcc") else "gcc is not installed"


def missing_torch() -> str | None:
    from golden.refs import torch_ref

    return None if torch_ref.torch_available() else "the torch/Qualia reference stack does not import"


def missing_codegen() -> str | None:
    from golden.refs import codegen_c

    return None if codegen_c.c_available() else "gcc or the qualia-codegen packages are not available"


def missing_module(name: str) -> str | None:
    import importlib.util

    return None if importlib.util.find_spec(name) is not None else f"{name} is not installed"


def record(proof: str, reference: str, values: int, mismatches: int = 0, unit: str = "neuron-steps") -> None:
    """Add ``values`` compared (``mismatches`` of them differing) to ``proof``'s line in the run's summary."""
    t = TALLY.setdefault(proof, {"reference": reference, "unit": unit, "values": 0, "mismatches": 0})
    t["values"] += int(values)
    t["mismatches"] += int(mismatches)


def _count(n: int) -> str:
    for size, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= size:
            return f"{n / size:.3g}{suffix}"
    return str(n)


def summary() -> list:
    """One line per proof that ran: its reference, the values compared and the mismatches."""
    return [f"{proof}: {_count(t['values'])} {t['unit']}, {t['mismatches']} mismatches (vs {t['reference']})"
            for proof, t in sorted(TALLY.items())]


def against_c(dep, net, x_raw):
    """golden's codegen ``net`` against the whole model's C of the deployment ``dep`` (Qualia's deployment path,
    gcc), every layer at every step of ``x_raw``; the counts are recorded. Returns (trace, {layer: (values,
    mismatches)})."""
    from golden.refs import codegen_model as cm

    r, tr = cm.run(dep, x_raw), net.simulate(x_raw)
    counts = {n: (int(r.cf[n].size), int((r.cf[n] != lt.out).sum())) for n, lt in tr.layers.items()}
    record("network codegen", "the whole model's C from Qualia's deployment path (gcc), every layer at every step",
           sum(v for v, _ in counts.values()), sum(m for _, m in counts.values()), unit="layer values")
    return tr, counts
