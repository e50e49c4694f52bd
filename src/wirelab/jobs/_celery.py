"""Jobs on Celery: the server side (:class:`CeleryRunner`) and what both sides share.

With ``WIRELAB_JOBS_URL=redis://...`` the server runs no job itself: for each queued job
it sends one Celery task message carrying only the job id to the queue ``jobs_queue`` on
that Redis, and ``wirelab worker`` processes (:mod:`._celery_worker`) run them. The db
stays the truth: a worker claims a due job with a lease before running it, so a message
delivered twice (or a stale one) finds nothing to claim and does nothing.

Cancel: the server sets the job's cancel flag in the db (the worker's heartbeat reads it)
and also publishes the job id on the Redis channel ``<queue>:cancel``, which makes the
worker running it look at the flag at once instead of at its next heartbeat.

Every Redis key Celery makes (the queue's list, bindings, unacknowledged messages) starts
with ``<queue>:``, so several deployments (or test runs) share one Redis safely.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from typing import Any

from .._exceptions import UsageError

__all__ = [
    "DEFAULT_QUEUE",
    "TASK_NAME",
    "CeleryRunner",
    "cancel_channel",
    "celery_app",
    "check_jobs_url",
]

_log = logging.getLogger("wirelab.jobs")

TASK_NAME = "wirelab.media.run"
"""The one task: ``run(job_id)``."""

DEFAULT_QUEUE = "wirelab"


def check_jobs_url(url: str) -> str:
    """``url`` if it is a Redis URL and Celery is installed; :class:`~wirelab.UsageError`
    otherwise."""
    scheme = url.partition("://")[0].lower()
    if scheme not in ("redis", "rediss") or "://" not in url:
        raise UsageError(
            f"the jobs URL must be redis://HOST[:PORT][/DB] (or rediss://), not {url!r}"
        )
    missing = [name for name in ("celery", "redis") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"jobs on Celery need {' and '.join(missing)}: pip install 'wirelab[celery]'"
        )
    return url


def cancel_channel(queue: str) -> str:
    """The Redis pub/sub channel of cancel hints for ``queue``."""
    return f"{queue}:cancel"


def celery_app(url: str, queue: str) -> Any:
    """The Celery app of the broker at ``url`` (Redis) and ``queue``; both the server
    (which only sends) and the workers build it with this function, so they agree."""
    check_jobs_url(url)
    from celery import Celery

    app = Celery("wirelab", broker=url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        broker_transport_options={"global_keyprefix": f"{queue}:"},
        broker_connection_retry_on_startup=True,
        # A message is acknowledged when its task returned, so a message of a worker that
        # died is delivered again (harmless: the db lease decides who runs the job).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
    )
    return app


class CeleryRunner:
    """The server's :class:`~wirelab.jobs.JobRunner` when jobs run on Celery workers:
    it sends job ids and cancel hints, and runs nothing itself."""

    remote = True

    def __init__(self, url: str, queue: str = DEFAULT_QUEUE) -> None:
        self.url = check_jobs_url(url)
        self.queue = queue
        self.app = celery_app(url, queue)
        self._redis: Any = None
        self._pending: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(self.url)

    async def stop(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=5)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        # The producer's connection pool: closed here, reopened by a later send.
        await asyncio.to_thread(self.app.pool.force_close_all)

    def send(self, job_id: str, countdown: float = 0.0) -> None:
        """Queue a message for ``job_id`` (blocking: call it off the event loop)."""
        self.app.send_task(TASK_NAME, args=[job_id], queue=self.queue, countdown=countdown or None)

    def wake(self, job_id: str | None = None) -> None:
        if job_id is None:  # workers also claim due jobs when idle (see the worker)
            return
        self._spawn(asyncio.to_thread(self.send, job_id), f"cannot queue job {job_id}")

    def cancel(self, job_id: str) -> None:
        if self._redis is not None:
            publish = self._redis.publish(cancel_channel(self.queue), job_id)
            self._spawn(publish, f"cannot publish the cancel of job {job_id}")

    def _spawn(self, work: Any, failure: str) -> None:
        """Run ``work`` in the background; log ``failure`` when it fails (the db keeps
        the truth: a lost message is picked up by an idle worker's check)."""
        future = asyncio.ensure_future(work)
        self._pending.add(future)

        def done(future: asyncio.Future[Any]) -> None:
            self._pending.discard(future)
            if not future.cancelled() and future.exception() is not None:
                _log.error("%s", failure, exc_info=future.exception())

        future.add_done_callback(done)
