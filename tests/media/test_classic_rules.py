"""The classic clip API's sans-IO rules: schedule bodies, times, file names, error codes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wirelab.media._classic import ClassicClip, ClassicError, parse_file_name, parse_schedule


def test_the_documented_example_name() -> None:
    clip = parse_schedule(b'{"video_id": "vid", "start": "00:00:03", "stop": "00:00:06"}')
    assert clip == ClassicClip("vid", Decimal(3), Decimal(6))
    assert clip.file_name == "vid_from_000003000000_till_000006000000.mp4"
    assert clip.job_body() == {
        "video_id": "vid",
        "start": "3",
        "end": "6",
        "accuracy": "exact",
        "container": "mp4",
    }


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (b'{"video_id": "a_b"}', "a_b_from_start_till_end.mp4"),
        (b'{"video_id": "v", "start": "01:02:03.5"}', "v_from_010203500000_till_end.mp4"),
        (b'{"video_id": "v", "stop": "23:59:59.000001"}', "v_from_start_till_235959000001.mp4"),
        (b'{"video_id": "v", "start": null, "stop": null, "x": 1}', "v_from_start_till_end.mp4"),
    ],
)
def test_names_round_trip(body: bytes, name: str) -> None:
    clip = parse_schedule(body)
    assert clip.file_name == name
    assert parse_file_name(name) == clip


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{not json", 100, "Invalid JSON for `schedule`: "),
        (b"", 100, "Invalid JSON for `schedule`: "),
        (b"\xff\xfe", 100, "Invalid JSON for `schedule`: "),
        (b'["video_id"]', 100, "Invalid JSON for `schedule`: "),
        (b"{}", 200, "Values are missing: 'video_id'"),
        (b'{"video_id": 7}', 200, "Values are missing: 'video_id'"),
        (b'{"video_id": "v", "start": "3"}', 300, "Invalid time for `schedule`: "),
        (b'{"video_id": "v", "start": "24:00:00"}', 300, "Invalid time for `schedule`: "),
        (b'{"video_id": "v", "stop": "00:60:00"}', 300, "Invalid time for `schedule`: "),
        (b'{"video_id": "v", "stop": 5}', 300, "Invalid time for `schedule`: "),
        (b'{"video_id": "v", "start": "00:00:06", "stop": "00:00:03"}', 300, "Invalid time"),
        (b'{"video_id": "v", "start": "00:00:03", "stop": "00:00:03"}', 300, "Invalid time"),
    ],
)
def test_bad_bodies_have_the_original_codes(body: bytes, code: int, message: str) -> None:
    with pytest.raises(ClassicError) as caught:
        parse_schedule(body)
    assert caught.value.code == code
    assert caught.value.message.startswith(message)
    assert caught.value.body() == {"error": {"message": caught.value.message, "code": code}}


@pytest.mark.parametrize(
    "name",
    [
        "v.mp4",
        "v_from_start_till_end.mkv",
        "v_from_3_till_end.mp4",
        "v_from_250000000000_till_end.mp4",  # 25 h is not a time of day
        "v_from_000006000000_till_000003000000.mp4",  # start after stop
        "_from_start_till_end.mp4",
    ],
)
def test_other_names_describe_no_clip(name: str) -> None:
    assert parse_file_name(name) is None
