"""Test-vector bundles: generate, verify, export. The format and its guarantees are in ``vectors/README.md``.

A bundle is a directory: ``manifest.json`` listing every other file with its hash, the arrays as
``.npy`` and exports (one :class:`~golden.vectors.formats.Format` object each: ``*.hex`` +
``bundle.vh`` for ``$readmemh``, ``vectors.h`` for C, CSV). Two kinds share one core:

- ``core``: the manifest, the listing, hashing, build and commit (through :mod:`golden.fileio`), ``Result``;
- ``formats``: the exports, each rendering a kind's :class:`~golden.vectors.formats.View` (named arrays);
- ``layer``: one neuron layer (``spec.toml``, ``x/out/v/spikes.npy`` of shape (T, N)): ``generate``,
  ``write_bundle``, ``read_bundle``;
- ``network``: a whole :class:`golden.Network` on S samples x T steps in the generated C's
  channels-last layout: ``generate_network``, ``read_network_bundle``;
- ``bundles``: ``verify`` and ``export``, dispatching on the manifest's ``kind``.
"""

from __future__ import annotations

from ..fileio import clean_stale, foreign_entries, golden_manifest, write_atomic
from ..stimuli import BASE_STIMULI, BLOCK, STIMULI, Stimulus, stimulus
from .bundles import export, find_bundles, scan, verified, verify, verify_bundle
from .core import FORMAT, SCHEMA, Result, dump_manifest, sha256_file
from .formats import (
    CHUNK,
    DEFAULT_FORMATS,
    EXPORTS,
    FORMATS,
    SPIKE_FMT,
    Format,
    Named,
    Table,
    View,
    hex_bytes,
    hex_digits,
    parse_csv,
    parse_formats,
    parse_h,
    parse_hex,
)
from .layer import (
    COMPARED,
    CSV_FILE,
    FIELDS,
    LAYOUT,
    Diff,
    base_manifest,
    generate,
    load_manifest,
    read_bundle,
    write_bundle,
)
from .network import NetDiff, generate_network, read_network_bundle
from .npy import BundleError, npy_header, open_npy, read_npy_header

HEX_PARAMS = EXPORTS["hex"].PARAMS
H_FILE = EXPORTS["h"].FILE

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
    "Named",
    "NetDiff",
    "Result",
    "Stimulus",
    "Table",
    "View",
    "base_manifest",
    "clean_stale",
    "dump_manifest",
    "export",
    "find_bundles",
    "foreign_entries",
    "generate",
    "generate_network",
    "golden_manifest",
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
    "read_network_bundle",
    "read_npy_header",
    "scan",
    "sha256_file",
    "stimulus",
    "verified",
    "verify",
    "verify_bundle",
    "write_atomic",
    "write_bundle",
]
