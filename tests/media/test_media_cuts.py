"""Cuts through the HTTP API: real ffmpeg, real server, durations measured on the files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from wirelab.media.testing import FPS, KEYFRAME_INTERVAL, MediaServer, probe, stream_duration

from .conftest import Media, wait_job

FRAME = 1 / FPS


def _cut(media: Media, tmp_path: Path, **body: object) -> tuple[dict[str, object], Path]:
    response = media.alice.post("/v1/media/jobs", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/media/jobs/{response.json()['id']}"
    job, _ = wait_job(media.alice, response.json()["id"])
    assert job["state"] == "succeeded", job
    result = job["result"]
    assert isinstance(result, dict)
    download = media.alice.get(result["url"])
    assert download.status_code == 200
    out = tmp_path / result["name"]
    out.write_bytes(download.content)
    assert result["size"] == len(download.content)
    assert result["sha256"] == hashlib.sha256(download.content).hexdigest()
    return job, out


@pytest.mark.parametrize("path", ["hls/index.m3u8", "video.mp4"])
def test_exact_cut_is_frame_accurate(
    media: Media, source: MediaServer, tmp_path: Path, path: str
) -> None:
    job, out = _cut(
        media, tmp_path, source=source.url(path), start="00:00:05.120", end="13.36",
        accuracy="exact",
    )  # fmt: skip
    result = job["result"]
    assert isinstance(result, dict)
    assert abs(stream_duration(out) - 8.24) <= FRAME
    assert abs(result["duration"] - 8.24) <= FRAME
    assert result["start"] == pytest.approx(5.12, abs=FRAME)
    assert {s["codec_name"] for s in probe(out)["streams"]} == {"h264", "aac"}


def test_fast_cut_copies_from_a_keyframe_and_fetches_only_needed_segments(
    media: Media, source: MediaServer, tmp_path: Path
) -> None:
    source.clear_requests()
    job, out = _cut(
        media, tmp_path, source=source.url("hls/index.m3u8"), start="10", end="14",
        accuracy="fast",
    )  # fmt: skip
    # A fast cut starts at the keyframe at or before the start: never shorter than asked
    # (less a frame), never longer by more than one keyframe interval.
    assert 4.0 - FRAME <= stream_duration(out) <= 4.0 + KEYFRAME_INTERVAL
    segments = {p for p in source.requests if p.endswith(".ts")}
    # The probe reads the first segment; the cut reads around 10-14 s only.
    assert segments <= {f"/hls/seg{i:03d}.ts" for i in (0, 1, 4, 5, 6, 7)}, segments
    assert job["progress"] == 100


def test_range_requests_and_etag_on_the_result(
    media: Media, source: MediaServer, tmp_path: Path
) -> None:
    job, out = _cut(media, tmp_path, source=source.url("video.mp4"), end="2", accuracy="fast")
    result = job["result"]
    assert isinstance(result, dict)
    data = out.read_bytes()
    partial = media.alice.get(result["url"], headers={"Range": "bytes=10-99"})
    assert partial.status_code == 206
    assert partial.content == data[10:100]
    assert partial.headers["content-range"] == f"bytes 10-99/{len(data)}"
    assert partial.headers["etag"] == f'"{result["sha256"]}"'
    assert partial.headers["content-type"] == "video/mp4"
    assert "attachment" in partial.headers["content-disposition"]
    beyond = media.alice.get(result["url"], headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    head = media.alice.head(result["url"])
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
