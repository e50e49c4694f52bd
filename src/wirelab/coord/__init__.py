"""Coordination of the processes of one deployment: wake-ups, leases, set-once marks.

- :class:`Coordinator`: the interface (:mod:`wirelab.coord._base`);
- :class:`EmbeddedCoordinator`: in process memory, the default of a one-process server;
- :class:`RedisCoordinator` (extra ``wirelab[redis]``): Redis pub/sub and keys, shared
  by every process that uses the same Redis and key prefix;
- :func:`coordinator_for`: the implementation a ``WIRELAB_COORDINATION_URL`` selects.
"""

from __future__ import annotations

from .._exceptions import UsageError
from ._base import CoordinationError, Coordinator, Lease, LeaseBusy, LeaseLost, Listener
from ._embedded import EmbeddedCoordinator

__all__ = [
    "SCHEMES",
    "CoordinationError",
    "Coordinator",
    "EmbeddedCoordinator",
    "Lease",
    "LeaseBusy",
    "LeaseLost",
    "Listener",
    "coordinator_for",
]

#: The URL schemes :func:`coordinator_for` accepts besides ``embedded``.
SCHEMES = ("redis", "rediss", "unix")


def coordinator_for(url: str | None) -> Coordinator:
    """The coordinator ``url`` names: ``None``, empty or ``embedded`` for the embedded
    one, ``redis://``, ``rediss://`` or ``unix://`` for Redis. Not started yet.

    Raises :class:`~wirelab.UsageError` (one line) for another scheme, or when the Redis
    client is not installed.
    """
    if not url or url == "embedded":
        return EmbeddedCoordinator()
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise UsageError(
            f"unsupported coordination URL scheme {scheme!r}: use redis://HOST:PORT/DB "
            "(or rediss://, unix://), or leave it unset for one process"
        )
    try:
        from ._redis import RedisCoordinator
    except ImportError as exc:
        raise UsageError(
            f"Redis coordination needs extra packages: pip install 'wirelab[redis]' ({exc})"
        ) from None
    return RedisCoordinator(url)
