"""``wirelab media fetch | jobs | show | cancel``: the media service's user commands.

Only option parsing and output live here; the work is :class:`wirelab.client.MediaClient`.
Server, token and TLS options are the relay commands' (``--url``/``WIRELAB_URL``,
``--token-file``/``WIRELAB_TOKEN``/the login file, ``--cacert``, ``--insecure``).

Output contract: results on stdout, progress and errors on stderr. With ``--json`` stdout
gets exactly one JSON object, ``{"ok": true, ...}`` or, for any failure (usage errors
found after parsing included), ``{"ok": false, "error": "...", ...}``. Exit status 0 on
success, 1 on any failure, 2 on bad usage, 130 when interrupted.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from ._cli_common import describe_error, fail, human_size
from ._cli_relay import BarProgress, client_settings, connection_options
from ._closing import Closing
from ._exceptions import HTTPStatusError, UsageError, WirelabError

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

    from .client import MediaClient, MediaJob

__all__ = ["JobBar", "register"]

F = TypeVar("F", bound=Callable[..., Any])
_STATES: Final = ("queued", "running", "succeeded", "failed", "canceled")


def _emit(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False))


class _Failure(Exception):
    """Raised inside a command to end it with ``extra`` fields in its JSON error object."""

    def __init__(self, cause: BaseException, message: str | None = None, **extra: Any) -> None:
        super().__init__(message or describe_error(cause))
        self.cause = cause
        self.extra = extra


def _error_doc(exc: BaseException) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    message = str(exc) if isinstance(exc, _Failure) else describe_error(exc)
    if isinstance(exc, _Failure):
        extra, exc = exc.extra, exc.cause
    if isinstance(exc, HTTPStatusError):
        extra = {"status": exc.status_code, **extra}
    job = getattr(exc, "job", None)
    if job is not None and "job" not in extra:
        extra["job"] = job.raw
    return {"ok": False, "error": message, **extra}


def outcome(func: F) -> F:
    """End the command as the module docstring says: one JSON object with ``--json``, one
    ``wirelab: error:`` line on stderr for every failure, and the exit status."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except click.ClickException as exc:  # usage errors found inside the command
            if as_json:
                _emit({"ok": False, "error": exc.format_message()})
            raise
        except (WirelabError, OSError, KeyboardInterrupt, _Failure) as exc:
            if as_json:
                _emit(_error_doc(exc))
            cause = exc.cause if isinstance(exc, _Failure) else exc
            fail(str(exc) if isinstance(exc, _Failure) else describe_error(exc),
                 130 if isinstance(cause, KeyboardInterrupt) else 1)  # fmt: skip
        return None

    return wrapper  # type: ignore[return-value]


def open_media(opts: dict[str, Any]) -> MediaClient:
    """A :class:`MediaClient` from the shared connection options."""
    from .client import MediaClient

    settings = client_settings(opts)
    return MediaClient(settings.pop("url"), **settings)


class JobBar(Closing):
    """Draws a job's progress (0-100 %, with its state and phase) as a bar on stderr.

    On a terminal a rich bar; elsewhere one line per change of state or phase (logs stay
    short). Nothing when disabled (``--json``). ``console`` replaces rich's console (tests).
    """

    def __init__(self, *, enabled: bool, console: Any = None) -> None:
        self._enabled = enabled
        self._bar: RichProgress | None = None
        self._task: Any = None
        self._last: tuple[str, str | None] | None = None
        if enabled and (console is not None or sys.stderr.isatty()):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console or Console(stderr=True),
                transient=console is None,
            )

    def close(self) -> None:
        """Take the bar off the screen (it is drawn from the first update on)."""
        if self._bar is not None and self._task is not None:
            self._bar.stop()

    def update(self, job: MediaJob) -> None:
        """Show ``job`` as it is now (the :meth:`MediaClient.wait` callback)."""
        label = f"job {job.id}: {job.state}" + (f" ({job.phase})" if job.phase else "")
        if self._bar is not None:
            if self._task is None:
                self._bar.start()
                self._task = self._bar.add_task(label, total=100)
            self._bar.update(self._task, completed=job.progress, description=label)
        elif self._enabled and self._last != (job.state, job.phase):
            click.echo(f"{label} {job.progress:.0f}%", err=True)
        self._last = (job.state, job.phase)


# --- commands ---------------------------------------------------------------------------


@click.group()
def media() -> None:
    """Clips of videos, cut by the server in background jobs: fetch, jobs, show, cancel."""


def _destination(out: Path | None) -> tuple[Path | None, Path | None]:
    """``(dest, out_dir)`` for ``--out``: a folder keeps the server's file name."""
    if out is None:
        return None, None
    return (None, out) if out.is_dir() else (out, None)


def _clip_doc(got: Any) -> dict[str, Any]:
    return {
        "ok": True,
        "job": got.job.raw,
        "path": str(got.path),
        "size": got.job.size,
        "sha256": got.job.sha256,
        "resumed_from": got.resumed_from,
    }


def _interrupted(job_id: str | None) -> _Failure:
    """Ctrl-C: the job goes on on the server; say how to follow or cancel it."""
    if job_id is None:
        return _Failure(KeyboardInterrupt())
    return _Failure(
        KeyboardInterrupt(),
        f"interrupted; job {job_id} goes on on the server: 'wirelab media fetch --job "
        f"{job_id}' follows it and resumes the download, 'wirelab media cancel {job_id}' "
        "cancels it",
        job_id=job_id,
        resume=f"wirelab media fetch --job {job_id}",
        cancel=f"wirelab media cancel {job_id}",
    )


@media.command("fetch")
@click.argument("source", required=False)
@click.option("--video-id", help="Ask for a video by id (the server's source template).")
@click.option("--job", "job_id", help="Follow an existing job and download its result.")
@click.option("--start", help="Start of the clip: HH:MM:SS[.fff], MM:SS or seconds.")
@click.option("--end", help="End of the clip (same forms).  [default: the source's end]")
@click.option(
    "--accuracy",
    type=click.Choice(["fast", "exact", "smart"]),
    help="fast: cut at keyframes (no re-encode); exact: frame accurate (re-encode); smart: "
    "frame accurate, re-encoding only up to the first keyframe.  [default: the server's]",
)
@click.option(
    "--container",
    type=click.Choice(["mp4", "mkv", "m4a", "mp3"]),
    help="Output format (m4a, mp3: audio only).  [default: the server's, mp4]",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="File to write (or an existing folder).  [default: the server's file name here]",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@connection_options
@outcome
def fetch(
    source: str | None,
    video_id: str | None,
    job_id: str | None,
    start: str | None,
    end: str | None,
    accuracy: str | None,
    container: str | None,
    out: Path | None,
    overwrite: bool,
    **opts: Any,
) -> None:
    """Cut a clip of SOURCE (an http(s) URL) on the server, download it, verify it.

    Submits the job, shows its progress and phase, downloads the result, checks its
    SHA-256 and prints where the file is. Interrupted (Ctrl-C), the job goes on on the
    server: 'wirelab media fetch --job ID' follows it again and resumes the download.
    """
    asked = [n for n, v in (("SOURCE", source), ("--video-id", video_id), ("--job", job_id)) if v]
    if len(asked) != 1:
        raise click.UsageError("give one of SOURCE, --video-id ID or --job ID")
    if job_id and any((start, end, accuracy, container)):
        raise click.UsageError("--job follows an existing job: it takes no clip options")
    as_json = opts["as_json"]
    dest, out_dir = _destination(out)
    if dest is not None and not overwrite and dest.exists():
        raise UsageError(f"{dest} exists; use --overwrite to replace it")  # before any job
    with open_media(opts) as client, JobBar(enabled=not as_json) as bar:
        try:
            if job_id is None:
                options = {"start": start, "end": end, "accuracy": accuracy}
                job = client.submit(source, video_id=video_id, container=container, **options)
                job_id = job.id
                bar.update(job)
            with BarProgress(enabled=not as_json) as download_bar:
                got = client.follow(
                    job_id,
                    dest=dest,
                    out_dir=out_dir,
                    overwrite=overwrite,
                    on_update=bar.update,
                    progress=download_bar,
                )
        except KeyboardInterrupt:
            raise _interrupted(job_id) from None
        except (WirelabError, OSError) as exc:
            raise _Failure(exc, **({"job_id": job_id} if job_id else {})) from exc
    if as_json:
        _emit(_clip_doc(got))
        return
    job = got.job
    timing = ""
    if job.duration is not None:
        timing = f", {job.duration:.3f} s" + (f" from {job.start:.3f} s" if job.start else "")
    click.echo(f"saved {got.path} ({human_size(job.size or 0)}{timing}, SHA-256 verified)")


def _job_line(job: MediaJob) -> str:
    raw = job.raw
    what = raw.get("source") or raw.get("video_id") or ""
    when = str(raw.get("created_at") or "")[:19]
    extra = job.error.message if job.error else (human_size(job.size) if job.size else "")
    return f"{job.id}  {when}  {job.state:<9} {job.progress:5.1f}%  {what}  {extra}".rstrip()


@media.command("jobs")
@click.option("--state", type=click.Choice(_STATES), help="Only the jobs in this state.")
@connection_options
@outcome
def jobs(state: str | None, **opts: Any) -> None:
    """List your jobs, newest first."""
    with open_media(opts) as client:
        found = client.jobs(state)
    if opts["as_json"]:
        _emit({"ok": True, "jobs": [j.raw for j in found]})
    elif not found:
        click.echo("no jobs" + (f" {state}" if state else ""))
    else:
        for job in found:
            click.echo(_job_line(job))


@media.command("show")
@click.argument("job_id", metavar="ID")
@connection_options
@outcome
def show(job_id: str, **opts: Any) -> None:
    """Show one job: state, progress, phase, error, and its result."""
    with open_media(opts) as client:
        job = client.job(job_id)
    if opts["as_json"]:
        _emit({"ok": True, "job": job.raw})
        return
    for key, value in job.raw.items():
        if value is not None:
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
            click.echo(f"{key + ':':<14}{shown}")


@media.command("cancel")
@click.argument("job_id", metavar="ID")
@connection_options
@outcome
def cancel(job_id: str, **opts: Any) -> None:
    """Cancel a queued or running job; for a finished job, delete its result."""
    with open_media(opts) as client:
        before = client.job(job_id)
        after = client.cancel(job_id)
    if opts["as_json"]:
        _emit({"ok": True, "job": after.raw if after else None, "was": before.state})
    elif before.finished:
        click.echo(f"deleted the result of job {job_id} ({before.state})")
    else:
        click.echo(f"canceled job {job_id} (was {before.state})")


def register(group: click.Group) -> None:
    """Add ``wirelab media`` to the ``wirelab`` command group."""
    group.add_command(media)
