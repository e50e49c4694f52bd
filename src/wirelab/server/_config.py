"""Server configuration: one frozen object built by the CLI from flags and WIRELAB_* vars."""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from pathlib import Path

from .._exceptions import UsageError
from .._paths import default_data_dir
from ..db._pool_size import POOL_SIZE, check_pool_size
from ..jobs import DEFAULT_QUEUE, check_jobs_url
from ..media import MediaSettings
from ..relay import RelayLimits
from ..storage import check_storage_url
from ..stream import StreamLimits

__all__ = [
    "AUTH_CACHE_DEFAULT",
    "AUTH_CACHE_MAX",
    "LOG_LEVELS",
    "ONLY_CHOICES",
    "ConnectionLimits",
    "ServerConfig",
    "default_data_dir",
]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
#: Capabilities a server can serve alone (``ServerConfig.only``, ``serve --only``).
ONLY_CHOICES = ("stream",)

AUTH_CACHE_DEFAULT = 1.0
"""Seconds a verified token is remembered on PostgreSQL unless configured otherwise."""

AUTH_CACHE_MAX = 300.0
"""The longest token cache lifetime accepted (the bound on a removed user's access)."""


@dataclass(frozen=True)
class ConnectionLimits:
    """Limits of the HTTP connections (see ``docs/server.md``).

    ``max_header_bytes`` (``WIRELAB_MAX_HEADER_BYTES``): the largest request head (request
    line and headers); a larger one is answered 431 and the connection closed.
    ``head_timeout`` (``WIRELAB_HEAD_TIMEOUT``): seconds a request head may take to
    arrive, from the connection's start or the head's first byte; then 408 and close.
    ``keepalive_timeout`` (``WIRELAB_KEEPALIVE_TIMEOUT``): an idle keep-alive connection
    is closed after this many seconds. ``max_connections`` (``WIRELAB_MAX_CONNECTIONS``):
    open connections past this are answered 503 and closed; ``None`` is three quarters
    of the process's open-file limit, so that the rest is left for files and the database.
    ``head_timeout`` 0 disables that timeout. ``backlog`` (``WIRELAB_BACKLOG``): the listen
    backlog, connections the kernel holds until the server accepts them (a burst larger
    than this waits for the client's retransmission, a second or more); the kernel caps it
    at ``net.core.somaxconn``, which is logged at start.
    """

    max_header_bytes: int = 64 * 1024
    head_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    max_connections: int | None = None
    backlog: int = 4096

    def __post_init__(self) -> None:
        if self.backlog < 1:
            raise UsageError(f"the listen backlog must be at least 1, got {self.backlog}")

    def connection_cap(self) -> int:
        """``max_connections``, or the default computed from ``RLIMIT_NOFILE``."""
        if self.max_connections is not None:
            return self.max_connections
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 1_000_000
        return max(16, soft * 3 // 4)


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``wirelab serve`` needs. Defaults are the embedded single-machine setup.

    ``host`` defaults to loopback: exposing the server is an explicit choice.
    ``worker_threads`` sizes the pool that generates and hashes large files off the event
    loop (it is shared by all streams; there is never a thread per stream); 0 keeps that
    work on the loop thread, except, with ``keystream_thread`` (the default), the
    keystream of large ``random`` files in streams without waits: one thread makes a
    stream's next message while the loop hashes and writes the current one (used only
    where the process may run on more than one CPU).

    The relay keeps its metadata in ``database_url`` (``WIRELAB_DATABASE_URL``; default:
    SQLite ``wirelab.db`` in ``data_dir``, the store ``wirelab users`` uses) and its blobs
    in ``storage_url`` (``WIRELAB_STORAGE_URL``: a folder, default ``data_dir``, or
    ``s3://bucket/prefix``; see :func:`wirelab.storage.open_blob_store`) under ``relay``;
    its limits are ``relay_limits`` (see :class:`RelayLimits` for
    their ``WIRELAB_RELAY_*`` names). ``database_pool_size``
    (``WIRELAB_DATABASE_POOL_SIZE``, 1 to 1000, default 8): the most connections (and
    threads) each process opens to a PostgreSQL ``database_url``. The media service's
    settings are ``media`` (see :class:`MediaSettings` for their ``WIRELAB_MEDIA_*``
    names); its results live in ``data_dir/media``. ``connection_limits`` bound every
    HTTP connection (:class:`ConnectionLimits`).

    With ``tls_certfile`` and ``tls_keyfile`` (PEM; both or neither, else
    :class:`~wirelab.UsageError`) every capability is served over HTTPS only. With
    ``media_classic_user`` the classic clip API is served under ``/hopster``, its jobs
    owned by that user (it needs ``media.source_template``).

    ``jobs_url`` (``WIRELAB_JOBS_URL``): ``None`` runs media jobs in the server's own
    process (the embedded runner); ``redis://...`` sends them to Celery workers
    (``wirelab worker``) through that Redis, on the queue ``jobs_queue``
    (``WIRELAB_JOBS_QUEUE``, also the prefix of every Redis key and channel used).
    ``jobs_lease`` (``WIRELAB_JOBS_LEASE``, s): how long a worker's claim on a job lasts
    without a heartbeat; a job of a dead worker is requeued that long after its last one.
    ``coordination_url`` (``WIRELAB_COORDINATION_URL``): what the server processes of one
    deployment share (long-poll wake-ups, upload leases, the sweeper's lead; see
    ``docs/deploy.md``): unset for one process, ``redis://HOST:PORT/DB[?prefix=P]`` for
    several (``wirelab serve --workers N``, or several hosts).

    ``auth_cache_seconds`` (``WIRELAB_AUTH_CACHE_SECONDS``): how long a server process
    remembers an API token that matched a user, so that a busy client's requests skip the
    token lookup; it is also the longest a user removed (or a token rotated) by another
    process keeps working in this one. ``None`` (the default): :data:`AUTH_CACHE_DEFAULT`
    seconds on PostgreSQL, where a lookup is a network round trip, 0 (every request
    looked up) on SQLite, where it is an in-process read. See
    :meth:`wirelab.db.UserRepository.cache_tokens`.

    ``cors_origins`` (``WIRELAB_CORS_ORIGINS``) lets pages of those origins (or ``*``)
    call the API from a browser; empty (the default): no CORS headers at all.

    ``only`` (``WIRELAB_ONLY``): ``None`` serves every capability; ``"stream"`` serves the
    Stream service alone (with ``/``, ``/healthz`` and the docs): no database, blob store,
    relay or media, and nothing in ``data_dir``. Its processes share no state, so
    ``serve --workers N`` needs no coordination then.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=default_data_dir)
    log_level: str = "info"
    stream_limits: StreamLimits = field(default_factory=StreamLimits)
    worker_threads: int = 0
    keystream_thread: bool = True
    graceful_timeout: int = 5
    database_url: str | None = None
    database_pool_size: int = POOL_SIZE
    storage_url: str | None = None
    relay_limits: RelayLimits = field(default_factory=RelayLimits)
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    media: MediaSettings = field(default_factory=MediaSettings)
    cors_origins: tuple[str, ...] = ()
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    media_classic_user: str | None = None
    jobs_url: str | None = None
    jobs_queue: str = DEFAULT_QUEUE
    jobs_lease: float = 30.0
    coordination_url: str | None = None
    auth_cache_seconds: float | None = None
    only: str | None = None

    def __post_init__(self) -> None:
        if self.auth_cache_seconds is not None and not (
            0 <= self.auth_cache_seconds <= AUTH_CACHE_MAX
        ):
            raise UsageError(
                f"the token cache lifetime must be 0 to {AUTH_CACHE_MAX:g} seconds,"
                f" not {self.auth_cache_seconds:g}"
            )
        check_pool_size(self.database_pool_size)
        if self.only is not None and self.only not in ONLY_CHOICES:
            raise UsageError(f"only: {self.only!r} cannot be served alone; choose 'stream'")
        if self.jobs_url is not None:
            check_jobs_url(self.jobs_url)
        if not self.jobs_queue.strip():
            raise UsageError("the jobs queue name is empty")
        if self.storage_url:
            check_storage_url(self.storage_url)
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

    @property
    def metadata_url(self) -> str:
        """The metadata store's URL: ``database_url``, else ``wirelab.db`` in ``data_dir``."""
        from ..db import sqlite_url

        return self.database_url or sqlite_url(self.data_dir / "wirelab.db")

    @property
    def stream_only(self) -> bool:
        """Whether only the Stream service is served: nothing kept in ``data_dir``, no
        state shared between processes (no data folder lock, no coordination)."""
        return self.only == "stream"

    @property
    def token_cache_seconds(self) -> float:
        """``auth_cache_seconds``, its default resolved for the metadata store."""
        if self.auth_cache_seconds is not None:
            return self.auth_cache_seconds
        from ..db._api import split_url

        scheme, _ = split_url(self.metadata_url)
        return 0.0 if scheme == "sqlite" else AUTH_CACHE_DEFAULT
