"""Server configuration: one frozen object built by the CLI from flags and WIRELAB_* vars."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .._exceptions import UsageError
from ..media import MediaSettings
from ..relay import RelayLimits
from ..stream import StreamLimits

__all__ = ["LOG_LEVELS", "ServerConfig", "default_data_dir"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/wirelab``, else ``~/.local/share/wirelab``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wirelab"


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``wirelab serve`` needs. Defaults are the embedded single-machine setup.

    ``host`` defaults to loopback: exposing the server is an explicit choice.
    ``worker_threads`` sizes the pool that generates and hashes large files off the event
    loop (it is shared by all streams; there is never a thread per stream); 0 keeps that
    work on the loop thread.

    The relay keeps its metadata in ``database_url`` (``WIRELAB_DATABASE_URL``; default:
    SQLite ``wirelab.db`` in ``data_dir``, the store ``wirelab users`` uses) and its blobs
    in ``data_dir/relay``; its limits are ``relay_limits`` (see :class:`RelayLimits` for
    their ``WIRELAB_RELAY_*`` names). The media service's settings are ``media`` (see
    :class:`MediaSettings` for their ``WIRELAB_MEDIA_*`` names); its results live in
    ``data_dir/media``.

    With ``tls_certfile`` and ``tls_keyfile`` (PEM; both or neither, else
    :class:`~wirelab.UsageError`) every capability is served over HTTPS only. With
    ``media_classic_user`` the classic clip API is served under ``/hopster``, its jobs
    owned by that user (it needs ``media.source_template``).

    ``cors_origins`` (``WIRELAB_CORS_ORIGINS``) lets pages of those origins (or ``*``)
    call the API from a browser; empty (the default): no CORS headers at all.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=default_data_dir)
    log_level: str = "info"
    stream_limits: StreamLimits = field(default_factory=StreamLimits)
    worker_threads: int = 0
    graceful_timeout: int = 5
    database_url: str | None = None
    relay_limits: RelayLimits = field(default_factory=RelayLimits)
    media: MediaSettings = field(default_factory=MediaSettings)
    cors_origins: tuple[str, ...] = ()
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    media_classic_user: str | None = None

    def __post_init__(self) -> None:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise UsageError("HTTPS needs both a certificate file and a key file, or neither")
        if self.media_classic_user is not None:
            if not self.media_classic_user.strip():
                raise UsageError("the classic clip API's user name is empty")
            if not self.media.source_template:
                raise UsageError(
                    "the classic clip API (--media-classic-user) takes sources only through "
                    "--media-source-template: give one"
                )

    @property
    def scheme(self) -> str:
        """``https`` when a certificate is configured, else ``http``."""
        return "http" if self.tls_certfile is None else "https"
