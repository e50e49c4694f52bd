"""Server-side limits of the relay (part of ``ServerConfig``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RelayLimits"]


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Limits of the relay service. Environment names are for the CLI to read.

    - ``max_file_size`` (``WIRELAB_RELAY_MAX_FILE_SIZE``, bytes): larger uploads get 413.
    - ``default_ttl`` (``WIRELAB_RELAY_DEFAULT_TTL``, seconds): expiry of a file when the
      sender gives no ``ttl``.
    - ``max_ttl`` (``WIRELAB_RELAY_MAX_TTL``, seconds): the largest ``ttl`` a sender may ask.
    - ``max_lease`` (``WIRELAB_RELAY_MAX_LEASE``, seconds): the largest ``lease``.
    - ``default_lease`` (``WIRELAB_RELAY_DEFAULT_LEASE``, seconds): ``lease`` when omitted.
    - ``max_wait`` (``WIRELAB_RELAY_MAX_WAIT``, seconds): the largest long-poll ``wait``.
    - ``sweep_interval`` (``WIRELAB_RELAY_SWEEP_INTERVAL``, seconds): how often expired
      files and abandoned partial uploads are removed.
    - ``upload_expiry`` (``WIRELAB_RELAY_UPLOAD_EXPIRY``, seconds): partial uploads with no
      progress for this long are removed by the sweeper.
    """

    max_file_size: int = 10 * 1024**3
    default_ttl: float = 7 * 24 * 3600.0
    max_ttl: float = 30 * 24 * 3600.0
    max_lease: float = 3600.0
    default_lease: float = 300.0
    max_wait: float = 60.0
    sweep_interval: float = 60.0
    upload_expiry: float = 24 * 3600.0
