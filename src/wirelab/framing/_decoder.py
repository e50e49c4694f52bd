"""StreamDecoder: the sans-IO reader of the wirelab stream format (bytes in, events out).

Design notes:

- Input is processed in place through a memoryview. The decoder never accumulates the input;
  it buffers only what it cannot act on yet: a partial preamble or frame header (at most
  8 bytes) or a partial JSON payload (at most ``max_json_payload`` bytes). So decoding is
  O(n) however the input is split, and memory is bounded.
- ``D`` payloads are passed on as soon as their bytes arrive, as :class:`FileData` chunks
  that are copies of the input (the caller may reuse its buffer).
- Frame sizes are checked from the header, before any payload is buffered; ancillary frames
  are skipped as they stream past, whatever their length.
- This module knows bytes and offsets; :class:`StreamGrammar` knows what the frames mean.
"""

from __future__ import annotations

from typing import Final

from .._exceptions import ProtocolError, TruncatedError, UsageError
from ._events import Event, FileData
from ._frames import (
    HEADER,
    HEADER_SIZE,
    MAX_DATA_PAYLOAD,
    MAX_JSON_PAYLOAD,
    PREAMBLE,
    FrameType,
    check_limit,
    frame_name,
    is_ancillary,
)
from ._grammar import StreamGrammar
from ._schema import decode_json_object

__all__ = ["StreamDecoder"]

# Byte-level states: what the next input byte belongs to.
_PREAMBLE: Final = 0
_HEADER: Final = 1
_DATA: Final = 2  # a D payload
_PAYLOAD: Final = 3  # a JSON payload
_SKIP: Final = 4  # an ancillary payload
_DONE: Final = 5  # after Z or X: no byte may follow

_DATA_TYPE: Final = int(FrameType.DATA)
_JSON_TYPES: Final = frozenset(int(t) for t in FrameType if t is not FrameType.DATA)
_FINAL_TYPES: Final = frozenset({int(FrameType.END), int(FrameType.ABORT)})
_PREAMBLE_HEX: Final = PREAMBLE.hex(" ")


class StreamDecoder:
    """Decodes one stream body into :data:`Event` objects, checking everything it can.

    Feed the body in pieces of any size with :meth:`feed`, then call :meth:`close` at the end
    of the input. Every violation raises a :class:`ProtocolError` (or its subclasses
    :class:`IntegrityError` and :class:`TruncatedError`) with a one-line message that starts
    with ``at byte N:``, N being the stream offset of the frame (or byte) at fault. After an
    error the decoder is poisoned: every later call raises :class:`ProtocolError`. Events
    that precede an error in the same :meth:`feed` are returned first; the error follows on
    the next call.

    With ``verify=False`` the digest of each file is neither computed nor compared (the
    declared digest must still be well-formed); every other check still applies.
    """

    __slots__ = (
        "_closed",
        "_deferred",
        "_failure",
        "_frame_left",
        "_frame_length",
        "_frame_start",
        "_frame_type",
        "_grammar",
        "_max_data",
        "_max_json",
        "_offset",
        "_partial",
        "_state",
    )

    def __init__(
        self,
        *,
        verify: bool = True,
        max_json_payload: int = MAX_JSON_PAYLOAD,
        max_data_payload: int = MAX_DATA_PAYLOAD,
    ) -> None:
        """Create a decoder; the two payload limits may be changed from the format's."""
        self._max_json = check_limit("max_json_payload", max_json_payload)
        self._max_data = check_limit("max_data_payload", max_data_payload)
        self._grammar = StreamGrammar(verify=bool(verify))
        self._state = _PREAMBLE
        self._offset = 0  # bytes consumed so far = stream offset of the next byte
        self._partial = bytearray()  # a partial preamble, frame header or JSON payload
        self._frame_type = 0
        self._frame_start = 0
        self._frame_length = 0
        self._frame_left = 0  # payload bytes still to come
        self._failure: str | None = None
        self._deferred: ProtocolError | None = None
        self._closed = False

    @property
    def finished(self) -> bool:
        """Whether the final frame (``Z`` or ``X``) was decoded."""
        return self._state == _DONE

    @property
    def bytes_consumed(self) -> int:
        """Stream bytes processed so far (after an error: up to where decoding stopped)."""
        return self._offset

    @property
    def files_completed(self) -> int:
        """Files whose ``E`` frame passed every check: files ``0 .. files_completed - 1``.

        Still right after an error, when the events of the failing :meth:`feed` call were
        lost with the exception.
        """
        return self._grammar.files_completed

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Decode *data*, the next bytes of the body, and return the events it completes.

        The body may be split anywhere, including into single or empty pieces. A ``D``
        payload is returned as soon as any of it arrives, as one :class:`FileData` per
        contiguous piece (never empty).

        Errors never hide good data: if *data* contains an error after some events, those
        events are returned and the error is raised by the next :meth:`feed` or
        :meth:`close` call; if nothing precedes it, it is raised at once. Raises
        :class:`UsageError` after :meth:`close`.
        """
        self._raise_deferred()
        self._check_usable("feed()")
        view = memoryview(data).cast("B")
        events: list[Event] = []
        try:
            self._consume(view, events)
        except ProtocolError as exc:
            self._failure = str(exc)
            if events:
                self._deferred = exc
                return events
            raise
        return events

    def _raise_deferred(self) -> None:
        if self._deferred is not None:
            exc, self._deferred = self._deferred, None
            raise exc

    def close(self) -> None:
        """Signal the end of the input; raise :class:`TruncatedError` unless Z or X came.

        Closing a decoder that was closed successfully is a no-op.
        """
        self._raise_deferred()
        if self._closed:
            return
        self._check_usable("close()")
        if self._state != _DONE:
            message = f"at byte {self._offset}: stream ended {self._truncation_point()}"
            self._failure = message
            raise TruncatedError(message)
        self._closed = True

    def _check_usable(self, call: str) -> None:
        if self._failure is not None:
            raise ProtocolError(f"decoder already failed: {self._failure}")
        if self._closed:
            raise UsageError(f"{call} called after close()")

    def _consume(self, view: memoryview, events: list[Event]) -> None:
        pos = 0
        end = len(view)
        while pos < end:
            # Ordered by frequency: a large stream is almost only D payloads and headers.
            state = self._state
            if state == _DATA:
                pos = self._read_data(view, pos, end, events)
            elif state == _HEADER:
                pos = self._read_header(view, pos, end, events)
            elif state == _PAYLOAD:
                pos = self._read_payload(view, pos, end, events)
            elif state == _SKIP:
                pos = self._skip(pos, end)
            elif state == _PREAMBLE:
                pos = self._read_preamble(view, pos, end)
            else:
                raise ProtocolError(f"at byte {self._offset}: data after the final frame")

    def _read_preamble(self, view: memoryview, pos: int, end: int) -> int:
        have = len(self._partial)
        taken = min(len(PREAMBLE) - have, end - pos)
        chunk = bytes(view[pos : pos + taken])
        if chunk != PREAMBLE[have : have + taken]:  # refuse at the first wrong byte
            got = bytes(self._partial) + chunk
            bad = next(i for i, byte in enumerate(got) if byte != PREAMBLE[i])
            raise ProtocolError(
                f"at byte {bad}: not a wirelab stream: the body starts with "
                f"{got[: bad + 1].hex(' ')}, expected the preamble {_PREAMBLE_HEX}"
            )
        self._partial += chunk
        self._offset += taken
        if len(self._partial) == len(PREAMBLE):
            self._partial.clear()
            self._state = _HEADER
        return pos + taken

    def _read_header(self, view: memoryview, pos: int, end: int, events: list[Event]) -> int:
        have = len(self._partial)
        if not have and end - pos >= HEADER_SIZE:
            frame_type, length = HEADER.unpack_from(view, pos)
            taken = HEADER_SIZE
        else:  # a header split across feeds
            taken = min(HEADER_SIZE - have, end - pos)
            self._partial += view[pos : pos + taken]
            if len(self._partial) < HEADER_SIZE:
                self._offset += taken
                return pos + taken
            frame_type, length = HEADER.unpack(self._partial)
            self._partial.clear()
        self._frame_start = self._offset - have
        self._offset += taken
        self._frame_type = frame_type
        self._frame_length = length
        self._frame_left = length
        try:
            self._on_header(frame_type, length, events)
        except ProtocolError as exc:
            raise self._at_frame(exc) from None
        return pos + taken

    def _on_header(self, frame_type: int, length: int, events: list[Event]) -> None:
        if frame_type == _DATA_TYPE:
            self._grammar.check_order(frame_type)
            self._check_size(length, self._max_data)
            self._grammar.data_header(length)
            if length:
                self._state = _DATA
        elif frame_type in _JSON_TYPES:
            self._grammar.check_order(frame_type)
            self._check_size(length, self._max_json)
            if length:
                self._state = _PAYLOAD
            else:  # nothing to wait for: decode (and refuse) the empty payload now
                self._on_payload(b"", events)
        elif not is_ancillary(frame_type):
            raise ProtocolError(f"unknown frame type {frame_name(frame_type)}")
        elif length:
            self._state = _SKIP

    def _check_size(self, length: int, limit: int) -> None:
        if length > limit:
            raise ProtocolError(
                f"{frame_name(self._frame_type)} frame of {length} bytes exceeds the limit "
                f"of {limit}"
            )

    def _at_frame(self, exc: ProtocolError) -> ProtocolError:
        # Same class (an IntegrityError stays one), located at the frame in the stream.
        return type(exc)(f"at byte {self._frame_start}: {exc}")

    def _read_data(self, view: memoryview, pos: int, end: int, events: list[Event]) -> int:
        taken = min(self._frame_left, end - pos)
        piece = view[pos : pos + taken]
        # Hashing the input before copying it measured faster than the other way round.
        self._grammar.data(piece)
        self._frame_left -= taken
        self._offset += taken
        if not self._frame_left:
            self._state = _HEADER
        events.append(FileData(self._grammar.file_index, piece.tobytes()))
        return pos + taken

    def _read_payload(self, view: memoryview, pos: int, end: int, events: list[Event]) -> int:
        taken = min(self._frame_left, end - pos)
        chunk = view[pos : pos + taken]
        self._frame_left -= taken
        self._offset += taken
        if self._frame_left:
            self._partial += chunk
            return pos + taken
        if self._partial:
            self._partial += chunk
            payload = bytes(self._partial)
            self._partial.clear()
        else:
            payload = chunk.tobytes()  # the common case: the whole payload in one piece
        self._state = _HEADER
        try:
            self._on_payload(payload, events)
        except ProtocolError as exc:
            raise self._at_frame(exc) from None
        return pos + taken

    def _on_payload(self, payload: bytes, events: list[Event]) -> None:
        obj = decode_json_object(payload, frame_name(self._frame_type))
        events.append(self._grammar.json_frame(self._frame_type, obj))
        if self._frame_type in _FINAL_TYPES:
            self._state = _DONE

    def _skip(self, pos: int, end: int) -> int:
        taken = min(self._frame_left, end - pos)
        self._frame_left -= taken
        self._offset += taken
        if not self._frame_left:
            self._state = _HEADER
        return pos + taken

    def _truncation_point(self) -> str:
        """Where the input stopped: in the grammar, then inside a frame if it did."""
        if self._state == _PREAMBLE:
            if not self._partial:
                return "before the preamble (empty body)"
            return f"inside the preamble after {len(self._partial)} of {len(PREAMBLE)} bytes"
        in_frame = self._state != _HEADER or bool(self._partial)
        where = self._grammar.truncation_point(in_frame=in_frame)
        received = self._frame_length - self._frame_left
        name = frame_name(self._frame_type)
        if self._state == _HEADER and self._partial:
            return f"{where}, in a frame header ({len(self._partial)} of {HEADER_SIZE} bytes)"
        if self._state in (_DATA, _PAYLOAD):
            return f"{where}, in the {name} frame ({received} of {self._frame_length} bytes)"
        if self._state == _SKIP:
            return (
                f"{where}, in the ancillary {name} frame ({received} of {self._frame_length} bytes)"
            )
        return where
