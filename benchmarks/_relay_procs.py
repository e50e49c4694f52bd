"""Processes of benchmarks/relay_transfer.py: a `wirelab serve` on port 0, piping-server,
timed client commands and a sampler of a server's resident memory.

Everything talks to 127.0.0.1 only. Secrets (API tokens) never go on a command line: the
wirelab CLI reads them from its environment, curl from a header file (``-H @FILE``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from _util import BENCH_DIR, HOST, Server, free_port, proc_stats

PIPING_DIR = BENCH_DIR / "piping"
_RUNNING_ON = re.compile(r"running on (http://[\d.]+:\d+)", re.IGNORECASE)


class BenchError(RuntimeError):
    """A command of the benchmark failed or produced something unexpected."""


# ---------------------------------------------------------------------------------------
# the wirelab server on port 0


class WirelabServer:
    """``wirelab serve --port 0 --data-dir DIR`` whose base URL is read from its log.

    uvicorn logs ``Uvicorn running on http://127.0.0.1:PORT`` once it listens (at log
    level info); a thread copies the server's stderr to ``log_path`` (so a full pipe can
    never block the server) and sets :attr:`url` when that line appears. Stopped with
    SIGINT (a graceful shutdown), SIGKILL after ``stop_timeout``.
    """

    def __init__(
        self,
        wirelab: Sequence[str],
        data_dir: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.argv = [*wirelab, "serve", "--host", HOST, "--port", "0", "--data-dir", str(data_dir)]
        self.argv += ["--log-level", "info"]  # the "running on" line is an info message
        self.env = dict(os.environ if env is None else env)
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("the wirelab server is not running")
        return self.proc.pid

    def _copy_log(self, stream: IO[bytes], out: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            out.write(raw)
            out.flush()
            if not self.url and (m := _RUNNING_ON.search(raw.decode(errors="replace"))):
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()  # the server exited: wake start() to report it

    def start(self) -> WirelabServer:
        out = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal Ctrl-C reaches the benchmark only
        )
        self._drain = threading.Thread(
            target=self._copy_log, args=(self.proc.stderr, out), daemon=True
        )
        self._drain.start()
        if not self._ready.wait(self.start_timeout) or not self.url:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"wirelab serve did not start; its log ends with:\n{tail}")
        return self

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._drain is not None:
            self._drain.join(5)
        if proc.stderr is not None:
            proc.stderr.close()
        self.proc = None

    def __enter__(self) -> WirelabServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def add_user(wirelab: Sequence[str], name: str, data_dir: Path) -> str:
    """Create user *name* with ``wirelab users add --json``; return its API token."""
    argv = [*wirelab, "users", "add", name, "--data-dir", str(data_dir), "--json"]
    out = run_checked(argv, timeout=60)
    token = json.loads(out)["token"]
    assert isinstance(token, str)
    return token


# ---------------------------------------------------------------------------------------
# piping-server


def piping_server(log_dir: Path) -> Server:
    """piping-server (installed by ``npm ci`` in benchmarks/piping) on a free port."""
    node = shutil.which("node")
    script = PIPING_DIR / "node_modules" / ".bin" / "piping-server"
    if node is None or not script.exists():
        raise BenchError("piping-server is not installed: run `npm ci` in benchmarks/piping")
    port = free_port()
    argv = [node, str(script), "--host", HOST, "--http-port", str(port)]
    return Server("piping-server", argv, port, cwd=PIPING_DIR, log_path=log_dir / "piping.log")


# ---------------------------------------------------------------------------------------
# commands


def run_checked(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float
) -> str:
    """Run *argv*; return its stdout, or raise :class:`BenchError` with its stderr."""
    proc = subprocess.run(
        list(argv), env=None if env is None else dict(env), capture_output=True, timeout=timeout
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-2000:]
        raise BenchError(f"{argv[0]} {' '.join(argv[1:3])}... exited {proc.returncode}: {err}")
    return proc.stdout.decode(errors="replace")


@dataclass(frozen=True)
class Timed:
    """A step's wall time (from just before its first command started to the exit of its
    last), the CPU seconds its commands used, and the stdout of the last one."""

    seconds: float
    cpu: float
    stdout: str = ""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float) -> Timed:
    cpu, start = _children_cpu(), time.perf_counter()
    out = run_checked(argv, env=env, timeout=timeout)
    return Timed(time.perf_counter() - start, _children_cpu() - cpu, out)


def timed_pair(first: Sequence[str], second: Sequence[str], *, timeout: float) -> Timed:
    """Run two commands concurrently; time from the first start to the last exit."""
    cpu, start = _children_cpu(), time.perf_counter()
    procs = [
        subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for argv in (first, second)
    ]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    elapsed = time.perf_counter() - start
    for argv, p, (_, err) in zip((first, second), procs, outs, strict=True):
        if p.returncode != 0:
            raise BenchError(f"{argv[0]} exited {p.returncode}: {err.decode(errors='replace')}")
    return Timed(elapsed, _children_cpu() - cpu)


def curl_base(header_file: Path | None = None) -> list[str]:
    """curl, silent but for errors, failing on HTTP errors, never through a proxy.

    ``Expect:`` turns off ``Expect: 100-continue`` (a round trip before every upload).
    """
    argv = ["curl", "-sS", "--fail", "--noproxy", "*", "-H", "Expect:"]
    if header_file is not None:
        argv += ["-H", f"@{header_file}"]
    return argv


# ---------------------------------------------------------------------------------------
# memory


class RssSampler:
    """Samples VmRSS of process *pid* every *interval* seconds in a thread; :attr:`peak`
    is the largest value seen (bytes) since the last :meth:`reset`."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, proc_stats(self.pid).rss)
            self._stop.wait(self.interval)

    def reset(self) -> None:
        self.peak = 0

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
