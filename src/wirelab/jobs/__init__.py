"""Background jobs: the runner interface, the embedded (in-process) runner and the
Celery runner (server side :class:`CeleryRunner`, worker side :class:`CeleryWorker`).

See :mod:`wirelab.jobs._api` for the contract that every runner keeps.
"""

from __future__ import annotations

from ._api import ClaimedJob, JobContext, JobHandler, JobQueue, JobRunner, RunnerSettings
from ._celery import DEFAULT_QUEUE, CeleryRunner, check_jobs_url
from ._celery_worker import CeleryWorker, register_task, run_celery_worker
from ._embedded import EmbeddedRunner

__all__ = [
    "DEFAULT_QUEUE",
    "CeleryRunner",
    "CeleryWorker",
    "ClaimedJob",
    "EmbeddedRunner",
    "JobContext",
    "JobHandler",
    "JobQueue",
    "JobRunner",
    "RunnerSettings",
    "check_jobs_url",
    "register_task",
    "run_celery_worker",
]
