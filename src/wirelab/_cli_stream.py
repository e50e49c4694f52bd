"""The work behind ``wirelab stream``: download a stream into a folder, or verify one.

Kept apart from :mod:`wirelab.cli` so that the command module stays a thin layer of option
parsing, and so that ``wirelab --help`` does not import httpx and numpy. Output contract:
the result (summary line or ``--json`` document) goes to stdout; the progress bar (only on
a terminal) and error lines go to stderr.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self, cast

import click

from ._cli_common import DEFAULT_URL, describe_error, emit, human_size, json_extra, set_hint
from ._exceptions import IntegrityError, TruncatedError

if TYPE_CHECKING:  # importing the client costs httpx and numpy: only when the command runs
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from .client._download import DownloadWriter
    from .client._options import StreamOptions

__all__ = ["DEFAULT_URL", "StreamProgress", "describe_error", "run_download", "run_verify"]

_MB: Final = 1_000_000
_REFRESH_S: Final = 0.1  # at most this often, bytes are pushed to the progress bar


class StreamProgress:
    """A rich progress bar on stderr (files done/total, bytes, rate), or nothing at all.

    ``console`` defaults to stderr; the bar is shown only if ``enabled`` and the console is
    a terminal. Use as a context manager; the methods are no-ops when disabled.
    """

    def __init__(self, *, enabled: bool, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._console = console or Console(stderr=True)
        self.enabled = enabled and self._console.is_terminal
        self._progress: Progress | None = None
        self._bytes = 0
        self._t0 = time.perf_counter()
        self._shown_at = 0.0
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]stream"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files  {task.fields[bytes]}  {task.fields[rate]}"),
                console=self._console,
            )
        self._task: TaskID = (
            self._progress.add_task("stream", total=None, bytes="", rate="")
            if self._progress is not None
            else cast("TaskID", -1)
        )

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._t0 = time.perf_counter()
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._show(force=True)
            self._progress.stop()

    def started(self, count: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=count)

    def data(self, n: int) -> None:
        self._bytes += n
        self._show()

    def file_done(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)
            self._show(force=True)

    def _show(self, *, force: bool = False) -> None:
        now = time.perf_counter()
        if self._progress is None or (not force and now - self._shown_at < _REFRESH_S):
            return
        self._shown_at = now
        rate = self._bytes / max(now - self._t0, 1e-9)
        self._progress.update(
            self._task, bytes=human_size(self._bytes), rate=f"{human_size(rate)}/s"
        )


def run_download(
    *,
    url: str,
    options: StreamOptions,
    out: Path,
    overwrite: bool,
    timeout: float,
    as_json: bool,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Save a stream into ``out`` (see :class:`~wirelab.client._download.DownloadWriter`).

    On success prints the summary. On any failure writes the manifest of the verified
    files (``complete: false``) if the stream had started, records what was saved for
    the ``--json`` error object, and re-raises for the caller to report.
    """
    from .client import Client
    from .client._download import DownloadWriter
    from .framing import FileData, FileEnded, StreamStarted

    writer = DownloadWriter(out, url=url, overwrite=overwrite)
    t0 = time.perf_counter()
    try:
        writer.prepare()
        with (
            StreamProgress(enabled=not as_json) as progress,
            Client(url, timeout=timeout, verify=verify) as client,
            client.stream_events(**options) as events,
        ):
            for event in events:
                writer.handle(event)
                if isinstance(event, FileData):
                    progress.data(len(event.data))
                elif isinstance(event, FileEnded):
                    progress.file_done()
                elif isinstance(event, StreamStarted):
                    progress.started(event.count)
            if not events.completed:  # cannot happen: iteration ends only after the end frame
                raise TruncatedError("the stream ended without its end frame")
    except BaseException as exc:
        _record_failure(writer, exc, as_json)
        raise
    writer.finish(complete=True)
    elapsed = time.perf_counter() - t0
    _report_success(writer, elapsed, as_json)


def _record_failure(writer: DownloadWriter, exc: BaseException, as_json: bool) -> None:
    with contextlib.suppress(OSError):  # the original error is the one to report
        writer.finish(complete=False)
    set_hint(
        f"the {len(writer.files)} files verified before it are kept in {writer.out}, "
        "listed in its manifest.json",
        on="disk",
    )
    if as_json:
        json_extra(
            files=len(writer.files), bytes=writer.bytes_saved, seed=writer.seed, out=str(writer.out)
        )


def _report_success(writer: DownloadWriter, elapsed: float, as_json: bool) -> None:
    rate = writer.bytes_saved / _MB / max(elapsed, 1e-9)
    if as_json:
        emit(
            {
                "files": len(writer.files),
                "bytes": writer.bytes_saved,
                "seed": writer.seed,
                "elapsed_s": round(elapsed, 3),
                "mb_per_s": round(rate, 3),
                "out": str(writer.out),
            }
        )
    else:
        click.echo(
            f"saved {len(writer.files)} files ({human_size(writer.bytes_saved)}) to {writer.out} "
            f"in {elapsed:.2f} s ({rate:.1f} MB/s), seed {writer.seed}"
        )


def run_verify(out: Path, *, as_json: bool) -> None:
    """Check ``out`` against its manifest: print one line per problem on stdout, then the
    summary: on stdout when all is well, else as the :class:`~wirelab.IntegrityError`
    raised for the caller to report (exit 1). With ``as_json``, one JSON document instead
    of the lines."""
    from .client._verify import verify_download

    report = verify_download(out)
    if as_json:
        doc = {
            "out": str(out),
            "files": report.listed,
            "files_ok": report.good,
            "complete": report.complete,
            "problems": [
                {"kind": p.kind, "name": p.name, "detail": p.detail} for p in report.problems
            ],
        }
        if report.ok:
            emit(doc)
        else:
            json_extra(**doc)
    else:
        for problem in report.problems:
            click.echo(str(problem))
        if report.ok:
            click.echo(f"{out}: all {report.listed} files intact, download complete")
    if not report.ok:
        raise IntegrityError(
            f"{out}: {len(report.problems)} problem(s); "
            f"{report.good} of {report.listed} listed files intact"
        )
