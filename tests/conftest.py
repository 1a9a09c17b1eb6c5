"""Hypothesis profiles, the rule for missing references, and the proofs' summary.

Hypothesis: 'ci' (default, pinned and bounded) and 'deep' (on demand)::

    pytest                                  # ci profile
    pytest --hypothesis-profile=deep        # or GOLDEN_HYPOTHESIS=deep pytest

A test that needs a real reference is marked by ``proofs.requires``: it skips where the reference is
missing, except under ``CI=true``, where that is an error. At the end of the run, one line per proof
says what it compared (tests/proofs.py).
"""

import os

from hypothesis import HealthCheck, settings

import proofs

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                 HealthCheck.data_too_large])
settings.register_profile("deep", max_examples=20000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                 HealthCheck.data_too_large])
settings.load_profile(os.environ.get("GOLDEN_HYPOTHESIS", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "reference: needs a real reference, which is installed")
    config.addinivalue_line("markers", "missing_reference(why): needs a reference that is missing (CI=true: error)")


def pytest_runtest_setup(item):
    mark = item.get_closest_marker("missing_reference")
    if mark is not None:
        raise RuntimeError(f"CI=true, but a reference this proof needs is missing: {mark.args[0]}")


def pytest_terminal_summary(terminalreporter):
    lines = proofs.summary()
    if lines:
        terminalreporter.section("proofs")
        for line in lines:
            terminalreporter.write_line(line)
