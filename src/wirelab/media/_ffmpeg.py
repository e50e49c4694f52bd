"""Running ffmpeg: its own process group, progress, cancellation, errors in plain words.

Each run starts ffmpeg in a new session (so it and anything it spawns form one process
group that nothing else shares) and, on Linux, with ``PR_SET_PDEATHSIG`` so that it dies
with the server if the server is killed. util-linux's ``setpriv --pdeathsig KILL`` asks
for that signal and execs ffmpeg when it is installed: the server then starts it with
``vfork`` (``posix_spawn``) instead of ``fork`` + ``preexec_fn``, which copies the
server's page tables (~10 ms per run for a 100 MB server); without it, ``preexec_fn``.
Cancelling the awaiting task stops the run: the group gets SIGINT (ffmpeg finishes its
file cleanly), then SIGKILL after the grace period; the process is always reaped before
the cancellation propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

from ._errors import JobFailed
from ._progress import ProgressParser

__all__ = ["STDERR_TAIL", "classify_failure", "run_ffmpeg"]

STDERR_TAIL = 16 * 1024
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to SIGKILL the child when the thread that forked it (the event loop's)
    ends, e.g. when the server is SIGKILLed: no ffmpeg outlives its server."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


_launcher: list[str] | None = None


def _find_launcher() -> list[str]:
    """``[setpriv, --pdeathsig, KILL, --]`` when that works here (Linux, util-linux 2.33
    or later), else ``[]``."""
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    if setpriv is None:
        return []
    argv = [setpriv, "--pdeathsig", "KILL", "--"]
    try:
        subprocess.run([*argv, "true"], check=True, capture_output=True, timeout=10)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return []
    return argv


async def _spawn_options() -> tuple[list[str], Callable[[], None] | None]:
    """The argv prefix and ``preexec_fn`` that give ffmpeg its death signal."""
    global _launcher
    if sys.platform != "linux":
        return [], None
    if _launcher is None:
        _launcher = await asyncio.to_thread(_find_launcher)
    return (_launcher, None) if _launcher else ([], _die_with_parent)


async def run_ffmpeg(
    argv: list[str],
    *,
    on_progress: Callable[[float], None],
    grace: float,
    on_start: Callable[[int], None] | None = None,
    sink: Callable[[bytes], None] | None = None,
) -> tuple[int, str]:
    """Run ``argv`` (ffmpeg with ``-progress pipe:1``) and return ``(exit status, stderr
    tail)``. ``on_progress(seconds)`` is called whenever the output position advances;
    ``on_start(pid)`` once started (the pid is also the process group id). With ``sink``,
    stdout goes there instead of the progress parser (ffprobe's JSON)."""
    launcher, preexec = await _spawn_options()
    process = await asyncio.create_subprocess_exec(
        *launcher,
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=preexec,
    )
    if on_start is not None:
        on_start(process.pid)
    try:
        _, stderr = await asyncio.gather(
            _read_stdout(process, on_progress, sink), _read_tail(process)
        )
        return await process.wait(), stderr
    except BaseException:
        await _stop(process, grace)
        raise


async def _read_stdout(
    process: asyncio.subprocess.Process,
    on_progress: Callable[[float], None],
    sink: Callable[[bytes], None] | None,
) -> None:
    assert process.stdout is not None
    parser = ProgressParser()
    while chunk := await process.stdout.read(65536):
        if sink is not None:
            sink(chunk)
        elif parser.feed(chunk):
            on_progress(parser.seconds)


async def _read_tail(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    tail = b""
    while chunk := await process.stderr.read(4096):
        tail = (tail + chunk)[-STDERR_TAIL:]
    return tail.decode("utf-8", "replace")


async def _stop(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGINT the process group, SIGKILL it after ``grace`` seconds, reap the process.
    Shielded: a second cancellation cannot leave ffmpeg running."""

    async def stop() -> None:
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
        # Children ffmpeg may have left in its group go too.
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()

    task = asyncio.ensure_future(stop())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


_HTTP_STATUS = re.compile(r"Server returned (\d{3}|4XX|5XX)[^\n]*")
_NETWORK = re.compile(
    r"Connection refused|Connection timed out|timed out|Network is unreachable|"
    r"Connection reset|End of file|Input/output error|I/O error|Immediate exit requested"
)


def classify_failure(
    status: int, stderr: str, refusals: list[str], failures: list[str]
) -> JobFailed:
    """The job error for an ffmpeg run that exited with ``status``: a source-safety
    refusal or HTTP 4xx is final; connection trouble and 5xx are retryable."""
    if refusals:
        return JobFailed(f"source refused: {refusals[0]}", retryable=False)
    if failures:
        return JobFailed(f"network error: {failures[0]}", retryable=True)
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    detail = last.strip() or f"ffmpeg exited with status {status}"
    if match := _HTTP_STATUS.search(stderr):
        code = match.group(1)
        if code == "404":
            return JobFailed(f"the source does not exist (HTTP 404): {detail}")
        retryable = code.startswith("5")
        return JobFailed(f"the source answered HTTP {code}: {detail}", retryable=retryable)
    if "Invalid data found when processing input" in stderr or "could not find codec" in stderr:
        return JobFailed(f"the source is not a media file ffmpeg can read: {detail}")
    if _NETWORK.search(stderr):
        return JobFailed(f"network error while reading the source: {detail}", retryable=True)
    return JobFailed(f"ffmpeg failed (exit status {status}): {detail}")
