"""HTTP/1.1 and frame decoding for the client of ``concurrency.py``.

:class:`StreamClient` is one ``GET /v1/stream`` as an asyncio protocol: it reads the
response head, decodes a chunked (or Content-Length) body and the frames minimally (``F``
offset, ``E`` arrival, ``Z``/``X``), and records each file's lateness in a
:class:`Recorder` shared by the streams of one worker process. Lateness counts from the
moment the client sent its request (what a client sees: a server slow to accept or to
answer makes every file late), not from the arrival of the response head.

Why not :class:`wirelab.framing.StreamDecoder`: it checks the whole grammar and copies every
``D`` payload into an event object. A worker reads up to 9,000 streams on a core it shares
with the server, so its own CPU would show up as lateness; this reader only acts on the
frames the measurement needs and skips the rest in place. The format's constants are the
project's.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from wirelab.framing import MAX_DATA_PAYLOAD, MAX_JSON_PAYLOAD, PREAMBLE

MAX_FRAME = max(MAX_DATA_PAYLOAD, MAX_JSON_PAYLOAD)  # the format's largest payload
MAX_HEAD = 65_536  # bytes of HTTP response head
MAX_CHUNK_LINE = 1024  # bytes of a chunk size line


@dataclass
class Recorder:
    """What one worker process measured. Arrays hold one entry per received file."""

    lateness: array[float] = field(default_factory=lambda: array("d"))  # from the request
    scheduled: array[float] = field(default_factory=lambda: array("d"))  # request + offset
    stream: array[int] = field(default_factory=lambda: array("l"))  # the file's stream
    errors: Counter[str] = field(default_factory=Counter)
    files: int = 0
    complete: int = 0
    connected: array[float] = field(default_factory=lambda: array("d"))
    ttfb: array[float] = field(default_factory=lambda: array("d"))  # request -> head
    connect: array[float] = field(default_factory=lambda: array("d"))  # connect() -> made


class StreamClient(asyncio.Protocol):
    """One ``GET /v1/stream``: HTTP/1.1 response head, chunked body, frames."""

    def __init__(
        self, request: bytes, rec: Recorder, done: asyncio.Future[None], stream_id: int
    ) -> None:
        self.request = request
        self.stream_id = stream_id
        self.rec = rec
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.t_open = time.monotonic()  # the protocol is made just before connect()
        self.t_connect = 0.0  # the connection is made and the request sent
        self.start = -1.0  # arrival of the response headers; -1 until then
        self.head = bytearray()
        self.chunked = True
        self.remaining = -1  # Content-Length bodies: bytes still to come
        self.raw = bytearray()  # chunked bytes not decoded yet
        self.chunk_left = 0
        self.need_crlf = False
        self.last_chunk = False
        self.body = bytearray()  # decoded body bytes not parsed into frames yet
        self.preamble = False
        self.offset = math.nan
        self.ended = False  # Z seen
        self.failed: str | None = None

    # --- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)
        self.t_connect = time.monotonic()
        self.rec.connected.append(self.t_connect)
        self.rec.connect.append(self.t_connect - self.t_open)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.failed is not None:
            return
        try:
            if self.start < 0:
                rest = self._head(data, now)
                if rest is None:
                    return
                data = rest
            self._body(data)
            self._frames(now)
        except (ValueError, KeyError, TypeError) as exc:
            self.fail(f"protocol: {type(exc).__name__}")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.failed is None and not self.ended:
            if exc is not None:
                self.failed = f"connection: {exc_name(exc)}"
            elif self.start < 0:
                self.failed = "http: closed before the response head"
            else:
                self.failed = "truncated: closed before Z"
        self._finish()

    # --- HTTP

    def _head(self, data: bytes, now: float) -> bytes | None:
        """Collect the response head; the body bytes after it, None until then or on error."""
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HEAD:
                self.fail("http: response head too long")
            return None
        self.start = now
        self.rec.ttfb.append(now - self.t_connect)
        rest = bytes(self.head[end + 4 :])
        ok = self._parse_head(bytes(self.head[:end]))
        self.head.clear()
        return rest if ok else None

    def _parse_head(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            self.fail("http: bad status line")
            return False
        if parts[1] != b"200":
            self.fail(f"http: status {parts[1].decode(errors='replace')}")
            return False
        self.chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
            elif name == b"content-length":
                self.remaining = int(value.strip())
        return True

    def _body(self, data: bytes) -> None:
        if self.chunked:
            self._dechunk(data)
            return
        if self.remaining >= 0:
            data = data[: self.remaining]
            self.remaining -= len(data)
        self.body += data

    def _dechunk(self, data: bytes) -> None:
        raw = self.raw
        raw += data
        pos = 0
        while pos < len(raw):
            if self.chunk_left:
                step: int | None = self._chunk_data(raw, pos)
            elif self.need_crlf:
                step = self._chunk_crlf(raw, pos)
            else:
                step = self._chunk_line(raw, pos)
            if step is None:  # incomplete: wait for more bytes
                break
            pos = step
        del raw[:pos]

    def _chunk_data(self, raw: bytearray, pos: int) -> int:
        take = min(self.chunk_left, len(raw) - pos)
        self.body += raw[pos : pos + take]
        self.chunk_left -= take
        if not self.chunk_left:
            self.need_crlf = True
        return pos + take

    def _chunk_crlf(self, raw: bytearray, pos: int) -> int | None:
        if len(raw) - pos < 2:
            return None
        if raw[pos : pos + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        self.need_crlf = False
        return pos + 2

    def _chunk_line(self, raw: bytearray, pos: int) -> int | None:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            if len(raw) - pos > MAX_CHUNK_LINE:
                raise ValueError("chunk size line too long")
            return None
        line = bytes(raw[pos:eol])
        if self.last_chunk:  # trailer section: ends with an empty line
            if not line:
                self.last_chunk = False
                return len(raw)
            return eol + 2
        size = int(line.split(b";", 1)[0], 16)
        if size:
            self.chunk_left = size
        else:
            self.last_chunk = True
        return eol + 2

    # --- frames

    def _frames(self, now: float) -> None:
        buf = self.body
        pos = 0
        if not self.preamble:
            if len(buf) < len(PREAMBLE):
                return
            if buf[: len(PREAMBLE)] != PREAMBLE:
                self.fail("protocol: bad preamble")
                return
            self.preamble = True
            pos = len(PREAMBLE)
        n = len(buf)
        while n - pos >= 5:
            length = int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if length > MAX_FRAME:
                self.fail("protocol: oversize frame")
                return
            end = pos + 5 + length
            if end > n:
                break
            if not self._frame(buf[pos], buf, pos + 5, end, now):
                return
            pos = end
        del buf[:pos]
        if self.ended and self.transport is not None:
            self.transport.close()

    def _frame(self, ftype: int, buf: bytearray, start: int, end: int, now: float) -> bool:
        """Act on one frame (payload ``buf[start:end]``); False when the stream failed."""
        if ftype in (0x44, 0x53) or 0x61 <= ftype <= 0x7A:  # D, S, ancillary
            return True
        if ftype == 0x46:  # F
            self.offset = float(json.loads(buf[start:end])["offset"])
        elif ftype == 0x45:  # E
            sched = self.t_connect + self.offset
            self.rec.lateness.append(now - sched)
            self.rec.scheduled.append(sched)
            self.rec.stream.append(self.stream_id)
            self.rec.files += 1
        elif ftype == 0x5A:  # Z
            self.ended = True
            self.rec.complete += 1
        elif ftype == 0x58:  # X
            error = json.loads(buf[start:end]).get("error", "?")
            self.fail(f"stream: X frame ({error})")
            return False
        else:
            self.fail(f"protocol: unknown frame type {ftype:#x}")
            return False
        return True

    # --- end

    def fail(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason
        if self.transport is not None:
            self.transport.abort()

    def _finish(self) -> None:
        if self.failed is not None:
            self.rec.errors[self.failed] += 1
        if not self.done.done():
            self.done.set_result(None)


def exc_name(exc: BaseException) -> str:
    """The errno name of an OSError (``ECONNRESET``), else the exception's type name."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__
