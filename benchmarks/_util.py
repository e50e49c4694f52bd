"""Shared helpers for the benchmark scripts.

Everything here talks to 127.0.0.1 only. Servers started through :class:`Server` are
stopped on normal exit, on exceptions, on Ctrl-C and on SIGTERM (see :func:`stop_all`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

HOST = "127.0.0.1"
MB = 1_000_000  # throughput and memory figures are in decimal megabytes
MIB = 1024 * 1024
BENCH_DIR = Path(__file__).resolve().parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------
# statistics


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (mean of the two middle values for an even count)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


# ---------------------------------------------------------------------------------------
# ports and readiness


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tcp_accepts(port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of ``GET path`` on 127.0.0.1:``port`` (never via a proxy), or None."""
    try:
        with _NO_PROXY_OPENER.open(f"http://{HOST}:{port}{path}", timeout=timeout) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# server processes


class ServerError(RuntimeError):
    """A server process did not start."""


_RUNNING: list[Server] = []


class Server:
    """A server subprocess on 127.0.0.1.

    Use as a context manager: ``with Server(name, argv, port, ...) as srv: ...``. Readiness
    is ``GET ready_path`` answering 200 when ``ready_path`` is given, else a TCP accept.
    The process runs in its own session, so a terminal Ctrl-C reaches only this script,
    which then stops the server with SIGINT (SIGKILL after ``stop_timeout``).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        *,
        ready_path: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.ready_path = ready_path
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: int | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServerError(f"{self.name}: not started")
        return self.proc.pid

    def start(self) -> Server:
        if self.log_path is not None:
            self._log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log if self._log is not None else subprocess.DEVNULL,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
        _RUNNING.append(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise ServerError(
                    f"{self.name}: exited with code {code} before ready{self._tail()}"
                )
            if self.ready_path is not None:
                if http_status(self.port, self.ready_path) == 200:
                    return
            elif tcp_accepts(self.port):
                return
            time.sleep(0.05)
        raise ServerError(f"{self.name}: not ready after {self.start_timeout:.0f} s{self._tail()}")

    def _tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")[-2000:]
        return f"\n--- {self.log_path.name} (tail) ---\n{text}" if text else ""

    def stop(self) -> int | None:
        """SIGINT, then SIGKILL to the server's process group after ``stop_timeout``."""
        proc = self.proc
        if proc is None:
            return None
        members = descendants(proc.pid)[1:] if proc.poll() is None else []
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                # not reaped yet, so the group id is still ours
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # worker processes the server left behind in its own process group
        for member in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(member) == proc.pid:
                    os.kill(member, signal.SIGKILL)
        if self._log is not None:
            os.close(self._log)
            self._log = None
        if self in _RUNNING:
            _RUNNING.remove(self)
        return proc.returncode

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    stop_all()
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """Stop servers at interpreter exit and on SIGTERM/SIGHUP (Ctrl-C unwinds normally)."""
    atexit.register(stop_all)
    # Ctrl-C raises KeyboardInterrupt even when the script was started with SIGINT ignored
    # (as a background job of a non-interactive shell), so that servers are stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)


def python_argv(*args: str) -> list[str]:
    """``[this interpreter, *args]``."""
    return [sys.executable, *args]


def venv_script(name: str) -> str | None:
    """A console script installed beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


# ---------------------------------------------------------------------------------------
# the wirelab server

# generous limits so that the server's safety caps do not cut the benchmark streams
# (the names `wirelab serve --help` lists)
WIRELAB_ENV = {
    "WIRELAB_STREAM_LIMIT_COUNT": str(100_000),
    "WIRELAB_STREAM_LIMIT_FILE_SIZE": str(64 * MIB),
    "WIRELAB_STREAM_LIMIT_TOTAL_BYTES": str(64 * 1024 * MIB),
    "WIRELAB_STREAM_LIMIT_DURATION": str(3600),
}


# the uvicorn settings of `wirelab serve` (see wirelab/server/_serve.py), so that the
# ceiling differs from wirelab only in what the app does
UVICORN_ARGS = ["--http", "httptools", "--loop", "uvloop", "--lifespan", "on",
                "--log-level", "warning", "--no-access-log", "--no-server-header"]  # fmt: skip


def wirelab_command(override: str | None) -> list[str]:
    """The command that starts a wirelab server, without --host/--port."""
    if override:
        return shlex.split(override)
    exe = venv_script("wirelab")
    if exe is None:
        raise SystemExit("wirelab is not installed in this environment (pip install -e .)")
    return [exe, "serve"]


def wirelab_server(
    port: int, log_dir: Path, command: list[str], extra_env: Mapping[str, str] | None = None
) -> Server:
    """`wirelab serve` on 127.0.0.1:``port`` with the limits raised; ready on /healthz.

    No per-request access log (``--log-level warning``); data in ``log_dir/data``.
    """
    env = dict(os.environ, **WIRELAB_ENV, **(extra_env or {}))
    data = log_dir / "data"
    data.mkdir(exist_ok=True)
    flags = ["--host", HOST, "--port", str(port), "--log-level", "warning", "--data-dir", str(data)]
    return Server(
        "wirelab",
        [*command, *flags],
        port,
        ready_path="/healthz",
        env=env,
        log_path=log_dir / "wirelab.log",
    )


def uvicorn_server(name: str, app: str, port: int, log_dir: Path, env: Mapping[str, str]) -> Server:
    """``uvicorn APP`` (an app of this folder, e.g. ``_apps:paced_app``) with the settings of
    `wirelab serve` (:data:`UVICORN_ARGS`) on 127.0.0.1:``port``; logs to ``log_dir/NAME.log``.
    ``env`` must put this folder on PYTHONPATH."""
    argv = python_argv("-m", "uvicorn", app, "--host", HOST, "--port", str(port), *UVICORN_ARGS)
    return Server(name, argv, port, env=env, cwd=BENCH_DIR, log_path=log_dir / f"{name}.log")


# ---------------------------------------------------------------------------------------
# /proc readings


@dataclass(frozen=True)
class ProcStats:
    """Memory and CPU of a process (or a process tree: sums over its members)."""

    rss_peak: int  # bytes, VmHWM
    rss: int  # bytes, VmRSS
    cpu: float  # seconds, utime + stime
    cpu_sys: float  # seconds, stime alone (time in the kernel: socket copies, syscalls)

    def __sub__(self, other: ProcStats) -> ProcStats:
        """CPU spent between ``other`` and ``self``; memory figures of ``self``."""
        return ProcStats(
            self.rss_peak, self.rss, self.cpu - other.cpu, self.cpu_sys - other.cpu_sys
        )


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        data = fh.read()
    # the command name (field 2) is parenthesised and may hold spaces
    return data[data.rindex(")") + 2 :].split()


def _cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` in seconds (fields 14 and 15 of /proc/PID/stat)."""
    fields = _stat_fields(pid)  # fields[0] is field 3 (state)
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def proc_stats(pid: int) -> ProcStats:
    """VmHWM, VmRSS and CPU seconds of one process."""
    user, system = _cpu_times(pid)
    return ProcStats(
        rss_peak=_status_kib(pid, "VmHWM") * 1024,
        rss=_status_kib(pid, "VmRSS") * 1024,
        cpu=user + system,
        cpu_sys=system,
    )


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found = [pid]
    i = 0
    while i < len(found):
        found.extend(children.get(found[i], []))
        i += 1
    return found


def tree_stats(pid: int) -> ProcStats:
    """:func:`proc_stats` summed over ``pid`` and its live descendants."""
    peak = rss = 0
    cpu = cpu_sys = 0.0
    for member in descendants(pid):
        try:
            st = proc_stats(member)
        except OSError:
            continue
        peak += st.rss_peak
        rss += st.rss
        cpu += st.cpu
        cpu_sys += st.cpu_sys
    return ProcStats(peak, rss, cpu, cpu_sys)


# ---------------------------------------------------------------------------------------
# curl


class CurlError(RuntimeError):
    """curl failed or read less than expected."""


@dataclass(frozen=True)
class CurlResult:
    size: int  # bytes downloaded (HTTP body)
    seconds: float  # curl's time_total

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / MB if self.seconds > 0 else math.nan


def pin_tree(pid: int, cpus: set[int]) -> None:
    """Restrict every thread of process ``pid`` and of its descendants to ``cpus``
    (threads made later inherit their creator's set)."""
    for member in (pid, *descendants(pid)):
        with contextlib.suppress(OSError):  # a thread may end while we walk the list
            for tid in os.listdir(f"/proc/{member}/task"):
                os.sched_setaffinity(int(tid), cpus)


def curl(
    url: str,
    *,
    timeout: float = 120.0,
    expect_size: int | None = None,
    cpus: set[int] | None = None,
) -> CurlResult:
    """Read ``url`` with curl to /dev/null; size and time as curl reports them. ``cpus``:
    run curl on these CPUs only."""
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"benchmarks only talk to {HOST}: {url}")
    argv = [
        "curl",
        "-s",
        "-S",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        str(timeout),
        "-o",
        "/dev/null",
        "-w",
        "%{size_download} %{time_total}",
        url,
    ]
    pin = None if cpus is None else functools.partial(os.sched_setaffinity, 0, cpus)
    out = subprocess.run(argv, capture_output=True, text=True, check=False, preexec_fn=pin)
    if out.returncode != 0:
        raise CurlError(f"curl exit {out.returncode}: {out.stderr.strip()} ({url})")
    size_s, time_s = out.stdout.split()
    result = CurlResult(int(size_s), float(time_s))
    if expect_size is not None and result.size != expect_size:
        raise CurlError(f"read {result.size} bytes, expected {expect_size} ({url})")
    return result


def have_curl() -> bool:
    return shutil.which("curl") is not None


# ---------------------------------------------------------------------------------------
# output


def fmt_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with columns padded to their widest cell."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def set_env(values: Mapping[str, str | None]) -> None:
    """Set this process's environment variables (``None``: remove the variable)."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def loadavg() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    with open("/proc/loadavg") as fh:
        return float(fh.read().split()[0])


def log(msg: str) -> None:
    """Progress messages go to stderr so that --json output stays clean."""
    print(msg, file=sys.stderr, flush=True)
