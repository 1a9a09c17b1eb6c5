"""The done-when scan of issue #10: flip every byte of every file of a small bundle; each flip must be caught.

Every flip must give exit 1 (a difference) or 2 (broken), with one line naming the bundle, and never a
traceback or an internal error. No flip is allowed to pass: the manifest must be golden's canonical
JSON, so even a whitespace flip in it is caught (``ALLOWED`` is empty and the test says so).
"""

import io
import json
from pathlib import Path

import pytest
from hypothesis import settings

import golden
from golden import vectors

ALLOWED = {}  # {file name: set of byte offsets} that may pass: none


def _scan(bundle: Path, masks) -> dict:
    counts = {"flips": 0, 1: 0, 2: 0, "passed": []}
    for path in sorted(bundle.iterdir()):
        data = path.read_bytes()
        for i in range(len(data)):
            for mask in masks:
                flipped = bytearray(data)
                flipped[i] ^= mask
                path.write_bytes(bytes(flipped))
                out, err = io.StringIO(), io.StringIO()
                rc = vectors.verify([bundle], out=out, err=err, progress=False)
                counts["flips"] += 1
                text = out.getvalue() + err.getvalue()
                assert "Traceback" not in text and "internal error" not in text, (path.name, i, mask, text)
                assert "1 bundle(s)" in out.getvalue()
                if rc in (1, 2):
                    counts[rc] += 1
                    line = err.getvalue() if rc == 2 else out.getvalue().splitlines()[0]
                    assert str(bundle) in line and len(err.getvalue().splitlines()) <= 1
                else:
                    counts["passed"].append((path.name, i, mask))
        path.write_bytes(data)
    return counts


DEEP = settings().max_examples >= 10000  # the 'deep' Hypothesis profile also runs the heavier masks


@pytest.mark.parametrize("masks", [(0x01,), pytest.param((0xFF, 0x20), marks=pytest.mark.skipif(
    not DEEP, reason="deep profile only (GOLDEN_HYPOTHESIS=deep): 20k more verifies"))])
def test_every_byte_flip_of_every_file_is_caught(tmp_path, masks):
    spec = golden.codegen("LIF", q_in=8)
    b = vectors.generate(spec, 2, 2, 3, "edges", tmp_path / "b", ("npy", "hex", "h", "csv"), progress=False)
    assert vectors.verify([b], out=io.StringIO(), err=io.StringIO()) == 0
    counts = _scan(b, masks)
    allowed = [p for p in counts["passed"] if p[1] in ALLOWED.get(p[0], ())]
    assert counts["passed"] == allowed == [], counts["passed"][:10]
    assert counts[1] + counts[2] == counts["flips"] > 5000
    assert vectors.verify([b], out=io.StringIO(), err=io.StringIO()) == 0  # restored
    print(json.dumps({"masks": masks, "flips": counts["flips"], "exit1": counts[1], "exit2": counts[2],
                      "allowed_passes": len(allowed)}))
