"""The blocking media client: :class:`MediaClient` (clip jobs: submit, follow, download)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from .._exceptions import ProtocolError, UsageError
from .._exceptions import TimeoutError as WirelabTimeout
from ._media_models import JOB_ID, JOB_STATES, DownloadedClip, MediaJob, MediaJobError, parse_job
from ._relay_models import InboxFile, NoProgress, Progress
from ._relay_receive import download_file
from ._token import TokenClient

__all__ = ["LONG_POLL_S", "MIN_POLL_S", "MediaClient", "poll_interval"]

JOBS_PATH: Final = "/v1/media/jobs"
MIN_POLL_S: Final = 0.02
"""The shortest wait between two looks at a job."""
MAX_POLL_S: Final = 0.25
"""The longest wait between two looks at a job when the server does not hold them."""
LONG_POLL_S: Final = 15.0
"""How long one look asks the server to hold it until the job changes (``?wait=``)."""
ACCURACIES: Final = ("fast", "exact", "smart")
CONTAINERS: Final = ("mp4", "mkv", "m4a", "mp3")


def poll_interval(previous: float, elapsed: float, gained: float, left: float) -> float:
    """How long to wait before the next look at a running job.

    ``gained`` percent of progress were made in the ``elapsed`` seconds since the first
    look that showed progress, and ``left`` percent remain. With progress, the wait is a
    quarter of the time the job still needs at that rate, so its end is seen within a few
    percent of its run time (the rate leaves out the queue and the probing before the
    first progress); without, it grows by half each time. Always between
    :data:`MIN_POLL_S` and :data:`MAX_POLL_S`.
    """
    wait = elapsed * left / gained / 4 if gained > 0 and elapsed > 0 else previous * 1.5
    return min(MAX_POLL_S, max(MIN_POLL_S, wait))


class MediaClient(TokenClient):
    """A user's client of the media service (``/v1/media/jobs``), blocking.

    ``token`` is the user's API token; ``verify`` the TLS setting (``True``: system CAs,
    ``False``, or an :class:`ssl.SSLContext`). Errors are the :mod:`wirelab` tree:
    :class:`~wirelab.HTTPStatusError` with the server's message (400/422 for a bad request,
    404 for a job that is not yours), :class:`~wirelab.NetworkError`,
    :class:`~wirelab.TimeoutError`, :class:`~wirelab.IntegrityError` (a download that does
    not match the job's SHA-256), and :class:`MediaJobError` for a job that ended without
    a result.
    """

    def submit(
        self,
        source: str | None = None,
        *,
        video_id: str | None = None,
        start: str | float | None = None,
        end: str | float | None = None,
        accuracy: str | None = None,
        container: str | None = None,
        idempotency_key: str | None = None,
    ) -> MediaJob:
        """Ask for a clip of ``source`` (an http(s) URL) or of ``video_id``; return the job.

        ``start``/``end`` are ``HH:MM:SS[.fff]``, ``MM:SS`` or seconds (the server parses
        them strictly); left out, the clip starts at the beginning / runs to the end.
        ``accuracy`` is ``fast``, ``exact`` or ``smart``; ``container`` ``mp4``, ``mkv``,
        ``m4a`` or ``mp3`` (``None``: the server's default). An identical request, or the
        same ``idempotency_key``, returns the existing job.
        """
        if (source is None) == (video_id is None):
            raise UsageError("give either a source URL or a video id")
        if accuracy is not None and accuracy not in ACCURACIES:
            raise UsageError(f"accuracy must be one of {', '.join(ACCURACIES)}")
        if container is not None and container not in CONTAINERS:
            raise UsageError(f"container must be one of {', '.join(CONTAINERS)}")
        body: dict[str, Any] = {
            "source": source,
            "video_id": video_id,
            "start": start,
            "end": end,
            "accuracy": accuracy,
            "container": container,
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        doc = self._json(
            "POST",
            JOBS_PATH,
            json={k: v for k, v in body.items() if v is not None},
            headers=headers,
        )
        return parse_job(doc)

    def job(self, job_id: str, *, wait: float = 0.0) -> MediaJob:
        """The job ``job_id`` (404 :class:`~wirelab.HTTPStatusError` if unknown): as it is
        now, or with ``wait`` (seconds, at most 60) as soon as its state, phase or progress
        changes or it is final, else after ``wait`` seconds (a long poll)."""
        if wait <= 0:
            return parse_job(self._json("GET", self._job_path(job_id)))
        timeout = None if self._timeout is None else self._timeout + wait
        doc = self._json("GET", self._job_path(job_id), params={"wait": wait}, timeout=timeout)
        return parse_job(doc)

    def jobs(self, state: str | None = None) -> list[MediaJob]:
        """This user's jobs, newest first; only those in ``state`` if given."""
        if state is not None and state not in JOB_STATES:
            raise UsageError(f"state must be one of {', '.join(JOB_STATES)}")
        doc = self._json("GET", JOBS_PATH, params={"state": state} if state else None)
        items = doc.get("jobs") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise ProtocolError("the server's job list is not {'jobs': [...]}")
        return [parse_job(item) for item in items]

    def cancel(self, job_id: str) -> MediaJob | None:
        """Cancel a queued or running job, or delete a finished job and its result.

        Returns the canceled job as the server answered (its state may still be
        ``running`` for a moment if it did not stop within the server's wait), or
        ``None`` when a finished job was deleted.
        """
        doc = self._json("DELETE", self._job_path(job_id))
        return None if doc is None else parse_job(doc)

    def wait(
        self,
        job_id: str,
        *,
        on_update: Callable[[MediaJob], None] | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> MediaJob:
        """Follow the job until it is final; return it (whatever its final state).

        ``on_update`` sees the job after every look (progress bars). Each look after the
        first is a long poll (the server answers when the job changes, so its end is seen
        within milliseconds); a server that answers an unchanged job at once (one that does
        not hold looks) is polled instead, spaced by :func:`poll_interval`. ``timeout``
        (seconds) raises :class:`~wirelab.TimeoutError` when the job is still not final;
        the job goes on on the server.
        """
        started = time.monotonic()
        interval = MIN_POLL_S
        origin: tuple[float, float] | None = None  # the first look with progress: (time, %)
        job = self.job(job_id)
        while True:
            now = time.monotonic()
            if on_update is not None:
                on_update(job)
            if job.finished:
                return job
            left = None if timeout is None else timeout - (now - started)
            if left is not None and left <= 0:
                raise WirelabTimeout(f"media job {job_id} is still {job.state} after {timeout:g} s")
            if origin is None and job.progress > 0:
                origin = (now, job.progress)
            hold = LONG_POLL_S if left is None else min(LONG_POLL_S, left)
            previous = job
            job = self.job(job_id, wait=hold)
            if _look(job) == _look(previous) and time.monotonic() - now < hold / 2:
                # Not held: an older server. Poll, spaced by the job's rate.
                since, base = origin or (now, job.progress)
                interval = poll_interval(
                    interval, now - since, job.progress - base, 100 - job.progress
                )
                sleep(interval)

    def download(
        self,
        job: MediaJob,
        dest: Path | None = None,
        *,
        out_dir: Path | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> DownloadedClip:
        """Download a succeeded job's result to ``dest`` (default: ``out_dir`` or the current
        folder, under :attr:`MediaJob.file_name`), verified against its SHA-256.

        Resumable: a partial file ``.<job id>.wirelab-part`` beside ``dest`` is continued
        with ``Range`` by the next call. Written atomically; an existing ``dest`` with other
        content is never replaced unless ``overwrite``
        (:class:`~wirelab.client.DestinationExistsError`, a :class:`~wirelab.UsageError`);
        one with this result's size and SHA-256 is kept as it is (nothing is written).
        """
        self._check_open()
        if job.state != "succeeded":
            raise MediaJobError(job) if job.finished else UsageError(f"job {job.id} is {job.state}")
        if job.size is None or job.sha256 is None:
            raise ProtocolError(f"the server's succeeded job {job.id} has no size or sha256")
        dest = dest or (out_dir or Path(".")) / job.file_name
        placeholder = InboxFile(job.id, "", "", dest.name, "", job.size, job.sha256, None, "", "")
        got = download_file(
            self._bulk,
            placeholder,
            dest.parent,
            exists="overwrite" if overwrite else "fail",
            progress=progress or NoProgress(),
            path=f"{self._job_path(job.id)}/result",
            dest=dest,
        )
        return DownloadedClip(job, got.path, got.resumed_from)

    def follow(
        self,
        job_id: str,
        *,
        dest: Path | None = None,
        out_dir: Path | None = None,
        overwrite: bool = False,
        on_update: Callable[[MediaJob], None] | None = None,
        progress: Progress | None = None,
    ) -> DownloadedClip:
        """:meth:`wait` for the job, then :meth:`download` its result (see both).

        Raises :class:`MediaJobError` when the job failed or was canceled. The usual
        flow: ``client.follow(client.submit(url, start="1:00", end="1:20").id)``.
        """
        job = self.wait(job_id, on_update=on_update)
        if job.state != "succeeded":
            raise MediaJobError(job)
        return self.download(job, dest, out_dir=out_dir, overwrite=overwrite, progress=progress)

    @staticmethod
    def _job_path(job_id: str) -> str:
        # The id becomes part of a URL path: refuse anything that could change the path.
        if not JOB_ID.fullmatch(job_id):
            raise UsageError(f"{job_id!r} is not a job id")
        return f"{JOBS_PATH}/{job_id}"


def _look(job: MediaJob) -> tuple[object, ...]:
    return (job.state, job.phase, job.progress, job.error)
