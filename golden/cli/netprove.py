"""``golden prove --network NETDIR --against torch-eval|codegen [--out CERT.json]``: a whole-network certificate.

Exit 0: every layer proven; 1: some layer not proven (each named with its reason); 2: an error (one line on
stderr, nothing written).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import GoldenError
from ..netprove import AGAINST, MAX_VALUES, NEURON_PAIRS, NetProveError, check_out, prove_network, summary, to_json
from .options import Parser, positive_int


def build_parser() -> Parser:
    p = Parser(prog="golden prove --network", description=(
        "Prove a saved network (network.toml + weights.npz) equal to its reference on every input sequence of its "
        "input format, by composition of per-layer proofs each checked on the real reference. Exit 0: proven; "
        "1: some layer not proven (named, with the reason); 2: error."))
    p.add_argument("--network", required=True, metavar="NETDIR", help="the saved network directory")
    p.add_argument("--against", required=True, choices=AGAINST, help="the reference: the real Qualia modules in "
                   ".eval() (torch-eval) or the C Qualia generates (codegen)")
    p.add_argument("--out", help="write the certificate (JSON) here; an existing file that is not a golden network "
                                 "certificate is refused unless --force")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file whatever it holds")
    p.add_argument("--neuron-pairs", type=positive_int, default=NEURON_PAIRS,
                   help=f"the largest (v, x) plane a neuron proof runs here (default {NEURON_PAIRS}: 16-bit specs, "
                        f"2^32 pairs, are reported not proven)")
    p.add_argument("--max-values", type=positive_int, default=MAX_VALUES,
                   help=f"the largest domain one layer check enumerates (default {MAX_VALUES})")
    p.add_argument("--json", action="store_true", help="print the certificate JSON instead of the summary")
    return p


def run(argv) -> int:
    from ..network import load

    a = build_parser().parse_args(list(argv))
    if a.out is not None:
        check_out(a.out, force=a.force)
    if not Path(a.network).is_dir():
        raise NetProveError(f"--network: {a.network} is not a directory (give a saved network: network.toml + "
                            f"weights.npz)")
    cert = prove_network(load(a.network), a.against, neuron_pairs=a.neuron_pairs, max_values=a.max_values)
    text = to_json(cert)
    if a.out is not None:
        from ..netprove import write_certificate

        write_certificate(cert, a.out, force=a.force)
    sys.stdout.write(text if a.json else summary(cert) + (f"\n  certificate {a.out}" if a.out else "") + "\n")
    return 0 if cert["proven"] else 1


def cli(argv) -> int:
    """The ``golden prove --network ...`` entry: exit 0 proven, 1 not proven, 2 error (one line, nothing written)."""
    try:
        return run(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (GoldenError, FileNotFoundError) as e:
        print(f"golden: error: {e}", file=sys.stderr)
        return 2
