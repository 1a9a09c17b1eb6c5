"""``golden from-qualia``: a real Qualia project (config + the out/ of its run) -> a saved golden network.

    golden from-qualia CONFIG.toml [--model NAME|INDEX] [--run-dir out] [--run I] [--profile torch-eval|codegen]
                       --out NETDIR [--force]

Rebuilds the quantized model with the installed Qualia (see :mod:`golden.qualia.project`), saves the network
with ``Network.save`` and prints its description. An existing NETDIR is refused unless it is a golden network
directory (network.toml + weights.npz, nothing else) and ``--force`` is given. Exit 0, or 2 with one line.
"""

from __future__ import annotations

from pathlib import Path

from .options import OutputError, Parser, natural_int, positive_int

NETWORK_FILES = {"network.toml", "weights.npz"}


def build_parser() -> Parser:
    p = Parser(prog="golden from-qualia", description=(
        "A real Qualia project -> a golden network: reads the config the run used and the .pth and activation-range "
        "file its QuantizationAwareTraining postprocessing wrote, rebuilds the quantized model with the installed "
        "Qualia, saves the network and prints it."))
    p.add_argument("config", help="the Qualia configuration TOML the run used")
    p.add_argument("--model", help="the [[model]] name or index (required when several are enabled)")
    p.add_argument("--run-dir", default="out", help="the out/ directory Qualia's run wrote (default: out)")
    p.add_argument("--run", type=natural_int, help="the run i of <name>_r<i>.pth (required when several are there)")
    p.add_argument("--profile", default="torch-eval", choices=["torch-eval", "codegen"])
    p.add_argument("--input-shape", type=positive_int, nargs="+", metavar="N",
                   help="the model's input shape (channels-last, as Qualia gives it) when neither the config nor the "
                        "run's exported training set gives it")
    p.add_argument("--long-width", type=positive_int, help="codegen: LONG_NUMBER_T width (default: the config's)")
    p.add_argument("--out", required=True, metavar="NETDIR", help="the network directory to write")
    p.add_argument("--force", action="store_true", help="replace an existing golden network directory")
    return p


def check_out(out: Path, force: bool) -> None:
    """Refuse to write over anything but a golden network directory, and over that without ``--force``."""
    if out.is_symlink():
        raise OutputError(f"--out {out}: is a symlink; give a directory path")
    if not out.exists():
        if not out.parent.is_dir():
            raise OutputError(f"--out {out}: its parent {out.parent} does not exist; create it first")
        return
    if not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a directory; give a new directory path")
    entries = {e.name for e in out.iterdir()}
    if "network.toml" not in entries or not entries <= NETWORK_FILES or \
            any(not (out / e).is_file() or (out / e).is_symlink() for e in entries):
        raise OutputError(f"--out {out}: exists and is not a golden network directory (only network.toml and "
                          f"weights.npz); give a new directory path")
    if not force:
        raise OutputError(f"--out {out}: already exists; pass --force to replace it")


def cli(argv) -> int:
    a = build_parser().parse_args(list(argv))
    out = Path(a.out)
    check_out(out, a.force)
    from ..qualia.project import from_qualia

    overrides = {} if a.long_width is None else {"long_width": a.long_width}
    model = a.model
    net = from_qualia(Path(a.config), model=model, run_dir=a.run_dir, profile=a.profile, iteration=a.run,
                      input_shape=tuple(a.input_shape) if a.input_shape else None, **overrides)
    net.save(out, overwrite=out.exists())
    meta = net.meta["qualia_project"]
    print(f"{out}: {meta['run_name']} run {meta['iteration']} ({a.profile}) from {meta['weights']}")
    print(net.describe())
    return 0
