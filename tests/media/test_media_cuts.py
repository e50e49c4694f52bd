"""Cuts through the HTTP API: real ffmpeg, real server, durations measured on the files."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from wirelab.media.testing import (
    FPS,
    KEYFRAME_INTERVAL,
    MediaServer,
    TestMedia,
    probe,
    stream_duration,
)

from .conftest import FRAME_TOLERANCE, RUNNERS, Media, wait_job

FRAME = FRAME_TOLERANCE


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


@pytest.mark.parametrize(
    ("path", "start", "end"),
    [
        ("hls/index.m3u8", "00:00:05.120", "13.36"),
        ("dash/manifest.mpd", "00:00:05.120", "13.36"),
        ("video.mp4", "00:00:05.120", "13.36"),
        # The end on a frame bound: the input's -to alone let one frame more through.
        ("hls/index.m3u8", "3", "7.5"),
        ("video.mp4", "0", "4.5"),
    ],
)
def test_exact_cut_is_frame_accurate(
    media: Media, source: MediaServer, tmp_path: Path, path: str, start: str, end: str
) -> None:
    job, out = _cut(media, tmp_path, source=source.url(path), start=start, end=end,
                    accuracy="exact")  # fmt: skip
    result = job["result"]
    assert isinstance(result, dict)
    length = float(end) - (5.12 if ":" in start else float(start))
    assert abs(stream_duration(out) - length) <= FRAME
    assert abs(stream_duration(out, "audio") - length) <= FRAME
    assert abs(result["duration"] - length) <= FRAME
    assert result["start"] == pytest.approx(float(end) - length, abs=FRAME)
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


def _packet_hashes(path: Path) -> list[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_packets",
         "-show_data_hash", "MD5", "-show_entries", "packet=data_hash", "-of", "csv=p=0",
         str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return out.split()


def _decode_errors(path: Path) -> str:
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stderr  # fmt: skip


@pytest.mark.parametrize("path", ["hls/index.m3u8", "dash/manifest.mpd", "video.mp4"])
def test_smart_cut_is_frame_accurate_and_copies_most_of_the_clip(
    media: Media, source: MediaServer, test_media: TestMedia, tmp_path: Path, path: str
) -> None:
    job, out = _cut(
        media, tmp_path, source=source.url(path), start="3.1", end="12.9", accuracy="smart"
    )
    assert abs(stream_duration(out) - 9.8) <= FRAME
    result = job["result"]
    assert isinstance(result, dict)
    assert abs(result["duration"] - 9.8) <= FRAME
    # [4, 12) is four whole GOPs: their packets are the source's, byte for byte (the HLS
    # test media is a remux of the MP4, so the MP4's packets are the reference).
    original = set(_packet_hashes(test_media.root / test_media.mp4))
    produced = _packet_hashes(out)
    copied = sum(h in original for h in produced)
    assert copied / len(produced) >= 0.75, (copied, len(produced))
    assert copied <= 8 * FPS
    assert _decode_errors(out) == ""


def test_smart_cut_within_one_gop_is_an_exact_cut(
    media: Media, source: MediaServer, tmp_path: Path
) -> None:
    _, out = _cut(media, tmp_path, source=source.url("video.mp4"), start="4.5", end="5.5",
                  accuracy="smart")  # fmt: skip
    assert abs(stream_duration(out) - 1.0) <= FRAME


@pytest.mark.parametrize(
    ("container", "codec", "accuracy"),
    [("m4a", "aac", "fast"), ("m4a", "aac", "exact"), ("mp3", "mp3", "exact"),
     ("mp3", "mp3", "smart")],
)  # fmt: skip
def test_audio_only_outputs(
    media: Media, source: MediaServer, tmp_path: Path, container: str, codec: str, accuracy: str
) -> None:
    _, out = _cut(media, tmp_path, source=source.url("hls/index.m3u8"), start="2", end="5.5",
                  accuracy=accuracy, container=container)  # fmt: skip
    streams = probe(out)["streams"]
    assert [s["codec_type"] for s in streams] == ["audio"]
    assert streams[0]["codec_name"] == codec
    # Audio frames are 1024 (AAC) or 1152 (MP3) samples: 21-24 ms at 48 kHz.
    assert abs(stream_duration(out, "audio") - 3.5) <= 2 * FRAME


def test_mkv_container(media: Media, source: MediaServer, tmp_path: Path) -> None:
    job, out = _cut(media, tmp_path, source=source.url("video.mp4"), start="1", end="3",
                    accuracy="exact", container="mkv")  # fmt: skip
    assert probe(out)["format"]["format_name"].startswith("matroska")
    download = media.alice.get(job["result"]["url"])  # type: ignore[index]
    assert download.headers["content-type"] == "video/x-matroska"


@RUNNERS
@pytest.mark.distributed
def test_progress_is_monotonic_and_ends_at_100(media: Media, source: MediaServer) -> None:
    source.slow_delay = 0.15
    response = media.alice.post("/v1/media/jobs", json={
        "source": source.url("slow/hls/index.m3u8"), "start": "1", "end": "19",
        "accuracy": "exact",
    })  # fmt: skip
    job, seen = wait_job(media.alice, response.json()["id"])
    assert job["state"] == "succeeded"
    assert seen == sorted(seen)
    assert seen[-1] == 100
    assert len({p for p in seen if 0 < p < 100}) >= 3, seen
