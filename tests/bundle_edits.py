"""Edits of a bundle that keep its manifest canonical and its hashes current, so that only verify's deeper
checks (content against the spec, the directory rule) can catch them. Shared by test_vectors and test_bundles."""

from __future__ import annotations

import json
from pathlib import Path

from golden import vectors


def edit_manifest(bundle, edit) -> None:
    """Apply ``edit(manifest_dict)`` and write manifest.json back in golden's canonical form."""
    p = Path(bundle) / "manifest.json"
    m = json.loads(p.read_text())
    edit(m)
    p.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")


def rehash(bundle, name) -> None:
    """Make the manifest agree with a file we rewrote (its sha256 and size)."""
    path = Path(bundle) / name

    def edit(m):
        m["files"][name] = {"sha256": vectors.sha256_file(path), "bytes": path.stat().st_size}
    edit_manifest(bundle, edit)
