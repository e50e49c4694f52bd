"""Pages resolved through yt-dlp (``media-sites`` extra), offline: yt-dlp's generic
extractor reads a local HTML5 page; its fetches go through the checking proxy too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wirelab.media.testing import MediaServer, TestMedia, media_server, stream_duration

from .conftest import FRAME_TOLERANCE, Media, wait_job

PAGE = """<!DOCTYPE html><html><head><title>A test clip</title></head>
<body><video controls src="{src}"></video></body></html>
"""


@pytest.fixture
def pages(tmp_path: Path, test_media: TestMedia) -> Iterator[MediaServer]:
    site = tmp_path / "site"
    site.mkdir()
    os.symlink(test_media.root / test_media.mp4, site / "video.mp4")
    (site / "watch.html").write_text(PAGE.format(src="video.mp4"))
    (site / "private.html").write_text(PAGE.format(src="http://10.0.0.1/video.mp4"))
    with media_server(site) as server:
        yield server


@pytest.mark.distributed
def test_a_page_is_resolved_and_cut(media: Media, pages: MediaServer, tmp_path: Path) -> None:
    body = {"source": pages.url("watch.html"), "start": "2", "end": "4", "accuracy": "exact"}
    job, _ = wait_job(media.alice, media.alice.post("/v1/media/jobs", json=body).json()["id"])
    assert job["state"] == "succeeded", job
    out = tmp_path / "clip.mp4"
    out.write_bytes(media.alice.get(job["result"]["url"]).content)
    assert abs(stream_duration(out) - 2.0) <= FRAME_TOLERANCE
    assert "/video.mp4" in pages.requests


def test_a_page_pointing_at_a_private_address_is_refused(media: Media, pages: MediaServer) -> None:
    body = {"source": pages.url("private.html"), "end": "2"}
    job, _ = wait_job(media.alice, media.alice.post("/v1/media/jobs", json=body).json()["id"])
    assert job["state"] == "failed"
    assert job["error"]["message"].startswith("source refused:")
    assert "10.0.0.1" in job["error"]["message"]
