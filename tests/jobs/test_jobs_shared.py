"""Embedded runners of several server processes on one database (``requeue_all=False``)."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

from wirelab.db import Database, MediaJob, connect, sqlite_url
from wirelab.jobs import EmbeddedRunner, RunnerSettings

from .test_runners import _count, _job, _sleeper, _until


async def _one_sleeping_job(
    db: Database, limit: float, stopped: list[str]
) -> EmbeddedRunner[MediaJob]:
    """An embedded runner (one worker, ``limit`` s per attempt) running one job that
    sleeps until stopped."""
    settings = RunnerSettings(workers=1, timeout=limit, heartbeat=0.05, poll=0.05)
    runner = EmbeddedRunner(db.media, partial(_sleeper, stopped), settings)
    await runner.start()
    await db.media.create(_job(0), time.time())
    runner.wake()
    return runner


def test_a_starting_shared_runner_leaves_running_jobs_to_their_runner(tmp_path: Path) -> None:
    async def run() -> None:
        async with await connect(sqlite_url(tmp_path / "db.sqlite")) as db:
            stopped: list[str] = []
            first = await _one_sleeping_job(db, 30, stopped)
            await _until(_count(db, "running", 1))
            settings = RunnerSettings(workers=1, heartbeat=0.05, poll=0.05)
            second = EmbeddedRunner(db.media, first.handler, settings, requeue_all=False)
            await second.start()
            # Still running, under the first runner's lease (a default runner would have
            # requeued it, to run it a second time).
            assert await _count(db, "running", 1)()
            assert await _count(db, "queued", 0)()
            await second.stop()
            await first.stop()
            assert stopped == ["job0"]

    asyncio.run(run())
