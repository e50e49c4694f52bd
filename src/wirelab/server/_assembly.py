"""What the server and ``wirelab worker`` build alike from one :class:`ServerConfig`,
so that both use the same database, the same media blob store and the same job runner
settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..jobs import CeleryRunner, JobRunner, RunnerSettings
from ..media import MediaService
from ..media._service import runner_settings as media_runner_settings
from ..storage import BlobStore, open_blob_store
from ._config import ServerConfig

__all__ = ["media_blob_store", "media_runner", "runner_settings"]


def media_blob_store(config: ServerConfig) -> BlobStore:
    """The store of media results (the workers write it, the server reads it)."""
    return open_blob_store(config.storage_url, "media", config.data_dir)


def runner_settings(config: ServerConfig) -> RunnerSettings:
    """The settings of media job attempts on a worker (the server's, plus the lease)."""
    return replace(media_runner_settings(config.media), lease=config.jobs_lease)


def media_runner(config: ServerConfig) -> Callable[[MediaService], JobRunner] | None:
    """The server's runner: ``None`` (the service's embedded default) or Celery."""
    url = config.jobs_url
    if url is None:
        return None
    return lambda _service: CeleryRunner(url, config.jobs_queue)
