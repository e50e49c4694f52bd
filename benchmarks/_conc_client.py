"""The client of ``concurrency.py``: worker processes that each read many paced streams.

Each worker (spawned, with its own event loop: uvloop when installed) opens its share of
the connections on schedule, reads each stream with a :class:`_conc_protocol.StreamClient`
(raw HTTP/1.1 over asyncio protocols), and reports what it measured, with its own CPU and
event-loop lag, to the main process through a pipe. All timestamps use CLOCK_MONOTONIC,
which is comparable across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import resource
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from _conc_protocol import Recorder, StreamClient, exc_name
from _util import HOST

MAX_SOCKETS_PER_WORKER = 9_000  # the per-process open-file limit is 20,000


@dataclass(frozen=True)
class WorkerJob:
    port: int
    path_template: str  # with {seed}
    starts: list[tuple[int, float]]  # (seed, seconds after "go" to open the connection)
    deadline: float  # seconds after "go": give up on streams not finished by then


@dataclass(frozen=True)
class Plan:
    """The load of one run: ``streams`` streams of ``count`` files, opened over ``ramp`` s."""

    streams: int
    count: int
    interval: float
    ramp: float
    workers: int
    path: str  # with {seed}

    def jobs(self, port: int, grace: float) -> list[WorkerJob]:
        """One job a worker; streams go round-robin so that each worker ramps evenly."""
        deadline = self.ramp + self.count * self.interval + grace
        starts: list[list[tuple[int, float]]] = [[] for _ in range(self.workers)]
        for i in range(self.streams):
            starts[i % self.workers].append((i, self.ramp * i / self.streams))
        return [WorkerJob(port, self.path, own, deadline) for own in starts]


async def _run_stream(
    loop: asyncio.AbstractEventLoop, job: WorkerJob, seed: int, rec: Recorder
) -> StreamClient | None:
    path = job.path_template.format(seed=seed)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{job.port}\r\nConnection: close\r\n\r\n"
    ).encode()
    done: asyncio.Future[None] = loop.create_future()
    proto = StreamClient(request, rec, done, seed)
    try:
        await loop.create_connection(lambda: proto, HOST, job.port)
    except OSError as exc:
        rec.errors[f"connect: {exc_name(exc)}"] += 1
        return None
    await done
    return proto


async def _lag_monitor(samples: list[float], period: float = 0.05) -> None:
    """How late the loop wakes a sleeper: the client's own scheduling delay."""
    while True:
        t0 = time.monotonic()
        await asyncio.sleep(period)
        samples.append(time.monotonic() - t0 - period)


async def _worker_async(job: WorkerJob, t_go: float) -> tuple[Recorder, list[float]]:
    loop = asyncio.get_running_loop()
    rec = Recorder()
    lag: list[float] = []
    monitor = asyncio.create_task(_lag_monitor(lag))
    tasks: list[asyncio.Task[StreamClient | None]] = []
    for seed, rel_start in job.starts:
        delay = t_go + rel_start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_run_stream(loop, job, seed, rec)))
    timeout = max(t_go + job.deadline - time.monotonic(), 0.1)
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        rec.errors["timeout: stream not finished by the deadline"] += len(pending)
        await asyncio.wait(pending, timeout=2)
    monitor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await monitor
    return rec, lag


def _raise_fd_limit(sockets: int) -> str | None:
    """Raise the soft open-file limit to the hard one; why ``sockets`` do not fit, if not."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if sockets + 64 > hard:
        return f"{sockets} sockets do not fit the fd limit {hard}"
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return None


def _install_loop() -> str:
    """uvloop as the event loop when it is installed; the loop's name."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    uvloop.install()
    return "uvloop"


def _report(rec: Recorder, lag: list[float], cpu: float, wall: float, loop: str) -> dict[str, Any]:
    return {
        "lateness": rec.lateness,
        "scheduled": rec.scheduled,
        "stream": rec.stream,
        "errors": dict(rec.errors),
        "files": rec.files,
        "complete": rec.complete,
        "connected": rec.connected,
        "ttfb": rec.ttfb,
        "connect": rec.connect,
        "lag": lag,
        "cpu": cpu,
        "wall": wall,
        "loop": loop,
    }


def worker_main(conn: Connection) -> None:
    """A client worker process: receive the job, say ready, wait for "go", run, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us on Ctrl-C
    job: WorkerJob = conn.recv()
    problem = _raise_fd_limit(len(job.starts))
    if problem is not None:
        conn.send(("error", problem))
        return
    loop_name = _install_loop()
    conn.send(("ready", loop_name))
    t_go: float = conn.recv()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    rec, lag = asyncio.run(_worker_async(job, t_go))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - t0
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    conn.send(_report(rec, lag, cpu, wall, loop_name))
    conn.close()


# --------------------------------------------------------------------------------------
# the main process's side


@contextlib.contextmanager
def worker_processes(jobs: list[WorkerJob]) -> Iterator[list[Connection]]:
    """Spawn one worker a job and send it the job; pipes to them. Stragglers are killed."""
    ctx = mp.get_context("spawn")
    conns: list[Connection] = []
    procs: list[mp.process.BaseProcess] = []
    try:
        for job in jobs:
            parent, child = ctx.Pipe()
            conns.append(parent)
            procs.append(ctx.Process(target=worker_main, args=(child,), daemon=True))
            procs[-1].start()
            child.close()
            parent.send(job)
        yield conns
        for proc in procs:
            proc.join(5)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def await_ready(conns: list[Connection]) -> list[str]:
    """Wait for every worker to say ready; their event loops' names."""
    loops = []
    for conn in conns:
        if not conn.poll(60):
            raise RuntimeError("a client worker did not start")
        state, detail = conn.recv()
        if state != "ready":
            raise RuntimeError(f"client worker: {detail}")
        loops.append(detail)
    return loops
