"""One server per data folder, unless its servers coordinate: a ``flock`` on a lock file.

A server with the embedded coordination keeps state in process memory (long-poll
wake-ups, upload leases, start-up recovery that truncates uploads in flight), so a second
server on its data folder would corrupt its uploads: it takes the lock *exclusively*, and
any other server refuses to start. Servers with a distributed coordination
(``WIRELAB_COORDINATION_URL``, e.g. the processes of ``wirelab serve --workers N``) share
that state through it: they take the lock *shared*, so they may run side by side, and the
first one writes its coordination (the Redis address and key prefix) into the lock file;
a server coordinated through anything else is refused. The lock is the kernel's: it is
released when the process exits, however it exits (SIGKILL included), so a stale lock
file never blocks a restart. ``wirelab users`` commands do not take it: they only use
the database, which has its own locking.
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
    """The lock of ``data_dir``, held from :meth:`acquire` until :meth:`release` or the
    end of the process: exclusive, or shared by the servers coordinated through
    ``shared_by`` (a coordination's description, no secrets). The lock file holds the
    owner's pid (and the shared coordination), for the messages and the check."""

    def __init__(self, data_dir: Path, shared_by: str | None = None) -> None:
        self.path = data_dir / LOCK_NAME
        self.shared_by = shared_by
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DataDirLockedError` naming the folder and holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if self.shared_by is None:
                self._exclusive(fd)
            else:
                self._shared(fd, self.shared_by)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _exclusive(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._in_use(fd) from None
        # Only the holder writes: a reader sees either the old pid or this one.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def _shared(self, fd: int, shared_by: str) -> None:
        try:  # the first of a group writes the coordination, then shares the lock
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {_SHARED} {shared_by}\n".encode(), 0)
        except BlockingIOError:
            pass
        try:  # (a conversion, not atomic: an exclusive taker in between makes this fail)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._in_use(fd) from None
        _pid, coordination = _read_holder(fd)
        if coordination != shared_by:
            raise DataDirLockedError(
                f"data folder {self.path.parent} is shared by wirelab servers coordinated"
                f" through {coordination or 'nothing'}; this one uses {shared_by}:"
                " give every server of a data folder the same coordination URL"
            )

    def _in_use(self, fd: int) -> DataDirLockedError:
        holder, coordination = _read_holder(fd)
        who = f" by process {holder}" if holder else ""
        if coordination is not None:
            return DataDirLockedError(
                f"data folder {self.path.parent} is in use{who}: wirelab servers coordinated"
                f" through {coordination} run on it; start this one with the same"
                " coordination URL (WIRELAB_COORDINATION_URL) to join them"
            )
        if self.shared_by is not None:
            return DataDirLockedError(
                f"data folder {self.path.parent} is in use{who}: a wirelab server without"
                " coordination runs on it, and owns it alone"
            )
        return DataDirLockedError(
            f"data folder {self.path.parent} is in use{who}: "
            "another wirelab server is running on it (one server per data folder)"
        )

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


_SHARED = "shared-by"


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    """The pid in the lock file, and the coordination its servers share (if shared)."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        return None, None
    pid, _, rest = text.partition(" ")
    tag, _, coordination = rest.partition(" ")
    return (
        int(pid) if pid.isdigit() else None,
        coordination if tag == _SHARED and coordination else None,
    )
