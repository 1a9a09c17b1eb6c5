"""Writing bundles: the manifest, ``generate`` (streamed), ``write_bundle`` (in memory), ``export``.

Every write is built in a marked work directory beside the target and committed by
:func:`atomic.commit`, which enforces the directory rule (see ``atomic.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from .. import __version__
from ..simulate import Runner, initial_v, check_raw
from ..spec import STAGES, Spec, SpecError
from ..stimuli import BLOCK, Stimulus, check_dims, check_seed
from .. import fileio as atomic
from .formats import (
    DEFAULT_FORMATS,
    EXPORTS,
    FIELDS,
    array_meta,
    check_prefix,
    check_width,
    parse_formats,
    safe_text,
)
from .npy import BundleError, NpyWriter, open_nofollow

FORMAT = "golden-vectors"
SCHEMA = 1
LAYOUT = "time-major, neuron-minor: element (t, n) at flat index t*neurons + n"
COMPARED = ("out", "v", "spikes")
MAX_STEPS = MAX_NEURONS = 1 << 40
# Peak memory of a generate block, measured with tracemalloc (N = 16384, T = 1024): 32 B per neuron-step for
# uniform, poisson and edges, 16.3 for ties and 14 for mixed; the ties state adds 64 B per neuron (its potential
# and seven scratch rows) and the raw words it draws at once: at most 4 MiB, 16 B per neuron beyond 2**18 neurons.
BYTES_PER_NEURON_STEP = 64
TIES_BYTES_PER_NEURON = 64 + 16


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open_nofollow(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dump_manifest(m: dict) -> str:
    return json.dumps(m, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def base_manifest(spec: Spec, steps: int, neurons: int, generator: str, seed, overflow: dict,
                  version: str = __version__) -> dict:
    """Everything of a manifest but ``exports`` and ``files``: a function of its arguments alone."""
    toml = spec.to_toml()
    return {
        "format": FORMAT, "schema": SCHEMA, "golden_version": version,
        "spec": {"toml": toml, "sha256": hashlib.sha256(toml.encode()).hexdigest(), "file": "spec.toml"},
        "profile": spec.profile, "kind": spec.kind,
        "stimulus": {"generator": generator, "seed": seed, "block": BLOCK},
        "steps": steps, "neurons": neurons, "layout": LAYOUT, "v0": "spec",
        "arrays": array_meta(spec, steps, neurons),
        "overflow": {k: int(overflow.get(k, 0)) for k in STAGES},
        "exports": {},
    }


class _Progress:
    def __init__(self, total: int, enabled: bool | None, label: str):
        self.total, self.label = total, label
        self.on = sys.stderr.isatty() if enabled is None else enabled
        self.last = -1

    def update(self, done: int) -> None:
        if not self.on:
            return
        pct = 100 * done // max(self.total, 1)
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            sys.stderr.write(f"\r{self.label} [{bar}] {pct:3d}% ({done}/{self.total} steps)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _keep_heap_flat() -> None:
    """Serve every block-sized buffer from mmap, so a long stream's RSS stays flat.

    glibc raises its mmap threshold each time a large buffer is freed, after
    which the per-block arrays come from the heap and fragment it: measured
    here, RSS grew from 200 MB to 477 MB over T = 1e6 (N = 1024) without
    this, and stays at ~180 MB with it. A no-op where there is no glibc.
    """
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD = 128 KiB, fixed
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


# ------------------------------------------------------------ resources
def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def block_memory(neurons: int, generator: str) -> int:
    """Bytes a generate block needs for ``neurons`` (the stimulus and the kernel's per-block arrays)."""
    need = BLOCK * neurons * BYTES_PER_NEURON_STEP
    if generator in ("ties", "mixed"):
        need += TIES_BYTES_PER_NEURON * (neurons if generator == "ties" else -(-neurons // 4))
    return need


def check_memory(neurons: int, generator: str) -> None:
    need, avail = block_memory(neurons, generator), available_memory()
    if avail is not None and need > avail:
        raise BundleError(f"neurons: {neurons} neurons need about {_gib(need)} of memory per {BLOCK}-step block "
                          f"(stimulus {generator}), only {_gib(avail)} available; use fewer neurons")


def bundle_size(m: dict, formats) -> int:
    """An upper bound of the bytes a bundle with manifest ``m`` and these formats takes on disk."""
    n = m["steps"] * m["neurons"]
    size = sum(n * np.dtype(m["arrays"][k]["dtype"]).itemsize + 128 for k in FIELDS) + 65536
    return size + sum(EXPORTS[f].size_bound(m) for f in formats if f in EXPORTS)


def check_disk(where: Path, need: int) -> None:
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if need > free:
        raise BundleError(f"{where}: the bundle needs up to {_gib(need)}, only {_gib(free)} free on that disk; "
                          f"use fewer steps or neurons, or other formats")


# --------------------------------------------------------------- writing
def _check_spec(spec) -> Spec:
    if not isinstance(spec, Spec):
        raise SpecError(f"spec: expected a golden.Spec, got {type(spec).__name__}")
    safe_text("profile", spec.profile)
    return spec


def _parent(out: Path) -> Path:
    """The nearest existing directory above ``out`` (where its disk space is measured; nothing is created yet)."""
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _write_exports(d: Path, m: dict, spec: Spec, names, prefix: str) -> None:
    arrays = {k: np.load(d / m["arrays"][k]["file"], mmap_mode="r") for k in FIELDS}
    for name in names:
        fmt = EXPORTS[name]
        handles = {}
        with contextlib.ExitStack() as stack:
            for fname, chunk in fmt.render(arrays, spec, m, prefix):
                if fname not in handles:
                    handles[fname] = stack.enter_context(open(d / fname, "xb"))
                handles[fname].write(chunk)
        m["exports"][name] = fmt.meta(m, prefix)
    del arrays


def _finish(d: Path, m: dict) -> None:
    """Hash every file into the manifest and write manifest.json."""
    m["files"] = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                  for p in sorted(d.iterdir()) if p.name != "manifest.json"}
    with open(d / "manifest.json", "x") as f:
        f.write(dump_manifest(m))


def _build(out: Path, force: bool, fill) -> Path:
    """Run ``fill(bundle_dir)`` in a fresh work directory, then commit it to ``out``; nothing is left on failure."""
    out = Path(os.path.abspath(out))  # "." and ".." name their real directory
    atomic.check_replaceable(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = atomic.work_dir(out)
    try:
        built = work / "bundle"
        built.mkdir()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(built, 0o777 & ~umask)
        fill(built)
        atomic.commit(built, out, work, force)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def generate(spec, steps: int, neurons: int, seed: int, stimulus: str, out, formats=DEFAULT_FORMATS,
             force: bool = False, *, prefix: str = "golden", progress: bool | None = None) -> Path:
    """Write a bundle: the stimulus, simulated block by block (memory flat in T), then its exports.

    ``spec`` is a :class:`Spec` or a path to a TOML spec. Same arguments, same bytes.
    """
    if not isinstance(spec, Spec):
        spec = Spec.from_toml(Path(spec))
    _check_spec(spec)
    check_dims(steps, neurons)
    if steps > MAX_STEPS or neurons > MAX_NEURONS or steps * neurons > MAX_STEPS:
        raise SpecError(f"steps x neurons: {steps} x {neurons} is beyond what a bundle can hold (2**40 elements)")
    seed = check_seed(seed)
    formats = parse_formats(formats)
    check_prefix(prefix)
    stim = Stimulus(spec, neurons, seed, stimulus)
    out = Path(out)
    m = base_manifest(spec, steps, neurons, stimulus, seed, {})
    check_memory(neurons, stimulus)
    check_disk(_parent(out), bundle_size(m, formats))
    runner = Runner(spec)
    _keep_heap_flat()

    def fill(d: Path) -> None:
        meta = m["arrays"]
        writers = {k: NpyWriter(d / meta[k]["file"], meta[k]["dtype"], (steps, neurons)) for k in FIELDS}
        v = initial_v(spec, None, (neurons,))
        counts = np.zeros(len(STAGES), np.int64)
        bar = _Progress(steps, progress, f"golden vectors {out.name}")
        try:
            for k in range(-(-steps // BLOCK)):
                rows = min(BLOCK, steps - k * BLOCK)
                x = check_raw(stim.block(k, rows), spec.fmt_in, "stimulus")
                o, vt, sp, c = runner.run(x, v, t0=k * BLOCK)
                counts += c
                for name, a in zip(FIELDS, (x, o, vt, sp)):
                    writers[name].write(a)
                bar.update(k * BLOCK + rows)
        finally:
            for w in writers.values():
                w.close()
            bar.close()
        m["overflow"] = dict(zip(STAGES, counts.tolist()))
        _seal(d, spec, m, formats, prefix)

    _build(out, force, fill)
    return out


def _seal(d: Path, spec: Spec, m: dict, formats, prefix: str) -> None:
    with open(d / "spec.toml", "x") as f:
        f.write(spec.to_toml())
    _write_exports(d, m, spec, [f for f in formats if f in EXPORTS], prefix)
    _finish(d, m)


def write_bundle(out, spec: Spec, x, trace, stimulus: str = "custom", seed=None, force: bool = False,
                 formats=DEFAULT_FORMATS, prefix: str = "golden") -> Path:
    """Write a bundle from inputs already simulated (``golden demo --out``): ``x`` (T, *shape), its ``trace``."""
    _check_spec(spec)
    safe_text("stimulus", stimulus)
    if seed is not None:
        seed = check_seed(seed)
    x = check_raw(x, spec.fmt_in, "x")
    if x.ndim < 2:
        raise SpecError(f"x: expected shape (T, *neurons), got rank {x.ndim}")
    steps, neurons = x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64))
    check_dims(steps, neurons)
    arrays = {"x": x, "out": trace.out, "v": trace.v, "spikes": trace.spikes}
    for k in COMPARED:
        if arrays[k].shape != x.shape:
            raise SpecError(f"trace.{k}: shape {arrays[k].shape} does not match x {x.shape}")
    formats = parse_formats(formats)
    check_prefix(prefix)
    out = Path(out)
    m = base_manifest(spec, steps, neurons, stimulus, seed, trace.overflow)
    check_disk(_parent(out), bundle_size(m, formats))

    def fill(d: Path) -> None:
        meta = m["arrays"]
        for k in FIELDS:
            a = np.asarray(arrays[k]).reshape(steps, neurons)
            if k != "spikes":
                check_width(a, meta[k]["format"]["bits"], k)
            w = NpyWriter(d / meta[k]["file"], meta[k]["dtype"], (steps, neurons))
            w.write(a)
            w.close()
        _seal(d, spec, m, formats, prefix)

    _build(out, force, fill)
    return out


def verified(bundle: Path):
    """The verify result of a bundle that ``export`` may read from: refuses a symlink, or a bundle that does not
    verify (single-layer and network bundles alike)."""
    from .verify import verify_bundle  # verify imports this module

    if bundle.is_symlink():
        raise BundleError(f"{bundle}: is a symlink; export the bundle at its real path ({os.path.realpath(bundle)})")
    res = verify_bundle(bundle)
    if res.count:
        raise BundleError(f"{bundle}: does not verify ({res.first_text()}); refusing to export from it")
    return res


def export(bundle, fmt, *, prefix: str | None = None) -> list:
    """Add exports (``hex``, ``h``, ``csv``; a list or comma-separated) to a bundle that verifies.

    The bundle must obey the directory rule (verify checks it): only its listed regular files are
    copied, without following symlinks, into a new bundle that replaces it atomically.
    """
    bundle = Path(bundle)
    names = [f for f in parse_formats(fmt) if f in EXPORTS]
    if not names:
        raise SpecError(f"format: expected some of {', '.join(EXPORTS)}")
    res = verified(bundle)
    m, spec = res.manifest, res.spec
    prefix = check_prefix(prefix or m["exports"].get("h", {}).get("prefix", "golden"))
    replaced = {f for n in names if n in m["exports"] for f in EXPORTS[n].files(m)}
    m = {k: v for k, v in m.items() if k != "files"}
    m["exports"] = {k: v for k, v in m["exports"].items() if k not in names}
    check_disk(bundle.absolute().parent, bundle_size(m, ["npy"] + names))

    def fill(d: Path) -> None:
        for fname in sorted(res.manifest["files"]):
            if fname in replaced:
                continue
            with open_nofollow(bundle / fname) as src, open(d / fname, "xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if sha256_file(d / fname) != res.manifest["files"][fname]["sha256"]:
                raise BundleError(f"{bundle}: {fname} changed during the export; nothing was written")
        _write_exports(d, m, spec, names, prefix)
        _finish(d, m)

    _build(bundle, True, fill)
    return [f for n in names for f in EXPORTS[n].files(m)]
