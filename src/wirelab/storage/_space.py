"""Disk space of :class:`~wirelab.storage.LocalBlobStore`: a full disk is an answer, not
a crash, and never a dead end.

- :func:`no_space` turns ``ENOSPC``/``EDQUOT`` into :class:`StorageFullError` (one
  boundary, ``raise ... from``).
- :class:`DiskReserve` keeps a file of ``size`` bytes (``<root>/reserve``) that uploads
  may not use. When the disk is full anyway (another program filled it), an operation
  that frees space but must first write a little (the database records a delete before
  the bytes go) releases it; it is restored once there is room again.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from ._base import StorageFullError

__all__ = ["DiskReserve", "is_full", "no_space"]

_FULL = (errno.ENOSPC, errno.EDQUOT)
_BLOCK = 64 * 1024


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a file system's "no space left" (or "quota exceeded")."""
    return isinstance(exc, OSError) and exc.errno in _FULL


@contextlib.contextmanager
def no_space(what: str) -> Iterator[None]:
    """Raise :class:`StorageFullError` (naming ``what``) for a full file system."""
    try:
        yield
    except OSError as exc:
        if not is_full(exc):
            raise
        raise StorageFullError(f"no space left on the server's disk for {what}") from exc


class DiskReserve:
    """``size`` bytes kept aside in ``path`` (0: none). Blocking methods: run off the loop."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = max(0, size)

    def available(self) -> int:
        """Bytes free for uploads: the file system's free space for unprivileged users
        (the reserve file is already taken out of it when it exists; otherwise its size
        is, so that uploads never eat the room a delete needs)."""
        st = os.statvfs(self.path.parent)
        free = st.f_bavail * st.f_frsize
        return free if self.path.exists() else max(0, free - self.size)

    def release(self) -> bool:
        """Delete the reserve file; whether it existed."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def restore(self) -> None:
        """Write the reserve file again if it is missing and twice its size is free."""
        if not self.size or self.path.exists():
            return
        st = os.statvfs(self.path.parent)
        if st.f_bavail * st.f_frsize < 2 * self.size:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                _allocate(f.fileno(), self.size)
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _allocate(fd: int, size: int) -> None:
    """Take ``size`` real bytes of disk for ``fd`` (not a sparse file)."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except (AttributeError, OSError) as exc:
        if is_full(exc):
            raise
    zeros = bytes(_BLOCK)  # a file system without fallocate: write the zeros
    for _ in range(0, size, _BLOCK):
        os.write(fd, zeros)
