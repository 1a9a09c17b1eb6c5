"""``golden prove --spec FILE --against REF [--out CERT.json]``: exit 0 proven, 1 not proven, 2 error."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import GoldenError
from ..fileio import write_atomic
from ..prove import REFERENCES, ProveError, divergence_map, plot_map, prove
from ..spec import Spec
from .options import Parser


def build_parser() -> Parser:
    p = Parser(prog="golden prove", description=(
        "Prove a spec bit-exact against a reference on one step from every (v, x) of its formats, hence on every "
        "input sequence (induction; its preconditions are checked on the reference). Exit 0: proven; 1: not "
        "proven (a pair differs, a pair is undefined in the reference, or a precondition fails); 2: error."))
    p.add_argument("--spec", required=True, help="the spec (.toml) to prove")
    p.add_argument("--against", required=True,
                   help=f"{' | '.join(REFERENCES)} | another spec .toml (then also the divergence map by cause)")
    p.add_argument("--out", help="write the certificate (JSON) here")
    p.add_argument("--config", help="the reference's layer in Qualia's terms (JSON): torch_ref.make_module's or the "
                                    "C build's arguments, instead of those derived from the spec")
    p.add_argument("--reachable", action="store_true", help="enumerate only the potentials reachable from v0")
    p.add_argument("--plot", metavar="FILE.png", help="against a spec: heat map of the (v, x) plane by cause")
    p.add_argument("--json", action="store_true", help="print the certificate JSON instead of the summary")
    return p


def _check_out(path: str | None, what: str) -> None:
    """Refuse an output we could not write, before any work."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ProveError(f"{what}: {path} is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ProveError(f"{what}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ProveError(f"{what}: {path} is not writable")


def _config(path: str | None) -> dict | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise ProveError(f"--config: file not found: {path}")
    try:
        cfg = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProveError(f"--config: {path} is not JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ProveError(f"--config: {path} must hold a JSON object of the layer's arguments")
    return cfg


def run(argv) -> int:
    a = build_parser().parse_args(list(argv))
    _check_out(a.out, "--out")
    _check_out(a.plot, "--plot")
    spec = Spec.from_toml(Path(a.spec))
    against = a.against
    other = None
    if against not in REFERENCES:
        if not against.endswith(".toml"):
            raise ProveError(f"--against: unknown reference {against!r} (expected one of: {', '.join(REFERENCES)}, "
                             f"or a spec .toml)")
        other = against = Spec.from_toml(Path(against))
    elif a.plot:
        raise ProveError("--plot: the heat map compares two specs; give --against a spec .toml")
    cert = prove(spec, against, reachable_only=a.reachable, config=_config(a.config))
    doc = cert.to_dict()
    dmap = None
    if other is not None:
        dmap = divergence_map(spec, other)
        doc["divergence"] = dmap.to_dict()
        if a.plot:
            plot_map(dmap, a.plot)
    text = json.dumps(doc, sort_keys=True, indent=1) + "\n"
    if a.out:
        write_atomic(Path(a.out), lambda f: f.write(text.encode()))
    if a.json:
        sys.stdout.write(text)
    else:
        print(cert)
        if dmap is not None and dmap.any:
            print(dmap)
        for path, what in ((a.out, "certificate"), (a.plot, "heat map")):
            if path:
                print(f"  {what:<11} {path}")
    return 0 if cert.proven else 1


def cli(argv) -> int:
    try:
        return run(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (GoldenError, FileNotFoundError) as e:
        print(f"golden: error: {e}", file=sys.stderr)
        return 2
