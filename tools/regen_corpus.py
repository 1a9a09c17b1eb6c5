#!/usr/bin/env python3
"""Regenerate the committed test-vector corpus under vectors/ (the quantization-regression gate).

    python tools/regen_corpus.py            # rewrite every bundle, remove stale ones
    python tools/regen_corpus.py --check    # only list what would be written

CI runs ``golden vectors verify vectors``: it re-simulates every bundle and
fails on any difference. A deliberate change of semantics (a datapath,
rounding or profile fix) must therefore regenerate the corpus **in the same
commit**, with the reason stated in the commit message. A corpus that changes
without such a reason is a quantization regression.

The output is deterministic: the same golden gives byte-identical bundles on
any machine (each bundle's seed is derived from its name).

Coverage: each kind (IF, LIF, ATIF) x each profile (torch-eval, torch-train,
codegen -- which has no ATIF -- and hardware) x soft/hard reset (ATIF: soft
only) x decay_input (LIF), each twice: int8 with q_in != q_v (Q8.8 in, Q8.6
potential, threshold 0.25) under the 'ties' stimulus, and int16 under the 'edges' stimulus; plus a few extra bundles for
the other stimuli, q_in < q_v, convergent rounding and wrapping overflow.
Integer profiles (codegen, hardware) also carry the .hex exports for RTL, and
codegen bundles the C header for firmware; the float32 torch profiles carry the
.npy arrays only, to keep the corpus small (``golden vectors export`` adds the
others on demand).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import golden  # noqa: E402  (the checkout first, installed or not)
from golden import vectors  # noqa: E402

STEPS, NEURONS = 32, 64
PROFILES = ("torch-eval", "torch-train", "codegen", "hardware")
INT_PROFILES = ("codegen", "hardware")


def layer(profile: str, kind: str, reset: str, decay: bool, bits: int, q_in: int, q_v: int, tau: float,
          v_threshold: float = 1.0, **extra):
    p = {"q_v": q_v, "q_in": q_in, "v_threshold": v_threshold, "v_reset": None if reset == "soft" else 0.0}
    if profile == "codegen":
        p.update(width=bits)
    else:
        p.update(bits=bits)
    if kind == "LIF":
        p.update(tau=tau, decay_input=decay)
    elif profile == "codegen":
        p.update(tau=None)
    p.update(extra)
    return golden.make(profile, kind, **p)


def name_of(spec, stim: str, suffix: str = "") -> str:
    s = spec
    lif = ("-decay" if s.decay_input else "-nodecay") if s.kind == "LIF" else ""
    return (f"{s.profile}-{s.kind.lower()}-{s.reset}{lif}-q{s.fmt_in.bits}.{s.fmt_in.frac}"
            f"-q{s.fmt_v.bits}.{s.fmt_v.frac}-{stim}{suffix}")


def corpus() -> list:
    """(name, spec, stimulus) of every bundle."""
    items = []
    for profile in PROFILES:
        for kind in ("IF", "LIF", "ATIF"):
            if profile == "codegen" and kind == "ATIF":
                continue
            for reset in (("soft",) if kind == "ATIF" else ("hard", "soft")):
                for decay in ((True, False) if kind == "LIF" else (True,)):
                    a = layer(profile, kind, reset, decay, 8, 8, 6, 3.0, 0.25)  # int8, q_in != q_v; inputs reach +-0.5
                    b = layer(profile, kind, reset, decay, 16, 12, 12, 2.0)  # int16
                    items += [(name_of(a, "ties"), a, "ties"), (name_of(b, "edges"), b, "edges")]
    extras = [
        (layer("hardware", "LIF", "hard", True, 8, 4, 6, 2.0), "uniform", ""),  # q_in < q_v
        (layer("hardware", "LIF", "soft", False, 8, 6, 6, 4.0), "poisson", ""),
        (layer("codegen", "LIF", "hard", True, 8, 6, 6, 2.0), "mixed", ""),
        (layer("codegen", "IF", "soft", True, 16, 14, 10, 2.0), "mixed", ""),
        (layer("hardware", "IF", "soft", True, 8, 8, 6, 2.0, 0.25, round="RND_CONV"), "ties", "-rndconv"),
        (layer("hardware", "ATIF", "soft", True, 8, 6, 6, 2.0, overflow="wrap"), "edges", "-wrap"),
        (layer("torch-eval", "LIF", "hard", True, 8, 6, 6, 2.0), "uniform", ""),
    ]
    items += [(name_of(s, stim, suf), s, stim) for s, stim, suf in extras]
    names = [n for n, _, _ in items]
    assert len(set(names)) == len(names), "bundle names must be unique"
    return items


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "vectors"))
    ap.add_argument("--check", action="store_true", help="list the bundles, write nothing")
    a = ap.parse_args(argv)
    out = Path(a.out)
    items = corpus()
    if a.check:
        for name, spec, stim in items:
            print(f"{name}: {spec.describe()} [{stim}]")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    wanted = {name for name, _, _ in items}
    for d in sorted(out.iterdir()):  # stale bundles of an older corpus: golden's only (the directory rule)
        if d.name == "networks":
            continue  # the network corpus: tools/regen_network_corpus.py's (vectors/README.md, "Network bundles")
        if d.is_dir() and not d.is_symlink() and d.name not in wanted and (d / "manifest.json").is_file():
            in_the_way = vectors.foreign_entries(d)
            if in_the_way:
                print(f"kept {d.name}: not golden's to remove ({', '.join(in_the_way[:3])})")
                continue
            shutil.rmtree(d)
            print(f"removed {d.name}")
    total = 0
    for name, spec, stim in items:
        seed = zlib.crc32(name.encode()) % 100000
        formats = ("npy",) + ("hex",) * (spec.profile in INT_PROFILES) + ("h",) * (spec.profile == "codegen")
        path = vectors.generate(spec, STEPS, NEURONS, seed, stim, out / name, formats, force=True, progress=False)
        size = sum(p.stat().st_size for p in path.iterdir())
        total += size
        print(f"{name}: {size // 1024} KiB")
    print(f"{len(items)} bundles, {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
