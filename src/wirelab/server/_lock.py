"""One server per data folder: an exclusive ``flock`` on a lock file inside it.

Several pieces of the server's state still live in process memory (long-poll wake-ups,
per-upload locks, start-up recovery that truncates uploads in flight), so two servers on one
data folder would corrupt each other's uploads. Until that state is shared, the second one
refuses to start. The lock is the kernel's: it is released when the process exits, however it
exits (SIGKILL included), so a stale lock file never blocks a restart. ``wirelab users``
commands do not take it: they only use the database, which has its own locking.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .._exceptions import WirelabError

__all__ = ["LOCK_NAME", "DataDirLock", "DataDirLockedError"]

LOCK_NAME = "wirelab.lock"


class DataDirLockedError(WirelabError):
    """Another process holds the data folder's lock."""


class DataDirLock:
    """The exclusive lock of ``data_dir``, held from :meth:`acquire` until :meth:`release`
    or the end of the process. The lock file holds the owner's pid, for the message only."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DataDirLockedError` naming the folder and holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" by process {holder}" if holder else ""
            raise DataDirLockedError(
                f"data folder {self.path.parent} is in use{who}: "
                "another wirelab server is running on it (one server per data folder)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Only the holder writes: a reader sees either the old pid or this one.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race with a new holder)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
