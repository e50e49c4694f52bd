"""The Media service: clip download jobs (a part of a video, fetched in the background).

A user names a source (an http(s) URL, or a ``video_id`` through the server's template)
and a range; a background job cuts exactly that part with ffmpeg (``fast``, ``exact`` or
``smart``), stores it, and the user follows its progress and downloads it. HTTP API and
design: ``docs/media.md``.

- sans-IO cores: :mod:`._times` (time parsing), :mod:`._request` (validation),
  :mod:`._commands` (ffmpeg command lines), :mod:`._progress` (``-progress`` parsing),
  :mod:`._safety` (which addresses sources may use);
- I/O: :mod:`._ffmpeg` (process runner), :mod:`._probe`, :mod:`._proxy` (the checking
  proxy every fetch goes through), :mod:`._cut` (one attempt);
- :class:`MediaService` (the service API the routes and other front ends call) and
  :func:`build_router` (``/v1/media``);
- :mod:`wirelab.media.testing`: test media and a local media server.
"""

from __future__ import annotations

from ._errors import (
    InvalidRequest,
    JobFailed,
    JobNotFound,
    LimitExceeded,
    MediaError,
    SourceRefused,
    ToolMissing,
    TooManyJobs,
)
from ._request import ACCURACIES, CONTAINERS, ClipRequest, parse_request
from ._routes import MediaRuntime, build_router, job_json
from ._safety import NetworkPolicy, parse_networks
from ._service import MediaService
from ._settings import MediaSettings, media_settings
from ._times import format_seconds, parse_time

__all__ = [
    "ACCURACIES",
    "CONTAINERS",
    "ClipRequest",
    "InvalidRequest",
    "JobFailed",
    "JobNotFound",
    "LimitExceeded",
    "MediaError",
    "MediaRuntime",
    "MediaService",
    "MediaSettings",
    "NetworkPolicy",
    "SourceRefused",
    "TooManyJobs",
    "ToolMissing",
    "build_router",
    "format_seconds",
    "job_json",
    "media_settings",
    "parse_networks",
    "parse_request",
    "parse_time",
]
