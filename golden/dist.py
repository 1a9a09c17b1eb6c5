"""``golden prove --scheduler local | ADDRESS``: the chunks of a :class:`~golden.prove.Proof` as Dask tasks.

A proof is a list of chunks, each a pure function of (spec, reference, chunk index) with a JSON-able result, merged
in index order (:mod:`golden.prove`). Here each chunk not yet finished is one task of Dask distributed (the
optional ``distributed`` package, ``pip install 'golden[dist]'``), on a ``LocalCluster`` of N processes with one
thread each (``local``), or on the workers of an existing scheduler (``ADDRESS``, e.g. ``tcp://host:8786``). The
results come back as they complete and are handed, in completion order, to the caller (which journals them), so
an interrupted run resumes from whatever finished; the certificate merges them in index order, so it is byte for
byte the one a single process gives.

Each worker process rebuilds the proof once from its arguments (:class:`ProofArgs`) and keeps it: the torch module
or the compiled C is set up once per worker, not per chunk. A worker whose proof does not have the client's
:meth:`~golden.prove.Proof.key` (another golden or reference version on a remote cluster) refuses to run a chunk.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from .errors import GoldenError
from .prove import Chunk, Proof, ProveError
from .spec import Spec

CONNECT_SECONDS = 4.0  # an unreachable scheduler is reported after this long
# a LocalCluster worker is one process with one thread: its libraries must not start thread pools of their own
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
WORKERS_SECONDS = 60.0  # waiting for the workers of an existing scheduler
PRE_SPAWN = "distributed.nanny.pre-spawn-environ"
# glibc's heap tuning left dynamic in the workers: Dask sets MALLOC_TRIM_THRESHOLD_=65536 before it spawns them, which
# freezes the mmap threshold, so every large array of a chunk is fresh pages: measured 2.5x the CPU time of a
# torch chunk (0.79 s instead of 0.31 s for 2^22 pairs; 1.6 s with the profiler below)
UNSET_IN_WORKERS = ("MALLOC_TRIM_THRESHOLD_",)
# Dask's statistical profiler samples every worker thread's stack every 10 ms: measured 2x the CPU time of a chunk
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


def pre_spawn_environ() -> dict:
    """Dask's pre-spawn environment for LocalCluster workers, without :data:`UNSET_IN_WORKERS`."""
    import dask

    return {k: v for k, v in (dask.config.get(PRE_SPAWN, default=None) or {}).items() if k not in UNSET_IN_WORKERS}


def default_workers() -> int:
    """Worker processes of a LocalCluster when --workers is not given: one per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ProofArgs:
    """What a worker needs to rebuild the client's :class:`~golden.prove.Proof` (all picklable)."""

    spec: Spec
    against: object  # a reference name or a Spec
    reachable_only: bool = False
    config: dict | None = None
    chunk: int | None = None
    listed: int | None = None
    v_range: tuple | None = None

    def build(self) -> Proof:
        kw = {} if self.listed is None else {"listed": self.listed}
        return Proof(self.spec, self.against, reachable_only=self.reachable_only, config=self.config,
                     chunk=self.chunk, v_range=self.v_range, **kw)


@dataclass
class RunInfo:
    """How a distributed run went: recorded in the certificate file's ``run`` section (not in the proof)."""

    engine: str
    scheduler: str
    workers: int
    chunks_run: int = 0
    pairs_run: int = 0
    seconds: float = 0.0
    chunk_seconds: list = field(default_factory=list)
    chunk_cpu_seconds: list = field(default_factory=list)  # CPU time of each chunk in its worker process
    hosts: dict = field(default_factory=dict)  # "host:pid" -> chunks it ran

    setup_seconds: list = field(default_factory=list)  # per worker process: rebuilding the proof (imports, C)

    def to_dict(self) -> dict:
        rate = self.pairs_run / self.seconds if self.seconds > 0 else 0.0
        steady = sorted(self.chunk_seconds)[len(self.chunk_seconds) // 2] if self.chunk_seconds else 0.0
        cpu = sorted(self.chunk_cpu_seconds)[len(self.chunk_cpu_seconds) // 2] if self.chunk_cpu_seconds else 0.0
        return {"engine": self.engine, "scheduler": self.scheduler, "workers": self.workers,
                "worker_processes_used": len(self.hosts), "chunks_run": self.chunks_run,
                "pairs_run": self.pairs_run, "seconds": round(self.seconds, 3),
                "pairs_per_second": round(rate), "pairs_per_second_per_worker": round(rate / max(1, self.workers)),
                "median_chunk_seconds_on_a_worker": round(steady, 3),
                "median_chunk_cpu_seconds_on_a_worker": round(cpu, 3),
                "max_setup_seconds_on_a_worker": round(max(self.setup_seconds, default=0.0), 3),
                "note": "how this run went (wall time, worker setup included); the proof does not depend on it"}


_PROOFS: dict = {}  # in a worker process: the client's proof key -> the proof rebuilt here (its reference set up once)


def run_chunk_on_worker(args: ProofArgs, key: str, i: int, keep: int) -> tuple:
    """A Dask task: chunk ``i`` of the proof ``args`` describes, on this worker's cached proof.

    Returns (the chunk's dict, seconds, "host:pid", seconds spent building the proof here (0 once built), the
    chunk's CPU seconds in this process: what a loaded machine does not inflate, for projections)
    Refuses (ProveError) when the proof this worker builds has another key than the client's."""
    proof, setup = _PROOFS.get(key), 0.0
    if proof is None:
        t0 = time.perf_counter()
        proof = args.build()
        setup = time.perf_counter() - t0
        mine = json.dumps(proof.key(), sort_keys=True)
        if mine != key:
            raise ProveError(f"worker {socket.gethostname()}: its proof differs from the client's (another golden, "
                             f"reference or package version: {mine[:200]}); install the same versions on every worker")
        _PROOFS[key] = proof
    t0, c0 = time.perf_counter(), time.process_time()
    chunk = proof.run_chunk(i, keep)
    return (chunk.to_dict(), time.perf_counter() - t0, f"{socket.gethostname()}:{os.getpid()}", setup,
            time.process_time() - c0)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ProveError("--scheduler needs Dask distributed: pip install 'golden[dist]'") from None
    _quiet()
    return distributed


def _quiet() -> None:
    """Dask's own INFO lines (scheduler, nanny, worker start and stop) stay out of golden's stderr."""
    for name in ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]:
        logging.getLogger(name).setLevel(logging.ERROR)


class Engine:
    """A Dask client on a LocalCluster of ``workers`` processes (``scheduler == "local"``) or on an existing
    scheduler; a context manager that closes what it started."""

    def __init__(self, scheduler: str, workers: int | None):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ProveError(f"--workers: expected a positive integer, got {workers!r}")
        self.scheduler, self.wanted = scheduler, workers
        self.cluster = self.client = None

    def __enter__(self) -> Engine:
        d = _distributed()
        import dask
        try:
            if self.scheduler == "local":
                n = self.wanted or default_workers()
                with dask.config.set({PRE_SPAWN: pre_spawn_environ(), **WORKER_CONFIG}):
                    self.cluster = d.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                  dashboard_address=":0", silence_logs=logging.ERROR,
                                                  env=WORKER_ENV)
                self.client = d.Client(self.cluster)
            else:
                self.client = d.Client(self.scheduler, timeout=CONNECT_SECONDS)
                if self.wanted:
                    self.client.wait_for_workers(self.wanted, timeout=WORKERS_SECONDS)
            _quiet()
        except ValueError as e:  # distributed's parse of the address
            self.__exit__(None, None, None)
            raise ProveError(f"--scheduler: {self.scheduler!r} is not a scheduler address ({str(e)[:120]}); "
                             f"expected local or tcp://HOST:PORT") from None
        except Exception as e:  # whatever answers there (timeout, refused, not Dask): one line
            self.__exit__(None, None, None)
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}" if str(e) else type(e).__name__
            raise ProveError(f"--scheduler: cannot reach a Dask scheduler with enough workers at {self.scheduler} "
                             f"within {CONNECT_SECONDS:g} s ({why}); start one (dask scheduler; dask worker "
                             f"ADDRESS) or pass --scheduler local") from None
        return self

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def __exit__(self, *exc) -> None:
        for c in (self.client, self.cluster):
            if c is not None:
                try:
                    c.close()
                except Exception:  # closing after an error must not hide it
                    pass
        self.client = self.cluster = None

    def run(self, proof: Proof, args: ProofArgs, done: dict, on_chunk) -> RunInfo:
        """Run every chunk ``proof.needed(done)`` names as a task; ``on_chunk(chunk)`` for each as it completes
        (in completion order). Stops submitting past an off-grid chunk (the certificate stops there too)."""
        d = _distributed()
        key = json.dumps(proof.key(), sort_keys=True)
        info = RunInfo("dask", self.scheduler, self.workers)
        todo = proof.needed(done)
        t0 = time.perf_counter()
        # args (a spec, a reference name, a few numbers) travels with each task: a scattered copy would be shared
        # by reruns under one content key, and cancelling a stopped run's tasks could release it under the next
        futures = {self.client.submit(run_chunk_on_worker, args, key, i, proof.listed, pure=False): i
                   for i in todo}
        stop = proof.chunks
        try:
            for fut in d.as_completed(list(futures)):
                if futures[fut] >= stop:
                    continue
                try:
                    record, seconds, where, setup, cpu = fut.result()
                except GoldenError:
                    raise
                except Exception as e:  # a worker lost (killed, out of memory), a task that failed there
                    msg = str(e).splitlines()[0][:160] if str(e) else ""
                    raise ProveError(f"chunk {futures[fut]}: failed on a Dask worker ({type(e).__name__}: {msg}); the "
                                     f"chunks finished before are kept (with --out the same command resumes)") from None
                chunk = Chunk.from_dict(record)
                info.chunks_run += 1
                info.pairs_run += chunk.pairs
                info.chunk_seconds.append(seconds)
                info.chunk_cpu_seconds.append(cpu)
                info.hosts[where] = info.hosts.get(where, 0) + 1
                if setup:
                    info.setup_seconds.append(setup)
                on_chunk(chunk)
                if chunk.offgrid is not None and chunk.index < stop:
                    stop = chunk.index
                    self.client.cancel([f for f, i in futures.items() if i > stop])
        finally:
            self.client.cancel([f for f in futures if not f.done()])
            info.seconds = time.perf_counter() - t0
        return info
