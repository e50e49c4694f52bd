"""StreamEncoder: formats a stream and enforces its grammar on the sender's side.

The encoder is a pure formatting helper: it returns bytes and never writes them, and it does
not hash (the sender hashes, possibly in another thread, and passes the digest to
:meth:`StreamEncoder.file_end`). A call that raises :class:`UsageError` leaves the encoder as
it was.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import operator
import struct
from collections.abc import Callable, Mapping
from typing import Any, Final, SupportsIndex, TypeVar

from .._exceptions import ProtocolError, UsageError
from ._digests import DIGEST_ALGORITHMS
from ._frames import (
    HEADER,
    MAX_DATA_PAYLOAD,
    PREAMBLE,
    FrameType,
    encode_json_frame,
)
from ._schema import (
    STREAM_VERSION,
    SUPPORTED_VERSIONS,
    parse_file_end,
    parse_file_header,
    parse_stream_abort,
    parse_stream_header,
)
from ._start import StartTemplate, fast_start, start_members

__all__ = ["StreamEncoder"]

# Grammar positions.
_INIT: Final = 0
_BETWEEN_FILES: Final = 1
_IN_FILE: Final = 2
_DONE: Final = 3

_PHASE_NAMES: Final = {
    _INIT: "before start()",
    _BETWEEN_FILES: "between files",
    _IN_FILE: "inside a file",
    _DONE: "after the stream ended",
}

# The X frame must fit the JSON limit even when a sender passes a huge exception text:
# 4096 characters are at most 16 KiB of UTF-8.
_MAX_ABORT_MESSAGE_CHARS: Final = 4096

_pack_header: Final = HEADER.pack
_DATA: Final = int(FrameType.DATA)
_FILE: Final = int(FrameType.FILE)
_END_FILE: Final = int(FrameType.END_FILE)
_END: Final = int(FrameType.END)


def _json_str(value: str) -> str:
    """``json.dumps(value, ensure_ascii=False)``, short-cut for plain printable ASCII."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


#: ``_json_str`` of file names, memoized: a sender's names repeat from stream to stream.
_name_json: Final = functools.lru_cache(maxsize=8192)(_json_str)


@functools.lru_cache(maxsize=64)
def _file_header_middle(dtype: str, byteorder: str) -> str:
    # The members a stream's files share, formatted once per stream kind.
    return f',"dtype":{_json_str(dtype)},"byteorder":{_json_str(byteorder)},"offset":'


def _file_header_payload(
    index: int, name: str, size: int, dtype: str, byteorder: str, offset_json: str
) -> bytes:
    """The ``F`` frame's payload, byte-identical to ``encode_json_frame``'s for valid
    members (the offset already in its JSON form: ``repr`` of the float)."""
    return (
        f'{{"index":{index},"name":{_name_json(name)},"size":{int(size)}'
        f"{_file_header_middle(dtype, byteorder)}{offset_json}}}"
    ).encode()


def _fast_file_header(
    index: int, name: str, size: int, dtype: str, byteorder: str, offset_json: str
) -> bytes:
    """The ``F`` frame of :func:`_file_header_payload`."""
    payload = _file_header_payload(index, name, size, dtype, byteorder, offset_json)
    return _pack_header(_FILE, len(payload)) + payload


def _microseconds_json(offset: float) -> str:
    """``repr(round(offset, 6))``, the JSON of an offset rounded to microseconds, with one
    decimal conversion instead of two (``round`` and ``repr`` each convert).

    Exact: for 1e-4 <= offset < 1e9, ``".6f"`` gives the correctly rounded six decimals
    that ``round`` gives, and the double nearest them has no shorter round-tripping form
    than those decimals less their trailing zeros (its ulp is below 1e-6, the distance
    between any two such decimals), which is what ``repr`` writes in that range. Other
    values take the two conversions."""
    if 1e-4 <= offset < 1e9:
        text = f"{offset:.6f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    if offset == 0 and math.copysign(1.0, offset) > 0:  # the first file of most streams
        return "0.0"
    return repr(round(float(offset), 6))


#: ``E`` payloads by digest algorithm (``%`` the index and the hex digest's bytes),
#: byte-identical to ``encode_json_frame``'s for valid members.
_END_FILE_FORMATS: Final = {
    alg: b'{"index":%d,"' + alg.encode() + b'":"%s"}' for alg in DIGEST_ALGORITHMS
}


def _fast_file_end(index: int, algorithm: str, digest_hex: str) -> bytes:
    """The ``E`` frame."""
    payload = _END_FILE_FORMATS[algorithm] % (index, digest_hex.encode())
    return _pack_header(_END_FILE, len(payload)) + payload


def _copy(params: object) -> object:
    return dict(params) if isinstance(params, Mapping) else params


def _as_int(value: object) -> object:
    """Turn integer-like values (numpy integers) into ``int``; leave the rest to validation."""
    if isinstance(value, bool | int) or not isinstance(value, SupportsIndex):
        return value
    return operator.index(value)


def _as_float(value: object) -> object:
    """Turn real numbers (numpy floats) into ``float``; leave the rest to validation."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    return float(value)


_T = TypeVar("_T")


def _validate(parse: Callable[[Mapping[str, Any]], _T], obj: Mapping[str, Any]) -> _T:
    # The decoder's own rules, reported as the caller's mistake.
    try:
        return parse(obj)
    except ProtocolError as exc:
        raise UsageError(str(exc)) from None


class StreamEncoder:
    """Formats the frames of one stream, in order, and refuses calls that break the grammar.

    Call :meth:`start`, then for each of the ``count`` files :meth:`file_start`, any number of
    :meth:`data` / :meth:`data_header` calls, :meth:`file_end`; finally :meth:`end`. At any
    point after :meth:`start`, :meth:`abort` ends the stream early. Every method returns the
    bytes to send; the encoder keeps only counters.
    """

    __slots__ = (
        "_algorithm",
        "_count",
        "_file_index",
        "_file_sent",
        "_file_size",
        "_files",
        "_phase",
        "_total",
        "_validate",
        "_version",
    )

    def __init__(self, *, validate: bool = True, version: int = STREAM_VERSION) -> None:
        """``validate=False`` is for trusted senders on a hot path (the wirelab server): the
        grammar, indexes and sizes are still enforced, but ``S``, ``F`` and ``E`` members
        are not checked against the schema, and ``F`` and ``E`` are formatted without
        ``json.dumps`` (same bytes).

        ``version`` is the format version to write (1 only to reproduce old captures: it
        knows SHA-256 only).
        """
        if version not in SUPPORTED_VERSIONS:
            raise UsageError(f"stream version must be one of {SUPPORTED_VERSIONS}, got {version!r}")
        self._validate = validate
        self._version = version
        self._algorithm = "sha256"
        self._phase = _INIT
        self._count = 0
        self._files = 0  # files completed
        self._total = 0  # data bytes of the completed files
        self._file_index = -1
        self._file_size = 0
        self._file_sent = 0

    @property
    def finished(self) -> bool:
        """Whether :meth:`end` or :meth:`abort` was called."""
        return self._phase == _DONE

    @property
    def files_completed(self) -> int:
        """The number of files closed with :meth:`file_end`."""
        return self._files

    @property
    def total_bytes(self) -> int:
        """The data bytes of the completed files (the ``bytes`` that :meth:`end` reports)."""
        return self._total

    def _require(self, call: str, *phases: int) -> None:
        if self._phase not in phases:
            where = _PHASE_NAMES[self._phase]
            if self._phase == _IN_FILE:
                where = f"inside file {self._file_index} (call file_end() first)"
            raise UsageError(f"{call} called {where}")

    def start(
        self, *, seed: int, count: int, params: Mapping[str, Any], digest: str = "sha256"
    ) -> bytes:
        """Return the preamble and the ``S`` frame (``version``, ``seed``, ``count``, then
        ``digest`` from version 2 on, and ``params``).

        ``seed`` and ``count`` are non-negative integers; ``params`` must be JSON-serialisable.
        ``digest`` names the algorithm of every digest passed to :meth:`file_end` (one of
        ``blake3`` and ``sha256``; version 1 has only ``sha256``).
        """
        self._require("start()", _INIT)
        if digest not in DIGEST_ALGORITHMS or (self._version == 1 and digest != "sha256"):
            raise UsageError(
                f"start(): digest {digest!r} is not available in version {self._version}"
            )
        seed_value, count_value = _as_int(seed), _as_int(count)
        if self._validate:
            # A copy: json.dumps takes only dicts, and the caller may change its mapping.
            obj = start_members(self._version, seed_value, count_value, digest, _copy(params))
            header = _validate(parse_stream_header, obj)
            self._algorithm, self._count = header.digest, header.count
            frame = encode_json_frame(FrameType.STREAM, obj)
        else:  # a trusted sender (see __init__): its members are not checked
            self._algorithm, self._count = digest, operator.index(count_value)  # type: ignore[arg-type]
            if type(seed_value) is int and isinstance(params, Mapping):
                frame = fast_start(self._version, seed_value, self._count, digest, params)
            else:
                obj = start_members(self._version, seed_value, count_value, digest, _copy(params))
                frame = encode_json_frame(FrameType.STREAM, obj)
        self._phase = _BETWEEN_FILES
        return PREAMBLE + frame

    def start_from(self, template: StartTemplate, seed: int) -> bytes:
        """:meth:`start` with the template's ``count``, ``digest`` and ``params`` (whose
        member ``seed``, if any, is ``seed``): the same bytes, checks and errors.

        A trusted sender (``validate=False``) of the template's version gets the frame
        from the text the template formatted once, for any ``int`` seed: the cost of a
        stream's start no longer grows with its members.
        """
        count, digest = template.count, template.digest
        if (
            self._validate
            or self._phase != _INIT
            or template.version != self._version
            or type(seed) is not int
            or type(count) is not int
            or digest not in DIGEST_ALGORITHMS
            or (self._version == 1 and digest != "sha256")
        ):
            return self.start(seed=seed, count=count, params=template.members(seed), digest=digest)
        frame = template.frame(seed)
        self._algorithm, self._count = digest, count
        self._phase = _BETWEEN_FILES
        return frame

    def file_start(
        self, *, index: int, name: str, size: int, dtype: str, byteorder: str, offset: float
    ) -> bytes:
        """Return the ``F`` frame of file *index*, which must be the previous index + 1.

        Raises :class:`UsageError` for a wrong index, more files than ``count``, or members the
        format forbids (an unsafe name, an unknown dtype, a size that is not a multiple of the
        sample width, a negative or non-finite offset...).
        """
        self._require("file_start()", _BETWEEN_FILES)
        if isinstance(index, bool) or _as_int(index) != self._files:
            raise UsageError(f"file_start(): index {index!r}, expected {self._files}")
        if self._files >= self._count:
            raise UsageError(f"file_start(): the stream announced only {self._count} files")
        if self._validate:
            obj = {
                "index": self._files,
                "name": name,
                "size": _as_int(size),
                "dtype": dtype,
                "byteorder": byteorder,
                "offset": _as_float(offset),
            }
            size = _validate(parse_file_header, obj).size
            frame = encode_json_frame(FrameType.FILE, obj)
        else:
            frame = _fast_file_header(
                self._files, name, size, dtype, byteorder, repr(float(offset))
            )
        self._file_index = self._files
        self._file_size = size
        self._file_sent = 0
        self._phase = _IN_FILE
        return frame

    def data_header(self, length: int) -> bytes:
        """Return the 5-byte header of a ``D`` frame of *length* bytes; the caller sends them.

        The bytes count toward the current file at once. Raises :class:`UsageError` outside a
        file, for *length* outside 0..:data:`MAX_DATA_PAYLOAD`, or if the file would exceed its
        declared size. Constant time: called for every chunk on the sender's hot path.
        """
        if self._phase != _IN_FILE:
            self._require("data_header()", _IN_FILE)
        if not 0 <= length <= MAX_DATA_PAYLOAD:
            raise UsageError(f"D frame length must be in 0..{MAX_DATA_PAYLOAD}, got {length}")
        sent = self._file_sent + length
        if sent > self._file_size:
            raise UsageError(
                f"file {self._file_index}: {sent} data bytes exceed its size of {self._file_size}"
            )
        try:
            header = _pack_header(_DATA, length)
        except struct.error:
            raise UsageError(f"D frame length must be an integer, got {length!r}") from None
        self._file_sent = sent
        return header

    def data(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Return a whole ``D`` frame carrying *chunk* (header + a copy of the bytes)."""
        view = memoryview(chunk)
        return self.data_header(view.nbytes) + view

    def file_end(self, digest_hex: str) -> bytes:
        """Return the ``E`` frame of the current file, carrying its lowercase hex digest,
        computed with the algorithm named in :meth:`start`.

        Raises :class:`UsageError` if the data bytes sent differ from the declared size, or if
        *digest_hex* is not 64 lowercase hex digits. The digest itself is not checked.
        """
        self._require("file_end()", _IN_FILE)
        if self._file_sent != self._file_size:
            raise UsageError(
                f"file_end(): file {self._file_index} got {self._file_sent} of "
                f"{self._file_size} bytes"
            )
        if self._validate:
            obj = {"index": self._file_index, self._algorithm: digest_hex}
            _validate(lambda o: parse_file_end(o, self._algorithm), obj)
            frame = encode_json_frame(FrameType.END_FILE, obj)
        else:
            frame = _fast_file_end(self._file_index, self._algorithm, digest_hex)
        self._files += 1
        self._total += self._file_size
        self._phase = _BETWEEN_FILES
        return frame

    def whole_file(
        self,
        index: int,
        name: str,
        size: int,
        dtype: str,
        byteorder: str,
        offset: float,
        body: bytes | bytearray | memoryview,
        digest_hex: str,
        end: bool = False,
        round_offset: bool = False,
    ) -> bytes:
        """Return a whole file in one piece: ``F``, one ``D`` frame carrying *body* (a
        copy: the caller may reuse its buffer; no ``D`` frame for an empty body), ``E``,
        and the ``Z`` frame too when *end*.

        The same bytes, checks and errors as :meth:`file_start`, :meth:`data` (if *body*
        is not empty), :meth:`file_end` (and :meth:`end`) called in turn, with *size* the
        length of *body* (at most :data:`MAX_DATA_PAYLOAD`) and ``offset=round(offset,
        6)`` if *round_offset* (microseconds, as the wirelab server writes offsets); one
        call instead of four for a sender of many small files. A call that raises leaves
        the encoder as it was. A sender's per-file loop passes the arguments by position
        (binding ten keywords costs about 0.8 k instructions a call).
        """
        if (
            self._validate
            or self._phase != _BETWEEN_FILES
            or type(index) is not int
            or index != self._files
            or index >= self._count
            or type(size) is not int
            or len(body) != size
            or size > MAX_DATA_PAYLOAD
            or (end and index + 1 != self._count)
        ):
            if round_offset:
                offset = round(offset, 6)
            return self._whole_file_in_steps(
                (index, name, size, dtype, byteorder, offset), body, digest_hex, end
            )
        offset_json = _microseconds_json(offset) if round_offset else repr(float(offset))
        # The frames' headers and payloads joined once (no frame made whole on its own).
        f_payload = _file_header_payload(index, name, size, dtype, byteorder, offset_json)
        e_payload = _END_FILE_FORMATS[self._algorithm] % (index, digest_hex.encode())
        parts = [
            _pack_header(_FILE, len(f_payload)),
            f_payload,
            _pack_header(_DATA, size),
            body,
            _pack_header(_END_FILE, len(e_payload)),
            e_payload,
        ]
        if not size:  # an empty file has no D frame (as a sender looping over chunks)
            del parts[2:4]
        self._files = index + 1
        self._total += size
        self._file_index, self._file_size, self._file_sent = index, size, size
        if end:
            parts.append(self.end())
        return b"".join(parts)

    def _whole_file_in_steps(
        self,
        header: tuple[int, str, int, str, str, float],
        body: bytes | bytearray | memoryview,
        digest_hex: str,
        end: bool,
    ) -> bytes:
        """:meth:`whole_file` through the four calls, undone if one of them raises."""
        index, name, size, dtype, byteorder, offset = header
        saved = [getattr(self, slot) for slot in self.__slots__]
        try:
            parts = [
                self.file_start(
                    index=index, name=name, size=size, dtype=dtype, byteorder=byteorder,
                    offset=offset,
                ),
                self.data(body) if len(body) else b"",
                self.file_end(digest_hex),
            ]  # fmt: skip
            if end:
                parts.append(self.end())
        except BaseException:
            for slot, value in zip(self.__slots__, saved, strict=True):
                setattr(self, slot, value)
            raise
        return b"".join(parts)

    def end(self) -> bytes:
        """Return the ``Z`` frame with the encoder's own file and byte counts.

        Raises :class:`UsageError` inside a file or before all ``count`` files were sent.
        """
        self._require("end()", _BETWEEN_FILES)
        if self._files != self._count:
            raise UsageError(f"end() after {self._files} of {self._count} files")
        # Two counters the encoder keeps (ints): formatted directly, as json.dumps would.
        payload = b'{"count":%d,"bytes":%d}' % (self._files, self._total)
        frame = _pack_header(_END, len(payload)) + payload
        self._phase = _DONE
        return frame

    def abort(self, error: str, message: str) -> bytes:
        """Return the ``X`` frame that ends the stream early, between files or inside one.

        *error* is a short machine-readable code, *message* a human-readable text; a message
        longer than 4096 characters is cut (ending with "…") to keep the frame within limits.
        """
        self._require("abort()", _BETWEEN_FILES, _IN_FILE)
        if isinstance(message, str) and len(message) > _MAX_ABORT_MESSAGE_CHARS:
            message = message[: _MAX_ABORT_MESSAGE_CHARS - 1] + "…"
        obj = {"error": error, "message": message}
        _validate(parse_stream_abort, obj)
        frame = encode_json_frame(FrameType.ABORT, obj)
        self._phase = _DONE
        return frame
