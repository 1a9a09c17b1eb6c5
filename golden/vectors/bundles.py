"""One ``verify`` and one ``export`` for every bundle kind: they read the manifest's ``kind`` and dispatch.

The kinds (``layer.py``, ``network.py``) each offer ``verify(bundle, manifest, progress)`` (the
whole check: a :class:`~golden.vectors.core.Result`, or BundleError when the bundle cannot be
trusted), ``export_plan`` and ``export_view``; everything else (the listing, the copy, the exports
over the kind's view, the commit) is shared here and in ``core.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import fileio
from ..spec import SpecError
from . import core, layer, network
from .core import BundleError, Result
from .formats import EXPORTS, export_files, parse_formats, write_exports

KINDS: dict[str, core.BundleKind] = {layer.KIND: layer, network.KIND: network}


def kind_of(m: dict) -> core.BundleKind:
    """The kind module of a manifest: ``network`` for ``kind: network``, else a single layer (its neuron kind)."""
    return network if m.get("kind") == network.KIND else layer


def verify_bundle(bundle, progress: bool | None = None) -> Result:
    """Check one bundle of either kind (see README); BundleError when it cannot be read, else a Result."""
    bundle = Path(bundle)
    m = core.read_manifest(bundle)
    return kind_of(m).verify(bundle, m, progress)


def verified(bundle: Path) -> Result:
    """The verify result of a bundle that ``export`` may read from: refuses a symlink, or a bundle that does not
    verify (single-layer and network bundles alike)."""
    if bundle.is_symlink():
        raise BundleError(f"{bundle}: is a symlink; export the bundle at its real path ({os.path.realpath(bundle)})")
    res = verify_bundle(bundle)
    if res.count:
        raise BundleError(f"{bundle}: does not verify ({res.first_text()}); refusing to export from it")
    return res


def export(bundle, fmt, *, prefix: str | None = None) -> list:
    """Add exports (``hex``, ``h``, ``csv``, any registered format; a list or comma-separated) to a bundle that
    verifies, of either kind.

    The bundle must obey the directory rule (verify checks it): only its listed regular files are
    copied, without following symlinks, into a new bundle that replaces it atomically.
    """
    bundle = Path(bundle)
    names = [f for f in parse_formats(fmt) if f in EXPORTS]
    if not names:
        raise SpecError(f"format: expected some of {', '.join(EXPORTS)}")
    res = verified(bundle)
    kind = kind_of(res.manifest)
    prefix, m, size = kind.export_plan(res, names, prefix)
    replaced = {f for n in names if n in res.manifest["exports"] for f in EXPORTS[n].files(res.view)}
    core.check_disk(bundle.absolute().parent, size)
    written = []

    def fill(d: Path) -> None:
        core.copy_listed(bundle, d, res.manifest["files"], replaced)
        vw = kind.export_view(d, res, m)
        m["exports"].update(write_exports(d, vw, names, prefix))
        written.extend(export_files(vw, names))
        core.finish(d, m)

    core.build(bundle, True, fill)
    return written


def scan(paths):
    """(bundle directories, notes): each path holding a manifest.json, else every manifest.json below it.

    Hidden directories are searched too; golden's own work directories are reported in the notes,
    symlinked directories are reported and not followed.
    """
    found, notes = [], []
    for p in map(Path, paths):
        if p.is_dir() and os.path.lexists(p / "manifest.json"):
            found.append(p)
            continue
        if not p.exists():
            raise BundleError(f"{p}: no such directory")
        if not p.is_dir():
            raise BundleError(f"{p}: not a directory")
        below = []
        for root, dirs, files in os.walk(p, followlinks=False):
            r = Path(root)
            keep = []
            for d in sorted(dirs):
                if os.path.islink(r / d):
                    notes.append(f"{r / d}: a symlinked directory, not followed")
                elif fileio.is_work_dir(r / d):
                    notes.append(f"{r / d}: a golden work directory (a run in progress or interrupted), not a bundle")
                else:
                    keep.append(d)
            dirs[:] = keep
            if "manifest.json" in files and r != p:
                below.append(r)
        if not below:
            raise BundleError(f"{p}: no manifest.json here or below (not a bundle)")
        found.extend(sorted(below))
    return found, notes


def find_bundles(paths) -> list:
    return scan(paths)[0]


def verify(paths, *, out=None, err=None, progress: bool | None = None) -> int:
    """Verify bundles; 0 all hold, 1 some differ, 2 some cannot be read. Each bundle gets one line at most."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        bundles, notes = scan(paths)
    except BundleError as e:
        print(f"golden: error: {e}", file=err)
        return 2
    except OSError as e:
        print(f"golden: error: {e.filename or ''}: {e.strerror or e}", file=err)
        return 2
    for n in notes:
        print(f"golden: note: {n}", file=err)
    ok = differ = broken = total = 0
    for b in bundles:
        try:
            r = verify_bundle(b, progress=progress)
        except (BundleError, SpecError) as e:
            print(f"golden: error: {b}: {e}", file=err)
            broken += 1
            continue
        except OSError as e:
            where = Path(e.filename).name if e.filename else "a file"
            print(f"golden: error: {b}: {where}: cannot read ({e.strerror or e})", file=err)
            broken += 1
            continue
        except Exception as e:  # a verdict for every bundle, never a traceback: a bug of golden, named as such
            print(f"golden: error: {b}: internal error while verifying ({type(e).__name__}: {str(e)[:200]}); "
                  f"please report it", file=err)
            broken += 1
            continue
        if r.count:
            differ += 1
            total += r.count
            print(f"FAIL {b}: first difference {r.first.text()}; {r.count} differing", file=out)
        else:
            ok += 1
    print(f"golden vectors verify: {len(bundles)} bundle(s): {ok} ok, {differ} differ ({total} differences), "
          f"{broken} unreadable", file=out)
    return 2 if broken else 1 if differ else 0
