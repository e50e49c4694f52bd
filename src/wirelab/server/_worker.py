"""``wirelab worker``: a Celery worker process running the media jobs of servers started
with the same ``jobs_url``.

A worker is not a server: it takes no data-folder lock (several workers and a server run
side by side on one data folder) and never runs the blob store's start-up recovery (which
would cut the uploads of other processes short). It uses the server's database, media
blob store and media settings, and keeps the files of attempts in progress in a folder of
its own, ``media-workers/<id>``, held under an ``flock`` for its lifetime: a starting
worker removes only the folders whose lock is free (their worker died).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..db import connect
from ..jobs import CeleryRunner, CeleryWorker, run_celery_worker
from ..media import MediaService
from ._assembly import media_blob_store, runner_settings
from ._config import ServerConfig

__all__ = ["WORK_FOLDERS", "claim_work_folder", "run_worker"]

WORK_FOLDERS = "media-workers"


def claim_work_folder(root: Path) -> tuple[Path, int]:
    """A new folder under ``root`` for this process's work files, and the descriptor of
    its held lock (closing it releases the folder). Folders of dead workers are removed.

    The lock file ``<id>.lock`` is locked before the folder ``<id>`` exists, so a folder
    whose lock can be taken belongs to no live worker."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for entry in root.iterdir():
        if not entry.is_dir():
            continue
        dead = _lock(entry.with_suffix(".lock"), block=False)
        if dead is not None:
            shutil.rmtree(entry, ignore_errors=True)
            entry.with_suffix(".lock").unlink(missing_ok=True)
            os.close(dead)
    name = uuid.uuid4().hex[:12]
    fd = _lock(root / f"{name}.lock", block=True)
    assert fd is not None
    folder = root / name
    folder.mkdir(mode=0o700)
    return folder, fd


def _lock(path: Path, *, block: bool) -> int | None:
    """An open descriptor of ``path`` holding its exclusive lock, or ``None`` (taken)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def run_worker(config: ServerConfig) -> None:
    """Run a worker for ``config.jobs_url`` until SIGINT/SIGTERM (see the module doc)."""
    if config.jobs_url is None:
        raise ValueError("a worker needs the jobs URL")
    sender = CeleryRunner(config.jobs_url, config.jobs_queue)

    async def setup() -> tuple[CeleryWorker[Any], Callable[[], Any]]:
        folder, fd = claim_work_folder(config.data_dir / WORK_FOLDERS)
        db = await connect(config.metadata_url, pool_size=config.database_pool_size)
        service = MediaService(
            db, media_blob_store(config), config.media, folder, runner=lambda _: sender
        )
        worker = CeleryWorker(db.media, service.run_job, runner_settings(config), sender)
        await sender.start()
        await worker.start()

        async def teardown() -> None:
            await worker.stop()
            await sender.stop()
            await db.close()
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.with_suffix(".lock").unlink()
                os.close(fd)

        return worker, teardown

    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_celery_worker(sender, config.media.workers, setup, log_level=config.log_level)
