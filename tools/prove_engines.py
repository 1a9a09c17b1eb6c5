"""Dask or Ray for ``golden prove --scheduler``: the same slice of a 16-bit plane on each engine, timed.

    python tools/prove_engines.py --against codegen --workers 2 [--rows 1024] [--engines dask,ray,local]

Each engine runs the chunks of one :class:`golden.prove.Proof` (a slice of ``--rows`` potentials x 65,536 inputs of
a 16-bit LIF, q_v 12: 1024 rows = 2^26 pairs in 16 chunks of 2^22) as tasks on ``--workers`` processes with one
thread each, every worker rebuilding the proof once (:func:`golden.dist.run_chunk_on_worker`, the same function on
both engines). Printed per engine: the start-up (cluster up, workers ready), the run (first task submitted to last
result), pairs/s, the median chunk on a worker, the worker setup, and the certificate's sha256 (equal on every
engine: the chunks merge in index order). Ray is not a golden dependency: ``pip install ray`` to measure it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time

import golden
from golden import dist
from golden.prove import Chunk


def _spec(against: str):
    if against == "codegen":
        return golden.codegen("LIF", width=16, q_v=12, tau=3.0)
    return golden.make(against, "LIF", bits=16, q_v=12)


def _pid() -> int:
    return os.getpid()


def _line(engine: str, start: float, run: float, pairs: int, chunk_s: list, cpu_s: list, setup: list,
          cert) -> dict:
    return {"engine": engine, "start_s": round(start, 2), "run_s": round(run, 2),
            "pairs_per_s": round(pairs / run), "median_chunk_s": round(statistics.median(chunk_s), 3),
            "median_chunk_cpu_s": round(statistics.median(cpu_s), 3),
            "max_setup_s": round(max(setup, default=0.0), 2),
            "certificate_sha256": hashlib.sha256(cert.to_json().encode()).hexdigest()[:16]}


def run_local(args: dist.ProofArgs) -> dict:
    t0 = time.perf_counter()
    proof = args.build()
    start = time.perf_counter() - t0
    done, secs, cpu = {}, [], []
    t0 = time.perf_counter()
    for i in range(proof.chunks):
        t1, c1 = time.perf_counter(), time.process_time()
        done[i] = proof.run_chunk(i, proof.keep(done, i))
        secs.append(time.perf_counter() - t1)
        cpu.append(time.process_time() - c1)
    return _line("one process", start, time.perf_counter() - t0, proof.pairs, secs, cpu, [],
                 proof.certificate(done))


def run_dask(args: dist.ProofArgs, workers: int) -> dict:
    t0 = time.perf_counter()
    with dist.Engine("local", workers) as engine:
        start = time.perf_counter() - t0
        proof, done = args.build(), {}
        info = engine.run(proof, args, done, lambda c: done.__setitem__(c.index, c))
    return _line(f"dask ({workers} workers)", start, info.seconds, proof.pairs, info.chunk_seconds,
                 info.chunk_cpu_seconds, info.setup_seconds, proof.certificate(done))


def run_ray(args: dist.ProofArgs, workers: int) -> dict:
    import ray

    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # the same glibc heap as golden's Dask workers (golden.dist)
    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": dict(dist.WORKER_ENV) | {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    try:
        task = ray.remote(num_cpus=1)(dist.run_chunk_on_worker)
        ray.get([ray.remote(num_cpus=1)(_pid).remote() for _ in range(workers)])  # workers up
        start = time.perf_counter() - t0
        proof, done = args.build(), {}
        key = json.dumps(proof.key(), sort_keys=True)
        t0 = time.perf_counter()
        pending = [task.remote(args, key, i, proof.listed) for i in range(proof.chunks)]
        secs, cpu, setup = [], [], []
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            record, seconds, _where, s, c_s = ray.get(ready[0])
            c = Chunk.from_dict(record)
            done[c.index] = c
            secs.append(seconds)
            cpu.append(c_s)
            if s:
                setup.append(s)
        run = time.perf_counter() - t0
    finally:
        ray.shutdown()
    return _line(f"ray ({workers} workers)", start, run, proof.pairs, secs, cpu, setup, proof.certificate(done))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", default="codegen", choices=("codegen", "torch-eval"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rows", type=int, default=1024, help="potentials in the slice (x 65,536 inputs)")
    p.add_argument("--engines", default="dask,ray")
    a = p.parse_args(argv)
    args = dist.ProofArgs(_spec(a.against), a.against, v_range=(-32768, -32768 + a.rows - 1))
    print(f"# {a.against}, {a.rows} x 65536 pairs, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    runners = {"local": lambda: run_local(args), "dask": lambda: run_dask(args, a.workers),
               "ray": lambda: run_ray(args, a.workers)}
    for name in a.engines.split(","):
        print(json.dumps({"against": a.against, **runners[name](), "load": round(os.getloadavg()[0], 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
