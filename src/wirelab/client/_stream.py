"""Sans-IO core shared by the sync and async clients: the verified event queue of one
response, and the assembly of events into files.

Nothing here does I/O. The clients read the body in whatever blocks the network gives,
pass them to :meth:`StreamSession.receive`, and pull events with
:meth:`StreamSession.next_event`.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any

from .._exceptions import IntegrityError, TruncatedError, WirelabError
from ..framing import (
    Event,
    FileData,
    FileEnded,
    FileStarted,
    StreamAborted,
    StreamDecoder,
    StreamEnded,
    StreamStarted,
)
from ._files import StreamedFile
from ._request import STREAM_MEDIA_TYPE

__all__ = [
    "STREAM_MEDIA_TYPE",
    "FileAssembler",
    "ReaderState",
    "StreamInfo",
    "StreamSession",
]

"""The media type of ``/v1/stream`` bodies (parameters such as ``version=1`` aside)."""


def _header_int(headers: Any, name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


class StreamSession:
    """The verified events of one ``/v1/stream`` body, fed in blocks of any size.

    On top of the decoder's checks (digests, sizes, grammar) it checks that file indexes
    run 0, 1, ... up to the announced count, that the end frame agrees with what was
    received, and that the ``Wirelab-Seed``/``Wirelab-Count`` response headers (if given)
    agree with the stream header. An ``X`` frame becomes :class:`~wirelab.TruncatedError`.

    Errors are delivered in order: every event that precedes a problem, even in the same
    block, is returned by :meth:`next_event` first, then the error is raised (the decoder
    itself returns the events before an error and raises it on the next call).
    """

    def __init__(self, headers: Any = None) -> None:
        self._decoder = StreamDecoder(verify=True)
        self._queue: deque[Event | WirelabError] = deque()
        self._failed = False
        self._header_seed = _header_int(headers or {}, "wirelab-seed")
        self._header_count = _header_int(headers or {}, "wirelab-count")
        self.seed: int | None = None
        self.count: int | None = None
        self.params: dict[str, Any] | None = None
        self.total_bytes: int | None = None
        self.completed = False
        self.files_done = 0
        self._bytes_done = 0
        self._current: FileStarted | None = None
        self._received = 0

    @property
    def started(self) -> bool:
        """Whether the stream header (``S`` frame) has been received."""
        return self.count is not None

    def receive(self, data: bytes) -> None:
        """Decode the next block of the body; errors are queued behind the good events."""
        if self._failed:
            return
        try:
            for event in self._decoder.feed(data):
                self._check(event)
                self._queue.append(event)
        except WirelabError as exc:
            self._queue.append(exc)
            self._failed = True

    def end_of_input(self) -> None:
        """The body ended: queue :class:`~wirelab.TruncatedError` unless the stream did."""
        if self._failed:
            return
        try:
            self._decoder.close()
        except WirelabError as exc:
            self._queue.append(exc)
            self._failed = True
        else:
            self.completed = self.total_bytes is not None

    def next_event(self) -> Event | None:
        """The next verified event, or ``None`` when more input is needed."""
        if not self._queue:
            return None
        item = self._queue.popleft()
        if isinstance(item, WirelabError):
            raise item
        return item

    def _check(self, event: Event) -> None:
        if isinstance(event, StreamStarted):
            self._start(event)
        elif isinstance(event, FileStarted):
            if event.index != self.files_done or self.count is None or event.index >= self.count:
                raise IntegrityError(
                    f"file index {event.index} out of sequence: expected {self.files_done} "
                    f"of {self.count} files"
                )
            self._current, self._received = event, 0
        elif isinstance(event, FileData):
            self._received += len(event.data)
            if self._current is None or event.index != self._current.index:
                raise IntegrityError(f"data for file {event.index} outside that file")
            if self._received > self._current.size:
                raise IntegrityError(f"file {event.index}: more than {self._current.size} bytes")
        elif isinstance(event, FileEnded):
            self._end_file(event)
        elif isinstance(event, StreamEnded):
            if event.count != self.count or event.count != self.files_done:
                raise IntegrityError(
                    f"stream end reports {event.count} files; announced {self.count}, "
                    f"received {self.files_done}"
                )
            if event.total_bytes != self._bytes_done:
                raise IntegrityError(
                    f"stream end reports {event.total_bytes} bytes, received {self._bytes_done}"
                )
            self.total_bytes = event.total_bytes
        elif isinstance(event, StreamAborted):
            raise TruncatedError(f"server aborted the stream: {event.error}: {event.message}")

    def _start(self, event: StreamStarted) -> None:
        for name, expected, got in (
            ("Wirelab-Seed", self._header_seed, event.seed),
            ("Wirelab-Count", self._header_count, event.count),
        ):
            if expected is not None and expected != got:
                raise IntegrityError(f"{name} header says {expected}, stream header says {got}")
        self.seed, self.count, self.params = event.seed, event.count, dict(event.params)

    def _end_file(self, event: FileEnded) -> None:
        current = self._current
        if current is None or event.index != current.index:
            raise IntegrityError(f"end of file {event.index}, which was not started")
        if self._received != current.size:
            raise IntegrityError(
                f"file {event.index}: received {self._received} of {current.size} bytes"
            )
        self.files_done += 1
        self._bytes_done += current.size
        self._current = None


class ReaderState(enum.Enum):
    """Life cycle of a stream reader (sync or async)."""

    NEW = "new"  # no request sent yet
    OPEN = "open"  # response headers received, body being read
    DONE = "done"  # the body was read to its end, or an error ended the stream
    CLOSED = "closed"  # closed by the caller before the end


class StreamInfo:
    """Mixin: the stream attributes of a reader, read from its :class:`StreamSession`."""

    def _stream_session(self) -> StreamSession:
        raise NotImplementedError

    @property
    def seed(self) -> int | None:
        """The stream's seed (the server's choice if none was sent); ``None`` until open."""
        return self._stream_session().seed

    @property
    def count(self) -> int | None:
        """The number of files the server announced; ``None`` until open."""
        return self._stream_session().count

    @property
    def params(self) -> dict[str, Any] | None:
        """The effective parameters the server echoed; ``None`` until open."""
        return self._stream_session().params

    @property
    def total_bytes(self) -> int | None:
        """Total file bytes, from the verified end frame; ``None`` until then."""
        return self._stream_session().total_bytes

    @property
    def completed(self) -> bool:
        """Whether the whole stream was received and verified, up to the end of the body."""
        return self._stream_session().completed


class FileAssembler:
    """Turns verified events into :class:`StreamedFile` objects, holding one file at a time."""

    def __init__(self) -> None:
        self._header: FileStarted | None = None
        self._chunks: list[bytes] = []

    def push(self, event: Event) -> StreamedFile | None:
        """Take the next event; return the file it completes, if any."""
        if isinstance(event, FileStarted):
            self._header, self._chunks = event, []
        elif isinstance(event, FileData):
            self._chunks.append(event.data)
        elif isinstance(event, FileEnded) and self._header is not None:
            h, data = self._header, b"".join(self._chunks)
            self._header, self._chunks = None, []
            return StreamedFile(
                index=h.index,
                name=h.name,
                size=h.size,
                dtype=h.dtype,
                byteorder=h.byteorder,
                offset=h.offset,
                digest=event.digest,
                data=data,
                algorithm=event.algorithm,
            )
        return None
