"""Real ``wirelab worker`` (and ``wirelab serve``) child processes for the media tests."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from wirelab.media import MediaSettings

# MediaSettings fields that are also ``--media-*`` options of ``wirelab worker``.
_FLAGS = (
    "workers", "source_template", "allow_network", "result_ttl", "job_timeout",
    "max_source_duration", "max_clip_duration", "max_output_size", "max_active_jobs",
    "retries", "retry_backoff",
)  # fmt: skip


def media_flags(settings: MediaSettings) -> list[str]:
    """The ``--media-*`` options that give a worker ``settings`` (those it uses)."""
    default = MediaSettings()
    flags: list[str] = []
    for field in fields(MediaSettings):
        value = getattr(settings, field.name)
        if field.name not in _FLAGS or value == getattr(default, field.name):
            continue
        text = ",".join(map(str, value)) if field.name == "allow_network" else str(value)
        flags += [f"--media-{field.name.replace('_', '-')}", text]
    return flags


def store_flags(database_url: str | None, storage_url: str | None) -> list[str]:
    """The options that give a worker the server's database and blob store (without
    them: the SQLite store and blob folder of its ``--data-dir``)."""
    flags = ["--database-url", database_url] if database_url else []
    return flags + (["--storage-url", storage_url] if storage_url else [])


def worker_for(config: Any, lease: float = 30) -> WorkerProcess:
    """A ``wirelab worker`` for the jobs of the server configured by ``config`` (a
    ``ServerConfig`` with a ``jobs_url``): its data folder, database, storage and media
    options."""
    return WorkerProcess(
        config.data_dir,
        config.jobs_url,
        config.jobs_queue,
        *media_flags(config.media),
        *store_flags(config.database_url, config.storage_url),
        lease=lease,
    )


class WorkerProcess:
    """``wirelab worker`` on ``data_dir`` for the jobs of ``jobs_url`` / ``queue``;
    started at once, ready (consuming) when the constructor returns."""

    def __init__(
        self, data_dir: Path, jobs_url: str, queue: str, *extra: str, lease: float = 30
    ) -> None:
        self.log = data_dir.parent / f"worker-{time.monotonic_ns()}.log"
        self.argv = [
            sys.executable, "-m", "wirelab", "worker", "--data-dir", str(data_dir),
            "--jobs-url", jobs_url, "--jobs-queue", queue, "--jobs-lease", str(lease),
            "--log-level", "info", *extra,
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b" ready." not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"wirelab worker did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the worker and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (a clean stop: jobs in progress are requeued); the exit status."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def serve_process_module() -> Any:
    """tests/relay/_serve_process.py (the relay tests' real-server helper)."""
    path = Path(__file__).parents[1] / "relay" / "_serve_process.py"
    spec = importlib.util.spec_from_file_location("_relay_serve_process", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
