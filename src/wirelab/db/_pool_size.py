"""The size of a PostgreSQL connection pool: a setting checked without the driver
installed (the server's configuration validates it before anything connects)."""

from __future__ import annotations

from .._exceptions import UsageError

__all__ = ["MAX_POOL_SIZE", "POOL_SIZE", "check_pool_size"]

POOL_SIZE = 8
"""Connections (and threads) per process by default: enough to overlap round trips, few
enough that several server processes stay well under PostgreSQL's default 100
connections. Set per process with ``--database-pool-size`` /
``WIRELAB_DATABASE_POOL_SIZE``."""

MAX_POOL_SIZE = 1000
"""The largest pool size accepted (PostgreSQL's ``max_connections`` is rarely higher)."""


def check_pool_size(size: int) -> None:
    """:class:`~wirelab.UsageError` unless ``size`` is a whole number from 1 to
    :data:`MAX_POOL_SIZE`."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_POOL_SIZE:
        raise UsageError(
            f"the database pool size must be a whole number from 1 to {MAX_POOL_SIZE}, got {size!r}"
        )
