"""The runners under test: every test of this folder runs against the embedded runner
and the Celery runner (a real Celery worker, in a thread of the test process, on the
machine's Redis, with its own queue and key prefix)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from wirelab.db import MediaJob
from wirelab.jobs import (
    CeleryRunner,
    CeleryWorker,
    EmbeddedRunner,
    JobContext,
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
Handler = Callable[[MediaJob, JobContext], Coroutine[Any, Any, None]]


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

    async def start(self) -> None:  # pragma: no cover - started by celery() below
        raise NotImplementedError

    async def stop(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def wake(self, job_id: str | None = None) -> None:
        self.sender.wake(job_id)

    def cancel(self, job_id: str) -> None:
        self.sender.cancel(job_id)


class _Consumers:
    """Celery consumers in threads of the test process. Celery stops them all at once
    (a process-wide flag), so they are stopped when the last one is no longer needed;
    until then a worker stopped earlier hands the messages it gets back to the queue."""

    def __init__(self) -> None:
        self.live: list[tuple[Any, threading.Thread]] = []
        self.needed = 0

    def start(self, app: Any, concurrency: int) -> None:
        from celery.contrib.testing.worker import TestWorkController, setup_app_for_worker

        class Controller(TestWorkController):  # type: ignore[misc]
            def should_use_eventloop(self) -> bool:
                # kombu's event loop (hub) is process-wide: two consumers in one process
                # would share it. The blocking loop keeps each on its own connection.
                return False

        setup_app_for_worker(app, "WARNING", None)
        controller = Controller(
            app=app, concurrency=concurrency, pool="threads", loglevel="WARNING",
            logfile=None, ready_callback=None, without_heartbeat=True, without_mingle=True,
            without_gossip=True, hostname=f"test-{len(self.live)}@localhost",
        )  # fmt: skip
        thread = threading.Thread(target=controller.start, daemon=True)
        thread.start()
        controller.ensure_started()
        self.live.append((controller, thread))
        self.needed += 1

    def release(self) -> None:
        from celery.worker import state

        self.needed -= 1
        if self.needed:
            return
        state.should_terminate = 0
        for _, thread in self.live:
            thread.join(30)
            assert not thread.is_alive(), "a Celery consumer did not stop"
        self.live.clear()
        state.should_terminate = None


def celery(url: str, queue: str) -> StartRunner:
    consumers = _Consumers()

    @asynccontextmanager
    async def start(
        jobs: JobQueue[MediaJob], handler: JobHandler[MediaJob], settings: RunnerSettings
    ) -> AsyncIterator[JobRunner]:
        sender = CeleryRunner(url, queue)
        runner = _Worker(sender, CeleryWorker(jobs, handler, settings, sender))
        await sender.start()
        await runner.worker.start()
        register_task(sender.app, runner.worker, asyncio.get_running_loop())
        await asyncio.to_thread(consumers.start, sender.app, settings.workers)
        try:
            yield runner
        finally:
            await runner.worker.stop()
            await asyncio.to_thread(consumers.release)
            await sender.stop()

    return start


@pytest.fixture(params=["embedded", "celery"])
def start_runner(request: pytest.FixtureRequest) -> StartRunner:
    """``async with start_runner(queue, handler, settings) as runner``: a started runner
    of each kind (for Celery, with its worker; several share one Redis queue)."""
    if request.param == "embedded":
        return embedded
    url, prefix = request.getfixturevalue("redis_scratch")
    return celery(url, prefix.rstrip(":"))
