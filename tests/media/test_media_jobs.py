"""The job lifecycle through the HTTP API: failures, cancel, dedup, idempotency, auth,
isolation, expiry, timeouts."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from _server_setup import stored_files
from wirelab.cli import main
from wirelab.db import connect
from wirelab.media.testing import MediaServer

from .conftest import RUNNERS, Media, ffmpeg_processes, group_alive, wait_job


def _submit(media: Media, **body: Any) -> dict[str, Any]:
    response = media.alice.post("/v1/media/jobs", json=body)
    assert response.status_code in (200, 202), response.text
    doc: dict[str, Any] = response.json()
    return doc


def _failure(media: Media, **body: Any) -> dict[str, Any]:
    job, _ = wait_job(media.alice, str(_submit(media, **body)["id"]))
    assert job["state"] == "failed", job
    error = job["error"]
    assert isinstance(error, dict)
    return error


@RUNNERS
def test_missing_source_fails_for_good(media: Media, source: MediaServer) -> None:
    error = _failure(media, source=source.url("no-such-video.mp4"), end="2")
    assert "404" in error["message"]
    assert error["retryable"] is False


@pytest.mark.parametrize(("start", "end"), [("40", None), ("10", "45")])
def test_range_past_the_end_fails_with_the_source_length(
    media: Media, source: MediaServer, start: str, end: str | None
) -> None:
    error = _failure(media, source=source.url("video.mp4"), start=start, end=end)
    assert "past the end of the source (30" in error["message"]
    assert error["retryable"] is False


def test_non_media_source_fails_for_good(media: Media, source: MediaServer) -> None:
    error = _failure(media, source=source.url("notmedia.txt"))
    assert "not a media file" in error["message"]
    assert error["retryable"] is False


@RUNNERS
def test_unreachable_host_is_retried_then_fails_retryable(
    media_factory: Callable[..., Media], unused_port: int
) -> None:
    media = media_factory(retries=1, retry_backoff=0.1)
    job, _ = wait_job(
        media.alice, str(_submit(media, source=f"http://127.0.0.1:{unused_port}/v.mp4")["id"])
    )
    assert job["state"] == "failed"
    assert job["attempts"] == 2
    error = job["error"]
    assert isinstance(error, dict)
    assert error["retryable"] is True
    assert "cannot connect" in error["message"]


@RUNNERS
def test_job_timeout(media_factory: Callable[..., Media], source: MediaServer) -> None:
    source.slow_delay = 0.5
    media = media_factory(job_timeout=1.5)
    error = _failure(media, source=source.url("slow/hls/index.m3u8"), accuracy="exact")
    assert "longer than the limit of 1.5 s" in error["message"]
    assert error["retryable"] is False


def _running(media: Media, job_id: str) -> int:
    """Wait until the job runs ffmpeg; return that ffmpeg's process group."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = media.alice.get(f"/v1/media/jobs/{job_id}").json()
        assert job["state"] in ("queued", "running"), job
        if job["phase"] == "encoding" and (found := ffmpeg_processes(os.getpid())):
            return next(iter(found.values()))
        time.sleep(0.05)
    raise AssertionError("the job never ran ffmpeg")


@RUNNERS
@pytest.mark.distributed
def test_cancel_running_job_stops_ffmpeg_and_leaves_no_file(
    media: Media, source: MediaServer
) -> None:
    source.slow_delay = 0.5
    job_id = str(_submit(media, source=source.url("slow/hls/index.m3u8"), accuracy="exact")["id"])
    pgid = _running(media, job_id)
    response = media.alice.delete(f"/v1/media/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json()["state"] == "canceled"
    assert not group_alive(pgid)
    assert media.work_files() == []
    assert [p for p in (media.data_dir / "media").rglob("*") if p.is_file()] == []
    assert media.alice.get(f"/v1/media/jobs/{job_id}/result").status_code == 409
    assert media.alice.get(f"/v1/media/jobs/{job_id}").json()["state"] == "canceled"


@RUNNERS
def test_cancel_queued_job(media_factory: Callable[..., Media], source: MediaServer) -> None:
    source.slow_delay = 0.5
    media = media_factory(workers=1)
    first = str(_submit(media, source=source.url("slow/hls/index.m3u8"), accuracy="exact")["id"])
    second = str(_submit(media, source=source.url("slow/video.mp4"), accuracy="exact")["id"])
    _running(media, first)
    assert media.alice.get(f"/v1/media/jobs/{second}").json()["state"] == "queued"
    response = media.alice.delete(f"/v1/media/jobs/{second}")
    assert response.status_code == 200
    assert response.json()["state"] == "canceled"
    assert media.alice.delete(f"/v1/media/jobs/{first}").json()["state"] == "canceled"


@RUNNERS
def test_delete_finished_job_deletes_its_result(media: Media, source: MediaServer) -> None:
    job, _ = wait_job(media.alice, str(_submit(media, source=source.url("video.mp4"), end="1",
                                               accuracy="fast")["id"]))  # fmt: skip
    assert job["state"] == "succeeded"
    config = media.server.app.state.config  # the result: in the data folder or the bucket
    assert stored_files(config, "media/blobs") != []
    assert media.alice.delete(f"/v1/media/jobs/{job['id']}").status_code == 204
    assert media.alice.get(f"/v1/media/jobs/{job['id']}").status_code == 404
    assert stored_files(config, "media/blobs") == []


def test_identical_request_returns_the_existing_job(media: Media, source: MediaServer) -> None:
    body = {"source": source.url("video.mp4"), "start": "1", "end": "2", "accuracy": "fast"}
    first = media.alice.post("/v1/media/jobs", json=body)
    assert first.status_code == 202
    again = media.alice.post("/v1/media/jobs", json={**body, "start": "00:00:01.000"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    wait_job(media.alice, first.json()["id"])
    after = media.alice.post("/v1/media/jobs", json=body)
    assert after.json()["id"] == first.json()["id"]  # its result exists
    other = media.alice.post("/v1/media/jobs", json={**body, "accuracy": "exact"})
    assert other.status_code == 202
    bobs = media.bob.post("/v1/media/jobs", json=body)
    assert bobs.status_code == 202
    assert bobs.json()["id"] != first.json()["id"]


def test_a_failed_request_is_tried_again(media: Media, source: MediaServer) -> None:
    body = {"source": source.url("missing.mp4")}
    first, _ = wait_job(media.alice, str(_submit(media, **body)["id"]))
    assert first["state"] == "failed"
    assert _submit(media, **body)["id"] != first["id"]


@pytest.mark.distributed
def test_idempotency_key(media: Media, source: MediaServer) -> None:
    body = {"source": source.url("video.mp4"), "end": "1", "accuracy": "fast"}
    headers = {"Idempotency-Key": "order-42"}
    first = media.alice.post("/v1/media/jobs", json=body, headers=headers)
    assert first.status_code == 202
    again = media.alice.post("/v1/media/jobs", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    changed = media.alice.post("/v1/media/jobs", json={**body, "end": "2"}, headers=headers)
    assert changed.status_code == 422
    assert "Idempotency-Key" in changed.json()["detail"]
    # Keys are per user.
    assert media.bob.post("/v1/media/jobs", json=body, headers=headers).status_code == 202


@pytest.mark.distributed
def test_auth_and_isolation(media: Media, source: MediaServer) -> None:
    anonymous = media.alice.post(
        "/v1/media/jobs", json={"source": source.url("video.mp4")}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    bad = media.alice.get("/v1/media/jobs", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    job, _ = wait_job(media.alice, str(_submit(media, source=source.url("video.mp4"), end="1",
                                               accuracy="fast")["id"]))  # fmt: skip
    url = f"/v1/media/jobs/{job['id']}"
    for response in (
        media.bob.get(url),
        media.bob.get(url + "/result"),
        media.bob.head(url + "/result"),
        media.bob.delete(url),
    ):
        assert response.status_code == 404
    assert media.bob.get("/v1/media/jobs").json() == {"jobs": []}
    assert media.alice.get(url + "/result").status_code == 200


def test_list_newest_first_and_by_state(media: Media, source: MediaServer) -> None:
    ids = [
        str(_submit(media, source=source.url("video.mp4"), end=str(n), accuracy="fast")["id"])
        for n in (1, 2)
    ]
    failed = str(_submit(media, source=source.url("missing.mp4"))["id"])
    for job_id in [*ids, failed]:
        wait_job(media.alice, job_id)
    listed = media.alice.get("/v1/media/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [failed, *reversed(ids)]
    only = media.alice.get("/v1/media/jobs", params={"state": "failed"}).json()["jobs"]
    assert [j["id"] for j in only] == [failed]
    assert media.alice.get("/v1/media/jobs", params={"state": "nope"}).status_code == 422


def test_results_expire(media_factory: Callable[..., Media], source: MediaServer) -> None:
    media = media_factory(result_ttl=1.0)
    job, _ = wait_job(media.alice, str(_submit(media, source=source.url("video.mp4"), end="1",
                                               accuracy="fast")["id"]))  # fmt: skip
    assert job["result"]["expires_at"]
    url = f"/v1/media/jobs/{job['id']}"
    deadline = time.monotonic() + 30
    while media.alice.get(url).json()["result"] is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert media.alice.get(url + "/result").status_code == 410
    blobs = media.data_dir / "media" / "blobs"
    assert [p for p in blobs.rglob("*") if p.is_file()] == []
    # Once expired, the same request makes a new job.
    body = {"source": source.url("video.mp4"), "end": "1", "accuracy": "fast"}
    assert _submit(media, **body)["id"] != job["id"]


def test_bad_requests_are_422_naming_the_problem(media: Media, source: MediaServer) -> None:
    cases: list[tuple[object, str]] = [
        ({"source": source.url("v.mp4"), "start": "5", "end": "4"}, "before end"),
        ({"source": source.url("v.mp4"), "start": "1:99"}, "is not a time"),
        ({"source": source.url("v.mp4"), "accuracy": "perfect"}, "accuracy must be one of"),
        ({"source": source.url("v.mp4"), "container": "avi"}, "container must be one of"),
        ({"source": source.url("v.mp4"), "colour": "red"}, "unknown field"),
        ({}, "exactly one of source and video_id"),
        ({"video_id": "abc"}, "no --media-source-template"),
        ([1, 2], "JSON object"),
    ]
    for body, message in cases:
        response = media.alice.post("/v1/media/jobs", json=body)
        assert response.status_code == 422, body
        assert message in response.json()["detail"], (body, response.json())
    response = media.alice.post("/v1/media/jobs", content=b"{nope")
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]


def test_clip_duration_limit(media_factory: Callable[..., Media], source: MediaServer) -> None:
    media = media_factory(max_clip_duration=5)
    response = media.alice.post(
        "/v1/media/jobs", json={"source": source.url("video.mp4"), "start": "1", "end": "7"}
    )
    assert response.status_code == 422
    assert "at most 5 s" in response.json()["detail"]
    error = _failure(media, source=source.url("video.mp4"), start="20")  # to the end: 10 s
    assert "at most 5 s" in error["message"]


def test_source_duration_limit(media_factory: Callable[..., Media], source: MediaServer) -> None:
    media = media_factory(max_source_duration=10)
    error = _failure(media, source=source.url("video.mp4"), end="1")
    assert "sources of at most 10 s" in error["message"]


def test_output_size_limit(media_factory: Callable[..., Media], source: MediaServer) -> None:
    media = media_factory(max_output_size=20_000)
    error = _failure(media, source=source.url("video.mp4"), end="10", accuracy="fast")
    assert "larger than this server's limit of 20000 bytes" in error["message"]


def test_video_id_through_the_template(
    media_factory: Callable[..., Media], source: MediaServer, tmp_path: Path
) -> None:
    media = media_factory(source_template=source.url("{video_id}"))
    job, _ = wait_job(media.alice, str(_submit(media, video_id="video.mp4", end="1",
                                               accuracy="fast")["id"]))  # fmt: skip
    assert job["state"] == "succeeded"
    assert job["request"]["source"] == source.url("video.mp4")
    for bad in ("../etc/passwd", "a/b", ".hidden", "x?y=1", "", "é"):
        response = media.alice.post("/v1/media/jobs", json={"video_id": bad})
        assert response.status_code == 422, bad
        assert "video_id must be" in response.json()["detail"]


def test_openapi_lists_the_media_endpoints(media: Media) -> None:
    spec = media.alice.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/v1/media/jobs"]) == {"get", "post"}
    assert set(paths["/v1/media/jobs/{job_id}"]) == {"get", "delete"}
    [wait] = [p for p in paths["/v1/media/jobs/{job_id}"]["get"]["parameters"]
              if p["name"] == "wait"]  # fmt: skip
    assert wait["in"] == "query" and wait["schema"]["maximum"] == 60
    assert set(paths["/v1/media/jobs/{job_id}/result"]) == {"get", "head"}
    body = paths["/v1/media/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) >= {"source", "video_id", "start", "end"}


@RUNNERS
def test_workers_bound_the_jobs_that_run_at_once(
    media_factory: Callable[..., Media], source: MediaServer
) -> None:
    source.slow_delay = 0.2
    media = media_factory(workers=2)
    ids = [
        str(
            _submit(
                media, source=source.url("slow/hls/index.m3u8"), end=str(4 + n), accuracy="exact"
            )["id"]
        )
        for n in range(4)
    ]
    most = 0
    while True:
        # One list request reads every state in one db query: a consistent snapshot.
        # (A GET per job is not: a job read as running may finish, and the next one
        # start, before the following GET, and the test would count both.)
        listed = media.alice.get("/v1/media/jobs").json()["jobs"]
        by_id = {str(job["id"]): job["state"] for job in listed}
        states = [by_id[i] for i in ids]
        most = max(most, states.count("running"))
        if all(s == "succeeded" for s in states):
            break
        assert "failed" not in states, states
        time.sleep(0.05)
    assert most == 2


def test_serve_refuses_a_bad_allowed_network() -> None:
    result = CliRunner().invoke(main, ["serve", "--media-allow-network", "10.0.0.0/8,nope"])
    assert result.exit_code != 0
    assert "--media-allow-network: not a network in CIDR notation: 'nope'" in result.output
    result = CliRunner().invoke(main, ["serve", "--media-source-template", "http://x/"])
    assert result.exit_code != 0
    assert "{video_id}" in result.output


def test_active_jobs_per_user_are_limited(
    media_factory: Callable[..., Media], source: MediaServer
) -> None:
    source.slow_delay = 0.5
    media = media_factory(workers=1, max_active_jobs=2)
    for end in ("1", "2"):
        _submit(media, source=source.url("slow/video.mp4"), end=end, accuracy="exact")
    response = media.alice.post(
        "/v1/media/jobs", json={"source": source.url("video.mp4"), "end": "3"}
    )
    assert response.status_code == 429
    assert "allows 2" in response.json()["detail"]
    assert (
        media.bob.post(
            "/v1/media/jobs", json={"source": source.url("video.mp4"), "end": "3"}
        ).status_code
        == 202
    )
    for job in media.alice.get("/v1/media/jobs").json()["jobs"]:
        media.alice.delete(job["url"])


def test_a_removed_users_jobs_go_with_it(media: Media, source: MediaServer) -> None:
    job, _ = wait_job(media.alice, str(_submit(media, source=source.url("video.mp4"), end="1",
                                               accuracy="fast")["id"]))  # fmt: skip
    assert job["state"] == "succeeded"
    url = media.server.app.state.config.metadata_url

    async def replace_alice() -> str:
        async with await connect(url) as db:
            await db.users.remove_user("alice")
            return (await db.users.add_user("alice"))[1]

    token = asyncio.run(replace_alice())
    new_alice = {"Authorization": f"Bearer {token}"}
    assert media.alice.get("/v1/media/jobs", headers=new_alice).json() == {"jobs": []}
    assert media.alice.get(f"/v1/media/jobs/{job['id']}", headers=new_alice).status_code == 404
    blobs = media.data_dir / "media" / "blobs"
    deadline = time.monotonic() + 30
    while [p for p in blobs.rglob("*") if p.is_file()]:  # the sweeper deletes the result
        assert time.monotonic() < deadline
        time.sleep(0.1)
