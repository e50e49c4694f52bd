"""Many concurrent paced streams against one wirelab server process: lateness and cost.

For each N (default 1000, 5000, 10000) a fresh ``wirelab serve`` process is started and N
clients each read ``GET /v1/stream?count=C&min_size=1024&max_size=4096&min_interval=0.5
&max_interval=0.5&seed=i``, with C chosen so that a stream lasts ``--duration`` seconds.
Connections are opened evenly over ``--ramp`` seconds so the accept burst does not
dominate.

Lateness of a file = arrival of its E frame - (arrival of the response headers + the F
frame's ``offset``). It is reported for every file ("all") and for the files scheduled
after the last connection was made ("steady", which the target is judged on). Also: files
received vs expected, errors, server peak RSS (VmHWM) and CPU over the run, and the
client's own CPU and event-loop lag, which show whether the client kept up.

The client is 1-2 worker processes (at most ~9,000 sockets each: the per-process open-file
limit is 20,000), each with its own event loop (uvloop when installed), speaking raw
HTTP/1.1 over asyncio protocols and decoding the frames minimally. All timestamps use
CLOCK_MONOTONIC, which is comparable across processes.

Run: ``.venv/bin/python benchmarks/concurrency.py [--streams 1000 5000] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import math
import multiprocessing as mp
import os
import resource
import signal
import sys
import tempfile
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import numpy as np
from _util import (
    BENCH_DIR,
    HOST,
    MB,
    UVICORN_ARGS,
    ProcStats,
    Server,
    fmt_table,
    free_port,
    install_cleanup,
    loadavg,
    log,
    python_argv,
    tree_stats,
    wirelab_command,
    wirelab_server,
)

MAX_SOCKETS_PER_WORKER = 9_000
TARGET_STREAMS = 10_000
TARGET_P99 = 0.025  # seconds
TARGET_RSS = 512 * MB  # bytes, decimal: the stricter reading of "512 MB"
PREAMBLE = b"\x89WLS\r\n\x1a\n"
MAX_FRAME = 1_048_576 + 65_536

# --------------------------------------------------------------------------------------
# client side (runs in worker processes)


@dataclass
class Recorder:
    """What one worker process measured. Arrays hold one entry per received file."""

    lateness: array[float] = field(default_factory=lambda: array("d"))
    scheduled: array[float] = field(default_factory=lambda: array("d"))  # start + offset
    stream: array[int] = field(default_factory=lambda: array("l"))  # the file's stream
    errors: Counter[str] = field(default_factory=Counter)
    files: int = 0
    complete: int = 0
    connected: array[float] = field(default_factory=lambda: array("d"))
    ttfb: array[float] = field(default_factory=lambda: array("d"))  # connect -> headers


class StreamClient(asyncio.Protocol):
    """One ``GET /v1/stream``: HTTP/1.1 response head, chunked body, frames."""

    def __init__(
        self, request: bytes, rec: Recorder, done: asyncio.Future[None], stream_id: int
    ) -> None:
        self.request = request
        self.stream_id = stream_id
        self.rec = rec
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.t_connect = 0.0
        self.start = -1.0  # arrival of the response headers; -1 until then
        self.head = bytearray()
        self.chunked = True
        self.remaining = -1  # Content-Length bodies: bytes still to come
        self.raw = bytearray()  # chunked bytes not decoded yet
        self.chunk_left = 0
        self.need_crlf = False
        self.last_chunk = False
        self.body = bytearray()  # decoded body bytes not parsed into frames yet
        self.preamble = False
        self.offset = math.nan
        self.ended = False  # Z seen
        self.failed: str | None = None

    # --- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.t_connect = time.monotonic()
        self.rec.connected.append(self.t_connect)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.failed is not None:
            return
        try:
            if self.start < 0:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.head) > 65_536:
                        self.fail("http: response head too long")
                    return
                self.start = now
                self.rec.ttfb.append(now - self.t_connect)
                data = bytes(self.head[end + 4 :])
                ok = self._parse_head(bytes(self.head[:end]))
                self.head.clear()
                if not ok:
                    return
            if self.chunked:
                self._dechunk(data)
            else:
                if self.remaining >= 0:
                    data = data[: self.remaining]
                    self.remaining -= len(data)
                self.body += data
            self._frames(now)
        except (ValueError, KeyError, TypeError) as exc:
            self.fail(f"protocol: {type(exc).__name__}")

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.failed is None and not self.ended:
            if exc is not None:
                self.failed = f"connection: {_exc_name(exc)}"
            elif self.start < 0:
                self.failed = "http: closed before the response head"
            else:
                self.failed = "truncated: closed before Z"
        self._finish()

    # --- parsing

    def _parse_head(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            self.fail("http: bad status line")
            return False
        if parts[1] != b"200":
            self.fail(f"http: status {parts[1].decode(errors='replace')}")
            return False
        self.chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
            elif name == b"content-length":
                self.remaining = int(value.strip())
        return True

    def _dechunk(self, data: bytes) -> None:
        raw = self.raw
        raw += data
        pos = 0
        n = len(raw)
        while pos < n:
            if self.chunk_left:
                take = min(self.chunk_left, n - pos)
                self.body += raw[pos : pos + take]
                pos += take
                self.chunk_left -= take
                if not self.chunk_left:
                    self.need_crlf = True
            elif self.need_crlf:
                if n - pos < 2:
                    break
                if raw[pos : pos + 2] != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
                pos += 2
                self.need_crlf = False
            else:
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > 1024:
                        raise ValueError("chunk size line too long")
                    break
                line = bytes(raw[pos:eol])
                pos = eol + 2
                if self.last_chunk:  # trailer section: ends with an empty line
                    if not line:
                        self.last_chunk = False
                        pos = n
                    continue
                size = int(line.split(b";", 1)[0], 16)
                if size:
                    self.chunk_left = size
                else:
                    self.last_chunk = True
        del raw[:pos]

    def _frames(self, now: float) -> None:
        buf = self.body
        pos = 0
        n = len(buf)
        if not self.preamble:
            if n < 8:
                return
            if buf[:8] != PREAMBLE:
                self.fail("protocol: bad preamble")
                return
            self.preamble = True
            pos = 8
        while n - pos >= 5:
            ftype = buf[pos]
            length = int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if length > MAX_FRAME:
                self.fail("protocol: oversize frame")
                return
            end = pos + 5 + length
            if end > n:
                break
            if ftype == 0x44:  # D
                pass
            elif ftype == 0x46:  # F
                self.offset = float(json.loads(buf[pos + 5 : end])["offset"])
            elif ftype == 0x45:  # E
                sched = self.start + self.offset
                self.rec.lateness.append(now - sched)
                self.rec.scheduled.append(sched)
                self.rec.stream.append(self.stream_id)
                self.rec.files += 1
            elif ftype == 0x5A:  # Z
                self.ended = True
                self.rec.complete += 1
            elif ftype == 0x58:  # X
                error = json.loads(buf[pos + 5 : end]).get("error", "?")
                self.fail(f"stream: X frame ({error})")
                return
            elif ftype == 0x53 or 0x61 <= ftype <= 0x7A:  # S, ancillary
                pass
            else:
                self.fail(f"protocol: unknown frame type {ftype:#x}")
                return
            pos = end
        del buf[:pos]
        if self.ended and self.transport is not None:
            self.transport.close()

    # --- end

    def fail(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason
        if self.transport is not None:
            self.transport.abort()

    def _finish(self) -> None:
        if self.failed is not None:
            self.rec.errors[self.failed] += 1
        if not self.done.done():
            self.done.set_result(None)


def _exc_name(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


@dataclass(frozen=True)
class WorkerJob:
    port: int
    path_template: str  # with {seed}
    starts: list[tuple[int, float]]  # (seed, seconds after "go" to open the connection)
    deadline: float  # seconds after "go": give up on streams not finished by then


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
        rec.errors[f"connect: {_exc_name(exc)}"] += 1
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


def worker_main(conn: Connection) -> None:
    """A client worker process: receive the job, say ready, wait for "go", run, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us on Ctrl-C
    job: WorkerJob = conn.recv()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if len(job.starts) + 64 > hard:
        conn.send(("error", f"{len(job.starts)} sockets do not fit the fd limit {hard}"))
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    conn.send(("ready", loop_name))
    t_go: float = conn.recv()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    rec, lag = asyncio.run(_worker_async(job, t_go))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - t0
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    conn.send(
        {
            "lateness": rec.lateness,
            "scheduled": rec.scheduled,
            "stream": rec.stream,
            "errors": dict(rec.errors),
            "files": rec.files,
            "complete": rec.complete,
            "connected": rec.connected,
            "ttfb": rec.ttfb,
            "lag": lag,
            "cpu": cpu,
            "wall": wall,
            "loop": loop_name,
        }
    )
    conn.close()


# --------------------------------------------------------------------------------------
# orchestration (main process)

GC_HOOK = """\
# written by the wirelab concurrency benchmark: logs the server's garbage collections
import atexit, gc, os, time

_path = os.environ.get("WIRELAB_BENCH_GC_LOG")
if _path:
    _fh = open(_path, "a", buffering=1)
    _t0 = [0.0]
    _counts = [0, 0, 0]
    _total = [0.0, 0.0, 0.0]

    def _gc_cb(phase, info):
        if phase == "start":
            _t0[0] = time.monotonic()
            return
        dt = time.monotonic() - _t0[0]
        gen = info["generation"]
        _counts[gen] += 1
        _total[gen] += dt
        if gen == 2 or dt >= 0.001:
            _fh.write(f"{os.getpid()} {_t0[0]:.6f} {dt:.6f} {gen} {info['collected']}\\n")

    def _gc_summary():
        ms = "/".join(f"{x * 1000:.0f}" for x in _total)
        _fh.write(f"# pid {os.getpid()}: gen0/1/2 collections {_counts[0]}/{_counts[1]}/"
                  f"{_counts[2]} taking {ms} ms in all, whole server lifetime\\n")

    gc.callbacks.append(_gc_cb)
    atexit.register(_gc_summary)
"""


@dataclass(frozen=True)
class GcEvent:
    start: float
    seconds: float
    generation: int


def read_gc_log(path: Path) -> tuple[list[GcEvent], str]:
    events: list[GcEvent] = []
    summary = ""
    if not path.exists():
        return events, summary
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            summary = line[2:]
            continue
        parts = line.split()
        if len(parts) == 5:
            events.append(GcEvent(float(parts[1]), float(parts[2]), int(parts[3])))
    return events, summary


def _pct(values: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def run_one(
    n: int, args: argparse.Namespace, command: list[str], tmp: Path
) -> dict[str, Any]:  # one N, on a fresh server
    count = max(1, math.ceil(args.duration / args.interval))
    workers = args.workers or (1 if n <= 5_000 else 2)
    workers = max(workers, math.ceil(n / MAX_SOCKETS_PER_WORKER))
    ramp = args.ramp if args.ramp is not None else max(2.0, n / 2500)
    path = (
        f"/v1/stream?count={count}&min_size={args.min_size}&max_size={args.max_size}"
        f"&min_interval={args.interval}&max_interval={args.interval}&seed={{seed}}"
        f"&content={args.content}"
    )
    run_dir = tmp / f"n{n}"
    run_dir.mkdir()
    extra_env: dict[str, str] = {}
    pythonpath = [os.environ.get("PYTHONPATH", "")]
    if args.server == "reference":
        pythonpath.insert(0, str(BENCH_DIR))
    gc_log = run_dir / "gc.log"
    if args.gc_trace:
        hook_dir = run_dir / "gc-hook"
        hook_dir.mkdir()
        (hook_dir / "sitecustomize.py").write_text(GC_HOOK)
        pythonpath.insert(0, str(hook_dir))
        extra_env["WIRELAB_BENCH_GC_LOG"] = str(gc_log)
    extra_env["PYTHONPATH"] = os.pathsep.join(p for p in pythonpath if p)
    if args.server == "reference" and args.reference_gc != "default":
        extra_env["BENCH_GC_TUNING"] = args.reference_gc

    procs_note = f"{workers} client process(es)"
    log(f"--- {server_label(args)}: {n} streams x {count} files, ramp {ramp:.1f} s, {procs_note}")
    port = free_port()
    if args.server == "reference":
        argv = python_argv("-m", "uvicorn", "_apps:paced_app", "--host", HOST, "--port",
                           str(port), *UVICORN_ARGS)  # fmt: skip
        srv = Server("reference", argv, port, env=dict(os.environ, **extra_env), cwd=BENCH_DIR,
                     log_path=run_dir / "reference.log")  # fmt: skip
    else:
        srv = wirelab_server(port, run_dir, command, extra_env)
    with srv as server:
        base = tree_stats(server.pid)
        ctx = mp.get_context("spawn")
        conns: list[Connection] = []
        procs: list[mp.process.BaseProcess] = []
        try:
            # workers get their streams round-robin so that each ramps evenly
            deadline_pad = ramp + count * args.interval + args.grace
            starts: list[list[tuple[int, float]]] = [[] for _ in range(workers)]
            for i in range(n):
                starts[i % workers].append((i, ramp * i / n))
            for w in range(workers):
                parent, child = ctx.Pipe()
                conns.append(parent)
                procs.append(ctx.Process(target=worker_main, args=(child,), daemon=True))
                procs[-1].start()
                child.close()
                parent.send(WorkerJob(port, path, starts[w], deadline_pad))
            loops = []
            for conn in conns:
                if not conn.poll(60):
                    raise RuntimeError("a client worker did not start")
                state, detail = conn.recv()
                if state != "ready":
                    raise RuntimeError(f"client worker: {detail}")
                loops.append(detail)
            t_go = time.monotonic() + 0.3
            for conn in conns:
                conn.send(t_go)
            # sample the server while the clients run
            samples: list[tuple[float, ProcStats]] = []
            results: list[dict[str, Any]] = []
            pending = list(conns)
            cpu_at_go: ProcStats | None = None
            while pending:
                now = time.monotonic()
                if now >= t_go and cpu_at_go is None:
                    cpu_at_go = tree_stats(server.pid)
                samples.append((now, tree_stats(server.pid)))
                for conn in list(pending):
                    if conn.poll(0):
                        results.append(conn.recv())
                        pending.remove(conn)
                if time.monotonic() > t_go + deadline_pad + 30:
                    raise RuntimeError("client workers did not report back")
                time.sleep(args.sample_period)
            t_end = time.monotonic()
            final = tree_stats(server.pid)
            for proc in procs:
                proc.join(5)
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.kill()
                    proc.join(5)
    gc_events, gc_summary = read_gc_log(gc_log) if args.gc_trace else ([], "")
    gc_events = [g for g in gc_events if t_go <= g.start <= t_end]  # not start-up, shutdown

    lat = np.concatenate([np.frombuffer(r["lateness"], dtype=np.float64) for r in results])
    sched = np.concatenate([np.frombuffer(r["scheduled"], dtype=np.float64) for r in results])
    connected = np.concatenate([np.frombuffer(r["connected"], dtype=np.float64) for r in results])
    ttfb = np.concatenate([np.frombuffer(r["ttfb"], dtype=np.float64) for r in results])
    sid = np.concatenate([np.frombuffer(r["stream"], dtype=np.int_) for r in results])
    # Lateness = a constant per-stream part (the stream's least late file: how far the
    # server's schedule origin lags the response head) + jitter on top of it.
    stream_min = np.full(n, np.inf)
    if lat.size:
        np.minimum.at(stream_min, sid, lat)
    jitter = lat - stream_min[sid] if lat.size else lat
    stream_min = stream_min[np.isfinite(stream_min)]
    lag = np.array([x for r in results for x in r["lag"]], dtype=np.float64)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    all_connected = float(connected.max()) if connected.size else math.nan
    steady = lat[sched >= all_connected] if connected.size else lat[:0]
    start_cpu = cpu_at_go or base
    wall = t_end - t_go
    server_cpu = final.cpu - start_cpu.cpu
    expected = n * count
    received = int(sum(r["files"] for r in results))

    timeline: list[dict[str, Any]] = []
    if sched.size:
        prev: tuple[float, ProcStats] | None = None
        for sec in range(math.ceil(t_end - t_go)):
            lo, hi = t_go + sec, t_go + sec + 1
            sel = lat[(sched >= lo) & (sched < hi)]
            window = [s for s in samples if lo <= s[0] < hi]
            cpu_pct = None
            if window:
                first = prev or window[0]
                last = window[-1]
                if last[0] > first[0]:
                    cpu_pct = (last[1].cpu - first[1].cpu) / (last[0] - first[0]) * 100
                prev = last
            gcs = [g for g in gc_events if lo <= g.start < hi]
            timeline.append({
                "t": sec,
                "files": int(sel.size),
                "p99_ms": _round_ms(_pct(sel, 99)),
                "max_ms": round(float(sel.max()) * 1000, 2) if sel.size else None,
                "server_cpu_pct": round(cpu_pct, 1) if cpu_pct is not None else None,
                "server_rss_mb": round(window[-1][1].rss / MB, 1) if window else None,
                "gc_gen2": sum(1 for g in gcs if g.generation == 2),
                "gc_max_ms": round(max((g.seconds for g in gcs), default=0.0) * 1000, 2),
            })  # fmt: skip

    gen2 = [g for g in gc_events if g.generation == 2]
    return {
        "server": server_label(args),
        "streams": n,
        "files_per_stream": count,
        "interval_s": args.interval,
        "ramp_s": ramp,
        "client_processes": workers,
        "client_loops": loops,
        "files_expected": expected,
        "files_received": received,
        "streams_complete": int(sum(r["complete"] for r in results)),
        "errors": dict(errors),
        "time_to_all_connected_s": round(all_connected - t_go, 3) if connected.size else None,
        "ttfb_p99_ms": _round_ms(_pct(ttfb, 99)),
        "lateness_all_ms": {
            "n": int(lat.size),
            "p50": _round_ms(_pct(lat, 50)),
            "p99": _round_ms(_pct(lat, 99)),
            "max": _round_ms(float(lat.max()) if lat.size else None),
        },
        "stream_offset_ms": {  # per stream: its least late file
            "p50": _round_ms(_pct(stream_min, 50)),
            "p99": _round_ms(_pct(stream_min, 99)),
            "max": _round_ms(float(stream_min.max()) if stream_min.size else None),
        },
        "jitter_ms": {  # per file: lateness minus its stream's offset
            "p50": _round_ms(_pct(jitter, 50)),
            "p99": _round_ms(_pct(jitter, 99)),
            "max": _round_ms(float(jitter.max()) if jitter.size else None),
        },
        "lateness_steady_ms": {
            "n": int(steady.size),
            "p50": _round_ms(_pct(steady, 50)),
            "p99": _round_ms(_pct(steady, 99)),
            "max": _round_ms(float(steady.max()) if steady.size else None),
        },
        "server_rss_baseline_mb": round(base.rss / MB, 1),
        "server_rss_peak_mb": round(final.rss_peak / MB, 1),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_pct": round(server_cpu / wall * 100, 1) if wall > 0 else None,
        "server_cpu_sys_share": round((final.cpu_sys - start_cpu.cpu_sys) / server_cpu, 2)
        if server_cpu > 0
        else None,
        "server_cpu_us_per_file": round(server_cpu / received * 1e6, 1) if received else None,
        "wall_s": round(wall, 2),
        "client_cpu_pct": [round(r["cpu"] / r["wall"] * 100, 1) for r in results],
        "client_loop_lag_ms": {"p99": _round_ms(_pct(lag, 99)),
                               "max": _round_ms(float(lag.max()) if lag.size else None)},
        "gc": {
            "traced": bool(args.gc_trace),
            "gen2_count": len(gen2),
            "gen2_max_ms": round(max((g.seconds for g in gen2), default=0.0) * 1000, 2),
            "max_pause_ms": round(max((g.seconds for g in gc_events), default=0.0) * 1000, 2),
            "max_pause_ms_by_gen": [
                round(max((g.seconds for g in gc_events if g.generation == gen), default=0.0)
                      * 1000, 2)
                for gen in range(3)
            ],
            "pauses_over_10ms": sum(1 for g in gc_events if g.seconds > 0.010),
            "longest": [  # (seconds into the run, pause ms, generation)
                [round(g.start - t_go, 2), round(g.seconds * 1000, 1), g.generation]
                for g in sorted(gc_events, key=lambda g: -g.seconds)[:10]
            ],
            "summary": gc_summary,
        },
        "timeline": timeline,
    }  # fmt: skip


def server_label(args: argparse.Namespace) -> str:
    if args.server == "reference":
        return f"reference (paced_app, {args.reference_gc} GC settings)"
    return "wirelab"


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def verdict(runs: list[dict[str, Any]]) -> tuple[str, str]:
    run = next((r for r in runs if r["streams"] == TARGET_STREAMS), None)
    if run is None:
        return "NOT RUN", f"{TARGET_STREAMS:,} streams were not part of this run"
    p99 = run["lateness_steady_ms"]["p99"]
    rss = run["server_rss_peak_mb"] * MB
    problems = []
    if run["files_received"] != run["files_expected"] or run["errors"]:
        problems.append(
            f"{run['files_received']}/{run['files_expected']} files, errors {run['errors']}"
        )
    if p99 is None or p99 > TARGET_P99 * 1000:
        problems.append(f"p99 {p99} ms > {TARGET_P99 * 1000:.0f} ms")
    if rss > TARGET_RSS:
        problems.append(f"RSS {rss / MB:.0f} MB > {TARGET_RSS / MB:.0f} MB")
    detail = f"steady p99 {p99} ms, peak RSS {run['server_rss_peak_mb']:.0f} MB"
    return ("FAIL", detail + "; " + "; ".join(problems)) if problems else ("PASS", detail)


def print_report(runs: list[dict[str, Any]], timeline: bool) -> None:
    rows = []
    for r in runs:
        la, st = r["lateness_all_ms"], r["lateness_steady_ms"]
        errors = sum(r["errors"].values())
        rows.append([
            f"{r['streams']:,}",
            f"{r['files_received']:,}/{r['files_expected']:,}",
            str(errors),
            f"{_fmt(st['p50'])} / {_fmt(st['p99'])} / {_fmt(st['max'])}",
            f"{_fmt(la['p50'])} / {_fmt(la['p99'])} / {_fmt(la['max'])}",
            f"{r['server_rss_baseline_mb']:.0f} -> {r['server_rss_peak_mb']:.0f}",
            f"{r['server_cpu_s']:.1f} s ({r['server_cpu_pct']:.0f}%, "
            f"{r['server_cpu_us_per_file']:.0f} us/file)",
            " + ".join(f"{c:.0f}%" for c in r["client_cpu_pct"])
            + f", lag p99 {_fmt(r['client_loop_lag_ms']['p99'])} ms",
        ])  # fmt: skip
    print(
        f"paced streams: 1-4 KiB files every {runs[0]['interval_s']} s, "
        f"{runs[0]['files_per_stream']} files per stream; lateness in ms "
        "(steady = files scheduled after the last connection was made)"
    )
    print(fmt_table(["streams", "files", "errors", "steady p50/p99/max",
                     "all p50/p99/max", "server RSS MB (idle -> peak)", "server CPU",
                     "client CPU"], rows))  # fmt: skip
    for r in runs:
        if r["errors"]:
            print(f"{r['streams']:,} streams, errors: {r['errors']}")
        gc = r["gc"]
        if gc["traced"]:
            g0, g1, g2 = gc["max_pause_ms_by_gen"]
            print(f"{r['streams']:,} streams, server GC during the run: {gc['gen2_count']} full "
                  f"collections; longest pause by generation 0/1/2: {g0}/{g1}/{g2} ms; "
                  f"{gc['pauses_over_10ms']} pauses > 10 ms ({gc['summary']})")  # fmt: skip
        print(
            f"{r['streams']:,} streams: all connected {r['time_to_all_connected_s']} s "
            f"after the first; response head p99 {r['ttfb_p99_ms']} ms after connect"
        )
        so, ji = r["stream_offset_ms"], r["jitter_ms"]
        print(
            f"{r['streams']:,} streams: lateness = per-stream constant offset (p50/p99/max "
            f"{_fmt(so['p50'])}/{_fmt(so['p99'])}/{_fmt(so['max'])} ms) + per-file jitter "
            f"(p50/p99/max {_fmt(ji['p50'])}/{_fmt(ji['p99'])}/{_fmt(ji['max'])} ms)"
        )
    if timeline:
        for r in runs:
            print(f"\ntimeline, {r['streams']:,} streams (per second of the run)")
            print(fmt_table(
                ["t", "files", "p99 ms", "max ms", "server CPU %", "RSS MB", "GC gen2",
                 "GC max ms"],
                [[str(x["t"]), str(x["files"]), _fmt(x["p99_ms"]), _fmt(x["max_ms"]),
                  _fmt(x["server_cpu_pct"]), _fmt(x["server_rss_mb"]), str(x["gc_gen2"]),
                  _fmt(x["gc_max_ms"])] for x in r["timeline"]],
            ))  # fmt: skip
    status, detail = verdict(runs)
    print(
        f"\ntarget: {TARGET_STREAMS:,} streams with p99 lateness <= {TARGET_P99 * 1000:.0f} ms "
        f"and server RSS <= {TARGET_RSS / MB:.0f} MB: {status} ({detail})"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=[1000, 5000, 10000],
        help="numbers of concurrent streams, one run each (default 1000 5000 10000)",
    )
    parser.add_argument(
        "--duration", type=float, default=12.0, help="seconds of files per stream (default 12)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between files (default 0.5)"
    )
    parser.add_argument("--min-size", type=int, default=1024)
    parser.add_argument("--max-size", type=int, default=4096)
    parser.add_argument("--content", default="random", choices=["random", "sine", "ramp"])
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="seconds over which connections open (default max(2, N/2500))",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="client processes (default 1 up to 5,000 streams, else 2)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=20.0,
        help="seconds past the schedule before unfinished streams count as timeouts (default 20)",
    )
    parser.add_argument(
        "--sample-period", type=float, default=0.25, help="server /proc sampling period, seconds"
    )
    parser.add_argument(
        "--gc-trace",
        action="store_true",
        help="log the server's garbage collections (a sitecustomize hook)",
    )
    parser.add_argument("--timeline", action="store_true", help="print per-second figures")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--server", choices=["wirelab", "reference"], default="wirelab",
        help="wirelab (default), or the floor: uvicorn with the same settings serving "
        "_apps.paced_app, one write per file and nothing else",
    )  # fmt: skip
    parser.add_argument(
        "--reference-gc", default="default", metavar="SETTINGS",
        help="GC settings of the reference server: default (CPython's), wirelab "
        "(gc.freeze() after start-up, thresholds 50000/50/100) or freeze:T0,T1,T2",
    )  # fmt: skip
    parser.add_argument(
        "--wirelab-cmd",
        metavar="CMD",
        help="command that starts the server instead of `wirelab serve`",
    )
    args = parser.parse_args()
    install_cleanup()
    load = loadavg()
    command = wirelab_command(args.wirelab_cmd) if args.server == "wirelab" else []
    runs = []
    with tempfile.TemporaryDirectory(prefix="wirelab-bench-") as tmp:
        for n in args.streams:
            runs.append(run_one(n, args, command, Path(tmp)))
    if args.json:
        status, detail = verdict(runs)
        print(json.dumps({"cpus": os.cpu_count(), "loadavg_at_start": load, "runs": runs,
                          "target": {"status": status, "detail": detail}}, indent=2))  # fmt: skip
    else:
        print_report(runs, args.timeline)
        print(f"load average at start: {load:.2f} (other work on the machine skews the figures)")
    return 0 if verdict(runs)[0] != "FAIL" else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
