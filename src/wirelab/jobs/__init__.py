"""Background jobs: the runner interface and its embedded (in-process) implementation.

See :mod:`wirelab.jobs._api` for the contract that every runner keeps.
"""

from __future__ import annotations

from ._api import ClaimedJob, JobContext, JobHandler, JobQueue, JobRunner, RunnerSettings
from ._embedded import EmbeddedRunner

__all__ = [
    "ClaimedJob",
    "EmbeddedRunner",
    "JobContext",
    "JobHandler",
    "JobQueue",
    "JobRunner",
    "RunnerSettings",
]
