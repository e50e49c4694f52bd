"""The media service: clip jobs over the db, the blob store and a job runner.

The service-level API (``submit``, ``get``, ``jobs``, ``cancel``, ``open_result``) is
what the HTTP routes (and any other front end) call; it never runs ffmpeg itself: a
:class:`~wirelab.jobs.JobRunner` calls :meth:`MediaService.run_job` for each attempt.

A result is stored as the blob whose key is the job id: the bytes are committed
(verified, durable) first, then the job row is marked succeeded with the result's size,
digest and measured times in one db commit. A crash in between leaves a running job,
which is requeued at start-up and stored again over the old blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ..db import Database, MediaJob
from ..jobs import EmbeddedRunner, JobContext, JobRunner, RunnerSettings
from ..storage import BlobReader, BlobStore, UploadNotFoundError
from ._cut import cut
from ._errors import InvalidRequest, JobFailed, JobNotFound, ToolMissing, TooManyJobs
from ._proxy import resolve_checked
from ._request import ClipRequest, parse_request
from ._safety import validate_source_url
from ._settings import MediaSettings
from ._times import format_seconds
from ._tools import find_tools
from ._watch import WATCH_POLL, JobChanges, job_look

__all__ = ["MediaService"]

_log = logging.getLogger("wirelab.media")

_SWEEP_BATCH = 200
_READ_CHUNK = 1024 * 1024
LIST_MAX = 1000
WAIT_MAX = 60.0
"""The longest a job look may wait for a change (``GET .../jobs/{id}?wait=``), s."""


def new_job_id() -> str:
    """A new job id: 32 hex digits (also the result's blob key)."""
    return uuid.uuid4().hex


class MediaService:
    """One server's media jobs. ``await start()``, serve, ``await stop()``.

    ``workdir`` holds the files of attempts in progress (one folder each, removed when
    the attempt ends, and all of them at start-up).

    ``shared``: other server processes use the same database, blob folder and workdir
    (a distributed coordination, ``docs/deploy.md``). Start-up then leaves the blob
    store's recovery and the work files alone (they may be another process's jobs in
    progress), and the embedded runner requeues only the jobs whose lease expired.
    """

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: MediaSettings,
        workdir: Path,
        *,
        runner: Callable[[MediaService], JobRunner] | None = None,
        clock: Callable[[], float] = time.time,
        shared: bool = False,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self.workdir = workdir
        self.clock = clock
        self.changes = JobChanges()
        """Wake-ups for job looks that wait for a change (writes made in this process)."""
        self.shared = shared
        self.runner = (runner or _embedded)(self)
        self._sweeper: asyncio.Task[None] | None = None
        self.pids: dict[str, int] = {}
        """The running ffmpeg (process group id) of each job attempt in this process."""

    async def start(self) -> None:
        """Recover the blob store (unless jobs run in other processes, which write it) and
        clear stale work files (neither when ``shared`` with other server processes), start
        the runner and sweeper."""
        if not self.shared:
            if not self.runner.remote:
                await self.blobs.recover()
            await asyncio.to_thread(shutil.rmtree, self.workdir, True)
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.runner.start()
        self._sweeper = asyncio.create_task(self._run_sweeper(), name="wirelab-media-sweep")

    async def stop(self) -> None:
        """Stop the sweeper and the runner (jobs in progress are requeued)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.runner.stop()

    # --- the service API ----------------------------------------------------------------

    async def submit(
        self, owner: str, body: object, idempotency_key: str | None = None
    ) -> tuple[MediaJob, bool]:
        """Validate ``body`` (the JSON of ``POST /v1/media/jobs``) and queue it for
        ``owner``; return ``(job, created)``. An existing job is returned instead
        (``created`` false) for the same ``idempotency_key``, or for the same request
        while that one is queued, running, or has its result.

        Raises :class:`InvalidRequest`, :class:`SourceRefused` (not http(s), or the
        host resolves to a refused address) and :class:`LimitExceeded`.
        """
        request = parse_request(body, template=self.settings.source_template, limits=self.settings)
        await self.check_host(request.source)
        await self._check_active(owner)
        now = self.clock()
        job = _new_job(owner, request, idempotency_key, now)
        found, created = await self.db.media.create(job, now)
        reused = not created and idempotency_key is not None
        if (
            reused
            and found.idempotency_key == idempotency_key
            and found.request_hash != job.request_hash
        ):
            raise InvalidRequest("this Idempotency-Key was used for a different request")
        if created:
            self.runner.wake(found.id)
        return found, created

    async def _check_active(self, owner: str) -> None:
        """:class:`TooManyJobs` when ``owner`` is at ``max_active_jobs`` (a soft limit:
        concurrent submits may pass it by a few)."""
        limit = self.settings.max_active_jobs
        active = 0
        for state in ("queued", "running"):
            active += len(await self.db.media.list_jobs(owner, state, limit + 1))
        if active >= limit:
            raise TooManyJobs(
                f"you have {active} queued or running media jobs; this server allows {limit}"
            )

    async def check_host(self, url: str) -> None:
        """Refuse a source whose host resolves only to refused addresses now, at submit
        time (the proxy checks every connection again while the job runs)."""
        parts = validate_source_url(url)
        default = 443 if parts.scheme.lower() == "https" else 80
        assert parts.hostname is not None
        try:
            await resolve_checked(self.settings.policy, parts.hostname, parts.port or default)
        except OSError as exc:
            message = f"cannot resolve the source's host {parts.hostname!r}: {exc}"
            raise InvalidRequest(message) from None

    async def get(self, owner: str, job_id: str) -> MediaJob:
        """Job ``job_id`` of ``owner``; :class:`JobNotFound` otherwise."""
        job = await self.db.media.get(owner, job_id)
        if job is None:
            raise JobNotFound(f"no media job {job_id!r}")
        return job

    async def watch(self, owner: str, job_id: str, wait: float) -> MediaJob:
        """Job ``job_id`` of ``owner`` once it differs from how it is now (state, phase,
        shown progress, cancel flag, attempts, error), or is final, or after ``wait``
        seconds (at most :data:`WAIT_MAX`), whichever comes first. A long poll: a client
        that follows a job sees its end within milliseconds without polling fast.
        :class:`JobNotFound`."""
        job = await self.get(owner, job_id)
        if not job.active or wait <= 0:
            return job
        look = job_look(job)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, WAIT_MAX)
        while (left := deadline - loop.time()) > 0:
            await self.changes.wait(job_id, min(left, WATCH_POLL))
            job = await self.get(owner, job_id)
            if not job.active or job_look(job) != look:
                break
        return job

    async def jobs(
        self, owner: str, state: str | None = None, limit: int = LIST_MAX
    ) -> list[MediaJob]:
        """The owner's jobs, newest first."""
        return await self.db.media.list_jobs(owner, state, limit)

    async def cancel(self, owner: str, job_id: str, wait: float = 0.0) -> MediaJob | None:
        """Cancel an active job (returned; waits up to ``wait`` s for it to end), or
        delete a finished one and its result (``None``). :class:`JobNotFound`."""
        job = await self.get(owner, job_id)
        if job.active:
            found = await self.db.media.request_cancel(owner, job_id, self.clock())
            assert found is not None  # jobs are deleted only once finished
            job = found
            self.changes.notify(job_id)
            self.runner.cancel(job_id)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while job.active and loop.time() < deadline:
                await asyncio.sleep(0.05)
                job = await self.get(owner, job_id)
            return job
        deleted = await self.db.media.delete(owner, job_id)
        if deleted is not None and deleted.result_key is not None:
            await self.blobs.delete(deleted.result_key)
        return None

    async def open_result(self, job: MediaJob, start: int, end: int) -> BlobReader:
        """A reader of bytes ``[start, end)`` of ``job``'s result (it must have one)."""
        assert job.result_key is not None
        return await self.blobs.open(job.result_key, start, end)

    # --- running jobs (called by the runner) --------------------------------------------

    async def run_job(self, job: MediaJob, context: JobContext) -> None:
        """One attempt of ``job``: cut, store the result, mark the job succeeded."""
        request = ClipRequest.from_json(json.loads(job.request))
        workdir = self.workdir / f"{job.id}-{job.attempts}"
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            try:
                tools = find_tools()
            except ToolMissing as exc:
                raise JobFailed(str(exc)) from exc
            result = await cut(
                request,
                settings=self.settings,
                tools=tools,
                workdir=workdir,
                report=context.report,
                on_start=lambda pid: self.pids.__setitem__(job.id, pid),
            )
            context.report("storing", 99.5)
            stored_at = time.monotonic()
            size, sha256 = await self._store(job.id, result.path)
            timings = {**result.timings, "store": time.monotonic() - stored_at}
            now = self.clock()
            stored = await self.db.media.succeed(
                job.id,
                context.worker,
                now,
                {
                    "key": job.id,
                    "name": request.file_name(job.id),
                    "size": size,
                    "sha256": sha256,
                    "duration": format_seconds(result.output.duration),
                    "start": format_seconds(result.start),
                },
                now + self.settings.result_ttl,
            )
            self.changes.notify(job.id)
            if not stored:  # canceled or taken over meanwhile: the result is not wanted
                await self.blobs.delete(job.id)
            else:
                spent = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in timings.items())
                _log.info("media job %s succeeded: %s", job.id, spent)
        finally:
            self.pids.pop(job.id, None)
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _store(self, key: str, path: Path) -> tuple[int, str]:
        """Store ``path`` as blob ``key`` (replacing an earlier attempt's); return its
        size and SHA-256. One pass: the store hashes the bytes as it writes them and
        makes them durable once (a crash midway leaves the job running: it is requeued
        and stored again over whatever was left)."""
        with contextlib.suppress(UploadNotFoundError):  # an older version's upload
            await self.blobs.abort_upload(key)
        await self.blobs.delete(key)
        info = await self.blobs.put(key, _chunks(path), expected_sha256=None)
        if info.sha256 is None:  # a store that does not say: hash the file
            return info.size, await asyncio.to_thread(_file_sha256, path)
        return info.size, info.sha256

    # --- expiry -------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete expired results (blob first, then the row's key); return how many."""
        removed = 0
        while True:
            jobs = await self.db.media.expired_results(self.clock(), _SWEEP_BATCH)
            for job in jobs:
                assert job.result_key is not None
                await self.blobs.delete(job.result_key)
                await self.db.media.clear_result(job.id, self.clock())
            removed += len(jobs)
            if len(jobs) < _SWEEP_BATCH:
                return removed

    async def _run_sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                removed = await self.sweep()
            except Exception:
                _log.exception("media sweep failed")
            else:
                if removed:
                    _log.info("media sweep removed %d expired results", removed)


def runner_settings(settings: MediaSettings) -> RunnerSettings:
    """How attempts of media jobs run, wherever they run (server or worker)."""
    return RunnerSettings(
        workers=settings.workers,
        timeout=settings.job_timeout,
        retries=settings.retries,
        backoff=settings.retry_backoff,
    )


def _embedded(service: MediaService) -> JobRunner:
    return EmbeddedRunner(
        service.db.media,
        service.run_job,
        runner_settings(service.settings),
        clock=service.clock,
        on_change=service.changes.notify,
        requeue_all=not service.shared,
    )


def _new_job(owner: str, request: ClipRequest, idempotency_key: str | None, now: float) -> MediaJob:
    return MediaJob(
        id=new_job_id(),
        owner=owner,
        state="queued",
        request=json.dumps(request.to_json(), sort_keys=True),
        request_hash=request.digest(),
        idempotency_key=idempotency_key,
        progress=0.0,
        phase="queued",
        error_message=None,
        error_retryable=None,
        cancel_requested=False,
        attempts=0,
        not_before=now,
        lease_owner=None,
        lease_until=None,
        result_key=None,
        result_name=None,
        result_size=None,
        result_sha256=None,
        result_duration=None,
        result_start=None,
        created_at=now,
        updated_at=now,
        started_at=None,
        finished_at=None,
        expires_at=None,
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_CHUNK):
            digest.update(block)
    return digest.hexdigest()


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := await asyncio.to_thread(f.read, _READ_CHUNK):
            yield block
