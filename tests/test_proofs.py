"""The rule for missing references (tests/proofs.py), run in a child pytest on a throwaway test module."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

CONFTEST = f"""
import importlib.util, sys
sys.path.insert(0, {str(TESTS)!r})
spec = importlib.util.spec_from_file_location("golden_tests_conftest", {str(TESTS / "conftest.py")!r})
hooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hooks)
pytest_configure, pytest_runtest_setup, pytest_terminal_summary = (
    hooks.pytest_configure, hooks.pytest_runtest_setup, hooks.pytest_terminal_summary)
"""

MODULE = """
from proofs import record, requires

pytestmark = requires("the frobnicator is not installed")

def test_needs_it():
    record("frob", "the frobnicator", 1)
"""

PRESENT = """
from proofs import record, requires

pytestmark = requires(None)

def test_compares():
    record("frob", "the frobnicator", 1_500_000, 0)
    record("frob", "the frobnicator", 2_000, 3)
"""


def _run(tmp_path, body, ci):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_it.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


@pytest.mark.parametrize("ci", [False, True])
def test_missing_reference_skips_but_errors_under_ci(tmp_path, ci):
    r = _run(tmp_path, MODULE, ci)
    if ci:
        assert r.returncode != 0 and "1 error" in r.stdout, r.stdout
        assert "CI=true, but a reference this proof needs is missing: the frobnicator is not installed" in r.stdout
    else:
        assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout
        assert "the frobnicator is not installed" in r.stdout
    assert "frob:" not in r.stdout  # nothing was compared: no proof line


def test_summary_line_per_proof_from_the_counters(tmp_path):
    r = _run(tmp_path, PRESENT, ci=True)
    assert r.returncode == 0, r.stdout
    assert "frob: 1.5M neuron-steps, 3 mismatches (vs the frobnicator)" in r.stdout
