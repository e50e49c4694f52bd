"""Settings of the media service (part of ``ServerConfig``), with their env names."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .._exceptions import UsageError
from ._safety import IPNetwork, NetworkPolicy, parse_networks

__all__ = ["MediaSettings", "media_settings"]


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """How the media service runs. The CLI reads each from ``--media-*`` / its env var.

    - ``workers`` (``WIRELAB_MEDIA_WORKERS``): jobs that run at once (each runs one
      ffmpeg at a time).
    - ``source_template`` (``WIRELAB_MEDIA_SOURCE_TEMPLATE``): URL with ``{video_id}``
      for requests that name a ``video_id`` (``None``: only ``source`` URLs).
    - ``allow_network`` (``WIRELAB_MEDIA_ALLOW_NETWORK``): networks opened to sources
      despite the source-safety rules (e.g. ``127.0.0.0/8`` in tests).
    - ``result_ttl`` (``WIRELAB_MEDIA_RESULT_TTL``, s): results are deleted this long
      after the job finished.
    - ``job_timeout`` (``WIRELAB_MEDIA_JOB_TIMEOUT``, s): one attempt of a job that runs
      longer fails (not retried).
    - ``max_source_duration`` (``WIRELAB_MEDIA_MAX_SOURCE_DURATION``, s): longer sources
      are refused.
    - ``max_clip_duration`` (``WIRELAB_MEDIA_MAX_CLIP_DURATION``, s): longest clip; a
      request without ``end`` is checked against the source's length.
    - ``max_output_size`` (``WIRELAB_MEDIA_MAX_OUTPUT_SIZE``, bytes): larger results fail.
    - ``max_active_jobs`` (``WIRELAB_MEDIA_MAX_ACTIVE_JOBS``): queued and running jobs one
      user may have; more are refused (429).
    - ``retries`` (``WIRELAB_MEDIA_RETRIES``): extra attempts after a retryable failure,
      ``retry_backoff`` (s) doubling between them.
    - ``sweep_interval`` (s): how often expired results are removed.
    - ``cancel_grace`` (s): after SIGINT, how long ffmpeg gets before SIGKILL.
    """

    workers: int = 2
    source_template: str | None = None
    allow_network: tuple[IPNetwork, ...] = ()
    result_ttl: float = 24 * 3600.0
    job_timeout: float = 3600.0
    max_source_duration: float = 6 * 3600.0
    max_clip_duration: float = 3 * 3600.0
    max_output_size: int = 4 * 1024**3
    max_active_jobs: int = 100
    retries: int = 2
    retry_backoff: float = 1.0
    sweep_interval: float = 60.0
    cancel_grace: float = 5.0

    @property
    def policy(self) -> NetworkPolicy:
        """The source-safety policy these settings define."""
        return NetworkPolicy(self.allow_network)


def media_settings(options: dict[str, Any]) -> MediaSettings:
    """:class:`MediaSettings` from CLI options (field name: value; ``None``: default).
    ``allow_network`` is the ``CIDR[,CIDR...]`` text; a bad one is a
    :class:`~wirelab.UsageError` naming it."""
    given = {name: value for name, value in options.items() if value is not None}
    known = {f.name for f in fields(MediaSettings)}
    unknown = set(given) - known
    if unknown:
        raise UsageError(f"unknown media settings: {', '.join(sorted(unknown))}")
    if "allow_network" in given:
        try:
            given["allow_network"] = parse_networks(given["allow_network"])
        except ValueError as exc:
            raise UsageError(f"--media-allow-network: {exc}") from None
    if "source_template" in given and "{video_id}" not in given["source_template"]:
        raise UsageError("--media-source-template must contain {video_id}")
    return MediaSettings(**given)
