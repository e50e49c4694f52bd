"""Restart recovery: SIGKILL a real ``wirelab serve`` mid-job; the job completes after
the restart, and the killed server's ffmpeg does not outlive it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from wirelab.media.testing import MediaServer

from ._workers import serve_process_module
from .conftest import ffmpeg_processes, group_alive, wait_job


def test_job_survives_a_server_kill(tmp_path: Path, source: MediaServer) -> None:
    serve = serve_process_module()
    tokens = serve.add_users(tmp_path / "data", "alice")
    server = serve.ServeProcess(tmp_path / "data", "--media-allow-network", "127.0.0.0/8")
    source.slow_delay = 0.3
    try:
        client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {tokens['alice']}"}
        )
        with client:
            body = {"source": source.url("slow/hls/index.m3u8"), "end": "10", "accuracy": "exact"}
            job_id = client.post("/v1/media/jobs", json=body).json()["id"]
            job, _ = wait_job(client, job_id, states=("running",))
            deadline = time.monotonic() + 30
            while not (found := ffmpeg_processes(server.proc.pid)):
                assert time.monotonic() < deadline, "no ffmpeg started"
                time.sleep(0.05)
            server.kill()
            # PR_SET_PDEATHSIG: the orphaned ffmpeg dies with its server.
            deadline = time.monotonic() + 10
            while any(group_alive(g) for g in found.values()):
                assert time.monotonic() < deadline, "ffmpeg outlived its server"
                time.sleep(0.05)
            server.start()
            job, _ = wait_job(client, job_id)
            assert job["state"] == "succeeded", job
            assert job["attempts"] == 2
            data = client.get(job["result"]["url"]).content
            assert len(data) == job["result"]["size"]
    finally:
        server.kill()
    assert [p for p in (tmp_path / "data" / "media-work").rglob("*") if p.is_file()] == []
