"""Downloading a relay file to disk: resumable, verified, atomic, never clobbering.

The bytes go to a partial file beside the destination, ``.<file id>.wirelab-part``. A run
that finds one continues it with ``Range: bytes=N-`` and ``If-Range: "<sha256>"`` (a
server that holds different bytes under that id answers the whole file instead). The
whole file's SHA-256 is checked against the server's before anything is renamed; then the
partial file is fsynced and moved into place atomically: with ``os.link`` (which fails if
the name exists: no check-then-write race) unless overwriting, in which case
``os.replace``. Only then may the caller acknowledge the file on the server.

A name that exists already (:data:`EXISTS_MODES`): a file with the same size and SHA-256
is the same file (e.g. written by a run that crashed before its acknowledgement): nothing
is written and the result says ``skipped``. A different file is refused (``"fail"``),
kept beside the new one under a numbered name (``"rename"``: ``NAME (1).EXT``), or
replaced (``"overwrite"``).
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal

from .._digests import DIGEST_LABELS, digest_etag, new_hasher
from .._exceptions import (
    IntegrityError,
    NetworkError,
    ProtocolError,
    TruncatedError,
    UsageError,
)
from .._exceptions import TimeoutError as WirelabTimeout
from .._filenames import sanitize_filename
from .._fsio import fsync_dir, install
from ._bulk import BLOCK, BulkConnection, read_into
from ._direct import BlockWriter
from ._hashing import HashingBuffers
from ._relay_models import DestinationExistsError, InboxFile, Progress, ReceivedFile

__all__ = [
    "EXISTS_MODES",
    "PART_SUFFIX",
    "Exists",
    "download_file",
    "local_path",
    "stream_live",
]

Exists = Literal["fail", "rename", "overwrite"]
EXISTS_MODES: Final[tuple[Exists, ...]] = ("fail", "rename", "overwrite")
"""What to do when a received file's name exists with other content (module docstring)."""
_MAX_NUMBERED: Final = 10_000

PART_SUFFIX: Final = ".wirelab-part"
RETRY_DELAYS: Final = (0.5, 1.0, 2.0, 4.0)
"""Waits before each retry of a broken download within one run."""
_RETRYABLE: Final = (NetworkError, WirelabTimeout, TruncatedError)
_FILE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
FILES_PATH: Final = "/v1/relay/files"
_FILES_PREFIX_LIVE: Final = "/v1/relay/live/"


def local_path(out_dir: Path, file: InboxFile) -> Path:
    """Where ``file`` is written in ``out_dir``: its name, sanitized again on this side."""
    return out_dir / sanitize_filename(file.name)


def _part_path(out_dir: Path, file: InboxFile) -> Path:
    if not _FILE_ID.fullmatch(file.id):  # the id becomes part of a path: check it
        raise ProtocolError(f"the server sent an invalid file id {file.id!r}")
    return out_dir / f".{file.id}{PART_SUFFIX}"


Hasher = Any  # hashlib's and blake3's object types
PartialHash = tuple[int, Hasher]
"""A partial file's size and the hash of its bytes."""


def _hash_existing(f: BinaryIO, size: int, hasher: Hasher) -> None:
    f.seek(0)
    left = size
    while left > 0:
        block = f.read(min(left, 1024 * 1024))
        if not block:
            raise UsageError("the partial download shrank while it was read")
        hasher.update(block)
        left -= len(block)


def _hasher(algorithm: str) -> Hasher:
    """A hasher for a download in *algorithm*: one thread, which hashes beside the receiving
    (BLAKE3's thread pool spins for the cores the transfer needs: storage.bulk_hasher)."""
    try:
        return new_hasher(algorithm)
    except ValueError as exc:
        raise ProtocolError(f"the server names an unknown digest: {exc}") from None


@dataclass(slots=True)
class _Partial:
    """The partial file of a download: its open file, size, and the hash of its bytes."""

    f: BinaryIO
    have: int
    hasher: Hasher
    resumed_from: int

    algorithm: str

    @classmethod
    def open(
        cls, f: BinaryIO, size: int, algorithm: str, known: PartialHash | None = None
    ) -> _Partial:
        """``known``: the hash of the partial file's bytes (in ``algorithm``), if this
        process just wrote them (a live stream); used only if the file still has that size."""
        have = f.seek(0, os.SEEK_END)
        if have > size:  # not a prefix of this file: start over
            f.truncate(0)
            have = 0
        if known is not None and known[0] == have:
            return cls(f, have, known[1], have, algorithm)
        hasher = _hasher(algorithm)
        _hash_existing(f, have, hasher)
        return cls(f, have, hasher, have, algorithm)

    def restart(self) -> None:
        self.f.truncate(0)
        self.have, self.hasher, self.resumed_from = 0, _hasher(self.algorithm), 0


def download_file(
    bulk: BulkConnection,
    file: InboxFile,
    out_dir: Path,
    *,
    exists: Exists = "fail",
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
    decrypt: Callable[[Path, Path], object] | None = None,
    known: PartialHash | None = None,
    path: str | None = None,
    dest: Path | None = None,
) -> ReceivedFile:
    """Download ``file`` into ``out_dir``, verified; return where it was written.

    ``path`` is where the bytes are (default: the relay's ``/v1/relay/files/<id>``);
    ``dest`` the file to write (default: ``file.name``, sanitized, in ``out_dir``; it must
    be in ``out_dir``, where the partial file is kept).

    A broken connection is retried (after :data:`RETRY_DELAYS`) from the bytes already
    received. ``exists`` says what to do when the name is taken by a different file
    (module docstring): ``"fail"`` raises :class:`DestinationExistsError` (checked before
    downloading and again, atomically, at the rename). Raises
    :class:`~wirelab.IntegrityError` when the bytes do not match the digest (the partial
    file is then removed, so the next run starts afresh). When the retries run out, or the
    disk is full, the partial file stays for the next run to resume (the error says so).

    ``decrypt(ciphertext_path, plaintext_path)``, for an end-to-end encrypted file, runs
    after the ciphertext was verified; the plaintext is what is moved into place. If it
    fails (wrong key, tampering), nothing is written and the verified ciphertext stays
    as the partial file. ``known`` is what :func:`stream_live` returned, to spare hashing
    the partial file again.
    """
    dest = dest or local_path(out_dir, file)
    if exists != "overwrite" and os.path.lexists(dest):
        if file.encryption is None and _same_content(dest, file):
            return ReceivedFile(file=file, path=dest, resumed_from=0, skipped=True)
        if exists == "fail":
            raise DestinationExistsError(dest)
    out_dir.mkdir(parents=True, exist_ok=True)
    part = _part_path(out_dir, file)
    path = path or f"{FILES_PATH}/{file.id}"
    try:
        return _download_into(bulk, path, file, part, dest, exists, progress, sleep, decrypt, known)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        kept = part.stat().st_size if part.exists() else 0
        raise OSError(
            exc.errno,
            f"{os.strerror(exc.errno)} while receiving {file.name}: the {kept} bytes received "
            "so far are kept in the partial file; free some space, then run the same command "
            "again to resume",
            str(part),
        ) from exc


def _download_into(
    bulk: BulkConnection,
    path: str,
    file: InboxFile,
    part: Path,
    dest: Path,
    exists: Exists,
    progress: Progress,
    sleep: Callable[[float], None],
    decrypt: Callable[[Path, Path], object] | None,
    known: PartialHash | None,
) -> ReceivedFile:
    """The body of :func:`download_file` once the source, the destination and the partial
    file are known: resume, fetch, verify, place."""
    with open(part, "a+b") as f:
        partial = _Partial.open(f, file.size, file.algorithm, known)
        delays = iter(RETRY_DELAYS)
        while partial.have < file.size:
            before = partial.have
            try:
                _fetch(bulk, path, file, partial, progress)
            except _RETRYABLE as exc:
                if partial.have > before:  # progress: the full set of retries again
                    delays = iter(RETRY_DELAYS)
                delay = next(delays, None)
                if delay is None:
                    raise type(exc)(f"{exc}; run the same command again to resume") from exc
                sleep(delay)
        if partial.hasher.hexdigest() != file.digest:
            f.close()
            part.unlink(missing_ok=True)
            raise IntegrityError(
                f"{file.name}: the received bytes do not match the"
                f" {DIGEST_LABELS.get(file.algorithm, file.algorithm)} {file.digest[:16]}…;"
                " nothing was written, run again to download anew"
            )
        f.flush()
        os.fsync(f.fileno())
    if decrypt is None:
        dest = _place(part, dest, exists)
    else:
        plain = part.with_name(part.name.removesuffix(PART_SUFFIX) + ".wirelab-plain")
        decrypt(part, plain)
        dest = _place(plain, dest, exists)
        part.unlink()
    return ReceivedFile(file=file, path=dest, resumed_from=partial.resumed_from)


def _same_content(dest: Path, file: InboxFile) -> bool:
    """Whether ``dest`` is a regular file with ``file``'s size and digest."""
    try:
        st = os.lstat(dest)
        if not os.path.isfile(dest) or os.path.islink(dest) or st.st_size != file.size:
            return False
        hasher = _hasher(file.algorithm)
        with open(dest, "rb") as f:
            _hash_existing(f, file.size, hasher)
    except (OSError, UsageError):  # unreadable, or changed meanwhile: not known to be it
        return False
    return bool(hasher.hexdigest() == file.digest)


def numbered(dest: Path, n: int) -> Path:
    """``dest`` with `` (n)`` before its suffix: ``report (2).pdf``."""
    return dest.with_name(f"{dest.stem} ({n}){dest.suffix}")


def _fetch(
    bulk: BulkConnection, path: str, file: InboxFile, partial: _Partial, progress: Progress
) -> None:
    """GET the bytes after ``partial.have`` into it (all of them if the server ignores the
    range: then the partial file starts over)."""
    have = partial.have
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers |= {"Range": f"bytes={have}-", "If-Range": digest_etag(file.algorithm, file.digest)}
    with bulk.get(path, headers) as response:
        if response.status == 206 and have:
            expected = f"bytes {have}-{file.size - 1}/{file.size}"
            if response.getheader("content-range") != expected:
                raise ProtocolError(f"GET {path}: unexpected Content-Range, want {expected}")
        elif response.status == 200:
            partial.restart()
        else:
            raise bulk.error_of(response, path)
        partial.f.flush()
        progress.begin(f"receiving {file.name}", file.size, partial.have)
        # The hash and the disk write run on a second core, a block behind the network
        # (the write around the page cache where it can: _direct).
        disk = BlockWriter(Path(partial.f.name), partial.have)
        ring = HashingBuffers(BLOCK, hasher=partial.hasher, sink=disk.write)
        try:
            with disk, ring:
                while True:
                    index, view = ring.take()
                    n = read_into(response, view, f"GET {path}")
                    if not n:
                        break
                    if partial.have + n > file.size:
                        raise ProtocolError(f"GET {path}: more bytes than the file's {file.size}")
                    ring.hash(index, n)
                    partial.have += n
                    progress.advance(n)
        finally:
            # The ring wrote every block handed over before it closed, unless a write
            # failed: then its error wins (not retried: the hash has seen that block).
            partial.have = min(partial.have, disk.position)
            progress.end()
            ring.check()
    if partial.have != file.size:
        raise ProtocolError(f"GET {path}: {partial.have} of {file.size} bytes")


def _place(part: Path, dest: Path, exists: Exists) -> Path:
    """Move the verified ``part`` to ``dest`` atomically (or, with ``"rename"``, to the
    first free numbered name), make the rename durable, and return where it went."""
    for n in range(_MAX_NUMBERED if exists == "rename" else 1):
        target = numbered(dest, n) if n else dest
        try:
            install(part, target, overwrite=exists == "overwrite")
        except FileExistsError:
            continue
        fsync_dir(dest.parent)
        return target
    raise DestinationExistsError(dest)


def stream_live(
    bulk: BulkConnection, doc: dict[str, Any], out_dir: Path, *, progress: Progress
) -> tuple[str, PartialHash]:
    """Receive an upload in progress (``next?live=true``) into its partial file.

    Returns the file id and the partial file's size and hash (for :func:`download_file`'s
    ``known``). Nothing is verified or placed here: once the upload completed,
    :func:`download_file` checks the partial file against the stored file's digest (and
    fetches whatever a broken live stream left out, with ``Range``), and decides what to
    do about an existing name (its content is known only then). Network errors are
    swallowed for that reason; protocol errors are not.
    """
    try:
        file_id, name, size = str(doc["id"]), str(doc["name"]), int(doc["size"])
        path = _FILES_PREFIX_LIVE + file_id
        algorithm = str(doc.get("digest_algorithm", "sha256"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError("the server's live upload description is incomplete") from exc
    placeholder = InboxFile(file_id, "", "", name, "", size, "0" * 64, None, "", "")
    out_dir.mkdir(parents=True, exist_ok=True)
    part = _part_path(out_dir, placeholder)
    progress.begin(f"receiving {name} (live)", size, 0)
    hasher, have = _hasher(algorithm), 0
    try:
        with (
            open(part, "wb") as f,
            HashingBuffers(BLOCK, hasher=hasher) as ring,
            bulk.get(path, {"Accept-Encoding": "identity"}) as response,
        ):
            if response.status != 200:
                raise bulk.error_of(response, path)
            while True:
                index, view = ring.take()
                if not (n := read_into(response, view, f"GET {path}")):
                    break
                f.write(view[:n])
                ring.hash(index, n)
                have += n
                progress.advance(n)
    except _RETRYABLE:
        pass  # the upload goes on; the stored file completes the partial one
    finally:
        progress.end()
    return file_id, (have, hasher)
