"""The classic clip API's rules, sans-IO: request bodies, times, file names, error bodies.

The original clip service named each result after its request,
``<video_id>_from_<HHMMSSffffff or "start">_till_<HHMMSSffffff or "end">.mp4``, and its
clients find their file again by that name only. So the name is the job's key: it is
built from a ``schedule`` body here and parsed back into the same request for
``progress`` and ``download``. Times are times of day (``00:00:03``, ``01:02:03.5``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "CODE_ARGUMENT",
    "CODE_TIME",
    "CODE_VIDEO",
    "WELCOME",
    "ClassicClip",
    "ClassicError",
    "parse_file_name",
    "parse_schedule",
]

WELCOME: Final = "Welcome to Hopster's Video Downloading Service!"
CODE_ARGUMENT: Final = 100
"""Malformed request: invalid JSON, a missing query argument."""
CODE_VIDEO: Final = 200
"""The video: a missing ``video_id``, an unknown (or failed) video file."""
CODE_TIME: Final = 300
"""A bad time, or a start after the stop."""

_TIME: Final = re.compile(r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.(\d{1,6}))?")
_STAMP: Final = re.compile(r"([01]\d|2[0-3])([0-5]\d)([0-5]\d)(\d{6})")
_NAME: Final = re.compile(r"(?P<id>.+)_from_(?P<start>\d{12}|start)_till_(?P<stop>\d{12}|end)\.mp4")
_MICRO: Final = Decimal("0.000001")


class ClassicError(Exception):
    """A classic API error: HTTP 400 with ``{"error": {"message", "code"}}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body the original service answered with."""
        return {"error": {"message": self.message, "code": self.code}}


@dataclass(frozen=True, slots=True)
class ClassicClip:
    """A clip of ``video_id`` from ``start`` to ``stop`` (exact seconds; ``None``: from the
    beginning / to the end), as a ``schedule`` body or a file name describe it."""

    video_id: str
    start: Decimal | None
    stop: Decimal | None

    @property
    def file_name(self) -> str:
        """``<video_id>_from_<HHMMSSffffff|start>_till_<HHMMSSffffff|end>.mp4``."""
        start = "start" if self.start is None else _stamp(self.start)
        stop = "end" if self.stop is None else _stamp(self.stop)
        return f"{self.video_id}_from_{start}_till_{stop}.mp4"

    def job_body(self) -> dict[str, Any]:
        """The body of the equivalent ``POST /v1/media/jobs`` request (exact, mp4)."""
        body: dict[str, Any] = {"video_id": self.video_id, "accuracy": "exact", "container": "mp4"}
        if self.start is not None:
            body["start"] = _seconds(self.start)
        if self.stop is not None:
            body["end"] = _seconds(self.stop)
        return body


def _seconds(value: Decimal) -> str:
    return format(value.quantize(_MICRO), "f").rstrip("0").rstrip(".") or "0"


def _stamp(seconds: Decimal) -> str:
    micros = int(seconds / _MICRO)
    whole, micro = divmod(micros, 1_000_000)
    hours, rest = divmod(whole, 3600)
    return f"{hours:02d}{rest // 60:02d}{rest % 60:02d}{micro:06d}"


def _parse_time(value: object, name: str) -> Decimal | None:
    if value is None:
        return None
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ClassicError(
            CODE_TIME,
            f"Invalid time for `schedule`: {name} {value!r} is not a time of day HH:MM:SS[.ffffff]",
        )
    hours, minutes, seconds, fraction = match.groups()
    whole = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return Decimal(whole) + Decimal(f"0.{fraction or 0}")


def parse_schedule(raw: bytes) -> ClassicClip:
    """The clip a ``POST /hopster/schedule`` body asks for (JSON whatever the Content-Type).

    Raises :class:`ClassicError`: code 100 for a body that is not a JSON object, 200 when
    ``video_id`` is missing (or not a string), 300 for a bad time or a start that is not
    before the stop. Other keys are ignored, as the original did.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClassicError(CODE_ARGUMENT, f"Invalid JSON for `schedule`: {exc}") from exc
    if not isinstance(doc, dict):
        raise ClassicError(
            CODE_ARGUMENT, f"Invalid JSON for `schedule`: expected an object, got {raw[:60]!r}"
        )
    video_id = doc.get("video_id")
    if not isinstance(video_id, str) or not video_id:
        raise ClassicError(CODE_VIDEO, "Values are missing: 'video_id'")
    start = _parse_time(doc.get("start"), "start")
    stop = _parse_time(doc.get("stop"), "stop")
    if start is not None and stop is not None and start >= stop:
        raise ClassicError(
            CODE_TIME,
            f"Invalid time for `schedule`: start {doc['start']} is not before stop {doc['stop']}",
        )
    return ClassicClip(video_id, start, stop)


def parse_file_name(name: str) -> ClassicClip | None:
    """The clip a file name describes, or ``None`` if it is not such a name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    times: list[Decimal | None] = []
    for part in (match["start"], match["stop"]):
        stamp = _STAMP.fullmatch(part)
        if part in ("start", "end"):
            times.append(None)
        elif stamp is None:
            return None
        else:
            hours, minutes, seconds, micro = (int(g) for g in stamp.groups())
            times.append(Decimal(hours * 3600 + minutes * 60 + seconds) + micro * _MICRO)
    start, stop = times
    if start is not None and stop is not None and start >= stop:
        return None
    clip = ClassicClip(match["id"], start, stop)
    return clip if clip.file_name == name else None
