"""The runners under test: every test of this folder runs against the embedded runner
and the Celery runner (a real Celery worker, in a thread of the test process, on the
machine's Redis, with its own queue and key prefix)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from wirelab.db import MediaJob
from wirelab.jobs import (
    CeleryRunner,
    CeleryWorker,
    EmbeddedRunner,
    JobHandler,
    JobQueue,
    JobRunner,
    RunnerSettings,
    register_task,
)

StartRunner = Callable[
    [JobQueue[MediaJob], JobHandler[MediaJob], RunnerSettings],
    AbstractAsyncContextManager[JobRunner],
]


@asynccontextmanager
async def embedded(
    queue: JobQueue[MediaJob], handler: JobHandler[MediaJob], settings: RunnerSettings
) -> AsyncIterator[JobRunner]:
    runner = EmbeddedRunner(queue, handler, settings)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


class _Worker:
    """A Celery "worker process" inside the test: the worker side on the test's loop,
    Celery's consumer in a thread. As a :class:`JobRunner`, the server side's hints."""

    remote = True

    def __init__(self, sender: CeleryRunner, worker: CeleryWorker[MediaJob]) -> None:
        self.sender, self.worker = sender, worker

    async def start(self) -> None:
        await self.sender.start()
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
        await self.sender.stop()

    def wake(self, job_id: str | None = None) -> None:
        self.sender.wake(job_id)

    def cancel(self, job_id: str) -> None:
        self.sender.cancel(job_id)


def celery(url: str, queue: str) -> StartRunner:
    @asynccontextmanager
    async def start(
        jobs: JobQueue[MediaJob], handler: JobHandler[MediaJob], settings: RunnerSettings
    ) -> AsyncIterator[JobRunner]:
        from celery.contrib.testing.worker import start_worker

        sender = CeleryRunner(url, queue)
        runner = _Worker(sender, CeleryWorker(jobs, handler, settings, sender))
        await runner.start()
        register_task(sender.app, runner.worker, asyncio.get_running_loop())
        consumer = start_worker(
            sender.app,
            concurrency=settings.workers,
            pool="threads",
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=20,
        )
        await asyncio.to_thread(consumer.__enter__)
        try:
            yield runner
        finally:
            await runner.stop()
            await asyncio.to_thread(consumer.__exit__, None, None, None)

    return start


@pytest.fixture(params=["embedded", "celery"])
def start_runner(request: pytest.FixtureRequest) -> Iterator[StartRunner]:
    """``async with start_runner(queue, handler, settings) as runner``: a started runner
    of each kind (for Celery, with its worker; several share one Redis queue)."""
    if request.param == "embedded":
        yield embedded
        return
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    yield celery(url, prefix.rstrip(":"))
    delete_keys(url, prefix)


def delete_keys(url: str, prefix: str) -> None:
    """Delete every Redis key starting with ``prefix``."""
    import redis

    client: Any = redis.Redis.from_url(url)
    with client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
