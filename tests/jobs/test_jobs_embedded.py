"""The embedded runner over a real SQLite store, with plain handlers (no ffmpeg)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from wirelab.db import Database, MediaJob, connect, sqlite_url
from wirelab.jobs import EmbeddedRunner, JobContext, RunnerSettings
from wirelab.media import JobFailed

FAST = RunnerSettings(workers=2, timeout=5, retries=1, backoff=0.05, heartbeat=0.05, poll=0.05)


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


def test_two_runners_on_one_store_never_run_a_job_twice(tmp_path: Path) -> None:
    """Claims are leased in one transaction: what a later distributed runner relies on."""

    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            handled: Counter[str] = Counter()

            async def handler(job: MediaJob, context: JobContext) -> None:
                handled[job.id] += 1
                context.report("working", 50)
                await asyncio.sleep(0.01)
                result: dict[str, str | int] = {
                    "key": job.id, "name": "n", "size": 1, "sha256": "0" * 64,
                    "duration": "1", "start": "0",
                }  # fmt: skip
                assert await db.media.succeed(job.id, context.worker, time.time(), result, 1e12)

            runners = [EmbeddedRunner(db.media, handler, FAST) for _ in range(2)]
            for runner in runners:
                await runner.start()
            for n in range(20):
                await db.media.create(_job(n), time.time())
            for runner in runners:
                runner.wake()

            await _until(_count(db, "succeeded", 20))
            for runner in runners:
                await runner.stop()
            assert handled == Counter({f"job{n}": 1 for n in range(20)})

    asyncio.run(run())


def test_retryable_failures_are_retried_then_recorded(tmp_path: Path) -> None:
    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            calls: Counter[str] = Counter()

            async def handler(job: MediaJob, context: JobContext) -> None:
                calls[job.id] += 1
                raise JobFailed("the network is down", retryable=job.id == "job0")

            changed: list[str] = []
            runner = EmbeddedRunner(db.media, handler, FAST, on_change=changed.append)
            await runner.start()
            await db.media.create(_job(0), time.time())
            await db.media.create(_job(1), time.time())
            runner.wake()

            await _until(_count(db, "failed", 2))
            await runner.stop()
            assert calls == Counter({"job0": 2, "job1": 1})  # retries=1
            # Each write (claim, end) was announced: long polls answer at once.
            changes = Counter(changed)
            assert changes["job0"] >= 4 and changes["job1"] >= 2
            job0 = await db.media.get("alice", "job0")
            assert job0 is not None and job0.error_retryable is True
            assert job0.error_message == "the network is down"

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


async def _one_sleeping_job(
    db: Database, limit: float, stopped: list[str]
) -> EmbeddedRunner[MediaJob]:
    """A runner (one worker, a ``limit`` of seconds per attempt) running one job that
    sleeps until stopped."""
    settings = RunnerSettings(workers=1, timeout=limit, heartbeat=0.05, poll=0.05)
    runner = EmbeddedRunner(db.media, partial(_sleeper, stopped), settings)
    await runner.start()
    await db.media.create(_job(0), time.time())
    runner.wake()
    return runner


def test_the_cancel_flag_in_the_db_stops_the_handler(tmp_path: Path) -> None:
    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            stopped: list[str] = []
            runner = await _one_sleeping_job(db, 60, stopped)
            await _until(_count(db, "running", 1))
            # No hint to the runner: the flag in the db is enough.
            await db.media.request_cancel("alice", "job0", time.time())
            await _until(_count(db, "canceled", 1))
            await runner.stop()
            assert stopped == ["job0"]

    asyncio.run(run())


def test_an_attempt_past_the_timeout_fails(tmp_path: Path) -> None:
    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            stopped: list[str] = []
            runner = await _one_sleeping_job(db, 0.3, stopped)
            await _until(_count(db, "failed", 1))
            await runner.stop()
            assert stopped == ["job0"]
            job = await db.media.get("alice", "job0")
            assert job is not None and "longer than the limit of 0.3 s" in (job.error_message or "")
            assert job.error_retryable is False

    asyncio.run(run())
