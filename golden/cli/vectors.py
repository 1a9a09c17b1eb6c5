"""``golden vectors generate | verify | export``: test-vector bundles (see vectors/README.md)."""

from __future__ import annotations

from pathlib import Path

from .. import vectors
from ..stimuli import STIMULI
from .options import Parser, natural_int, positive_int


def _parser() -> Parser:
    p = Parser(prog="golden vectors", description="Test-vector bundles (see vectors/README.md).")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    g = sub.add_parser("generate", help="simulate a stimulus and write a bundle")
    g.add_argument("--spec", required=True, help="TOML spec (golden spec new ...)")
    g.add_argument("--steps", type=positive_int, required=True)
    g.add_argument("--neurons", type=positive_int, required=True)
    g.add_argument("--seed", type=natural_int, required=True)
    g.add_argument("--stimulus", required=True, choices=STIMULI)
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
        if a.cmd == "generate":
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
