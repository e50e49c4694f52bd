"""Kernel limits that decide whether a burst of connections fits: listen backlog, open files.

A stream test server is opened by thousands of clients within seconds. Two limits of the
process, not of wirelab, then decide whether a connection is accepted at all:

- the **listen backlog**: connections the kernel completed but the server did not accept
  yet. When the queue is full, Linux drops the client's handshake and the client retries
  after a second or more (or sees a reset): a response head arrives seconds late. The
  kernel silently caps the backlog at ``net.core.somaxconn``; :func:`listen_backlog` does
  the same, but says so in the log.
- the **open-file limit** (``RLIMIT_NOFILE``): each connection is a file descriptor, and
  the default connection cap is three quarters of the soft limit (see
  :class:`~wirelab.server.ConnectionLimits`). The soft limit is often far below the hard
  one (1,024 against 1,048,576); :func:`raise_open_file_limit` raises it to the hard one
  at start, which any process may do.

Both are applied by ``wirelab serve`` only (:func:`wirelab.server._serve.run`): an embedded
server leaves its host process's limits alone.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

__all__ = ["SOMAXCONN_PATH", "listen_backlog", "raise_open_file_limit"]

_log = logging.getLogger("wirelab.server")

#: Where Linux publishes the cap on every listen backlog.
SOMAXCONN_PATH = Path("/proc/sys/net/core/somaxconn")


def _somaxconn(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None  # not Linux, or hidden: the kernel still caps silently


def listen_backlog(requested: int, somaxconn_path: Path = SOMAXCONN_PATH) -> int:
    """The backlog to ask ``listen()`` for: ``requested``, or the kernel's cap when that is
    lower (logged as a warning, naming the setting that would raise it)."""
    cap = _somaxconn(somaxconn_path)
    if cap is None or requested <= cap:
        return requested
    _log.warning(
        "listen backlog %d (WIRELAB_BACKLOG) capped at %d by net.core.somaxconn; "
        "raise that sysctl for larger connection bursts",
        requested,
        cap,
    )
    return cap


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return (before, after).

    Logged at info level when it changed, at warning level when the kernel refused.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        _log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return soft, soft
    _log.info("raised the open-file limit (RLIMIT_NOFILE) from %d to %s", soft, _show(hard))
    return soft, hard


def _show(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
