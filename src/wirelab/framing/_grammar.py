"""The frame-level half of the decoder: grammar order, file sequence, sizes and digests.

:class:`StreamGrammar` sees whole frames (a type and, for JSON frames, the decoded object)
and the data bytes, never the raw stream: the byte-level :class:`StreamDecoder` feeds it.
It raises :class:`ProtocolError` / :class:`IntegrityError` with messages that name the frame
but not the stream offset, which the decoder adds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .._exceptions import IntegrityError, ProtocolError
from ._digests import Hasher, new_hasher
from ._events import Event, FileStarted
from ._frames import FrameType, frame_name
from ._schema import (
    parse_file_end,
    parse_file_header,
    parse_stream_abort,
    parse_stream_end,
    parse_stream_header,
)

__all__ = ["StreamGrammar"]

# Positions in: body = preamble S file* ( Z / [F D*] X ), file = F D* E
_BEFORE_STREAM: Final = 0
_BETWEEN_FILES: Final = 1
_IN_FILE: Final = 2
_ENDED: Final = 3

_S, _F, _D, _E, _Z, _X = (int(t) for t in FrameType)
_ALLOWED: Final = {
    _BEFORE_STREAM: frozenset({_S}),
    _BETWEEN_FILES: frozenset({_F, _Z, _X}),
    _IN_FILE: frozenset({_D, _E, _X}),
    _ENDED: frozenset[int](),
}
_EXPECTED: Final = {
    _BEFORE_STREAM: "S",
    _BETWEEN_FILES: "F, Z or X",
    _IN_FILE: "D, E or X",
    _ENDED: "nothing",
}
_DIGEST_SHOWN: Final = 8  # hex digits of a digest quoted in an error message


class StreamGrammar:
    """Checks the sequence of frames of one stream and turns JSON frames into events.

    The decoder calls :meth:`check_order` for every known frame header, :meth:`data_header`
    and :meth:`data` for ``D`` frames, and :meth:`json_frame` for each complete JSON payload.
    """

    __slots__ = (
        "_algorithm",
        "_count",
        "_file",
        "_files_completed",
        "_hasher",
        "_phase",
        "_total_bytes",
        "_verify",
        "file_index",
        "file_received",
    )

    def __init__(self, *, verify: bool) -> None:
        self._verify = verify
        self._algorithm = "sha256"  # the S frame's digest algorithm
        self._phase = _BEFORE_STREAM
        self._count = 0  # files announced by S
        self._files_completed = 0
        self._total_bytes = 0  # data bytes of the completed files
        self._file: FileStarted | None = None
        self._hasher: Hasher | None = None  # of the current file, when verifying
        # Public for the decoder's hot path: the current file's index and bytes so far.
        self.file_index = -1
        self.file_received = 0

    @property
    def files_completed(self) -> int:
        """Files whose ``E`` frame passed every check."""
        return self._files_completed

    def check_order(self, frame_type: int) -> None:
        """Raise :class:`ProtocolError` if a *frame_type* frame may not come now."""
        if frame_type not in _ALLOWED[self._phase]:
            raise ProtocolError(
                f"unexpected {frame_name(frame_type)} frame {self._where()} "
                f"(expected {_EXPECTED[self._phase]})"
            )

    def _where(self) -> str:
        if self._phase == _BEFORE_STREAM:
            return "before the stream header"
        if self._phase == _IN_FILE:
            return f"inside file {self.file_index}"
        return "between files" if self._phase == _BETWEEN_FILES else "after the final frame"

    def data_header(self, length: int) -> None:
        """Check that an order-checked ``D`` frame does not outgrow the file's size."""
        assert self._file is not None
        if self.file_received + length > self._file.size:
            raise ProtocolError(
                f"file {self.file_index}: D frame of {length} bytes exceeds the file size "
                f"({self.file_received} of {self._file.size} bytes already received)"
            )

    def data(self, piece: memoryview) -> None:
        """Account for (and hash) the next bytes of the current file; already size-checked."""
        if self._hasher is not None:
            self._hasher.update(piece)
        self.file_received += len(piece)

    def json_frame(self, frame_type: int, obj: dict[str, Any]) -> Event:
        """Check a decoded JSON payload of an order-checked frame; return its event."""
        return _HANDLERS[frame_type](self, obj)

    def truncation_point(self, *, in_frame: bool) -> str:
        """Where in the grammar the input stopped, for a truncation message.

        *in_frame* tells whether it stopped inside a frame (which the decoder describes).
        """
        if self._phase == _BEFORE_STREAM:
            return "before the stream header"
        if self._phase == _IN_FILE:
            assert self._file is not None
            return (
                f"inside file {self.file_index} after {self.file_received} of "
                f"{self._file.size} bytes"
            )
        where = f"after {self._files_completed} of {self._count} files"
        return where if in_frame else where + " without an end frame"

    def _on_stream(self, obj: dict[str, Any]) -> Event:
        started = parse_stream_header(obj)
        self._count = started.count
        self._algorithm = started.digest
        self._phase = _BETWEEN_FILES
        return started

    def _on_file(self, obj: dict[str, Any]) -> Event:
        started = parse_file_header(obj)
        expected = self._files_completed
        if started.index != expected:
            raise ProtocolError(f"F frame: file index {started.index}, expected {expected}")
        if started.index >= self._count:
            raise ProtocolError(
                f"F frame: file {started.index} is beyond the S frame's count of {self._count}"
            )
        self._file = started
        self.file_index = started.index
        self.file_received = 0
        self._hasher = new_hasher(self._algorithm) if self._verify else None
        self._phase = _IN_FILE
        return started

    def _on_file_end(self, obj: dict[str, Any]) -> Event:
        ended = parse_file_end(obj, self._algorithm)
        file = self._file
        assert file is not None
        if ended.index != file.index:
            raise ProtocolError(f"E frame: index {ended.index} does not match file {file.index}")
        if self.file_received != file.size:
            raise IntegrityError(
                f"file {file.index}: short file ({self.file_received} of {file.size} bytes "
                "at its E frame)"
            )
        if self._hasher is not None:
            digest = self._hasher.hexdigest()
            if digest != ended.digest:
                raise IntegrityError(
                    f"file {file.index}: {ended.algorithm} mismatch (expected "
                    f"{ended.digest[:_DIGEST_SHOWN]}…, got {digest[:_DIGEST_SHOWN]}…)"
                )
        self._files_completed += 1
        self._total_bytes += file.size
        self._file = None
        self._hasher = None
        self._phase = _BETWEEN_FILES
        return ended

    def _on_stream_end(self, obj: dict[str, Any]) -> Event:
        ended = parse_stream_end(obj)
        received = self._files_completed
        if ended.count != received:
            raise IntegrityError(f"Z frame: count is {ended.count}, files received: {received}")
        if ended.total_bytes != self._total_bytes:
            raise IntegrityError(
                f"Z frame: bytes is {ended.total_bytes}, bytes received: {self._total_bytes}"
            )
        if ended.count != self._count:
            raise IntegrityError(
                f"Z frame: count is {ended.count}, files announced by the S frame: {self._count}"
            )
        self._phase = _ENDED
        return ended

    def _on_abort(self, obj: dict[str, Any]) -> Event:
        aborted = parse_stream_abort(obj)
        self._file = None
        self._hasher = None
        self._phase = _ENDED
        return aborted


_HANDLERS: Final[dict[int, Callable[[StreamGrammar, dict[str, Any]], Event]]] = {
    _S: StreamGrammar._on_stream,
    _F: StreamGrammar._on_file,
    _E: StreamGrammar._on_file_end,
    _Z: StreamGrammar._on_stream_end,
    _X: StreamGrammar._on_abort,
}
