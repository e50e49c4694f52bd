"""Sending files to a relay inbox over tus 1.0, resumable within a run and across runs.

The digest (BLAKE3 by default, SHA-256 on request) is computed while the bytes go out (a
file is read once, not twice): a file goes in two ``PATCH`` requests (more with a
``chunk_size``): the first streams all but the last 8 MiB and feeds the hash; the last
range is hashed first, so that its ``PATCH`` can carry the whole
file's digest in ``Wirelab-Digest`` (the upload's metadata names the algorithm) and
the server verifies before the file becomes visible. A network error mid-``PATCH`` is
retried a few times: ``HEAD`` says which offset the server made durable, the hash is
rewound to a checkpoint (or recomputed) and the upload continues from there. When the
retries run out, the command fails with the state saved; running it again resumes.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import httpx

from .._digests import DEFAULT_DIGEST, check_algorithm, new_hasher
from .._exceptions import (
    HTTPStatusError,
    IntegrityError,
    NetworkError,
    ProtocolError,
    TruncatedError,
    UsageError,
)
from .._exceptions import TimeoutError as WirelabTimeout
from .._filenames import sanitize_filename
from ._bulk import BLOCK, BulkConnection, BulkResponse
from ._errors import status_error, translating
from ._hashing import HashingBuffers
from ._relay_models import Progress, SentFile
from ._relay_state import SendState

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FINAL_RANGE",
    "Hasher",
    "LocalFile",
    "Sender",
    "Source",
    "encode_metadata",
    "range_end",
]

UPLOADS_PATH: Final = "/v1/relay/uploads"
BATCHES_PATH: Final = "/v1/relay/batches"
TUS: Final = {"Tus-Resumable": "1.0.0"}
DEFAULT_CHUNK_SIZE: Final[int | None] = None
"""Most bytes per ``PATCH``; ``None``: no limit. Each ``PATCH`` ends with an fsync and a
round trip (16 of them per GiB cost a 1 GiB send 15-25 % on loopback), and the server
makes what arrived durable along the way anyway (every 8 MiB, and when a body breaks off),
so a limit only helps where a proxy caps request bodies."""
FINAL_RANGE: Final = 8 * 1024 * 1024
"""Bytes of the last ``PATCH``, hashed before it is sent so that it carries the digest."""
RETRY_DELAYS: Final = (0.5, 1.0, 2.0, 4.0)
"""Waits before each retry of a broken ``PATCH`` within one run."""

_RETRYABLE: Final = (NetworkError, WirelabTimeout, TruncatedError)
_MAX_CONFLICTS: Final = 3  # 409 answers in a row before giving up
Hasher = Any  # hashlib's and blake3's object types


class Source(Protocol):
    """What the sender uploads: a :class:`LocalFile`, or its ciphertext (``--encrypt``)."""

    @property
    def path(self) -> Path: ...
    @property
    def name(self) -> str: ...
    @property
    def media_type(self) -> str: ...
    @property
    def size(self) -> int: ...
    def identity(self) -> list[Any]: ...
    def metadata(self) -> dict[str, str]: ...
    def check_unchanged(self) -> None: ...
    def blocks(self, start: int, end: int) -> Iterator[memoryview]: ...
    def hashed_blocks(self, start: int, end: int, hasher: Hasher) -> Iterator[memoryview]: ...


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A regular file to send, with the size and mtime it had when the send started."""

    path: Path
    size: int
    mtime_ns: int
    name: str
    media_type: str

    @classmethod
    def open(cls, path: Path) -> LocalFile:
        """Stat ``path``; :class:`~wirelab.UsageError` unless it is a readable regular file."""
        try:
            st = path.stat()
        except OSError as exc:
            raise UsageError(f"cannot send {path}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"cannot send {path}: not a regular file")
        if not os.access(path, os.R_OK):
            raise UsageError(f"cannot send {path}: permission denied")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(path.absolute(), st.st_size, st.st_mtime_ns, path.name, media_type)

    def identity(self) -> list[Any]:
        return [str(self.path), self.size, self.mtime_ns]

    def metadata(self) -> dict[str, str]:
        """Extra upload metadata of this source (an encrypted one adds its descriptor)."""
        return {}

    def check_unchanged(self) -> None:
        """Raise :class:`~wirelab.UsageError` if the file was modified since :meth:`open`."""
        try:
            st = self.path.stat()
        except OSError as exc:
            raise UsageError(f"{self.path} disappeared while it was sent") from exc
        if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
            raise UsageError(f"{self.path} changed while it was sent; send it again")

    def blocks(self, start: int, end: int) -> Iterator[memoryview]:
        """Bytes ``start:end`` as views of one reused buffer (valid until the next one)."""
        buffer = bytearray(BLOCK)
        view = memoryview(buffer)
        with self.path.open("rb", buffering=0) as f:
            f.seek(start)
            left = end - start
            while left > 0:
                n = f.readinto(view[: min(BLOCK, left)])
                if not n:
                    raise UsageError(f"{self.path} shrank while it was sent; send it again")
                left -= n
                yield view[:n]

    def hashed_blocks(self, start: int, end: int, hasher: Hasher) -> Iterator[memoryview]:
        """Like :meth:`blocks`, feeding ``hasher`` on a second core as the blocks go by.

        ``hasher`` has seen exactly the yielded blocks once the iterator is exhausted or
        closed (a consumer must not use a block after asking for the next one + 3).
        """
        with HashingBuffers(BLOCK, hasher=hasher) as ring, self.path.open("rb", buffering=0) as f:
            f.seek(start)
            left = end - start
            while left > 0:
                index, view = ring.take()
                n = f.readinto(view[: min(BLOCK, left)])
                if not n:
                    raise UsageError(f"{self.path} shrank while it was sent; send it again")
                left -= n
                yield ring.hash(index, n)


def range_end(offset: int, size: int, chunk_size: int | None) -> int:
    """Where the ``PATCH`` from ``offset`` of a ``size``-byte file ends: before the last
    :data:`FINAL_RANGE` bytes, then at the end; never more than ``chunk_size`` bytes on."""
    final_start = max(size - FINAL_RANGE, 0)
    end = size if offset >= final_start else final_start
    return end if chunk_size is None else min(end, offset + chunk_size)


def encode_metadata(meta: dict[str, str]) -> str:
    """The tus ``Upload-Metadata`` value: ``key base64(value)`` pairs, comma-separated."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())


def _path_of(url: str) -> str:
    """The path of ``url`` (servers may answer with an absolute or a relative URL)."""
    return httpx.URL(url).path


@dataclass(slots=True)
class _Offset:
    offset: int
    length: int
    file_url: str | None


class Sender:
    """Sends files with tus: creation (or a batch), ``HEAD`` to resume, ``PATCH`` bodies.

    ``http`` carries the small requests, ``bulk`` the ``PATCH`` bodies; both already
    authenticate. ``sleep`` is the wait between retries (tests pass a recorder).
    ``before_final(file, algorithm, digest)`` runs before the ``PATCH`` that would
    complete a file, once its digest is known; raising there keeps the upload resumable
    and unfinished. ``digest`` names the algorithm of the files' digests.
    """

    def __init__(
        self,
        http: httpx.Client,
        bulk: BulkConnection,
        progress: Progress,
        *,
        chunk_size: int | None = DEFAULT_CHUNK_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        before_final: Callable[[Source, str, str], None] | None = None,
        digest: str = DEFAULT_DIGEST,
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise UsageError("chunk_size must be at least 1 byte")
        try:
            self._algorithm = check_algorithm(digest)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self._http = http
        self._bulk = bulk
        self._progress = progress
        self._chunk = chunk_size
        self._sleep = sleep
        self._before_final = before_final

    # --- requests -------------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        with translating():
            response = self._http.request(method, url, **kwargs)
        return response

    def _check(self, response: httpx.Response) -> httpx.Response:
        if not response.is_success:
            raise status_error(response, response.content)
        return response

    def create(self, files: Sequence[Source], to: str, options: dict[str, Any]) -> list[str]:
        """Create the uploads of a send (one tus upload, or a batch); their paths."""
        if len(files) == 1:
            meta = {"filename": files[0].name, "to": to, "filetype": files[0].media_type}
            meta["digest_algorithm"] = self._algorithm
            meta.update({k: str(v) for k, v in options.items() if v is not None})
            meta.update(files[0].metadata())
            response = self._check(
                self._request(
                    "POST",
                    UPLOADS_PATH,
                    headers={
                        **TUS,
                        "Upload-Length": str(files[0].size),
                        "Upload-Metadata": encode_metadata(meta),
                    },
                )
            )
            location = response.headers.get("location")
            if not location:
                raise ProtocolError("the server created an upload without a Location")
            return [_path_of(location)]
        body = {
            "to": to,
            **{k: v for k, v in options.items() if v is not None},
            "files": [
                {
                    "name": f.name,
                    "size": f.size,
                    "media_type": f.media_type,
                    "digest_algorithm": self._algorithm,
                }
                for f in files
            ],
        }
        doc = self._check(self._request("POST", BATCHES_PATH, json=body)).json()
        try:
            urls = [_path_of(str(f["upload_url"])) for f in doc["files"]]
        except (KeyError, TypeError) as exc:
            raise ProtocolError("the server's batch has no upload URLs") from exc
        if len(urls) != len(files):
            raise ProtocolError("the server's batch lists a different number of files")
        return urls

    def offset(self, url: str) -> _Offset | None:
        """The server's durable offset of an upload, or ``None`` if it is gone."""
        response = self._request("HEAD", url, headers=TUS)
        if response.status_code in (404, 410):
            return None
        self._check(response)
        try:
            offset = int(response.headers["upload-offset"])
            length = int(response.headers["upload-length"])
        except (KeyError, ValueError) as exc:
            raise ProtocolError(f"HEAD {url}: no valid Upload-Offset/Upload-Length") from exc
        return _Offset(offset, length, response.headers.get("wirelab-file-url"))

    # --- one file -------------------------------------------------------------------

    def _hash(self, file: Source, start: int, end: int, hasher: Hasher, *, report: bool) -> None:
        """Feed bytes ``start:end`` of ``file`` to ``hasher`` (a progress phase if ``report``)."""
        if end <= start:
            return
        if report:
            self._progress.begin(f"checking {file.name}", end, start)
        for block in file.blocks(start, end):
            hasher.update(block)
            if report:
                self._progress.advance(len(block))
        if report:
            self._progress.end()

    def upload(self, file: Source, url: str, at: _Offset) -> SentFile:
        """Send the rest of ``file`` to the upload at ``url``, which is at ``at``."""
        hasher = new_hasher(self._algorithm)
        self._hash(file, 0, at.offset, hasher, report=True)
        resumed_from, offset, file_url = at.offset, at.offset, at.file_url
        checkpoint = (offset, hasher.copy())
        retries, conflicts = iter(RETRY_DELAYS), 0
        self._progress.begin(f"sending {file.name}", file.size, offset)
        try:
            while offset < file.size:  # an empty upload is complete from its creation
                end = range_end(offset, file.size, self._chunk)
                checkpoint = (offset, hasher.copy())
                try:
                    answer = self._patch(file, url, offset, end, hasher)
                except _RETRYABLE as exc:
                    delay = next(retries, None)
                    if delay is None:
                        raise type(exc)(f"{exc}; run the same command again to resume") from exc
                    self._sleep(delay)
                    now = self._resync_offset(url)
                    hasher = self._rewind(file, checkpoint, now)
                    offset = now
                    continue
                offset, file_url = self._advance(url, answer, file, end)
                if offset != end:  # 409: the server names its durable offset
                    conflicts += 1
                    if conflicts > _MAX_CONFLICTS:
                        raise ProtocolError(f"PATCH {url}: the server keeps moving the offset")
                    hasher = self._rewind(file, checkpoint, offset)
                else:  # progress: a later failure gets the full set of retries again
                    conflicts, retries = 0, iter(RETRY_DELAYS)
        finally:
            self._progress.end()
        file.check_unchanged()
        return SentFile(
            path=file.path,
            name=sanitize_filename(file.name),
            size=file.size,
            digest=hasher.hexdigest(),
            upload_url=url,
            file_url=file_url,
            resumed_from=resumed_from,
            algorithm=self._algorithm,
        )

    def _patch(self, file: Source, url: str, start: int, end: int, hasher: Hasher) -> BulkResponse:
        headers = {
            **TUS,
            "Upload-Offset": str(start),
            "Content-Type": "application/offset+octet-stream",
        }
        final = end == file.size
        if final:  # the digest must be in the headers: hash the last range first
            self._hash(file, start, end, hasher, report=False)
            digest = hasher.hexdigest()
            headers["Wirelab-Digest"] = f"{self._algorithm}={digest}"
            if self._before_final is not None:
                self._before_final(file, self._algorithm, digest)

        def body() -> Iterator[memoryview]:
            blocks = file.blocks(start, end) if final else file.hashed_blocks(start, end, hasher)
            for block in blocks:
                self._progress.advance(len(block))
                yield block

        return self._bulk.send("PATCH", url, headers, body(), end - start)

    def _advance(
        self, url: str, answer: BulkResponse, file: Source, end: int
    ) -> tuple[int, str | None]:
        """The offset (and file URL, once complete) after a ``PATCH``'s ``answer``."""
        if answer.status == 422 and end == file.size:
            raise IntegrityError(
                f"the server refused {file.name}: its digest did not match what was "
                "received (did the file change while it was sent?); send it again"
            )
        if answer.status not in (204, 409):
            raise answer.error("PATCH", url)
        try:
            offset = int(answer.headers["upload-offset"])
        except (KeyError, ValueError) as exc:
            raise ProtocolError(f"PATCH {url}: no valid Upload-Offset") from exc
        if answer.status == 204 and offset != end:
            raise ProtocolError(f"PATCH {url}: the server is at {offset}, expected {end}")
        return offset, answer.headers.get("wirelab-file-url")

    def _resync_offset(self, url: str) -> int:
        """The server's offset after a broken ``PATCH`` (retrying while it is unreachable)."""
        delays = iter(RETRY_DELAYS)
        while True:
            try:
                at = self.offset(url)
            except _RETRYABLE:
                delay = next(delays, None)
                if delay is None:
                    raise
                self._sleep(delay)
                continue
            if at is None:
                raise HTTPStatusError(
                    f"the upload {url} is gone (expired or cancelled); send again",
                    status_code=404,
                )
            return at.offset

    def _rewind(self, file: Source, checkpoint: tuple[int, Hasher], offset: int) -> Hasher:
        """The hash of bytes ``0:offset``, from the checkpoint when it is behind ``offset``."""
        start, saved = checkpoint
        if offset < start:
            start, saved = 0, new_hasher(self._algorithm)
        hasher = saved.copy()
        self._hash(file, start, offset, hasher, report=False)
        return hasher

    # --- a whole send ---------------------------------------------------------------

    def send(
        self,
        files: Sequence[Source],
        to: str,
        options: dict[str, Any],
        state: SendState,
        extra_state: dict[str, Any] | None = None,
    ) -> list[SentFile]:
        """Send ``files`` to ``to`` as one delivery, resuming what ``state`` remembers.

        ``extra_state`` is saved with the uploads (the encryptors of an encrypted send).
        """
        urls, offsets = self._resume(files, state)
        if urls is None:
            urls = self.create(files, to, options)
            state.save({"uploads": urls, **(extra_state or {})})
            offsets = [None] * len(files)
        sent = []
        for file, url, at in zip(files, urls, offsets, strict=True):
            if at is None:
                at = self.offset(url)
                if at is None:
                    state.clear()
                    raise HTTPStatusError(
                        f"the upload of {file.name} vanished on the server; send again",
                        status_code=404,
                    )
            sent.append(self.upload(file, url, at))
        state.clear()
        return sent

    def _resume(
        self, files: Sequence[Source], state: SendState
    ) -> tuple[list[str] | None, list[_Offset | None]]:
        """The saved uploads and their offsets, or ``None`` when there is nothing to resume."""
        urls = state.load().get("uploads")
        if not isinstance(urls, list) or len(urls) != len(files):
            return None, []
        offsets: list[_Offset | None] = []
        for file, url in zip(files, urls, strict=True):
            at = self.offset(str(url))
            if at is None or at.length != file.size:
                state.clear()
                return None, []
            offsets.append(at)
        return [str(u) for u in urls], offsets
