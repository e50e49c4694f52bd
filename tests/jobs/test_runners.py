"""The runner contract, against every runner (see conftest: embedded and Celery), over a
real SQLite store, with plain handlers (no ffmpeg)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from wirelab.db import Database, MediaJob, connect, sqlite_url
from wirelab.jobs import JobContext, JobRunner, RunnerSettings
from wirelab.media import JobFailed

from .conftest import Handler, StartRunner

FAST = RunnerSettings(
    workers=2, timeout=5, retries=1, backoff=0.05, heartbeat=0.05, poll=0.05, lease=2
)


def _job(n: int) -> MediaJob:
    now = time.time()
    return MediaJob(
        id=f"job{n}", owner="alice", state="queued", request=json.dumps({"n": n}),
        request_hash=f"h{n}", idempotency_key=None, progress=0.0, phase="queued",
        error_message=None, error_retryable=None, cancel_requested=False, attempts=0,
        not_before=now, lease_owner=None, lease_until=None, result_key=None,
        result_name=None, result_size=None, result_sha256=None, result_duration=None,
        result_start=None, created_at=now, updated_at=now, started_at=None,
        finished_at=None, expires_at=None,
    )  # fmt: skip


async def _until(predicate: Callable[[], Awaitable[bool]]) -> None:
    """Wait (20 s at most) until ``predicate()`` is true."""
    deadline = time.monotonic() + 20
    while not await predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


def _succeeding(db: Database, handled: Counter[str]) -> Handler:
    """A handler that counts its calls, reports progress and records a success."""

    async def handler(job: MediaJob, context: JobContext) -> None:
        handled[job.id] += 1
        context.report("working", 50)
        await asyncio.sleep(0.01)
        result: dict[str, str | int] = {
            "key": job.id, "name": "n", "size": 1, "sha256": "0" * 64,
            "duration": "1", "start": "0",
        }  # fmt: skip
        assert await db.media.succeed(job.id, context.worker, time.time(), result, 1e12)

    return handler


def test_two_runners_on_one_store_never_run_a_job_twice(
    tmp_path: Path, start_runner: StartRunner
) -> None:
    """Claims are leased in one transaction: two runners (two Celery workers on one
    queue), every job announced twice, and each job still runs exactly once."""

    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            handled: Counter[str] = Counter()
            handler = _succeeding(db, handled)
            async with (
                start_runner(db.media, handler, FAST) as one,
                start_runner(db.media, handler, FAST) as two,
            ):
                for n in range(20):
                    await db.media.create(_job(n), time.time())
                    one.wake(f"job{n}")
                    two.wake(f"job{n}")  # a duplicate delivery
                await _until(_count(db, "succeeded", 20))
            assert handled == Counter({f"job{n}": 1 for n in range(20)})
            job = await db.media.get("alice", "job0")
            assert job is not None and job.attempts == 1

    asyncio.run(run())


def test_retryable_failures_are_retried_then_recorded(
    tmp_path: Path, start_runner: StartRunner
) -> None:
    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            calls: Counter[str] = Counter()

            async def handler(job: MediaJob, context: JobContext) -> None:
                calls[job.id] += 1
                raise JobFailed("the network is down", retryable=job.id == "job0")

            async with start_runner(db.media, handler, FAST) as runner:
                await db.media.create(_job(0), time.time())
                await db.media.create(_job(1), time.time())
                runner.wake("job0")
                runner.wake("job1")
                await _until(_count(db, "failed", 2))
            assert calls == Counter({"job0": 2, "job1": 1})  # retries=1
            job0 = await db.media.get("alice", "job0")
            assert job0 is not None and job0.error_retryable is True
            assert job0.error_message == "the network is down"

    asyncio.run(run())


def test_a_job_left_running_by_a_dead_worker_completes(
    tmp_path: Path, start_runner: StartRunner
) -> None:
    """A worker claimed the job and died (no heartbeat): once its lease ended the job is
    requeued (the embedded runner at start, Celery workers by their lease check) and
    completes in a second attempt."""

    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            await db.media.create(_job(0), time.time())
            now = time.time()
            assert await db.media.claim("dead-worker", now, now + 0.2) is not None
            handled: Counter[str] = Counter()
            async with start_runner(db.media, _succeeding(db, handled), FAST):
                await _until(_count(db, "succeeded", 1))
            job = await db.media.get("alice", "job0")
            assert job is not None and job.attempts == 2
            assert handled == Counter({"job0": 1})

    asyncio.run(run())


def test_a_job_queued_without_a_wake_up_still_runs(
    tmp_path: Path, start_runner: StartRunner
) -> None:
    """The wake-up (for Celery: the message) is lost, e.g. the broker was down: the
    embedded runner's poll, or an idle Celery worker's lease check, finds the job."""

    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            handled: Counter[str] = Counter()
            async with start_runner(db.media, _succeeding(db, handled), FAST):
                await db.media.create(_job(0), time.time())
                await _until(_count(db, "succeeded", 1))
            assert handled == Counter({"job0": 1})

    asyncio.run(run())


def test_progress_is_written_while_the_job_runs(tmp_path: Path, start_runner: StartRunner) -> None:
    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            release = asyncio.Event()

            async def handler(job: MediaJob, context: JobContext) -> None:
                context.report("encoding", 42)
                await release.wait()

            async with start_runner(db.media, handler, FAST) as runner:
                await db.media.create(_job(0), time.time())
                runner.wake("job0")

                async def reported() -> bool:
                    job = await db.media.get("alice", "job0")
                    return job is not None and (job.phase, job.progress) == ("encoding", 42)

                await _until(reported)
                await db.media.request_cancel("alice", "job0", time.time())
                await _until(_count(db, "canceled", 1))

    asyncio.run(run())


def _count(db: Database, state: str, n: int) -> Callable[[], Awaitable[bool]]:
    """A predicate: alice has ``n`` jobs in ``state``."""

    async def check() -> bool:
        return len(await db.media.list_jobs("alice", state, 100)) == n

    return check


async def _sleeper(stopped: list[str], job: MediaJob, context: JobContext) -> None:
    try:
        await asyncio.sleep(60)
    finally:
        stopped.append(job.id)


@asynccontextmanager
async def _sleeping_job(
    start_runner: StartRunner,
    db: Database,
    limit: float,
    stopped: list[str],
    heartbeat: float = 0.05,
) -> AsyncIterator[JobRunner]:
    """A runner (one worker, a ``limit`` of seconds per attempt) given one job that sleeps
    until stopped (then its id goes to ``stopped``)."""
    settings = RunnerSettings(
        workers=1, timeout=limit, heartbeat=heartbeat, poll=0.05, lease=max(2, 2 * heartbeat)
    )
    async with start_runner(db.media, partial(_sleeper, stopped), settings) as runner:
        await db.media.create(_job(0), time.time())
        runner.wake("job0")
        yield runner


def test_the_cancel_flag_in_the_db_stops_the_handler(
    tmp_path: Path, start_runner: StartRunner
) -> None:
    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            stopped: list[str] = []
            async with _sleeping_job(start_runner, db, 60, stopped):
                await _until(_count(db, "running", 1))
                # No hint to the runner: the flag in the db is enough.
                await db.media.request_cancel("alice", "job0", time.time())
                await _until(_count(db, "canceled", 1))
            assert stopped == ["job0"]

    asyncio.run(run())


def test_a_cancel_hint_stops_the_handler_before_the_next_heartbeat(
    tmp_path: Path, start_runner: StartRunner
) -> None:
    """The server's hint (for Celery: a Redis pub/sub message to the worker) makes the
    runner read the flag at once: with a 60 s heartbeat, the job still ends within the
    20 s that ``_until`` waits."""

    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            stopped: list[str] = []
            async with _sleeping_job(start_runner, db, 600, stopped, heartbeat=60) as runner:
                await _until(_count(db, "running", 1))
                await db.media.request_cancel("alice", "job0", time.time())
                runner.cancel("job0")
                await _until(_count(db, "canceled", 1))
            assert stopped == ["job0"]

    asyncio.run(run())


def test_an_attempt_past_the_timeout_fails(tmp_path: Path, start_runner: StartRunner) -> None:
    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            stopped: list[str] = []
            async with _sleeping_job(start_runner, db, 0.3, stopped):
                await _until(_count(db, "failed", 1))
            assert stopped == ["job0"]
            job = await db.media.get("alice", "job0")
            assert job is not None and "longer than the limit of 0.3 s" in (job.error_message or "")
            assert job.error_retryable is False

    asyncio.run(run())


def test_a_stopped_runner_hands_its_job_back(tmp_path: Path, start_runner: StartRunner) -> None:
    """Stopping a runner mid-job (a clean shutdown) requeues the job; the next runner
    completes it."""

    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            stopped: list[str] = []
            async with _sleeping_job(start_runner, db, 60, stopped):
                await _until(_count(db, "running", 1))
            assert stopped == ["job0"]
            assert len(await db.media.list_jobs("alice", "queued", 10)) == 1
            handled: Counter[str] = Counter()
            async with start_runner(db.media, _succeeding(db, handled), FAST):
                await _until(_count(db, "succeeded", 1))
            assert handled == Counter({"job0": 1})

    asyncio.run(run())


def test_the_embedded_runner_announces_every_write(tmp_path: Path) -> None:
    """Each write of an attempt (claim, end) is announced, so long polls answer at once."""
    from wirelab.jobs import EmbeddedRunner

    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:

            async def handler(job: MediaJob, context: JobContext) -> None:
                raise JobFailed("the network is down", retryable=job.id == "job0")

            changed: list[str] = []
            runner = EmbeddedRunner(db.media, handler, FAST, on_change=changed.append)
            await runner.start()
            try:
                await db.media.create(_job(0), time.time())
                await db.media.create(_job(1), time.time())
                runner.wake("job0")
                runner.wake("job1")
                await _until(_count(db, "failed", 2))
            finally:
                await runner.stop()
            changes = Counter(changed)
            assert changes["job0"] >= 4 and changes["job1"] >= 2  # job0 ran twice

    asyncio.run(run())
