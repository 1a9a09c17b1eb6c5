"""golden prove on Dask distributed (golden/dist.py): a 16-bit spec proven on a slice of its (v, x) plane by a
LocalCluster of 2 worker processes gives byte for byte the certificate of one process; a run stopped midway
resumes from its journal to the same certificate; bad engine inputs are one line, exit 2, nothing written.

The full 16x16-bit proofs run on demand (README, "Proof, not samples"): 2**32 pairs, minutes, not CI."""

from __future__ import annotations

import json
import os
import time

import pytest

import golden
from golden import dist
from golden import prove as P
from golden.cli import longrun, main

from proofs import missing_codegen, missing_module, missing_torch, record, requires

DIST = requires(missing_module("distributed"))
CODEGEN = requires(missing_codegen())
TORCH = requires(missing_torch())
# 16-bit LIF, the C's profile; its threshold 4096 lies in the slices below, so both spiking and idle pairs occur
SPEC16 = golden.codegen("LIF", width=16, q_v=12, tau=3.0)
NEAR_VTH = (4096 - 32, 4096 + 31)  # 64 potentials x 65,536 inputs = 2**22 pairs


@pytest.fixture(scope="module")
def engine():
    with dist.Engine("local", 2) as e:
        yield e


def _engine_certificate(engine, args: dist.ProofArgs, stop_after: int | None = None):
    proof, done, order = args.build(), {}, []

    def on_chunk(chunk):
        done[chunk.index] = chunk
        order.append(chunk.index)
        if stop_after is not None and len(order) == stop_after:
            raise KeyboardInterrupt

    info = engine.run(proof, args, done, on_chunk)
    return proof, done, info, order


@DIST
@CODEGEN
def test_a_slice_on_two_workers_is_the_certificate_of_one_process(engine):
    """16 chunks of 2**18 pairs against the real C, run as tasks on 2 worker processes: each chunk came back once,
    and the merged certificate is the single-process one, byte for byte."""
    args = dist.ProofArgs(SPEC16, "codegen", chunk=1 << 18, v_range=NEAR_VTH)
    local = args.build().run()
    proof, done, info, order = _engine_certificate(engine, args)
    assert sorted(order) == list(range(16)) and info.chunks_run == 16 and info.pairs_run == 1 << 22
    assert info.workers == 2 and sum(info.hosts.values()) == 16
    cert = proof.certificate(done)
    assert cert.to_json() == local.to_json()
    assert cert.differences == 0 and cert.compared == 1 << 22 and not cert.proven  # a slice is never "proven"
    assert [p["name"] for p in cert.preconditions if not p["holds"]] == ["every potential"]
    record("prove --scheduler local (slice, 2 workers)", "codegen", cert.compared, cert.differences, unit="pairs")


@DIST
def test_differences_listed_in_index_order_whatever_the_completion_order(engine):
    """Against another spec (differences in many chunks), the listed pairs are cut at 10 in index order, as one
    process lists them, although the chunks complete in any order."""
    other = golden.codegen("LIF", width=16, q_v=12, tau=3.0, round="floor")
    args = dist.ProofArgs(SPEC16, other, chunk=1 << 17, listed=10, v_range=NEAR_VTH)
    local = args.build().run()
    proof, done, _, _ = _engine_certificate(engine, args)
    assert local.differences > 10 and len(local.differing) == 10
    assert proof.certificate(done).to_json() == local.to_json()


@DIST
@CODEGEN
def test_stopped_midway_the_rest_completes_to_the_same_certificate(engine):
    """The client stops after 5 chunks came back (Ctrl-C): the others are cancelled; a second run given the 5
    finished chunks runs only the rest and certifies exactly what one process does."""
    args = dist.ProofArgs(SPEC16, "codegen", chunk=1 << 18, v_range=NEAR_VTH)
    proof, first = args.build(), {}

    def stop_at_five(chunk):
        first[chunk.index] = chunk
        if len(first) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.run(proof, args, first, stop_at_five)
    assert len(first) == 5
    done, again = dict(first), []
    engine.run(proof, args, done, lambda c: again.append(c.index) or done.__setitem__(c.index, c))
    assert sorted(again) == sorted(set(range(16)) - set(first))  # the finished chunks did not run again
    assert proof.certificate(done).to_json() == args.build().run().to_json()


@DIST
@TORCH
def test_torch_slice_in_batches_on_two_workers_is_the_certificate_of_one_process(engine):
    """The real Qualia module against a 16-bit LIF slice: chunks of 2**20 pairs, each driven as 4 batches of 2**18
    neurons (P.TORCH_BATCH) on 2 workers, certify byte for byte what one process certifies with one batch per chunk
    (chunks of 2**18): the batching, the continued second step of each batch and the engine change nothing."""
    spec = golden.make("torch-eval", "LIF", bits=16, q_v=12, tau=3.0)
    assert P.TORCH_BATCH == 1 << 18
    args = dist.ProofArgs(spec, "torch-eval", chunk=1 << 20, v_range=NEAR_VTH)
    proof, done, info, order = _engine_certificate(engine, args)
    assert sorted(order) == [0, 1, 2, 3] and info.pairs_run == 1 << 22
    cert = proof.certificate(done)
    local = dist.ProofArgs(spec, "torch-eval", chunk=1 << 18, v_range=NEAR_VTH).build().run()
    assert cert.to_json() == local.to_json() and cert.differences == 0 and cert.compared == 1 << 22
    record("prove --scheduler local (slice, 2 workers, batches)", "torch-eval", cert.compared, cert.differences,
           unit="pairs")


def _spec_file(tmp_path):
    path = tmp_path / "s16.toml"
    path.write_text(SPEC16.to_toml())
    return str(path)


@DIST
@CODEGEN
def test_cli_killed_then_resumed_gives_the_local_certificate(tmp_path, monkeypatch, capsys):
    """golden prove --scheduler local --workers 2 on a 3-chunk slice (3 x 2**22 pairs): stopped by Ctrl-C after a
    chunk came back from a worker (one line, exit 130, the finished chunks journaled, no certificate); the same
    command resumes, skipping them, and writes the single-process certificate plus a ``run`` section."""
    spec = _spec_file(tmp_path)
    argv = ["prove", "--spec", spec, "--against", "codegen", "--v-range=4000:4191"]
    (tmp_path / "one").mkdir()
    assert main([*argv, "--out", str(tmp_path / "one" / "c.json")]) == 1  # a slice: "not proven", exit 1
    local = (tmp_path / "one" / "c.json").read_text()
    capsys.readouterr()
    real, seen = longrun.Progress.update, []

    def stop_after_a_worker_chunk(self, done, total):  # called once that chunk is journaled
        seen.append(done)
        raise KeyboardInterrupt

    monkeypatch.setattr(longrun.Progress, "update", stop_after_a_worker_chunk)
    cert = tmp_path / "c.json"
    assert main([*argv, "--out", str(cert), "--scheduler", "local", "--workers", "2"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("golden prove: 12582912 pairs in 3 chunks of 4194304 against codegen: about ")
    assert "left on 2 workers" in err[0] and "memory" in err[0]
    assert len(err) == 2 and err[1].startswith("golden: interrupted: prove: stopped after 2 of 3 chunks"), err
    assert seen == [2]  # the client timed chunk 0 first (the estimate), then a worker's chunk came back
    assert not cert.exists() and len((tmp_path / "c.json.state").read_text().splitlines()) == 3
    monkeypatch.setattr(longrun.Progress, "update", real)
    t0 = time.perf_counter()
    assert main([*argv, "--out", str(cert), "--scheduler", "local", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "resumed     2 of 3 chunks" in out and "run         1 chunks on 2 Dask workers (local)" in out
    doc = json.loads(cert.read_text())
    run = doc.pop("run")
    assert json.dumps(doc, sort_keys=True, indent=1) + "\n" == local  # byte for byte, outside "run"
    assert run["engine"] == "dask" and run["workers"] == 2 and run["chunks_run"] == 1
    assert run["pairs_run"] == 1 << 22 and 0 < run["seconds"] < time.perf_counter() - t0
    assert run["pairs_per_second"] > 0 and abs(run["pairs_per_second_per_worker"] - run["pairs_per_second"] / 2) <= 1
    assert sorted(os.listdir(tmp_path)) == ["c.json", "one", "s16.toml"]  # the journal is gone


BAD = [  # (argv after prove --spec S --against codegen --out c.json, what the line names, at most seconds)
    (["--scheduler", "tcp://127.0.0.1:1"], ["--scheduler", "cannot reach", "tcp://127.0.0.1:1", "local"], 12),
    (["--scheduler", "nohostport"], ["--scheduler", "not a scheduler address", "tcp://HOST:PORT"], 12),
    (["--scheduler", "local", "--workers", "0"], ["--workers", "positive integer"], 12),
    (["--workers", "2"], ["--workers", "only with --scheduler"], 12),
    (["--v-range=5"], ["--v-range", "LO:HI"], 12),
    (["--v-range=9:1"], ["v_range", "LO <= HI"], 12),
    (["--v-range=0:40000"], ["v_range", "-32768..32767"], 12),
]


@DIST
@pytest.mark.parametrize("extra,names,seconds", BAD, ids=lambda a: str(a))
def test_bad_engine_inputs(tmp_path, capsys, extra, names, seconds):
    spec = _spec_file(tmp_path)
    t0 = time.perf_counter()
    assert main(["prove", "--spec", spec, "--against", "codegen", "--out", str(tmp_path / "c.json"), *extra]) == 2
    took = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("golden: error: "), err
    assert all(n in err for n in names), err
    assert took < seconds, took
    assert sorted(os.listdir(tmp_path)) == ["s16.toml"]  # nothing written


def test_proof_args_and_engine_refuse_bad_values():
    with pytest.raises(P.ProveError, match="--workers: expected a positive integer"):
        dist.Engine("local", 0)
    with pytest.raises(P.ProveError, match="v_range"):
        dist.ProofArgs(SPEC16, "reference", v_range=(1, 2, 3)).build()


@DIST
def test_a_worker_whose_proof_differs_refuses(engine):
    """A worker rebuilds the proof from its arguments; when that proof has another key than the client's (here
    another chunk size; on a real cluster another golden or package version), the chunk is refused, one line."""
    other = golden.codegen("LIF", width=16, q_v=12, tau=3.0, round="floor")
    client_side = dist.ProofArgs(SPEC16, other, chunk=1 << 17, v_range=NEAR_VTH).build()
    worker_side = dist.ProofArgs(SPEC16, other, chunk=1 << 18, v_range=NEAR_VTH)
    done = {}
    with pytest.raises(P.ProveError, match="its proof differs from the client's") as e:
        engine.run(client_side, worker_side, done, lambda c: done.__setitem__(c.index, c))
    assert "\n" not in str(e.value) and done == {}


def _worker_settings():
    import os

    import dask

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), dask.config.get("distributed.worker.profile.enabled")


@DIST
def test_local_workers_keep_glibc_heap_dynamic_and_no_profiler(engine):
    """Dask's defaults cost a chunk 2-5x its CPU time (measured, golden/dist.py): the LocalCluster workers run
    without MALLOC_TRIM_THRESHOLD_ (every large array fresh pages otherwise) and without the 10 ms stack sampler."""
    got = engine.client.run(_worker_settings)
    assert len(got) == 2 and set(got.values()) == {(None, False)}
