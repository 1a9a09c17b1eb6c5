"""Test-vector bundles: generate, verify, export. The format and its guarantees are in ``vectors/README.md``.

A bundle is a directory: ``manifest.json``, ``spec.toml``, the raw arrays
(``x.npy``, ``out.npy``, ``v.npy``, ``spikes.npy``, shape (T, N), time-major,
neuron-minor) and exports (one :class:`~golden.vectors.formats.Format` object
each: ``*.hex`` + ``bundle.vh`` for ``$readmemh``, ``vectors.h`` for C,
``vectors.csv``). Modules: ``npy`` (the arrays), ``formats`` (the exports),
``atomic`` (work directories, the directory rule, atomic commit),
``bundle`` (generate, write_bundle, export), ``verify``.

A network bundle (``manifest["kind"] == "network"``) pins down a whole :class:`golden.Network` on S
samples x T steps in the generated C's channels-last layout: ``network`` (generate_network, the
layout, the renders), ``netverify`` (read_network_bundle, verify, export_network). ``verify`` and
``export`` tell the kinds apart.
"""

from __future__ import annotations

from ..stimuli import BASE_STIMULI, BLOCK, STIMULI, Stimulus, stimulus
from . import bundle as _bundle
from ..fileio import clean_stale, foreign_entries, golden_manifest, write_atomic
from .bundle import (
    COMPARED,
    FORMAT,
    LAYOUT,
    SCHEMA,
    base_manifest,
    dump_manifest,
    generate,
    sha256_file,
    write_bundle,
)
from .formats import (
    CHUNK,
    DEFAULT_FORMATS,
    EXPORTS,
    FIELDS,
    FORMATS,
    SPIKE_FMT,
    Format,
    hex_bytes,
    hex_digits,
    parse_csv,
    parse_formats,
    parse_h,
    parse_hex,
)
from .netverify import export_network, read_network_bundle
from .network import generate_network
from .npy import BundleError, npy_header, open_npy, read_npy_header
from .verify import (
    Diff,
    Result,
    find_bundles,
    load_manifest,
    read_bundle,
    scan,
    verify,
    verify_bundle,
)

HEX_PARAMS = EXPORTS["hex"].PARAMS
H_FILE = EXPORTS["h"].FILE
CSV_FILE = EXPORTS["csv"].FILE

__all__ = [
    "BASE_STIMULI",
    "BLOCK",
    "CHUNK",
    "COMPARED",
    "CSV_FILE",
    "DEFAULT_FORMATS",
    "EXPORTS",
    "FIELDS",
    "FORMAT",
    "FORMATS",
    "HEX_PARAMS",
    "H_FILE",
    "LAYOUT",
    "SCHEMA",
    "SPIKE_FMT",
    "STIMULI",
    "BundleError",
    "Diff",
    "Format",
    "Result",
    "Stimulus",
    "base_manifest",
    "clean_stale",
    "cli",
    "dump_manifest",
    "export",
    "find_bundles",
    "foreign_entries",
    "generate",
    "generate_network",
    "export_network",
    "read_network_bundle",
    "hex_bytes",
    "hex_digits",
    "load_manifest",
    "npy_header",
    "open_npy",
    "parse_csv",
    "parse_formats",
    "parse_h",
    "parse_hex",
    "read_bundle",
    "read_npy_header",
    "scan",
    "sha256_file",
    "stimulus",
    "verify",
    "verify_bundle",
    "write_atomic",
    "write_bundle",
]


def export(bundle, fmt, *, prefix: str | None = None) -> list:
    """Add exports to a bundle that verifies: a single-layer bundle (``hex``, ``h``, ``csv``) or a network
    bundle (``hex``, ``h``); see :func:`golden.vectors.bundle.export` and :func:`export_network`."""
    from pathlib import Path

    m = None if Path(bundle).is_symlink() else golden_manifest(Path(bundle))
    if m is not None and m.get("kind") == "network":
        return export_network(bundle, fmt, prefix=prefix)
    return _bundle.export(bundle, fmt, prefix=prefix)


def cli(argv=None) -> int:
    """``golden vectors ...`` as the ``golden`` command runs it (one-line errors, exit 2).

    The parser lives in :mod:`golden.cli.vectors`."""
    from ..cli import main
    return main(["vectors", *(() if argv is None else argv)])
