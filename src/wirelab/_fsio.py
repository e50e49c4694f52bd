"""Durable, atomic file-system steps shared by the server's storage and the client.

One definition each of: making a folder's entries durable (:func:`fsync_dir`), a full
write (:func:`write_all`), replacing a file atomically and durably (:func:`atomic_write`)
and moving a finished file into place without ever clobbering (:func:`install`), and
creating a folder for user data that only its owner can enter (:func:`private_dir`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["TMP_PREFIX", "atomic_write", "fsync_dir", "install", "private_dir", "write_all"]

TMP_PREFIX = ".tmp-"
"""Temporary files of :func:`atomic_write` start with this (start-up clean-ups find them)."""


def fsync_dir(path: Path) -> None:
    """Make the entries of directory *path* (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(path: Path) -> int:
    """Create folder *path* (and missing parents) with mode 0700; return its permission bits.

    A folder that exists keeps its mode (it may be shared on purpose): callers warn when
    the bits returned include group or other access (``bits & 0o077``). Parents that are
    created get the default mode, as ``mkdir -p`` gives them.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path.stat().st_mode & 0o777


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of *data* at the current position of *fd* (``os.write`` may be short)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(
    path: Path,
    data: bytes,
    *,
    tmp_dir: Path | None = None,
    mode: int = 0o644,
    sync_dir: bool = True,
) -> None:
    """Replace *path* by a file holding *data* (created with *mode*), atomically and durably.

    The data goes to a temporary file in *tmp_dir* (default: *path*'s folder; it must be on
    the same file system), is fsynced, then renamed over *path*; with *sync_dir* the parent
    directory is fsynced too. A crash at any point leaves either the old or the new content
    at *path*, plus at most a temporary file.
    """
    tmp = (tmp_dir or path.parent) / f"{TMP_PREFIX}{path.name}-{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow a secret's mode
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)


def install(src: Path, target: Path, *, overwrite: bool) -> None:
    """Move the finished file *src* to *target* atomically (same file system).

    With *overwrite* an existing *target* is replaced; without, :class:`FileExistsError`
    and nothing changes: ``link`` checks and creates in one step, so no other writer can
    slip in between. On a file system without hard links the check and the rename are two
    steps. The caller fsyncs the folder.
    """
    if overwrite:
        os.replace(src, target)
        return
    try:
        os.link(src, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links here
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.replace(src, target)
        return
    with contextlib.suppress(FileNotFoundError):
        src.unlink()
