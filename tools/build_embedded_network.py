"""Build the embedded demo network (golden/data/<name>/) once, from a seeded real Qualia model.

    python tools/build_embedded_network.py [--check]

The model: qualia-plugin-snn's QuantizedSCNN (1-D, input 16x1, filters [4, 6], 8 bits, LIF soft
reset, seed 0), built and calibrated by golden.refs.qualia_models; ``golden.from_torch`` turns
it into a Network, saved as network.toml + weights.npz. ``--check`` rebuilds it and exits 1 if
the committed directory differs (tests/test_network_errors.py runs the same check).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAME = "scnn1d_lif8"
CONFIG = {"template": "SCNN", "dims": 1, "kind": "LIF", "bits": 8, "soft_reset": True, "seed": 0}
TARGET = Path(__file__).resolve().parents[1] / "golden" / "data" / NAME


def build():
    import warnings

    import golden
    from golden.refs import qualia_models as qm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = qm.build(**CONFIG)
        net = golden.from_torch(built.model)
    net.meta.update({"built_by": "tools/build_embedded_network.py", "model": built.name})
    return net


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from golden.network import Network

    net = build()
    if "--check" in argv:
        same = Network.load(TARGET).digest() == net.digest()
        print(f"{TARGET}: {'up to date' if same else 'DIFFERS from a fresh build'}")
        return 0 if same else 1
    net.save(TARGET, overwrite=True)
    print(f"wrote {TARGET} (digest {net.digest()[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
