"""The import contract (tools/layering.py): the README's architecture table holds for the code, and the checker
catches each kind of violation on a small synthetic package (so a passing repo is not a checker that sees nothing)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import layering

README = """# x

## Architecture

| module | what it is | imports |
|---|---|---|
| `golden/errors.py` | errors | - |
| `golden/spec.py` | spec | errors |
| `golden/sim.py` | sim | spec |
| `golden/net/` | networks | sim |
| `tools/x.py` | a tool | golden |

## Next
"""


def tree(tmp_path, files: dict, readme: str = README) -> Path:
    (tmp_path / "README.md").write_text(readme)
    for rel, text in {"golden/__init__.py": "", **files}.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return tmp_path


CLEAN = {
    "golden/errors.py": "class E(Exception): pass\n",
    "golden/spec.py": "from .errors import E\n",
    "golden/sim.py": "from . import spec\n",
    "golden/net/__init__.py": "",
    "golden/net/a.py": "from ..sim import spec\nfrom . import b\n",
    "golden/net/b.py": "def f():\n    from golden.sim import spec\n",
}


def test_the_repository_keeps_its_import_contract():
    problems, _ = layering.check()
    assert problems == [], "\n".join(problems)


def test_a_clean_tree_passes(tmp_path):
    problems, _ = layering.check(tree(tmp_path, CLEAN))
    assert problems == []


@pytest.mark.parametrize("edit, expect", [
    ({"golden/spec.py": "from .errors import E\ndef f():\n    from . import sim\n"},
     ["imports golden.sim, a row BELOW it", "import cycle: golden.sim <-> golden.spec"]),
    ({"golden/sim.py": "from .spec import _hidden\n"}, ["imports private _hidden from golden.spec"]),
    ({"golden/net/b.py": "from . import a\n"}, ["import cycle: golden.net.a <-> golden.net.b"]),
    ({"golden/sim.py": "from . import spec\nimport golden\n"}, ["imports the package facade golden"]),
    ({"golden/sim.py": "from . import errors\n"}, ["the sim row says it imports 'spec', the code imports 'errors'"]),
    ({"golden/extra.py": ""}, ["golden.extra: no row of the README's architecture table holds it"]),
], ids=["row-below-and-cycle-function-local", "private", "cycle-in-package", "facade", "stale-readme", "no-row"])
def test_each_violation_is_named(tmp_path, edit, expect):
    problems, _ = layering.check(tree(tmp_path, {**CLEAN, **edit}))
    for e in expect:
        assert any(e in p for p in problems), (e, problems)


def test_write_regenerates_the_imports_column(tmp_path):
    root = tree(tmp_path, {**CLEAN, "golden/sim.py": "from . import errors, spec\n"})
    assert layering.check(root)[0]
    layering.write(root)
    assert layering.check(root)[0] == []
    assert "| `golden/sim.py` | sim | errors, spec |" in (root / "README.md").read_text()
    assert "| `tools/x.py` | a tool | golden |" in (root / "README.md").read_text()  # rows outside golden kept
