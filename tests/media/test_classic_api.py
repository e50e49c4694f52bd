"""The classic clip API (``/hopster``): its whole contract and flow, driven by a client
that makes exactly the original service's documented calls (``_hopster_client``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from wirelab import UsageError
from wirelab.cli import main
from wirelab.db import connect
from wirelab.media import MediaSettings
from wirelab.media.testing import MediaServer, stream_duration
from wirelab.server import ServerConfig
from wirelab.testing._live import LiveServer

from ._hopster_client import HopsterClient, HopsterError
from .conftest import LOOPBACK

FRAME = 1 / 25
CLIP = "video_from_000003000000_till_000006000000.mp4"


def classic_server(
    server_factory: Callable[..., LiveServer], template: str, **media: Any
) -> LiveServer:
    settings = replace(MediaSettings(allow_network=LOOPBACK, source_template=template), **media)
    return server_factory(media=settings, media_classic_user="classic")


@pytest.fixture
def server(server_factory: Callable[..., LiveServer], source: MediaServer) -> LiveServer:
    """Classic API on; video ids name the test media's files (``video`` is the MP4)."""
    return classic_server(server_factory, source.url("{video_id}.mp4"))


@pytest.fixture
def hopster(server: LiveServer) -> Iterator[HopsterClient]:
    with HopsterClient(server.url + "/hopster") as client:
        yield client


def classic_jobs(server: LiveServer) -> list[Any]:
    """The classic user's jobs, newest first, read from the server's store."""
    url = server.app.state.config.metadata_url

    async def run() -> list[Any]:
        async with await connect(url) as db:
            return await db.media.list_jobs("classic", None, 100)

    return asyncio.run(run())


def test_welcome(server: LiveServer, hopster: HopsterClient) -> None:
    assert hopster.welcome() == "Welcome to Hopster's Video Downloading Service!"
    raw = hopster.get("/")
    assert raw.status_code == 200
    assert raw.json() == {"message": "Welcome to Hopster's Video Downloading Service!"}
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/hopster/", "/hopster/schedule", "/hopster/progress", "/hopster/download"} <= set(
        paths
    )


@pytest.mark.distributed
def test_schedule_poll_download(
    server_factory: Callable[..., LiveServer], source: MediaServer, tmp_path: Path
) -> None:
    # A slow source keeps the job running for a while: its file does not exist yet.
    server = classic_server(server_factory, source.url("slow/{video_id}.mp4"))
    with HopsterClient(server.url + "/hopster") as hopster:
        name = hopster.schedule("video", start="00:00:03", stop="00:00:06")
        assert name == CLIP
        assert hopster.is_finished(name) is False
        with pytest.raises(HopsterError) as caught:
            hopster.download(name, tmp_path / "early.mp4")
        assert (caught.value.code, caught.value.message) == (200, f"Video does not exist: {CLIP}")

        hopster.wait(name)
        got = hopster.download(name, tmp_path / name)
    assert abs(stream_duration(got) - 3.0) <= FRAME
    jobs = classic_jobs(server)
    assert len(jobs) == 1 and jobs[0].state == "succeeded" and jobs[0].owner == "classic"


@pytest.mark.parametrize("style", ["json", "data", "form", "text"])
def test_the_body_is_json_whatever_the_content_type(
    server: LiveServer, hopster: HopsterClient, style: str
) -> None:
    hopster.body_style = style
    assert hopster.schedule("video", start="00:00:01") == "video_from_000001000000_till_end.mp4"
    assert hopster.schedule("video", stop="00:00:02.5") == "video_from_start_till_000002500000.mp4"
    assert hopster.schedule("video") == "video_from_start_till_end.mp4"
    assert len(classic_jobs(server)) == 3


def test_a_job_starts_unless_the_file_exists(
    server: LiveServer, hopster: HopsterClient, tmp_path: Path
) -> None:
    name = hopster.schedule("video", start="00:00:03", stop="00:00:06")
    assert hopster.schedule("video", start="00:00:03", stop="00:00:06") == name  # running
    hopster.wait(name)
    assert hopster.schedule("video", start="00:00:03", stop="00:00:06") == name  # exists
    assert len(classic_jobs(server)) == 1
    first = hopster.download(name, tmp_path / "a.mp4").read_bytes()
    assert hopster.download(name, tmp_path / "b.mp4").read_bytes() == first


def test_a_failed_job_is_finished_and_its_download_answers_the_error(
    server: LiveServer, hopster: HopsterClient, tmp_path: Path
) -> None:
    name = hopster.schedule("missing", stop="00:00:02")  # no such file at the source
    hopster.wait(name)
    assert hopster.is_finished(name) is True
    with pytest.raises(HopsterError) as caught:
        hopster.download(name, tmp_path / name)
    assert caught.value.code == 200
    assert caught.value.message.startswith(f"Video could not be made: {name}: ")
    assert not (tmp_path / name).exists()
    # Not finished forever: scheduling it again starts a new job.
    assert hopster.schedule("missing", stop="00:00:02") == name
    assert [job.state for job in classic_jobs(server)][1] == "failed"
    assert len(classic_jobs(server)) == 2
    hopster.wait(name)


def error_of(response: httpx.Response) -> tuple[int, str]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "code"}
    return error["code"], error["message"]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"video_id=video", 100, "Invalid JSON for `schedule`: "),
        (b"", 100, "Invalid JSON for `schedule`: "),
        (b"[1, 2]", 100, "Invalid JSON for `schedule`: "),
        (b"{}", 200, "Values are missing: 'video_id'"),
        (b'{"start": "00:00:01"}', 200, "Values are missing: 'video_id'"),
        (b'{"video_id": "../etc/passwd"}', 200, "Video does not exist: ../etc/passwd"),
        (b'{"video_id": "video", "start": "3"}', 300, "Invalid time for `schedule`: "),
        (b'{"video_id": "video", "start": "00:00:06", "stop": "00:00:03"}', 300,
         "Invalid time for `schedule`: "),
    ],
)  # fmt: skip
def test_schedule_errors(
    server: LiveServer, hopster: HopsterClient, body: bytes, code: int, message: str
) -> None:
    response = httpx.post(server.url + "/hopster/schedule", content=body)
    got_code, got_message = error_of(response)
    assert got_code == code and got_message.startswith(message), got_message
    if message.endswith(": "):
        assert len(got_message) > len(message)  # says what was wrong
    assert classic_jobs(server) == []


def test_a_clip_over_the_servers_limit_is_a_time_error(
    server_factory: Callable[..., LiveServer], source: MediaServer
) -> None:
    server = classic_server(server_factory, source.url("{video_id}.mp4"), max_clip_duration=5.0)
    body = b'{"video_id": "video", "start": "00:00:01", "stop": "00:00:09"}'
    code, message = error_of(httpx.post(server.url + "/hopster/schedule", content=body))
    assert code == 300 and message.startswith("Invalid time for `schedule`: ")


def test_progress_and_download_errors(server: LiveServer, hopster: HopsterClient) -> None:
    assert error_of(hopster.get("/progress")) == (100, "Missing argument: 'reference'")
    assert error_of(hopster.get("/download")) == (100, "Missing argument: 'video_file'")
    for name in (CLIP, "nonsense", "../video_from_start_till_end.mp4"):
        expected = (200, f"Video does not exist: {name}")
        assert error_of(hopster.get("/progress", reference=name)) == expected
        assert error_of(hopster.get("/download", video_file=name)) == expected


def test_the_classic_api_is_off_by_default(server_factory: Callable[..., LiveServer]) -> None:
    server = server_factory()
    assert httpx.get(server.url + "/hopster/").status_code == 404
    assert not any(
        p.startswith("/hopster") for p in httpx.get(server.url + "/openapi.json").json()["paths"]
    )


def test_the_classic_api_needs_a_source_template(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--media-source-template"):
        ServerConfig(data_dir=tmp_path, media_classic_user="classic")
    result = CliRunner().invoke(
        main,
        ["serve", "--data-dir", str(tmp_path)],
        env={"WIRELAB_MEDIA_CLASSIC_USER": "classic", "WIRELAB_MEDIA_SOURCE_TEMPLATE": ""},
    )
    assert result.exit_code == 2
    assert "--media-source-template" in result.stderr
