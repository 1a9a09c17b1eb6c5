#!/usr/bin/env python3
"""Regenerate the committed network bundles under vectors/networks/ (one per Qualia template).

    python tools/regen_network_corpus.py             # rewrite vectors/networks/*, remove stale ones
    python tools/regen_network_corpus.py --out DIR   # write them into DIR instead
    python tools/regen_network_corpus.py --check     # only list what would be written

Each bundle is ``golden.from_torch(deployed, profile="codegen")`` of a small seeded model of
golden/refs/qualia_models.py, deployed the way Qualia does (golden/refs/codegen_model.deploy: needs
torch, Qualia and gcc), on a deterministic stimulus. Before a bundle is written, every layer of it
is compared with the real generated C (compiled with gcc, run with the same inputs, every layer's
featuremap at every step): a single differing value aborts the run, so a committed bundle is what
the deployed C computes. Verifying the committed bundles (``golden vectors verify vectors``) needs
numpy and numba only: each bundle embeds its network.

Like tools/regen_corpus.py: a deliberate change of semantics regenerates the corpus in the same
commit, with the reason in the commit message. They live in their own directory, vectors/networks/, apart
from tools/regen_corpus.py's single-layer bundles (which that script owns and prunes).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from golden import vectors  # noqa: E402
from golden.vectors import network as nb  # noqa: E402

# name -> (qualia_models.build kwargs, deploy kwargs, samples, steps, stimulus, seed)
CORPUS = {
    "codegen-smlp-lif8": (dict(template="SMLP", dims=1, kind="LIF", bits=8, seed=0), {}, 4, 16,
                                  "uniform", 1),
    "codegen-scnn2d-lif8": (dict(template="SCNN", dims=2, kind="LIF", bits=8, seed=1), {}, 2, 8,
                                    "poisson", 2),
    "codegen-sresnet1d-if16": (dict(template="SResNet", dims=1, kind="IF", bits=16, seed=2),
                                       {"long_width": 32}, 2, 8, "edges", 3),
}


def build_network(build_kw: dict, deploy_kw: dict):
    """(golden codegen network, the Deployed model) of one corpus entry."""
    import golden
    from golden.refs import codegen_model, qualia_models

    built = qualia_models.build(**build_kw)
    dep = codegen_model.deploy(built, **deploy_kw)
    return golden.from_torch(dep, profile="codegen"), dep


def check_against_c(bundle: Path, dep) -> int:
    """Every layer of ``bundle`` equals the real generated C run on its x; returns the values compared."""
    from golden.refs import codegen_model

    net, arrays, m = vectors.read_network_bundle(bundle)
    crun = codegen_model.run(dep, nb.from_c(arrays["x"]))
    compared = 0
    for e in m["layers"]:
        got = arrays[f"{e['ident']}.out"].astype(np.int64)
        c = crun.c.get(e["c_name"])
        if c is None:
            raise SystemExit(f"{bundle.name}: layer {e['name']} has no C node {e['c_name']}")
        if not np.array_equal(c, got):
            bad = np.argwhere(c != got)[0]
            raise SystemExit(f"{bundle.name}: layer {e['name']} differs from the generated C at {tuple(bad)}")
        compared += c.size
    out = arrays[m["output"]["file"].removesuffix(".npy")].reshape(crun.output.shape)
    if not np.array_equal(crun.output, out):
        raise SystemExit(f"{bundle.name}: the model output differs from the C harness's")
    return compared + out.size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "vectors" / "networks", help="where the bundles go")
    ap.add_argument("--check", action="store_true", help="only list what would be written")
    a = ap.parse_args(argv)
    if a.check:
        for name in CORPUS:
            print(a.out / name)
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    for stale in sorted(a.out.iterdir()):  # golden's bundles only (the directory rule)
        if stale.is_dir() and stale.name not in CORPUS and vectors.foreign_entries(stale) == []:
            shutil.rmtree(stale)
            print(f"removed stale {stale}")
    for name, (build_kw, deploy_kw, samples, steps, stimulus, seed) in CORPUS.items():
        net, dep = build_network(build_kw, deploy_kw)
        out = vectors.generate_network(net, a.out / name, samples=samples, steps=steps, seed=seed,
                                       stimulus=stimulus, force=True)
        n = check_against_c(out, dep)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"{out}: {len(net.nodes)} layers, {n} values equal to the generated C, {size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
