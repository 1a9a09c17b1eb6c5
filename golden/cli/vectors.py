"""``golden vectors generate | verify | export``: test-vector bundles (see vectors/README.md)."""

from __future__ import annotations

from pathlib import Path

from .. import vectors
from ..stimuli import STIMULI
from ..vectors import network
from .options import Parser, UsageError, natural_int, positive_int


def _parser() -> Parser:
    p = Parser(prog="golden vectors", description="Test-vector bundles (see vectors/README.md).")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    g = sub.add_parser("generate", help="simulate a stimulus and write a bundle (one layer, or a whole network)")
    g.add_argument("--spec", help="TOML spec (golden spec new ...): a single-layer bundle, with --neurons")
    g.add_argument("--network", metavar="NETDIR", help="a saved network directory (network.toml + weights.npz): "
                   "a network bundle, with --samples")
    g.add_argument("--steps", type=positive_int, required=True)
    g.add_argument("--neurons", type=positive_int, help="neurons of a single-layer bundle (with --spec)")
    g.add_argument("--samples", type=positive_int, help="samples of a network bundle (with --network)")
    g.add_argument("--seed", type=natural_int, required=True)
    g.add_argument("--stimulus", required=True, choices=STIMULI,
                   help="network bundles: " + ", ".join(network.STIMULI))
    g.add_argument("--out", required=True)
    g.add_argument("--formats", default=",".join(vectors.DEFAULT_FORMATS),
                   help="comma-separated: " + ",".join(vectors.FORMATS) + " (npy always)")
    g.add_argument("--prefix", default="golden", help="C header name prefix")
    g.add_argument("--force", action="store_true", help="replace an existing golden bundle (nothing else)")
    v = sub.add_parser("verify", help="re-simulate bundles and check every file")
    v.add_argument("dirs", nargs="+", metavar="DIR")
    e = sub.add_parser("export", help="add exports to a bundle: " + ", ".join(vectors.EXPORTS))
    e.add_argument("dir", metavar="DIR")
    e.add_argument("--format", required=True, help=", ".join(vectors.EXPORTS) + " (comma-separated for several)")
    e.add_argument("--prefix", help="C header name prefix")
    return p


def cli(argv) -> int:
    """``golden vectors ...``; bad input raises GoldenError, which golden.cli.main prints as one line, exit 2."""
    a = _parser().parse_args(list(argv))
    try:
        if a.cmd == "generate" and a.network is not None:
            mixed = [o for o, v in (("--spec", a.spec), ("--neurons", a.neurons)) if v is not None]
            if mixed or a.samples is None:
                raise UsageError(f"generate: --network takes --samples, not {' and '.join(mixed)}" if mixed else
                                 "generate: --network needs --samples (see golden vectors --help)")
            out = vectors.generate_network(Path(a.network), Path(a.out), samples=a.samples, steps=a.steps,
                                           seed=a.seed, stimulus=a.stimulus, formats=a.formats, prefix=a.prefix,
                                           force=a.force)
            print(f"{out}: network {a.network}, {a.samples} samples x {a.steps} steps, stimulus {a.stimulus} "
                  f"seed {a.seed}")
            return 0
        if a.cmd == "generate":
            if a.spec is None or a.neurons is None or a.samples is not None:
                raise UsageError("generate: give --spec with --neurons (a single-layer bundle) or --network with "
                                 "--samples (a network bundle)")
            out = vectors.generate(Path(a.spec), a.steps, a.neurons, a.seed, a.stimulus, Path(a.out), a.formats,
                                   a.force, prefix=a.prefix)
            print(f"{out}: {a.steps} steps x {a.neurons} neurons, stimulus {a.stimulus} seed {a.seed}")
            return 0
        if a.cmd == "verify":
            return vectors.verify(a.dirs)
        files = vectors.export(Path(a.dir), a.format, prefix=a.prefix)
        print(f"{a.dir}: wrote {', '.join(files)}")
        return 0
    except MemoryError:
        raise vectors.BundleError("out of memory (use fewer neurons)") from None
