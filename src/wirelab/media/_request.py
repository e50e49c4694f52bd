"""Job requests, sans-IO: validation of the JSON body, limits, canonical form and hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._errors import InvalidRequest, LimitExceeded
from ._safety import expand_template, validate_source_url
from ._settings import MediaSettings
from ._times import format_seconds, parse_time

__all__ = ["ACCURACIES", "AUDIO_CONTAINERS", "CONTAINERS", "ClipRequest", "parse_request"]

ACCURACIES = ("fast", "exact", "smart")
CONTAINERS = ("mp4", "mkv", "m4a", "mp3")
AUDIO_CONTAINERS = frozenset({"m4a", "mp3"})
_FIELDS = {"source", "video_id", "start", "end", "accuracy", "container"}


@dataclass(frozen=True, slots=True)
class ClipRequest:
    """A validated clip request. ``source`` is the URL to fetch (a ``video_id`` already
    expanded); ``start``/``end`` are exact seconds (``None``: from the beginning / to the
    end of the source)."""

    source: str
    start: Decimal | None = None
    end: Decimal | None = None
    accuracy: str = "exact"
    container: str = "mp4"
    video_id: str | None = None

    @property
    def audio_only(self) -> bool:
        return self.container in AUDIO_CONTAINERS

    @property
    def duration(self) -> Decimal | None:
        """The clip's requested length (``None`` when it runs to the source's end)."""
        if self.end is None:
            return None
        return self.end - (self.start or Decimal(0))

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (times as decimal strings of seconds)."""
        return {
            "source": self.source,
            "video_id": self.video_id,
            "start": None if self.start is None else format_seconds(self.start),
            "end": None if self.end is None else format_seconds(self.end),
            "accuracy": self.accuracy,
            "container": self.container,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ClipRequest:
        """The inverse of :meth:`to_json` (for requests read back from the db)."""
        return cls(
            source=doc["source"],
            start=None if doc["start"] is None else Decimal(doc["start"]),
            end=None if doc["end"] is None else Decimal(doc["end"]),
            accuracy=doc["accuracy"],
            container=doc["container"],
            video_id=doc.get("video_id"),
        )

    def digest(self) -> str:
        """SHA-256 of what determines the result (for deduplication): the source URL,
        the range and the options."""
        doc = self.to_json()
        doc.pop("video_id")
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def file_name(self, job_id: str) -> str:
        """The result's download name, e.g. ``clip-<id>.mp4``."""
        return f"clip-{job_id}.{self.container}"


def _choice(body: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value not in choices:
        raise InvalidRequest(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def parse_request(body: object, *, template: str | None, limits: MediaSettings) -> ClipRequest:
    """Validate a ``POST /v1/media/jobs`` body into a :class:`ClipRequest`.

    Raises :class:`InvalidRequest` (malformed), :class:`SourceRefused` (not http(s)) or
    :class:`LimitExceeded` (the clip is longer than ``limits.max_clip_duration``).
    """
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    source, video_id = body.get("source"), body.get("video_id")
    if (source is None) == (video_id is None):
        raise InvalidRequest("give exactly one of source and video_id")
    if video_id is not None:
        source = expand_template(template, video_id)
    assert isinstance(source, str) or source is None
    validate_source_url(source)  # type: ignore[arg-type]
    start = None if body.get("start") is None else parse_time(body["start"], "start")
    end = None if body.get("end") is None else parse_time(body["end"], "end")
    if start is not None and end is not None and start >= end:
        raise InvalidRequest(f"start ({body['start']}) must be before end ({body['end']})")
    if start == 0:
        start = None
    request = ClipRequest(
        source=str(source),
        start=start,
        end=end,
        accuracy=_choice(body, "accuracy", ACCURACIES, "exact"),
        container=_choice(body, "container", CONTAINERS, "mp4"),
        video_id=video_id,
    )
    duration = request.duration
    if duration is not None and duration > limits.max_clip_duration:
        raise LimitExceeded(
            f"the clip is {format_seconds(duration)} s long; this server allows at most"
            f" {limits.max_clip_duration:g} s"
        )
    return request
