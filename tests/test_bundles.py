"""Bundles you can trust (issue #10): no data loss, nothing read outside a bundle, every edit caught.

One test (or table) per numbered item of the issue; each failed on the code before the fix.
"""

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import golden
from golden import cli, fileio, vectors
from golden.vectors import BundleError

from bundle_edits import edit_manifest, rehash
from proofs import missing_gcc, requires


def vcli(argv) -> int:
    """``golden vectors ...`` as the command runs it (one-line errors, exit 2)."""
    return cli.main(["vectors", *argv])

ROOT = Path(__file__).resolve().parent.parent
ALL = ("npy", "hex", "h", "csv")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def gen(out, spec=None, steps=6, neurons=5, seed=7, stimulus="mixed", formats=ALL, **kw):
    spec = spec or golden.codegen("LIF", q_in=8)
    return vectors.generate(spec, steps, neurons, seed, stimulus, out, formats, progress=False, **kw)


def verify(*dirs):
    """(exit code, stdout, stderr) of verify, in process."""
    out, err = io.StringIO(), io.StringIO()
    rc = vectors.verify(list(map(str, dirs)), out=out, err=err, progress=False)
    return rc, out.getvalue(), err.getvalue()


def no_traceback(text):
    assert "Traceback" not in text and "internal error" not in text, text


def spec_file(tmp_path, spec=None):
    p = tmp_path / "s.toml"
    p.write_text((spec or golden.codegen("LIF")).to_toml())
    return p


def leftovers(d):
    return sorted(p.name for p in Path(d).iterdir() if p.name.startswith("."))


def bundle_module():
    return vectors.layer


@pytest.fixture
def bundle(tmp_path):
    return gen(tmp_path / "b")


# ============================================================ data loss (1-3)
def test_1_directory_created_during_generate_is_never_replaced(tmp_path, monkeypatch):
    out = tmp_path / "race"
    mod = bundle_module()

    class Intruder(mod.Runner):
        def run(self, *a, **k):
            if not out.exists():
                out.mkdir()
                (out / "thesis.tex").write_text("years of work")
            return super().run(*a, **k)

    monkeypatch.setattr(mod, "Runner", Intruder)
    with pytest.raises(BundleError, match="appeared while golden was writing"):
        gen(out, stimulus="uniform")
    assert (out / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert leftovers(tmp_path) == []


def test_1_two_concurrent_generates_exactly_one_wins(tmp_path):
    s = spec_file(tmp_path)
    out = tmp_path / "race"
    args = [sys.executable, "-m", "golden", "vectors", "generate", "--spec", str(s), "--steps", "3000",
            "--neurons", "256", "--seed", "1", "--stimulus", "uniform", "--formats", "npy,hex", "--out", str(out)]
    procs = [subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    res = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in res) == [0, 2], res
    err = next(e for rc, e in res if rc == 2)
    assert err.startswith("golden: error:") and len(err.strip().splitlines()) == 1 and str(out) in err
    assert verify(out)[0] == 0
    assert leftovers(tmp_path) == []


def test_2_force_refuses_a_directory_with_a_foreign_manifest(tmp_path, capsys):
    web = tmp_path / "web"
    (web / "src").mkdir(parents=True)
    (web / "manifest.json").write_text('{"name":"pwa"}')
    (web / "src" / "app.js").write_text("code")
    rc = vcli(["generate", "--spec", str(spec_file(tmp_path)), "--steps", "4", "--neurons", "3", "--seed",
                      "0", "--stimulus", "uniform", "--out", str(web), "--force"])
    err = capsys.readouterr().err
    assert rc == 2 and "not golden's to replace" in err and len(err.strip().splitlines()) == 1
    assert (web / "src" / "app.js").read_text() == "code" and (web / "manifest.json").read_text() == '{"name":"pwa"}'
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("intruder", ["tb.v", "NOTES.md", "sub/"])
def test_2_force_refuses_a_bundle_holding_user_files(tmp_path, capsys, intruder):
    b = gen(tmp_path / "b")
    if intruder.endswith("/"):
        (b / intruder).mkdir()
    else:
        (b / intruder).write_text("mine")
    rc = vcli(["generate", "--spec", str(spec_file(tmp_path)), "--steps", "4", "--neurons", "3", "--seed",
                      "0", "--stimulus", "uniform", "--out", str(b), "--force"])
    err = capsys.readouterr().err
    assert rc == 2 and intruder.rstrip("/") in err
    assert (b / intruder).exists()
    assert json.loads((b / "manifest.json").read_text())["steps"] == 6  # the old bundle, untouched


def test_2_demo_force_refuses_a_foreign_directory(tmp_path, capsys):
    web = tmp_path / "web"
    (web / "src").mkdir(parents=True)
    (web / "manifest.json").write_text('{"name":"pwa"}')
    (web / "src" / "app.js").write_text("code")
    assert cli.main(["demo", "--out", str(web), "--force", "--steps", "5", "--neurons", "4"]) == 2
    assert (web / "src" / "app.js").read_text() == "code"
    assert "not golden's to replace" in capsys.readouterr().err


def test_2_force_replaces_a_clean_golden_bundle(tmp_path):
    b = gen(tmp_path / "b")
    assert gen(b, steps=9, force=True) == b
    assert json.loads((b / "manifest.json").read_text())["steps"] == 9 and verify(b)[0] == 0
    assert leftovers(tmp_path) == []


def test_3_export_refuses_subdirectory_symlink_and_fifo(tmp_path, capsys):
    b = gen(tmp_path / "b", formats=("npy",))
    outside = tmp_path / "passwd"
    outside.write_text("root:x:0:0\n")
    (b / "sub").mkdir()
    (b / "sub" / "keep").write_text("k")
    (b / "link").symlink_to(outside)
    os.mkfifo(b / "fifo")
    before = sorted(p.name for p in b.iterdir())
    rc = vcli(["export", str(b), "--format", "csv"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("golden: error:") and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in b.iterdir()) == before
    assert (b / "link").is_symlink() and (b / "sub" / "keep").read_text() == "k"
    assert "passwd" not in json.dumps(json.loads((b / "manifest.json").read_text()))
    assert leftovers(tmp_path) == []


def test_3_export_through_a_symlinked_bundle_path_keeps_the_symlink(tmp_path, capsys):
    b = gen(tmp_path / "b", formats=("npy",))
    link = tmp_path / "link"
    link.symlink_to(b)
    assert vcli(["export", str(link), "--format", "csv"]) == 2
    assert link.is_symlink() and "symlink" in capsys.readouterr().err
    assert vcli(["export", str(b), "--format", "csv"]) == 0  # at its real path it works
    assert (b / "vectors.csv").is_file() and link.is_symlink() and verify(link)[0] == 0


# =========================================================== integrity (4-9)
def test_4_a_symlinked_file_fails_even_to_identical_bytes(bundle, tmp_path):
    copy = tmp_path / "x.hex.copy"
    shutil.copy(bundle / "x.hex", copy)
    (bundle / "x.hex").unlink()
    (bundle / "x.hex").symlink_to(copy)
    rc, _, err = verify(bundle)
    assert rc == 2 and "x.hex: is a symlink" in err


def test_4_a_manifest_entry_reaching_outside_fails(bundle, tmp_path):
    (tmp_path / "outside.txt").write_text("secret")

    def edit(m):
        m["files"]["../outside.txt"] = {"sha256": vectors.sha256_file(tmp_path / "outside.txt"), "bytes": 6}
    edit_manifest(bundle, edit)
    rc, _, err = verify(bundle)
    assert rc == 2 and "outside.txt" in err


def test_5_edited_spec_toml_with_updated_hash_fails(bundle):
    p = bundle / "spec.toml"
    p.write_text(p.read_text().replace('kind = "LIF"', 'kind = "IF"'))
    rehash(bundle, "spec.toml")
    rc, out, _ = verify(bundle)
    assert rc == 1 and "field=spec.toml" in out


def test_5_unlisted_spec_toml_fails(bundle):
    edit_manifest(bundle, lambda m: m["files"].pop("spec.toml"))
    rc, _, err = verify(bundle)
    assert rc == 2 and "spec.toml" in err


@pytest.mark.parametrize("path, value", [
    ("kind", "IF"), ("profile", "hardware"), ("v0", "zero"), ("spec.file", "other.toml"),
    ("stimulus.block", 1023), ("arrays.x.q", "Q8.7"), ("arrays.spikes.q", "Q2.0"), ("layout", "neuron-major"),
    ("stimulus.generator", "uniform"), ("stimulus.seed", 8), ("golden_version", "9.9.9"),
    ("exports.h.prefix", "other"), ("exports.hex.x.digits", 3), ("extra", 1), ("arrays.x.extra", 1),
])
def test_6_every_manifest_field_is_checked(bundle, path, value):
    def edit(m):
        *head, last = path.split(".")
        d = m
        for k in head:
            d = d[k]
        d[last] = value
    edit_manifest(bundle, edit)
    rc, out, err = verify(bundle)
    assert rc in (1, 2) and (rc == 1 or str(bundle) in err), (rc, err)
    assert ("FAIL" in out) == (rc == 1)
    no_traceback(err)


def test_7_unlisted_files_fail(bundle):
    (bundle / "notes.txt").write_text("hi")
    rc, _, err = verify(bundle)
    assert rc == 2 and "notes.txt: not listed" in err


def test_8_bundles_under_hidden_directories_are_checked(tmp_path):
    good = gen(tmp_path / "root" / "good")
    hidden = gen(tmp_path / "root" / ".hidden" / "b")
    (hidden / "v.npy").write_bytes(b"junk")
    rc, out, err = verify(tmp_path / "root")
    assert rc == 2 and ".hidden" in err and "2 bundle(s): 1 ok" in out
    assert good.exists()


@pytest.mark.parametrize("schema", [1.0, True, "1", None])
def test_9_schema_must_be_the_integer_1(bundle, schema):
    edit_manifest(bundle, lambda m: m.update(schema=schema))
    rc, _, err = verify(bundle)
    assert rc == 2 and "schema" in err


# ============================================================ injection (10)
INJECTED = ['x\n#include "/etc/passwd"\n', 'co"de', "a b", "x*/ y", "", "é"]


@pytest.mark.parametrize("profile", INJECTED)
def test_10_free_text_is_refused_on_the_way_in(tmp_path, capsys, profile):
    spec = golden.codegen("LIF").replace(profile=profile)
    with pytest.raises(golden.SpecError, match="profile"):
        gen(tmp_path / "b", spec)
    with pytest.raises(golden.SpecError, match="profile"):
        vectors.write_bundle(tmp_path / "c", spec, np.zeros((2, 2), np.int8), golden.simulate(spec, np.zeros((2, 2),
                                                                                                             np.int8)))
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("field", ["golden_version", "stimulus.generator"])
def test_10_injected_manifest_text_fails_verify(bundle, field):
    def edit(m):
        if field == "golden_version":
            m["golden_version"] = '0.1"\n#include "/etc/passwd'
        else:
            m["stimulus"]["generator"] = 'ties\n#include "/etc/passwd"'
    edit_manifest(bundle, edit)
    rc, _, err = verify(bundle)
    assert rc == 2 and field in err


@requires(missing_gcc())
def test_10_generated_headers_compile_and_hold_only_golden_lines(tmp_path):
    import re
    b = gen(tmp_path / "b", golden.codegen("LIF").replace(profile="my-profile_1.0+x"), stimulus="ties")
    text = (b / "vectors.h").read_text()
    allowed = re.compile(r"(//[ -~]*|#pragma once|#include <stdint\.h>|#(ifndef|define|if|else|endif)\b[ -~]*|"
                         r"static const int(8|16|32)_t golden_\w+\[\d+\] GOLDEN_UNUSED = \{|"
                         r"    (-?\d+, )*-?\d+,|\};|)")
    assert all(allowed.fullmatch(line) for line in text.splitlines())
    assert [ln for ln in text.splitlines() if ln.startswith("#include")] == ["#include <stdint.h>"]
    vh = (b / "bundle.vh").read_text().splitlines()
    assert all(ln.startswith("//") or re.fullmatch(r"localparam integer GV_\w+ = -?\d+;", ln) for ln in vh)
    c = tmp_path / "t.c"
    c.write_text(f'#include "{b / "vectors.h"}"\nint main(void) {{ return golden_x[0] * 0; }}\n')
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_path / "t"), str(c)], check=True)


# ==================================================== crashes -> verdicts (11-13)
def test_11_any_change_to_bundle_vh_is_a_difference(bundle):
    p = bundle / "bundle.vh"
    p.write_text(p.read_text().replace("GV_STEPS = 6", "GV_STEPS = 7"))
    rehash(bundle, "bundle.vh")
    rc, out, err = verify(bundle)
    assert rc == 1 and "field=bundle.vh" in out
    no_traceback(err)


@pytest.mark.parametrize("offset", [8, 9, 10, 11, 20, 40, 60])
def test_11_npy_header_flips_are_corruption(bundle, offset):
    p = bundle / "out.npy"
    b = bytearray(p.read_bytes())
    b[offset] ^= 0xFF
    p.write_bytes(bytes(b))
    rc, _, err = verify(bundle)
    assert rc == 2 and "out.npy" in err
    no_traceback(err)


MALFORMED = {
    "no stimulus": lambda m: m.pop("stimulus"),
    "no golden_version": lambda m: m.pop("golden_version"),
    "no seed": lambda m: m["stimulus"].pop("seed"),
    "stimulus list": lambda m: m.update(stimulus=[]),
    "exports.h list": lambda m: m["exports"].update(h=[]),
    "bits float": lambda m: m["arrays"]["x"]["format"].update(bits=8.0),
    "shape 2**62": lambda m: (m.update(steps=2 ** 62, neurons=4),
                              [a.update(shape=[2 ** 62, 4]) for a in m["arrays"].values()]),
    "shape 10**30": lambda m: (m.update(steps=10 ** 30, neurons=16),
                               [a.update(shape=[10 ** 30, 16]) for a in m["arrays"].values()]),
    "files list": lambda m: m.update(files=[]),
    "files entry": lambda m: m["files"].update({"x.npy": {"sha256": 1, "bytes": "2"}}),
    "overflow float": lambda m: m["overflow"].update(v=0.0),
    "spec list": lambda m: m.update(spec=[]),
    "exports unknown": lambda m: m["exports"].update(xml={}),
    "arrays missing": lambda m: m["arrays"].pop("v"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_12_malformed_manifests_are_one_line_verdicts(tmp_path, case):
    bad, good = gen(tmp_path / "a"), gen(tmp_path / "z")
    edit_manifest(bad, MALFORMED[case])
    rc, out, err = verify(tmp_path)
    assert rc == 2 and "2 bundle(s): 1 ok" in out, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"golden: error: {bad}: manifest.json")
    no_traceback(err)
    assert good.exists()


def test_12_deeply_nested_json(tmp_path):
    bad, _ = gen(tmp_path / "a"), gen(tmp_path / "z")
    (bad / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    rc, out, err = verify(tmp_path)
    assert rc == 2 and "1 ok" in out and f"{bad}: manifest.json" in err
    no_traceback(err)


def test_13_an_unreadable_file_names_bundle_and_file_and_the_rest_is_checked(tmp_path, monkeypatch):
    bad, good = gen(tmp_path / "a"), gen(tmp_path / "z")
    real_open = os.open

    def deny(path, *a, **k):
        if str(path) == str(bad / "v.npy"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)
    monkeypatch.setattr(os, "open", deny)
    rc, out, err = verify(tmp_path)
    assert rc == 2 and "2 bundle(s): 1 ok" in out
    assert err.count("\n") == 1 and str(bad) in err and "v.npy" in err and "Permission denied" in err
    assert good.exists()


# ====================================================== resource limits (14-16)
def test_14_too_many_neurons_are_refused_up_front_naming_the_memory(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(vectors.core, "available_memory", lambda: 8 << 30)
    rc = vcli(["generate", "--spec", str(spec_file(tmp_path)), "--steps", "10", "--neurons", "10000000",
                      "--seed", "0", "--stimulus", "uniform", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and "GiB" in err and "8.0 GiB available" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists() and leftovers(tmp_path) == []


def test_14_block_memory_grows_with_neurons():
    assert vectors.layer.block_memory(10_000_000, "uniform") > 70 << 30
    assert vectors.layer.block_memory(1024, "uniform") < 100 << 20


def test_15_a_bundle_larger_than_the_free_disk_is_refused_naming_both(tmp_path, capsys, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=50 << 20))
    rc = vcli(["generate", "--spec", str(spec_file(tmp_path)), "--steps", "1000000", "--neurons", "64",
                      "--seed", "0", "--stimulus", "uniform", "--out", str(tmp_path / "new" / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and "needs up to" in err and "50.0 MiB free" in err
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_15_steps_beyond_any_disk(tmp_path, capsys):
    rc = vcli(["generate", "--spec", str(spec_file(tmp_path)), "--steps", str(10 ** 12), "--neurons", "1",
                      "--seed", "0", "--stimulus", "uniform", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and ("free on that disk" in err or "beyond" in err)
    assert not (tmp_path / "b").exists()


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_16_stale_work_directories_of_dead_runs_are_removed(tmp_path, capsys):
    stale = tmp_path / ".b.golden-123-abc.tmp"
    (stale / "bundle").mkdir(parents=True)
    (stale / "bundle" / "x.npy").write_bytes(b"\0" * 1000)
    import socket
    (stale / "golden-owner.json").write_text(json.dumps({"tool": "golden", "pid": _dead_pid(),
                                                         "host": socket.gethostname(), "target": "b"}))
    alive = tmp_path / ".c.golden-1-abc.tmp"  # pid 1 is alive: never touched
    alive.mkdir()
    (alive / "golden-owner.json").write_text(json.dumps({"tool": "golden", "pid": 1, "host": socket.gethostname()}))
    foreign = tmp_path / ".d.golden-5-x.tmp"  # no marker: not golden's, never touched
    foreign.mkdir()
    gen(tmp_path / "b")
    assert not stale.exists() and alive.exists() and foreign.exists()
    assert "interrupted run" in capsys.readouterr().err


def test_16_kill_9_leftover_is_cleaned_by_the_next_run(tmp_path):
    s = spec_file(tmp_path)

    def args(steps, out):
        return [sys.executable, "-m", "golden", "vectors", "generate", "--spec", str(s), "--steps", str(steps),
                "--neurons", "64", "--seed", "1", "--stimulus", "uniform", "--formats", "npy", "--out", str(out)]
    p = subprocess.Popen(args(2_000_000, tmp_path / "big"), env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline and not any((d / "bundle" / "x.npy").exists() for d in tmp_path.glob(".*.tmp")):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert len(leftovers(tmp_path)) == 1
    r = subprocess.run(args(10, tmp_path / "small"), check=False, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0 and "interrupted run" in r.stderr
    assert leftovers(tmp_path) == [] and not (tmp_path / "big").exists()


def test_16_out_dot_force_leaves_nothing_behind(tmp_path, monkeypatch):
    b = gen(tmp_path / "b")
    monkeypatch.chdir(b)
    gen(Path("."), steps=8, force=True)
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["steps"] == 8
    assert leftovers(tmp_path) == [] and verify(tmp_path / "b")[0] == 0


# ================================================ golden simulate output (17-18)
def test_17_write_atomic_leaves_the_target_untouched_on_failure(tmp_path):
    target = tmp_path / "x.npz"
    fileio.write_atomic(target, lambda f: f.write(b"previous"), force=False)

    def full(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    with pytest.raises(BundleError, match="No space left on device"):
        fileio.write_atomic(target, full, force=True)
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]
    fileio.write_atomic(target, lambda f: f.write(b"new"), force=True)
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


@pytest.mark.parametrize("how, force, cause", [
    ("user", False, "already exists (use --force"),
    ("user", True, "not golden's to replace"),
    ("golden", False, "already exists (use --force"),
    ("edited", True, "not golden's to replace"),   # golden wrote it, a user changed it since: it is the user's now
    ("copied", True, "not golden's to replace"),   # the same bytes without golden's stamp
])
def test_21_write_atomic_replaces_only_golden_files_and_only_with_force(tmp_path, how, force, cause):
    t = tmp_path / "t.json"
    if how == "user" or how == "copied":
        t.write_bytes(b"thesis")
    else:
        fileio.write_atomic(t, lambda f: f.write(b"thesis"), force=False)
        if how == "edited":
            with open(t, "ab") as f:
                f.write(b" v2")
    before = t.read_bytes()
    with pytest.raises(BundleError, match=re.escape(cause)):
        fileio.write_atomic(t, lambda f: f.write(b"new"), force=force)
    assert t.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_21_write_atomic_owned_file_is_stamped_with_its_hash(tmp_path):
    t = fileio.write_atomic(tmp_path / "t.bin", lambda f: f.write(b"abc"), force=False, mode=0o640)
    assert fileio.owned_file(t) is not None and (t.stat().st_mode & 0o777) == 0o640
    assert json.loads(os.getxattr(t, fileio.STAMP))["sha256"] == hashlib.sha256(b"abc").hexdigest()
    (tmp_path / "l").symlink_to(t)
    assert fileio.owned_file(tmp_path / "l") is None  # a symlink to golden's file is not golden's file


def test_21_write_atomic_a_file_swapped_in_after_the_check_is_put_back(tmp_path, monkeypatch):
    t = fileio.write_atomic(tmp_path / "t.txt", lambda f: f.write(b"golden"), force=False)

    def writer(f):  # while golden writes, a user replaces the vetted file with his own
        os.unlink(t)
        t.write_bytes(b"user's")
        f.write(b"new")
    with pytest.raises(BundleError, match="changed while golden was writing"):
        fileio.write_atomic(t, writer, force=True)
    assert t.read_bytes() == b"user's" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_21_kill_9_during_a_single_file_write_leaves_a_part_file_the_next_write_removes(tmp_path):
    code = ("import os, signal; from golden.fileio import write_atomic\n"
            f"write_atomic({str(tmp_path / 'x.bin')!r}, lambda f: (f.write(b'half'), f.flush(), "
            "os.kill(os.getpid(), signal.SIGKILL)), force=False)\n")
    r = subprocess.run([sys.executable, "-c", code], check=False, env=ENV, capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL
    parts = [p.name for p in tmp_path.iterdir()]
    assert len(parts) == 1 and parts[0].startswith(".x.bin.golden-") and parts[0].endswith(".part")
    live = tmp_path / f".y.golden-{os.getpid()}-abc.part"  # a live writer's part file is left alone
    live.write_bytes(b"busy")
    err = io.StringIO()
    fileio.write_atomic(tmp_path / "z.bin", lambda f: f.write(b"z"), force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "z.bin"]
    assert fileio.clean_stale(tmp_path, err) == []


def test_17_write_atomic_under_ulimit_f(tmp_path):
    code = ("import resource, numpy as np; from golden.fileio import write_atomic\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            f"write_atomic({str(tmp_path / 'x.npz')!r}, lambda f: np.savez(f, a=np.zeros(100000)), force=False)\n")
    r = subprocess.run([sys.executable, "-c", code], check=False, env=ENV, capture_output=True, text=True)
    assert r.returncode != 0 and "x.npz: cannot write" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo"])
def test_17_write_atomic_refuses_anything_but_a_regular_file(tmp_path, kind):
    t = tmp_path / "t"
    if kind == "directory":
        t.mkdir()
    elif kind == "fifo":
        os.mkfifo(t)
    else:
        (tmp_path / "real").write_text("keep")
        t.symlink_to(tmp_path / "real")
    with pytest.raises(BundleError, match=kind):
        fileio.write_atomic(t, lambda f: f.write(b"x"), force=False)
    assert kind != "symlink" or (tmp_path / "real").read_text() == "keep"
    assert leftovers(tmp_path) == [] and os.path.lexists(t)


# ============================================================= C header (19)
@requires(missing_gcc())
def test_19_the_header_links_from_two_translation_units(tmp_path):
    b = gen(tmp_path / "b", stimulus="uniform")
    inc = f'#include "{b / "vectors.h"}"\n'
    (tmp_path / "a.c").write_text(inc + "int first(void) { return golden_x[0] + golden_v[1]; }\n")
    (tmp_path / "m.c").write_text(inc + "#include <stdio.h>\nint first(void);\n"
                                  'int main(void) { printf("%d %d\\n", first(), golden_out[2] + golden_spikes[3]);'
                                  " return 0; }\n")
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(tmp_path / "a.c"),
                    str(tmp_path / "m.c")], check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    _, a, _ = vectors.read_bundle(b)
    flat = {k: v.reshape(-1).astype(int) for k, v in a.items()}
    assert got == [str(flat["x"][0] + flat["v"][1]), str(flat["out"][2] + flat["spikes"][3])]


# ============================================================ bad-input tables
@pytest.mark.parametrize("args, cause", [
    (["export", "{missing}", "--format", "csv"], "not a directory"),
    (["export", "{file}", "--format", "csv"], "not a directory"),
    (["export", "{b}", "--format", "xml"], "unknown format"),
    (["export", "{b}", "--format", "npy"], "expected some of"),
    (["export", "{b}", "--format", "h", "--prefix", "9bad"], "not a C identifier"),
    (["verify", "{missing}"], "no such directory"),
    (["verify", "{file}"], "not a directory"),
    (["verify", "{empty}"], "no manifest.json"),
    (["generate", "--spec", "{file}", "--steps", "2", "--neurons", "2", "--seed", "0", "--stimulus", "uniform",
      "--out", "{b}"], "already exists"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, cause):
    b = gen(tmp_path / "b", formats=("npy",))
    (tmp_path / "f.toml").write_text(golden.codegen("IF").to_toml())
    (tmp_path / "empty").mkdir()
    names = {"missing": tmp_path / "nope", "file": tmp_path / "f.toml", "b": b, "empty": tmp_path / "empty"}
    before = sorted(p.name for p in b.iterdir())
    rc = vcli([a.format(**names) for a in args])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("golden: error:") and cause in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in b.iterdir()) == before and leftovers(tmp_path) == []


def test_write_atomic_into_a_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        fileio.write_atomic(tmp_path / "no" / "x.npz", lambda f: f.write(b"x"), force=False)
    assert list(tmp_path.iterdir()) == []


def test_8_16_verify_reports_golden_work_directories_and_symlinked_dirs(tmp_path):
    gen(tmp_path / "root" / "b")
    work = fileio.work_dir(tmp_path / "root" / "x")  # as if a run were writing x right now
    shutil.copytree(tmp_path / "root" / "b", work / "bundle")
    (tmp_path / "root" / "link").symlink_to(tmp_path / "root" / "b")
    rc, out, err = verify(tmp_path / "root")
    assert rc == 0 and "1 bundle(s): 1 ok" in out
    assert "golden work directory" in err and "symlinked directory, not followed" in err


def test_2_a_failed_final_swap_leaves_the_previous_bundle(tmp_path, monkeypatch):
    b = gen(tmp_path / "b")
    before = {p.name: p.read_bytes() for p in b.iterdir()}

    def failing(a, b):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(fileio, "exchange", failing)
    with pytest.raises(BundleError, match="previous bundle is untouched"):
        gen(b, steps=9, force=True)
    assert {p.name: p.read_bytes() for p in b.iterdir()} == before and leftovers(tmp_path) == []


def test_2_without_rename_exchange_a_failed_final_rename_puts_the_previous_bundle_back(tmp_path, monkeypatch):
    b = gen(tmp_path / "b")
    before = {p.name: p.read_bytes() for p in b.iterdir()}
    real = fileio.rename_noreplace

    def failing(src, dst):
        if Path(src).name == "bundle":
            raise OSError(5, "Input/output error")
        return real(src, dst)
    monkeypatch.setattr(fileio, "exchange", lambda a, b: False)  # a file system without RENAME_EXCHANGE
    monkeypatch.setattr(fileio, "rename_noreplace", failing)
    with pytest.raises(BundleError, match="previous bundle is back"):
        gen(b, steps=9, force=True)
    assert {p.name: p.read_bytes() for p in b.iterdir()} == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("how", ["swap", "swap-intruder", "aside"])
def test_21_kill_9_while_replacing_a_bundle_keeps_it_recoverable(tmp_path, how):
    """Killed right after the previous bundle left its name: the next golden write restores or keeps it."""
    b = gen(tmp_path / "b")
    before = {p.name: p.read_bytes() for p in b.iterdir()}
    intrude = "open(os.path.join(b, 'tb.v'), 'w').write('module tb; endmodule')\n    " if how == "swap-intruder" else ""
    kill = ("import os, signal, golden\nfrom golden import fileio, vectors\n"
            + (f"real = fileio.exchange\ndef ex(a, b):\n    {intrude}real(a, b); os.kill(os.getpid(), signal.SIGKILL)\n"
               "fileio.exchange = ex\n" if how != "aside" else
               "fileio.exchange = lambda a, b: False\nreal = os.rename\n"
               "def mv(a, b):\n    real(a, b)\n"
               "    if str(b).endswith('/old'): os.kill(os.getpid(), signal.SIGKILL)\n"
               "os.rename = mv\n")
            + f"vectors.generate(golden.codegen('LIF', q_in=8), 9, 5, 7, 'mixed', {str(b)!r}, ('npy',), "
              "progress=False, force=True)\n")
    r = subprocess.run([sys.executable, "-c", kill], check=False, env=ENV, capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    err = io.StringIO()
    fileio.clean_stale(tmp_path, err)  # what the next golden write in this directory does first
    if how == "aside":  # the previous bundle is back, byte for byte
        assert {p.name: p.read_bytes() for p in b.iterdir()} == before and "restored" in err.getvalue()
        assert leftovers(tmp_path) == []
        return
    assert json.loads((b / "manifest.json").read_text())["steps"] == 9 and verify(b)[0] == 0  # the new one, whole
    if how == "swap":  # the previous bundle was golden's to replace: gone with the work directory
        assert leftovers(tmp_path) == []
    else:  # it held a user's file: kept beside, with the file
        kept = [p for p in tmp_path.iterdir() if ".previous-" in p.name]
        assert len(kept) == 1 and (kept[0] / "tb.v").read_text() == "module tb; endmodule", err.getvalue()
        assert {p.name: p.read_bytes() for p in kept[0].iterdir() if p.name != "tb.v"} == before


def test_2_user_file_added_after_the_check_is_kept(tmp_path, monkeypatch):
    b = gen(tmp_path / "b")
    real, calls = fileio.check_replaceable, []

    def then_intrude(out, force, *args, **kw):  # the last check before the swap passes, then a user writes into it
        real(out, force, *args, **kw)
        calls.append(out)
        if len(calls) == 2:
            (out / "tb.v").write_text("module tb; endmodule")
    monkeypatch.setattr(fileio, "check_replaceable", then_intrude)
    with pytest.raises(BundleError, match="changed while golden was writing"):
        gen(b, steps=9, force=True)
    assert (b / "tb.v").read_text() == "module tb; endmodule"
    assert json.loads((b / "manifest.json").read_text())["steps"] == 6 and leftovers(tmp_path) == []


# ============================================================ the Format design
class SumFormat(vectors.Format):
    """A toy export: the sum of every named array, one line each. The only code a new format needs, and it serves
    single-layer and network bundles alike (it sees only the bundle's named arrays)."""

    name = "sum"
    FILE = "sums.txt"

    def files(self, view):
        return [self.FILE]

    def meta(self, view, prefix):
        return {"file": self.FILE}

    def render(self, view, prefix):
        for key, a in view.arrays.items():
            yield self.FILE, f"{key} {sum(int(c.astype(np.int64).sum()) for c in a.chunks())}\n".encode()

    def parse(self, path, view, prefix):
        return {}

    def size_bound(self, view):
        return 64 * len(view.arrays) + 64


def _net():
    from golden.network import Flatten, Linear, Network, Neuron, Node
    from golden.spec import QFormat

    q = QFormat(8, 5)
    spec = golden.codegen("LIF", q_in=5)
    neuron = Neuron.of(spec, (6,), q)
    fc = Linear(in_shape=(6,), fmt_src=spec.fmt_out, fmt_in=spec.fmt_out, fmt_out=q, fmt_w=QFormat(8, 6),
                in_features=6, out_features=3)
    flat = Flatten(in_shape=(6,), fmt_src=spec.fmt_out, fmt_in=spec.fmt_out, fmt_out=spec.fmt_out)
    rng = np.random.default_rng(0)
    return Network((6,), q, [Node("n", neuron), Node("f", flat, ("n",)), Node("fc", fc, ("f",))],
                   {"fc": {"weight": rng.integers(-20, 20, (3, 6))}})


@pytest.mark.parametrize("kind", ["layer", "network"])
def test_adding_a_format_is_adding_one_object(tmp_path, monkeypatch, kind):
    """README recipe "An export format": one Format object in EXPORTS; generate, verify and export take it, for a
    single-layer bundle and for a network bundle."""
    monkeypatch.setitem(vectors.EXPORTS, "sum", SumFormat())

    def make(out, formats):
        if kind == "layer":
            return gen(out, formats=formats)
        return vectors.generate_network(_net(), out, samples=2, steps=4, seed=1, stimulus="uniform", formats=formats)
    b = make(tmp_path / "b", ("npy", "sum"))
    m = json.loads((b / "manifest.json").read_text())
    assert m["exports"] == {"sum": {"file": "sums.txt"}}
    lines = (b / "sums.txt").read_text().splitlines()
    keys = ["x", "out", "v", "spikes"] if kind == "layer" else ["x", "n.out", "n.v", "n.spikes", "f.out", "fc.out"]
    assert [ln.split()[0] for ln in lines] == keys
    assert verify(b)[0] == 0
    p = b / "sums.txt"
    p.write_text(p.read_text().replace("\n", " \n", 1))
    rehash(b, "sums.txt")
    rc, out, _ = verify(b)
    assert rc == 1 and "field=sums.txt" in out
    c = make(tmp_path / "c", ("npy",))
    assert sorted(vectors.export(c, "sum,hex")) == sorted(["sums.txt", *(f"{k}.hex" for k in keys), "bundle.vh"])
    assert verify(c)[0] == 0


