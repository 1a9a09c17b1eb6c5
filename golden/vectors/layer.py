"""The single-layer bundle kind: one neuron layer (a :class:`Spec`) on T steps x N neurons.

``x.npy``, ``out.npy``, ``v.npy``, ``spikes.npy`` of shape (T, N), time-major, neuron-minor, and
``spec.toml``; writing (``generate``, streamed block by block; ``write_bundle``, in memory),
reading (``load_manifest``, ``read_bundle``) and the content check (``verify``: re-simulate and
compare, then re-render every export). The format is in vectors/README.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..version import __version__
from ..simulate import Runner, SimulationOverflow, check_raw, initial_v
from ..spec import OVERFLOWS, ROUND_MODES, STAGES, QFormat, Spec, SpecError
from ..stimuli import BLOCK, Stimulus, check_dims, check_seed
from . import core
from .core import FORMAT, SCHEMA, BundleError, Result, need
from .formats import (
    CHUNK,
    DEFAULT_FORMATS,
    EXPORTS,
    SPIKE_FMT,
    Named,
    Table,
    View,
    check_prefix,
    check_width,
    differing_files,
    hex_digits,
    parse_formats,
    safe_text,
    write_exports,
)
from .npy import MAX_ELEMENTS, NpyWriter, open_nofollow, open_npy

KIND = "layer"  # manifests of this kind carry the spec's kind ("IF", "LIF", ...) in "kind": see is_layer
FIELDS = ("x", "out", "v", "spikes")
LAYOUT = "time-major, neuron-minor: element (t, n) at flat index t*neurons + n"
COMPARED = ("out", "v", "spikes")
CSV_FILE = "vectors.csv"
MAX_STEPS = MAX_NEURONS = 1 << 40
# Peak memory of a generate block, measured with tracemalloc (N = 16384, T = 1024): 32 B per neuron-step for
# uniform, poisson and edges, 16.3 for ties and 14 for mixed; the ties state adds 64 B per neuron (its potential
# and seven scratch rows) and the raw words it draws at once: at most 4 MiB, 16 B per neuron beyond 2**18 neurons.
BYTES_PER_NEURON_STEP = 64
TIES_BYTES_PER_NEURON = 64 + 16


def is_layer(m: dict) -> bool:
    """A single-layer manifest names its neuron kind where a network manifest says "network"."""
    return m.get("kind") != "network"


# ------------------------------------------------------------------ manifest
def array_meta(spec: Spec, steps: int, neurons: int) -> dict:
    """The manifest's ``arrays`` entry: the npy files, their dtypes, shapes and Q formats."""
    fmts = {"x": spec.fmt_in, "out": spec.fmt_out, "v": spec.fmt_v}
    meta = {}
    for name in FIELDS:
        if name == "spikes":
            meta[name] = {"file": "spikes.npy", "dtype": "bool", "shape": [steps, neurons], "format": dict(SPIKE_FMT),
                          "q": "Q1.0"}
        else:
            f: QFormat = fmts[name]
            meta[name] = {"file": f"{name}.npy", "dtype": str(f.dtype), "shape": [steps, neurons],
                          "format": {"bits": f.bits, "frac": f.frac}, "q": str(f)}
    return meta


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


# ---------------------------------------------------------------------- view
def view(m: dict, spec: Spec, arrays: dict | None = None) -> View:
    """What the exports render: the four (T, N) arrays, the spec's parameters, one CSV table."""
    named = {k: Named(k, None if arrays is None else arrays[k], a["format"]["bits"], a["format"]["frac"],
                      a["dtype"], tuple(a["shape"])) for k, a in ((k, m["arrays"][k]) for k in FIELDS)}
    T, N = m["steps"], m["neurons"]
    table = Table(CSV_FILE, ("t", "neuron"), (T, N), (("x", "x"), ("out", "out"), ("v", "v"), ("spike", "spikes")))
    return View(KIND, named, vh=lambda: vh_params(spec, m), h=lambda prefix: h_parts(spec, m, prefix),
                tables=(table,), extra={"manifest": m, "spec": spec})


def vh_params(spec: Spec, m: dict) -> tuple:
    """(comment lines, [(localparam, value)]) of ``bundle.vh``."""
    s = spec
    p = {
        "GV_STEPS": m["steps"], "GV_NEURONS": m["neurons"],
        "GV_IN_BITS": s.fmt_in.bits, "GV_IN_FRAC": s.fmt_in.frac, "GV_V_BITS": s.fmt_v.bits,
        "GV_V_FRAC": s.fmt_v.frac, "GV_OUT_BITS": s.fmt_out.bits, "GV_OUT_FRAC": s.fmt_out.frac,
        "GV_IN_DIGITS": hex_digits(s.fmt_in.bits), "GV_V_DIGITS": hex_digits(s.fmt_v.bits),
        "GV_OUT_DIGITS": hex_digits(s.fmt_out.bits), "GV_SPIKES_DIGITS": 1,
        "GV_KIND": ("IF", "LIF", "ATIF").index(s.kind), "GV_SOFT_RESET": int(s.reset == "soft"),
        "GV_DECAY_INPUT": int(s.decay_input), "GV_V_THRESHOLD": s.v_threshold, "GV_V_RESET": s.v_reset,
        "GV_RECIPROCAL_TAU": s.reciprocal_tau, "GV_SPIKE_OUT": s.spike_out, "GV_V_INIT": s.v_start,
        "GV_ROUND": ROUND_MODES.index(s.round), "GV_V_OVERFLOW": OVERFLOWS.index(s.v_overflow),
        "GV_ACC_OVERFLOW": OVERFLOWS.index(s.acc_overflow), "GV_ACC_BITS": s.acc_bits,
        "GV_ORDER": int(s.order == "round_then_fire"), "GV_ARITH_INT": int(s.arith == "int"),
        "GV_WORK_FRAC": s.work_frac, "GV_SHIFT_IN": s.shift_in, "GV_SHIFT_V": s.shift_v, "GV_LEAK_SHIFT": s.leak_s,
    }
    st = m["stimulus"]
    version = safe_text("golden_version", m["golden_version"])
    head = [f"// Generated by golden {version} (golden vectors); do not edit.",
            f"// {_describe(s)}",
            (f"// spec sha256 {m['spec']['sha256']}; stimulus {safe_text('stimulus.generator', st['generator'])} "
             f"seed {_int_or_none(st['seed'])}; round {s.round}"),
            "// `include inside a module. Layout: word t*GV_NEURONS + n of each .hex file is step t, neuron n."]
    return head, list(p.items())


def h_parts(spec: Spec, m: dict, prefix: str) -> tuple:
    """(comment lines, [(macro, value)], [(C array, key)]) of ``vectors.h``."""
    P = prefix.upper()
    s, T, N = spec, m["steps"], m["neurons"]
    version = safe_text("golden_version", m["golden_version"])
    sha = m["spec"]["sha256"]
    if not core.is_sha256(sha):
        raise BundleError("manifest.json: spec.sha256 is not 64 lowercase hex digits")
    defs = [("STEPS", T), ("NEURONS", N), ("SIZE", T * N),
            ("IN_BITS", s.fmt_in.bits), ("IN_FRAC", s.fmt_in.frac), ("V_BITS", s.fmt_v.bits),
            ("V_FRAC", s.fmt_v.frac), ("OUT_BITS", s.fmt_out.bits), ("OUT_FRAC", s.fmt_out.frac),
            ("V_THRESHOLD", s.v_threshold), ("V_RESET", s.v_reset), ("RECIPROCAL_TAU", s.reciprocal_tau),
            ("SPIKE_OUT", s.spike_out), ("V_INIT", s.v_start),
            ("VERSION", f'"{version}"'), ("SPEC_SHA256", f'"{sha}"')]
    st = m["stimulus"]
    comments = [f"// Generated by golden {version} (golden vectors); do not edit.",
                f"// {_describe(s)}",
                (f"// profile {s.profile}, spec sha256 {sha}, "
                 f"stimulus {safe_text('stimulus.generator', st['generator'])} seed {_int_or_none(st['seed'])}"),
                f"// Layout: time-major, neuron-minor; element (t, n) at index t * {P}_NEURONS + n.",
                "// The arrays are static const: include this header from any number of translation units."]
    return comments, defs, [(k, k) for k in FIELDS]


def _int_or_none(v) -> str:
    return "None" if v is None else str(int(v))


def _describe(spec: Spec) -> str:
    safe_text("profile", spec.profile)
    return spec.describe()


# --------------------------------------------------------------- resources
def block_memory(neurons: int, generator: str) -> int:
    """Bytes a generate block needs for ``neurons`` (the stimulus and the kernel's per-block arrays)."""
    need_bytes = BLOCK * neurons * BYTES_PER_NEURON_STEP
    if generator in ("ties", "mixed"):
        need_bytes += TIES_BYTES_PER_NEURON * (neurons if generator == "ties" else -(-neurons // 4))
    return need_bytes


def check_memory(neurons: int, generator: str) -> None:
    need_bytes, avail = block_memory(neurons, generator), core.available_memory()
    if avail is not None and need_bytes > avail:
        raise BundleError(f"neurons: {neurons} neurons need about {core.gib(need_bytes)} of memory per {BLOCK}-step "
                          f"block (stimulus {generator}), only {core.gib(avail)} available; use fewer neurons")


def bundle_size(m: dict, spec: Spec, formats) -> int:
    """An upper bound of the bytes a bundle with manifest ``m`` and these formats takes on disk."""
    n = m["steps"] * m["neurons"]
    size = sum(n * np.dtype(m["arrays"][k]["dtype"]).itemsize + 128 for k in FIELDS) + 65536
    v = view(m, spec)
    return size + sum(EXPORTS[f].size_bound(v) for f in formats if f in EXPORTS)


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


# ------------------------------------------------------------------- writing
def _check_spec(spec) -> Spec:
    if not isinstance(spec, Spec):
        raise SpecError(f"spec: expected a golden.Spec, got {type(spec).__name__}")
    safe_text("profile", spec.profile)
    return spec


def _seal(d: Path, spec: Spec, m: dict, formats, prefix: str) -> None:
    with open(d / "spec.toml", "x") as f:
        f.write(spec.to_toml())
    arrays = {k: np.load(d / m["arrays"][k]["file"], mmap_mode="r") for k in FIELDS}
    m["exports"].update(write_exports(d, view(m, spec, arrays), [f for f in formats if f in EXPORTS], prefix))
    del arrays
    core.finish(d, m)


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
    core.check_disk(core.existing_parent(out), bundle_size(m, spec, formats))
    runner = Runner(spec)
    _keep_heap_flat()

    def fill(d: Path) -> None:
        meta = m["arrays"]
        writers = {k: NpyWriter(d / meta[k]["file"], meta[k]["dtype"], (steps, neurons)) for k in FIELDS}
        v = initial_v(spec, None, (neurons,))
        counts = np.zeros(len(STAGES), np.int64)
        bar = core.Progress(steps, progress, f"golden vectors {out.name}")
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

    core.build(out, force, fill)
    return out


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
    core.check_disk(core.existing_parent(out), bundle_size(m, spec, formats))

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

    core.build(out, force, fill)
    return out


# ------------------------------------------------------------------- reading
def load_manifest(bundle: Path, m: dict | None = None):
    """(manifest, spec) after checking every manifest field against what golden writes (BundleError otherwise)."""
    m = core.read_manifest(bundle) if m is None else m
    if not is_layer(m):
        raise BundleError("manifest.json: a network bundle (golden.vectors.read_network_bundle reads it)")
    sp = need(m, "spec", dict)
    toml = need(sp, "toml", str, "spec.")
    spec_sha = need(sp, "sha256", str, "spec.")
    if hashlib.sha256(toml.encode()).hexdigest() != spec_sha:
        raise BundleError("manifest.json: spec.sha256 does not match the spec text (manifest edited or corrupt)")
    try:
        spec = Spec.from_toml(toml)
        safe_text("profile", spec.profile)
    except (SpecError, ValueError, TypeError) as e:
        raise BundleError(f"manifest.json: invalid spec: {e}") from None
    T = core.count(m, "steps", 1, MAX_STEPS)
    N = core.count(m, "neurons", 1, MAX_STEPS)
    if T * N > MAX_ELEMENTS:
        raise BundleError(f"manifest.json: steps x neurons = {T} x {N} is beyond any bundle golden writes")
    st = need(m, "stimulus", dict)
    gen = need(st, "generator", str, "stimulus.")
    if "seed" not in st:
        raise BundleError("manifest.json: missing stimulus.seed")
    seed = st["seed"]
    if seed is not None and (type(seed) is not int or seed < 0):
        raise BundleError("manifest.json: stimulus.seed: expected a non-negative integer or null")
    version = need(m, "golden_version", str)
    try:
        safe_text("stimulus.generator", gen)
        safe_text("golden_version", version)
    except SpecError as e:
        raise BundleError(f"manifest.json: {e}") from None
    ovf = need(m, "overflow", dict)
    if set(ovf) != set(STAGES) or not all(type(v) is int and v >= 0 for v in ovf.values()):
        raise BundleError("manifest.json: overflow must count every stage (non-negative integers): "
                          + ", ".join(STAGES))
    expected = base_manifest(spec, T, N, gen, seed, ovf, version)
    exports = need(m, "exports", dict)
    v = view(expected, spec)
    for name in exports:
        if name not in EXPORTS:
            raise BundleError(f"manifest.json: exports: unknown format {str(name)[:20]!r}")
        prefix = "golden"
        if EXPORTS[name].prefixed:
            try:
                prefix = check_prefix(need(exports[name], "prefix", str, f"exports.{name}."))
            except SpecError as e:
                raise BundleError(f"manifest.json: exports.{name}.{e}") from None
        expected["exports"][name] = EXPORTS[name].meta(v, prefix)
    files = need(m, "files", dict)
    expected["files"] = files
    core.same_as_written(m, expected, "this spec and these dimensions")
    core.check_listed(files, {"spec.toml"} | {a["file"] for a in m["arrays"].values()}
                      | {f for name in exports for f in EXPORTS[name].files(v)})
    core.check_files_entries(files, lambda f: True)
    return m, spec


def load_arrays(bundle: Path, m: dict) -> dict:
    arrays = {}
    for name in FIELDS:
        a = m["arrays"][name]
        arrays[name] = open_npy(bundle / a["file"], a["dtype"], a["shape"])
    # the values must be inside the declared formats (a stored wider value is a format mismatch, not a pass)
    for name in FIELDS:
        bits = m["arrays"][name]["format"]["bits"]
        arr = arrays[name].reshape(-1)
        for i in range(0, arr.size, CHUNK * 16):
            c = np.asarray(arr[i:i + CHUNK * 16])
            if name == "spikes":
                if c.view(np.uint8).max(initial=0) > 1:
                    raise BundleError(f"{name}.npy: holds a bool byte other than 0/1 (corrupt)")
                continue
            try:
                check_width(c, bits, f"{name}.npy")
            except SpecError as e:
                what = "stimulus outside the input format" if name == "x" else "format mismatch"
                raise BundleError(f"{e} ({what} {m['arrays'][name]['q']})") from None
    return arrays


def read_bundle(bundle) -> tuple:
    """(spec, {name: (T, N) array}, manifest) of a bundle, after the structural checks (not the re-simulation)."""
    bundle = Path(bundle)
    m, spec = load_manifest(bundle)
    core.check_listing(bundle, m["files"])
    arrays = load_arrays(bundle, m)
    return spec, {k: np.array(a) for k, a in arrays.items()}, m


# ------------------------------------------------------------------- verify
@dataclass
class Diff:
    bundle: str
    t: int | None
    neuron: int | None
    field: str
    expected: object
    got: object

    def text(self) -> str:
        return (f"(bundle={self.bundle}, t={self.t}, neuron={self.neuron}, field={self.field}, "
                f"expected={self.expected}, got={self.got})")


def _first_mismatch(fields: dict, t0: int, N: int):
    """Earliest (t, n, field, expected, got) among {field: (expected, got)} (T, N) blocks, and the mismatch count."""
    best, n_bad = None, 0
    for name, (exp, got) in fields.items():
        bad = exp != got
        c = int(np.count_nonzero(bad))
        if not c:
            continue
        n_bad += c
        i = int(np.argmax(bad.reshape(-1)))
        t, n = divmod(i, N)
        cand = (t, n, COMPARED.index(name) if name in COMPARED else 9)
        if best is None or cand < best[0]:
            e, g = exp.reshape(-1)[i], got.reshape(-1)[i]
            best = (cand, (t0 + t, n, name, _py(e), _py(g)))
    return (best[1] if best else None), n_bad


def _py(v):
    return bool(v) if isinstance(v, (bool, np.bool_)) else int(v)


def verify(bundle: Path, m0: dict, progress: bool | None = None) -> Result:
    """Check one single-layer bundle (see README); BundleError when it cannot be read, else a Result."""
    res = Result(bundle)
    name = str(bundle)
    m, spec = load_manifest(bundle, m0)
    res.manifest, res.spec = m, spec
    core.check_listing(bundle, m["files"])
    arrays = load_arrays(bundle, m)
    T, N = m["steps"], m["neurons"]
    with open_nofollow(bundle / "spec.toml") as f:
        if f.read() != m["spec"]["toml"].encode():
            res.add(Diff(name, None, None, "spec.toml", "the manifest's spec.toml", "different text"))
    runner = Runner(spec)
    v = initial_v(spec, None, (N,))
    counts = np.zeros(len(STAGES), np.int64)
    bar = core.Progress(T, progress, f"golden vectors verify {bundle.name}")
    try:
        for t0 in range(0, T, 1024):
            x = np.asarray(arrays["x"][t0:t0 + 1024])
            try:
                o, vt, sp, c = runner.run(x, v, t0=t0)
            except SimulationOverflow as e:
                res.add(Diff(name, e.t, e.neuron, "overflow", "no strict overflow", str(e)))
                return res
            counts += c
            got = {k: np.asarray(arrays[k][t0:t0 + 1024]) for k in COMPARED}
            first, n = _first_mismatch({"out": (o, got["out"]), "v": (vt, got["v"]), "spikes": (sp, got["spikes"])},
                                       t0, N)
            if n:
                res.add(Diff(name, *first), n)
            bar.update(min(t0 + 1024, T))
    finally:
        bar.close()
    for k, c in zip(STAGES, counts.tolist()):
        if m["overflow"][k] != c:
            res.add(Diff(name, None, None, f"overflow.{k}", c, m["overflow"][k]))
    vw = view(m, spec, arrays)
    content_checked = {"spec.toml"} | {f"{k}.npy" for k in FIELDS}
    for fmt_name in sorted(m["exports"]):
        fmt = EXPORTS[fmt_name]
        prefix = m["exports"][fmt_name].get("prefix", "golden")
        content_checked |= set(fmt.files(vw))
        for fname in differing_files(bundle, fmt.render(vw, prefix), open_nofollow):
            _locate(res, name, bundle / fname, fmt, vw, prefix)
    for fname in sorted(m["files"]):
        got = core.sha256_file(bundle / fname)
        if got != m["files"][fname]["sha256"] and (res.count == 0 or fname not in content_checked):
            res.add(Diff(name, None, None, f"{fname} sha256", m["files"][fname]["sha256"], got))
    res.view = vw
    return res


def _locate(res: Result, name: str, path: Path, fmt, vw: View, prefix: str) -> None:
    """An export's bytes differ from its arrays: find the first differing element (malformed text is exit 2)."""
    m = vw.extra["manifest"]
    T, N = m["steps"], m["neurons"]
    parsed = fmt.parse(path, vw, prefix)
    pairs = {f"{path.name}:{k}": (np.asarray(vw.arrays[k].data).reshape(T, N).astype(np.int64),
                                  a.astype(np.int64).reshape(T, N))
             for k, a in parsed.items()}
    first, n = _first_mismatch(pairs, 0, N)
    if n:
        res.add(Diff(name, *first), n)
    else:  # same values, different text (spacing, the preamble, bundle.vh, the CSV's t/neuron columns, ...)
        res.add(Diff(name, None, None, path.name, "golden's rendering", "different text"))


# ------------------------------------------------------------------- export
def export_plan(res: Result, names, prefix: str | None) -> tuple:
    """(prefix, manifest without files and the replaced exports, the new exports, size bound) for ``export``."""
    m, spec = res.manifest, res.spec
    for f in names:
        if f not in EXPORTS:
            raise SpecError(f"format: expected some of {', '.join(EXPORTS)}")
    prefix = check_prefix(prefix or m["exports"].get("h", {}).get("prefix", "golden"))
    m = {k: v for k, v in m.items() if k != "files"}
    m["exports"] = {k: v for k, v in m["exports"].items() if k not in names}
    return prefix, m, bundle_size(m, spec, names)


def export_view(d: Path, res: Result, m: dict) -> View:
    """The view of the copied bundle in ``d`` (arrays read back from the copy)."""
    return view(m, res.spec, {k: np.load(d / m["arrays"][k]["file"], mmap_mode="r") for k in FIELDS})
