"""Media jobs on Celery: the server only queues job ids, real ``wirelab worker``
processes run them (see also the tests marked ``RUNNERS``, which run on both runners)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from wirelab.cli import main
from wirelab.jobs import CeleryRunner
from wirelab.media.testing import MediaServer

from ._workers import WorkerProcess, serve_process_module, worker_for
from .conftest import Media, ffmpeg_processes, group_alive, wait_job

pytestmark = pytest.mark.parametrize("runner", ["celery"])


def _submit(client: httpx.Client, **body: Any) -> str:
    response = client.post("/v1/media/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _add_worker(media: Media, lease: float = 30) -> WorkerProcess:
    worker = worker_for(media.server.app.state.config, lease=lease)
    media.workers.append(worker)
    return worker


def _ffmpeg_of(workers: list[WorkerProcess], timeout: float = 60) -> tuple[WorkerProcess, int]:
    """The worker running an ffmpeg, and that ffmpeg's process group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if found := ffmpeg_processes(worker.pid):
                return worker, next(iter(found.values()))
        time.sleep(0.05)
    raise AssertionError("no worker ran ffmpeg")


@pytest.mark.distributed
def test_a_job_runs_on_the_worker_and_downloads_through_the_server(
    media: Media, source: MediaServer
) -> None:
    assert isinstance(media.server.app.state.media_runtime.service.runner, CeleryRunner)
    source.slow_delay = 0.1
    job_id = _submit(
        media.alice, source=source.url("slow/hls/index.m3u8"), end="4", accuracy="exact"
    )
    worker, _ = _ffmpeg_of(media.workers)
    assert ffmpeg_processes(worker.pid)  # the worker's child, not the server's
    job, _ = wait_job(media.alice, job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 1
    data = media.alice.get(job["result"]["url"]).content
    assert len(data) == job["result"]["size"]
    assert hashlib.sha256(data).hexdigest() == job["result"]["sha256"]
    assert f"job {job_id}: attempt 1 on celery-" in worker.log.read_text()


def test_a_job_delivered_twice_runs_once(media: Media, source: MediaServer) -> None:
    _add_worker(media)  # the duplicate may go to either worker
    source.slow_delay = 0.2
    job_id = _submit(
        media.alice, source=source.url("slow/hls/index.m3u8"), end="6", accuracy="exact"
    )
    _ffmpeg_of(media.workers)
    config = media.server.app.state.config
    url, queue = config.jobs_url, config.jobs_queue
    sender = CeleryRunner(url, queue)
    for _ in range(3):  # what a broker redelivering the message would do
        sender.send(job_id)
    sender.app.pool.force_close_all()
    job, _ = wait_job(media.alice, job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 1
    logs = "".join(w.log.read_text() for w in media.workers)
    assert logs.count(f"job {job_id}: attempt") == 1


@pytest.mark.distributed
def test_a_killed_workers_job_is_requeued_and_completes_on_another(
    media_factory: Callable[..., Media], source: MediaServer
) -> None:
    media = media_factory()
    media.workers.pop().stop()  # replaced by two workers with a short lease
    workers = [_add_worker(media, lease=2), _add_worker(media, lease=2)]
    source.slow_delay = 0.3
    job_id = _submit(
        media.alice, source=source.url("slow/hls/index.m3u8"), end="6", accuracy="exact"
    )
    victim, pgid = _ffmpeg_of(workers)
    victim.kill()
    # PR_SET_PDEATHSIG: the killed worker's ffmpeg dies with it.
    deadline = time.monotonic() + 10
    while group_alive(pgid):
        assert time.monotonic() < deadline, "ffmpeg outlived its worker"
        time.sleep(0.05)
    job, _ = wait_job(media.alice, job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2
    survivor = next(w for w in workers if w is not victim)
    assert f"job {job_id}: attempt 2 on celery-" in survivor.log.read_text()
    assert len(media.alice.get(job["result"]["url"]).content) == job["result"]["size"]


def test_a_stopped_workers_job_goes_back_to_the_queue(media: Media, source: MediaServer) -> None:
    """SIGTERM mid-job: the worker requeues the job (with a message) and exits 0; the
    next worker completes it."""
    source.slow_delay = 0.3
    job_id = _submit(
        media.alice, source=source.url("slow/hls/index.m3u8"), end="6", accuracy="exact"
    )
    worker, pgid = _ffmpeg_of(media.workers)
    assert worker.stop() == 0
    assert not group_alive(pgid)
    assert media.alice.get(f"/v1/media/jobs/{job_id}").json()["state"] == "queued"
    _add_worker(media)
    job, _ = wait_job(media.alice, job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2
    assert media.work_files() == []


def test_bad_jobs_settings_are_one_readable_line(runner: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--jobs-url", "http://127.0.0.1:6379"])
    assert result.exit_code != 0
    assert "the jobs URL must be redis://" in result.output
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code != 0
    assert "give --jobs-url" in result.output
    result = CliRunner().invoke(
        main, ["worker", "--jobs-url", "redis://127.0.0.1:1/0", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 5
    assert "no wirelab database here" in result.output


def test_a_worker_beside_a_real_server_survives_its_restart(
    tmp_path: Path, source: MediaServer, redis_scratch: tuple[str, str], runner: str
) -> None:
    """``wirelab serve`` holds the data folder's lock; a worker on the same folder runs
    beside it. SIGKILL the server mid-job and start it again: the job keeps running on
    the worker (the restarted server neither requeues it nor recovers the media store
    under it) and completes once."""
    serve = serve_process_module()
    url, prefix = redis_scratch
    queue = prefix.rstrip(":")
    data = tmp_path / "data"
    tokens = serve.add_users(data, "alice")
    jobs = ["--jobs-url", url, "--jobs-queue", queue]
    server = serve.ServeProcess(data, "--media-allow-network", "127.0.0.0/8", *jobs)
    worker = WorkerProcess(data, url, queue, "--media-allow-network", "127.0.0.0/8")
    source.slow_delay = 0.5
    try:
        headers = {"Authorization": f"Bearer {tokens['alice']}"}
        with httpx.Client(base_url=server.url, headers=headers) as client:
            job_id = _submit(
                client, source=source.url("slow/hls/index.m3u8"), end="16", accuracy="exact"
            )
            _ffmpeg_of([worker])
            server.kill()
            server.start()
            job, seen = wait_job(client, job_id)
            assert job["state"] == "succeeded", job
            assert job["attempts"] == 1
            assert any(0 < p < 100 for p in seen)  # progress, through the new server
            data_bytes = client.get(job["result"]["url"]).content
            assert hashlib.sha256(data_bytes).hexdigest() == job["result"]["sha256"]
    finally:
        server.kill()
        worker.stop()
