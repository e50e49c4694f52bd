"""The stream clients against the testing toolkit's own faults.

Every fault in :data:`wirelab.testing.FAULTS` that an HTTP client reading ``/v1/stream`` can
meet is scripted here with :class:`~wirelab.testing.ScriptedServer` (blocking
:class:`~wirelab.client.Client`) and :class:`~wirelab.testing.AsyncScriptedServer`
(:class:`~wirelab.client.AsyncClient`); no hand-made socket server. Each scripted server
receives the request head, then answers with a real HTTP/1.1 response (Content-Length,
chunked, or ended by the connection) whose body comes from
:class:`~wirelab.framing.StreamEncoder`, broken on purpose.

A test names the faults it covers with :func:`covers`; a fault that no test covers must be
listed in :data:`NOT_APPLICABLE` with the reason, otherwise
``test_every_fault_is_tested_or_not_applicable`` fails. So a fault added to the toolkit
without a client test fails the suite.

What the clients report (both alike unless said; files complete before the fault are always
delivered first):

=====================  =========================================================================
fault                  error
=====================  =========================================================================
connection refused     NetworkError "cannot connect to URL: ..." (async: the OS error only in
                       the cause chain)
connection reset       NetworkError "network error: ..." (before or after the head); under TLS
                       the blocking client reports TruncatedError (a ragged EOF)
EOF                    TruncatedError: by httpx when Content-Length or chunking says more was
                       due, by the decoder ("at byte N: ...") otherwise; NetworkError "Server
                       disconnected" before a complete response head
half-close             TruncatedError; the client then closes its side too
read timeout           TimeoutError "no progress within the timeout (ReadTimeout)"
late answer            TimeoutError when later than the timeout, else nothing
slow / fragmented      nothing: every file arrives, verified
bad certificate        NetworkError "cannot connect ...: [SSL: CERTIFICATE_VERIFY_FAILED] ..."
                       with the ``ssl.SSLCertVerificationError`` and its code in the chain
send blocks            not applicable (see :data:`NOT_APPLICABLE`)
=====================  =========================================================================

Timing: the only waits are the faults themselves (a short client timeout against a stall or
a late answer, a drip, segment gaps). Nothing sleeps to synchronise: the tests that need an
order (files delivered, *then* the reset) use a barrier that the client releases.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import numpy as np
import pytest

from wirelab import (
    IntegrityError,
    NetworkError,
    TimeoutError,
    TruncatedError,
    WirelabError,
)
from wirelab.client import AsyncClient, Client, StreamedFile
from wirelab.framing import Event, FileData, FileEnded, StreamEncoder
from wirelab.testing import (
    FAULTS,
    AsyncScriptedServer,
    BadCert,
    Close,
    Drip,
    Expect,
    ExpectEOF,
    Fault,
    HalfClose,
    RecvUntil,
    Reset,
    ScriptedServer,
    ScriptError,
    Send,
    SendSegments,
    Sleep,
    Stall,
    Step,
    StopReading,
    refused_address,
)

# -- coverage bookkeeping -----------------------------------------------------------------

COVERED: Final[dict[str, set[str]]] = {}
"""Fault name -> the tests of this module that script it against the clients."""

NOT_APPLICABLE: Final[dict[str, str]] = {
    "send blocks": (
        "StopReading() blocks a client's send only once ~3 MB are unread; the stream "
        "client sends one GET head of a few hundred bytes and then only reads, so its send "
        "never blocks (test_stop_reading_does_not_block_a_one_request_client shows the "
        "stream arriving intact from a server that never reads the request)"
    ),
}
"""Faults of the catalogue that cannot happen to a client of ``GET /v1/stream``, and why."""

_T = TypeVar("_T")


def covers(*faults: str) -> Callable[[_T], _T]:
    """Record that the decorated test scripts ``faults`` (names from :data:`FAULTS`)."""

    def mark(test: _T) -> _T:
        for fault in faults:
            COVERED.setdefault(fault, set()).add(getattr(test, "__name__", repr(test)))
        return test

    return mark


# -- stream bodies and HTTP responses ---------------------------------------------------------

MEDIA_TYPE: Final = "application/vnd.wirelab.stream; version=1"
SEED: Final = 7
FILE_SIZES: Final = (3000, 0, 5000, 1200)
SMALL_SIZES: Final = (64, 0, 250)
D_FRAME: Final = 1000  # data bytes per D frame
HTTP_CHUNK: Final = 700  # bytes per HTTP chunk: boundaries fall anywhere in the frames

GENEROUS: Final = 10.0
"""Client timeout (s) where no timeout is expected: an upper bound, never reached."""
SHORT: Final = 0.1
"""Client timeout (s) against a stall or a late answer."""
JOIN: Final = 10.0

Framing = Literal["length", "chunked", "close"]
FRAMINGS: Final[tuple[Framing, ...]] = ("length", "chunked", "close")
Kind = Literal["sync", "async"]
KINDS: Final[tuple[Kind, ...]] = ("sync", "async")


def ramp(size: int) -> bytes:
    """``size`` bytes of little-endian int16 samples 0, 1, 2, ..."""
    return np.arange(size // 2, dtype="<i2").tobytes()


@dataclass(frozen=True)
class Body:
    """A valid stream body and where its files lie in it."""

    data: bytes
    files: tuple[bytes, ...]
    data_starts: tuple[int, ...]
    """Offset of each file's first data byte (the first ``D`` payload)."""
    file_ends: tuple[int, ...]
    """Offset just after each file's ``E`` frame."""

    def complete_before(self, cut: int) -> list[int]:
        """Indexes of the files whose ``E`` frame lies wholly before body offset ``cut``."""
        return [i for i, end in enumerate(self.file_ends) if end <= cut]

    def at(self, index: int, byte: int) -> int:
        """The body offset of data byte ``byte`` of file ``index`` (past the D headers)."""
        return self.data_starts[index] + byte + 5 * (byte // D_FRAME)

    def flipped(self, index: int, byte: int = 0) -> bytes:
        """The body with data byte ``byte`` of file ``index`` inverted."""
        pos = self.at(index, byte)
        return self.data[:pos] + bytes([self.data[pos] ^ 0xFF]) + self.data[pos + 1 :]


def make_body(sizes: Sequence[int] = FILE_SIZES) -> Body:
    """A stream of ramp files of the given sizes, in ``D`` frames of :data:`D_FRAME` bytes."""
    files = tuple(ramp(size) for size in sizes)
    enc = StreamEncoder()
    params = {"count": len(files), "seed": SEED, "dtype": "int16", "byteorder": "little"}
    out = bytearray(enc.start(seed=SEED, count=len(files), params=params))
    starts, ends = [], []
    for index, data in enumerate(files):
        out += enc.file_start(
            index=index,
            name=f"{index:06d}.int16",
            size=len(data),
            dtype="int16",
            byteorder="little",
            offset=0.0,
        )
        starts.append(len(out) + 5)  # after the first D frame's header
        for pos in range(0, len(data), D_FRAME):
            out += enc.data(data[pos : pos + D_FRAME])
        out += enc.file_end(hashlib.sha256(data).hexdigest())
        ends.append(len(out))
    out += enc.end()
    return Body(bytes(out), files, tuple(starts), tuple(ends))


@dataclass(frozen=True)
class Response:
    """An HTTP/1.1 response carrying a stream body, as the bytes a server writes."""

    head: bytes
    message: bytes
    """The body as framed on the wire (chunk-encoded for ``chunked``)."""
    positions: tuple[int, ...]
    """For each body offset, its offset in :attr:`message` (plus one entry for the end)."""

    @property
    def wire(self) -> bytes:
        return self.head + self.message

    def upto(self, cut: int) -> bytes:
        """The response up to, not including, body byte ``cut`` (head included)."""
        return self.head + self.message[: self.positions[cut]]


def http_response(body: bytes, framing: Framing = "chunked") -> Response:
    """A ``200`` response with ``body``, framed by Content-Length, chunked encoding, or the
    end of the connection (``close``: no length, ``Connection: close``)."""
    lines = [
        "HTTP/1.1 200 OK",
        f"Content-Type: {MEDIA_TYPE}",
        f"Wirelab-Seed: {SEED}",
        "Cache-Control: no-store",
    ]
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
        message, positions = body, list(range(len(body) + 1))
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        wire, positions = bytearray(), []
        for pos in range(0, len(body), HTTP_CHUNK):
            piece = body[pos : pos + HTTP_CHUNK]
            wire += f"{len(piece):x}\r\n".encode()
            positions += range(len(wire), len(wire) + len(piece))
            wire += piece + b"\r\n"
        positions.append(len(wire))
        wire += b"0\r\n\r\n"
        message = bytes(wire)
    else:
        lines.append("Connection: close")
        message, positions = body, list(range(len(body) + 1))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return Response(head, message, tuple(positions))


REQUEST: Final = RecvUntil(b"\r\n\r\n")
"""The first step of every script: the client's GET head."""


def answered(response: bytes) -> list[Step]:
    """A script that receives the request and sends ``response``."""
    return [REQUEST, Send(response)]


# -- running a client against a scripted server ---------------------------------------------


@dataclass
class Outcome:
    """What the client got: the files (or events) before the error, and the error."""

    files: list[StreamedFile] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    error: WirelabError | None = None
    completed: bool = False
    """The reader's ``completed``: the whole stream arrived and was verified."""
    elapsed: float = 0.0

    @property
    def indexes(self) -> list[int]:
        return [f.index for f in self.files]

    def raised(self, kind: type[WirelabError], match: str = "") -> WirelabError:
        """Assert the stream failed with ``kind`` and a message matching ``match``."""
        error = self.error
        assert isinstance(error, kind), (
            f"expected {kind.__name__}, got {error!r} after files {self.indexes}"
        )
        assert type(error) is kind, f"expected exactly {kind.__name__}, got {error!r}"
        assert re.search(match, str(error)), f"{str(error)!r} does not match {match!r}"
        return error

    def ok(self, body: Body) -> None:
        """Assert every file arrived, verified and intact, and the stream completed."""
        assert self.error is None, f"{self.error!r} after files {self.indexes}"
        assert self.completed
        assert self.indexes == list(range(len(body.files)))
        assert [f.data for f in self.files] == list(body.files)


def causes(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and everything behind it: causes, contexts and exception group members."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
        if isinstance(item, BaseExceptionGroup):
            todo += item.exceptions
    return seen


def caused_by(exc: BaseException | None, kind: type[BaseException]) -> BaseException:
    """The first exception of type ``kind`` behind ``exc`` (asserting there is one)."""
    found = [c for c in causes(exc) if isinstance(c, kind)]
    assert found, f"no {kind.__name__} behind {exc!r}: {causes(exc)!r}"
    return found[0]


@dataclass
class Run:
    """How to run one client against one scripted server (see :func:`fetch`)."""

    kind: Kind
    timeout: float = GENEROUS
    tls: bool | BadCert | None = None
    threaded: bool = False
    """Use the thread-backed server with the async client too (for blocking predicates)."""
    join: bool = True
    """Wait, before closing the client, until every script has finished."""
    events: bool = False
    """Read with ``stream_events()`` instead of ``stream()``."""
    on_file: Callable[[int], None] | None = None
    """Called with a file's index once it has been delivered."""
    streams: int = 1
    """How many streams to read, one after the other, each with a fresh client."""


def _record(out: Outcome, run: Run, item: StreamedFile | Event) -> None:
    index: int | None = None
    if isinstance(item, StreamedFile):
        out.files.append(item)
        index = item.index
    else:
        out.events.append(item)
        if isinstance(item, FileEnded):
            index = item.index
    if index is not None and run.on_file is not None:
        run.on_file(index)


ServerAny = ScriptedServer | AsyncScriptedServer


def _target(run: Run, server: ServerAny) -> tuple[str, ssl.SSLContext | None]:
    """The URL of ``server`` and the client's TLS context (trusting the throwaway CA)."""
    if not run.tls:
        return f"http://127.0.0.1:{server.port}", None
    # The certificates name localhost (and the IPs); the wrong-host one is checked by name.
    return f"https://localhost:{server.port}", server.client_ssl_context()


def _sync_read(run: Run, server: ScriptedServer, last: bool) -> Outcome:
    url, verify = _target(run, server)
    out = Outcome()
    start = time.perf_counter()
    with Client(url, timeout=run.timeout, verify=True if verify is None else verify) as client:
        try:
            if run.events:
                with client.stream_events() as events:
                    for event in events:
                        _record(out, run, event)
                out.completed = events.completed
            else:
                with client.stream() as files:
                    for file in files:
                        _record(out, run, file)
                out.completed = files.completed
        except WirelabError as exc:
            out.error = exc
        out.elapsed = time.perf_counter() - start
        if run.join and last:  # while the client is open: the script ends by what it did
            server.join(JOIN)
    return out


async def _async_read(run: Run, server: ServerAny, last: bool) -> Outcome:
    url, verify = _target(run, server)
    out = Outcome()
    start = time.perf_counter()
    async with AsyncClient(
        url, timeout=run.timeout, verify=True if verify is None else verify
    ) as client:
        try:
            if run.events:
                async with client.stream_events() as events:
                    async for event in events:
                        _record(out, run, event)
                out.completed = events.completed
            else:
                async with client.stream() as files:
                    async for file in files:
                        _record(out, run, file)
                out.completed = files.completed
        except WirelabError as exc:
            out.error = exc
        out.elapsed = time.perf_counter() - start
        if run.join and last:
            if isinstance(server, AsyncScriptedServer):
                await server.join(JOIN)
            else:  # the client's socket closes need the loop: block a thread, not the loop
                await asyncio.to_thread(server.join, JOIN)
    return out


async def _async_fetch(run: Run, script: Sequence[Step] | None, server: Any) -> list[Outcome]:
    count = run.streams
    if run.threaded:
        with ScriptedServer(script, tls=run.tls, **server) as threaded:
            return [await _async_read(run, threaded, n == count - 1) for n in range(count)]
    async with AsyncScriptedServer(script, tls=run.tls, **server) as native:
        return [await _async_read(run, native, n == count - 1) for n in range(count)]


def fetch(run: Run, script: Sequence[Step] | None = None, **server: Any) -> list[Outcome]:
    """Serve ``script`` (or ``scripts=[...]`` and other server arguments), read
    ``run.streams`` streams from it, stop it (re-raising its errors), return the outcomes."""
    count = run.streams
    if run.kind == "async":
        return asyncio.run(_async_fetch(run, script, server))
    with ScriptedServer(script, tls=run.tls, **server) as threaded:
        return [_sync_read(run, threaded, n == count - 1) for n in range(count)]


def fetch_one(run: Run, script: Sequence[Step] | None = None, **server: Any) -> Outcome:
    (outcome,) = fetch(run, script, **server)
    return outcome


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    """Each test runs with the blocking client and with the asyncio client."""
    value: Kind = request.param
    return value


@pytest.fixture(scope="module")
def body() -> Body:
    return make_body()


# -- the catalogue, tied to this module --------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
def test_every_fault_is_tested_or_not_applicable(fault: Fault) -> None:
    """A fault added to the toolkit needs a client test here, or a reason in NOT_APPLICABLE."""
    tests = COVERED.get(fault.name, set())
    reason = NOT_APPLICABLE.get(fault.name)
    assert tests or reason, (
        f"the toolkit offers the fault {fault.name!r} ({fault.produce}) but no test of the "
        f"stream clients scripts it: add one marked @covers({fault.name!r}), or say in "
        "NOT_APPLICABLE why it cannot happen to them"
    )
    assert not (tests and reason), f"{fault.name!r} is both tested and not applicable"
    for name in tests:
        assert name.startswith("test_") and callable(globals().get(name)), name


def test_no_stale_fault_names() -> None:
    known = {fault.name for fault in FAULTS}
    assert set(COVERED) <= known, set(COVERED) - known
    assert set(NOT_APPLICABLE) <= known, set(NOT_APPLICABLE) - known


# -- the reference: a clean stream ---------------------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
def test_clean_stream(kind: Kind, body: Body, framing: Framing) -> None:
    outcome = fetch_one(Run(kind), answered(http_response(body.data, framing).wire))
    outcome.ok(body)


# -- connection refused ----------------------------------------------------------------------------


def open_refused(kind: Kind, url: str) -> NetworkError:
    """Open a stream on ``url`` (which refuses) and return the error."""
    if kind == "sync":
        with Client(url, timeout=GENEROUS) as client, pytest.raises(NetworkError) as info:
            client.stream().open()
        return info.value

    async def main() -> None:
        async with AsyncClient(url, timeout=GENEROUS) as client:
            await client.stream().open()

    with pytest.raises(NetworkError) as info:
        asyncio.run(main())
    return info.value


@covers("connection refused")
def test_refused_address_is_a_network_error(kind: Kind) -> None:
    with refused_address() as (host, port):
        url = f"http://{host}:{port}"
        error = open_refused(kind, url)
    assert type(error) is NetworkError
    assert str(error).startswith(f"cannot connect to {url}/v1/stream: ")
    caused_by(error, ConnectionRefusedError)
    if kind == "sync":  # async: see test_async_messages_name_the_os_error
        assert str(error).endswith("Connection refused")


@covers("connection refused")
def test_refused_after_the_last_script(kind: Kind, body: Body) -> None:
    """``one_shot=True``: the first stream arrives, a second client is refused."""
    script = answered(http_response(body.data).wire)
    first, second = fetch(Run(kind, streams=2, join=False), script, one_shot=True)
    first.ok(body)
    second.raised(NetworkError, r"^cannot connect to ")
    caused_by(second.error, ConnectionRefusedError)


# -- connection reset --------------------------------------------------------------------------


@covers("connection reset")
def test_reset_mid_file_after_the_client_has_the_first_files(kind: Kind, body: Body) -> None:
    """The server sends files 0 and 1 and half of file 2, waits until the client has
    file 1, then resets: the files come first, then NetworkError, not a hang or EOF.

    The barrier is a blocking predicate, so the thread-backed server serves both clients.
    """
    delivered = threading.Event()
    cut = body.at(2, 1500)
    script = [
        REQUEST,
        Send(http_response(body.data).upto(cut)),
        Expect(predicate=lambda _: delivered.wait(JOIN), size=0),
        Reset(),
    ]

    def on_file(index: int) -> None:
        if index == 1:
            delivered.set()

    outcome = fetch_one(Run(kind, threaded=True, on_file=on_file), script)
    assert outcome.indexes == [0, 1]
    outcome.raised(NetworkError, r"^network error: ")
    caused_by(outcome.error, ConnectionResetError)
    assert outcome.elapsed < GENEROUS / 2  # the reset ended the stream, not the timeout


@covers("connection reset")
@pytest.mark.parametrize("framing", FRAMINGS)
def test_reset_mid_frame(kind: Kind, body: Body, framing: Framing) -> None:
    """Sent at once, then RST. What the client had received stays readable before the
    reset is reported (Linux; the RST purges only the sender's queue), so the complete
    files still arrive."""
    cut = body.at(2, 1500)
    script = [REQUEST, Send(http_response(body.data, framing).upto(cut)), Reset()]
    outcome = fetch_one(Run(kind), script)
    assert outcome.indexes == [0, 1]
    outcome.raised(NetworkError, "^network error: ")
    caused_by(outcome.error, ConnectionResetError)


@covers("connection reset")
def test_reset_mid_file_events(kind: Kind, body: Body) -> None:
    """``stream_events()``: the data of the interrupted file arrives, its end never does."""
    cut = body.at(2, 1500)
    script = [REQUEST, Send(http_response(body.data).upto(cut)), Reset()]
    outcome = fetch_one(Run(kind, events=True), script)
    outcome.raised(NetworkError, "^network error: ")
    caused_by(outcome.error, ConnectionResetError)
    ended = [e.index for e in outcome.events if isinstance(e, FileEnded)]
    assert ended == [0, 1]
    partial = b"".join(e.data for e in outcome.events if isinstance(e, FileData) and e.index == 2)
    assert body.files[2].startswith(partial) and len(partial) == 1500


@covers("connection reset")
def test_reset_instead_of_an_answer(kind: Kind) -> None:
    outcome = fetch_one(Run(kind), [REQUEST, Reset()])
    outcome.raised(NetworkError, "^network error: ")
    caused_by(outcome.error, ConnectionResetError)
    assert outcome.files == []


@covers("connection reset")
def test_reset_at_once(kind: Kind) -> None:
    """RST as soon as the connection is accepted: during connect or the request."""
    outcome = fetch_one(Run(kind), [Reset()])
    outcome.raised(NetworkError, "")  # "cannot connect", or the request or answer failed
    caused_by(outcome.error, ConnectionError)
    assert outcome.files == []


# -- EOF ---------------------------------------------------------------------------------------


CUTS: Final[dict[str, Callable[[Body], int]]] = {
    "after the head": lambda b: 0,
    "in the preamble": lambda b: 4,
    "in a frame header": lambda b: b.file_ends[1] + 2,
    "in a data payload": lambda b: b.at(2, 1500),
    "between files": lambda b: b.file_ends[1],
    "before the last byte": lambda b: len(b.data) - 1,
}


@covers("EOF")
@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("where", list(CUTS))
def test_close_mid_body_is_truncated(kind: Kind, body: Body, framing: Framing, where: str) -> None:
    """FIN before the HTTP body is complete: the body ended early."""
    cut = CUTS[where](body)
    script = [REQUEST, Send(http_response(body.data, framing).upto(cut)), Close()]
    outcome = fetch_one(Run(kind), script)
    assert outcome.indexes == body.complete_before(cut)
    detail = "incomplete chunked read" if framing == "chunked" else "received .* bytes, expected"
    outcome.raised(TruncatedError, f"^the response body ended early: .*{detail}")


@covers("EOF")
@pytest.mark.parametrize("where", list(CUTS))
def test_close_ends_a_body_without_length(kind: Kind, body: Body, where: str) -> None:
    """No length, ``Connection: close``: HTTP-wise the FIN ends the body normally, and the
    stream decoder reports the truncation."""
    cut = CUTS[where](body)
    script = [REQUEST, Send(http_response(body.data, "close").upto(cut)), Close()]
    outcome = fetch_one(Run(kind), script)
    assert outcome.indexes == body.complete_before(cut)
    outcome.raised(TruncatedError, r"^at byte \d+: ")


@covers("EOF")
@pytest.mark.parametrize("framing", FRAMINGS)
def test_close_after_the_whole_stream(kind: Kind, body: Body, framing: Framing) -> None:
    """The script's end closes the connection after a complete response: no error."""
    script = [*answered(http_response(body.data, framing).wire), Close()]
    fetch_one(Run(kind), script).ok(body)


@covers("EOF")
@pytest.mark.parametrize("read_request", [True, False])
def test_close_instead_of_an_answer(kind: Kind, read_request: bool) -> None:
    script = [REQUEST, Close()] if read_request else [Close()]
    outcome = fetch_one(Run(kind), script)
    outcome.raised(NetworkError, "^connection closed by the server: Server disconnected")


@covers("EOF")
@pytest.mark.parametrize("sent", [1, 30, -2])
def test_close_in_the_response_head(kind: Kind, body: Body, sent: int) -> None:
    """Part of the head, then FIN: to httpx (h11) that is no response at all."""
    head = http_response(body.data).head
    outcome = fetch_one(Run(kind), [REQUEST, Send(head[:sent]), Close()])
    outcome.raised(
        NetworkError,
        r"^connection closed by the server: Server disconnected without sending a response",
    )


def test_complete_http_message_with_an_incomplete_stream(kind: Kind, body: Body) -> None:
    """Not a transport fault: the chunked message ends properly, the stream does not."""
    cut = body.file_ends[1]
    response = http_response(body.data[:cut], "chunked").wire
    outcome = fetch_one(Run(kind), answered(response))
    assert outcome.indexes == [0, 1]
    outcome.raised(TruncatedError, r"^at byte \d+: ")


# -- half-close ----------------------------------------------------------------------------------


@covers("half-close")
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_half_close_mid_body(kind: Kind, body: Body, framing: Framing) -> None:
    """FIN mid-body while the server keeps reading: TruncatedError, and the client then
    closes its side too (``ExpectEOF``), rather than keeping a broken connection."""
    cut = body.at(2, 1500)
    script = [
        REQUEST,
        Send(http_response(body.data, framing).upto(cut)),
        HalfClose(),
        ExpectEOF(timeout=JOIN),
    ]
    outcome = fetch_one(Run(kind), script)
    assert outcome.indexes == [0, 1]
    outcome.raised(TruncatedError, "^the response body ended early: ")


# -- read timeout --------------------------------------------------------------------------------


@covers("read timeout")
@pytest.mark.parametrize("where", ["before the head", "after the head", "mid-file"])
def test_stall_is_a_timeout(kind: Kind, body: Body, where: str) -> None:
    response = http_response(body.data)
    sent = {
        "before the head": b"",
        "after the head": response.head,
        "mid-file": response.upto(body.at(2, 1500)),
    }[where]
    script = [REQUEST, Send(sent), Stall()] if sent else [REQUEST, Stall()]
    outcome = fetch_one(Run(kind, timeout=SHORT, join=False), script)
    assert outcome.indexes == ([0, 1] if where == "mid-file" else [])
    outcome.raised(TimeoutError, r"^no progress within the timeout \(ReadTimeout\)")
    assert SHORT * 0.9 <= outcome.elapsed < GENEROUS


# -- late answer ---------------------------------------------------------------------------------


@covers("late answer")
def test_answer_later_than_the_timeout(kind: Kind, body: Body) -> None:
    script = [REQUEST, Sleep(60), Send(http_response(body.data).wire)]
    outcome = fetch_one(Run(kind, timeout=SHORT, join=False), script)
    outcome.raised(TimeoutError, r"\(ReadTimeout\)")
    assert outcome.elapsed < GENEROUS  # the server's stop interrupts its Sleep


@covers("late answer")
def test_pause_between_files_within_the_timeout(kind: Kind, body: Body) -> None:
    """The timeout bounds each read, so a pause shorter than it is fine."""
    response = http_response(body.data, "length")
    cut = body.file_ends[1]
    first = response.upto(cut)
    script = [REQUEST, Send(first), Sleep(0.05), Send(response.wire[len(first) :])]
    fetch_one(Run(kind, timeout=GENEROUS), script).ok(body)


# -- slow and fragmented reads ---------------------------------------------------------------------


@covers("slow reads")
@pytest.mark.parametrize("framing", FRAMINGS)
def test_drip_reassembles(kind: Kind, body: Body, framing: Framing) -> None:
    """The whole response, head included, 64 bytes at a time at 400 kB/s."""
    wire = http_response(body.data, framing).wire
    outcome = fetch_one(Run(kind), [REQUEST, Drip(wire, bytes_per_second=400_000, chunk=64)])
    outcome.ok(body)


@covers("slow reads")
def test_drip_longer_than_the_timeout() -> None:
    """A per-read timeout, not a deadline: a stream that takes twice the timeout in total,
    with gaps of ~10 ms, arrives. (Blocking client only: both clients take their timeouts
    from the same httpx setting, and this test costs twice its timeout.)"""
    small = make_body(SMALL_SIZES)
    wire = http_response(small.data).wire
    timeout = 0.4
    rate = len(wire) / (2 * timeout)
    script = [REQUEST, Drip(wire, bytes_per_second=rate, chunk=max(1, int(rate / 100)))]
    outcome = fetch_one(Run("sync", timeout=timeout), script)
    outcome.ok(small)
    assert outcome.elapsed > timeout


def random_sizes(total: int, seed: int, largest: int = 12) -> list[int]:
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(rng.randint(1, largest))
    return sizes


@covers("fragmented reads")
@pytest.mark.parametrize(("framing", "seed"), [("length", 1), ("chunked", 2), ("close", 3)])
def test_tiny_random_segments_reassemble(kind: Kind, framing: Framing, seed: int) -> None:
    """Head and body in segments of 1-12 bytes, 0.2 ms apart: the client's reads split
    the status line, the headers, the HTTP chunks and the frames anywhere."""
    small = make_body(SMALL_SIZES)
    wire = http_response(small.data, framing).wire
    sizes = random_sizes(len(wire), seed)
    outcome = fetch_one(Run(kind), [REQUEST, SendSegments(wire, sizes, gap=0.0002)])
    outcome.ok(small)


@covers("fragmented reads")
def test_one_byte_segments_through_a_corrupt_file(kind: Kind) -> None:
    """Errors are found as reliably in fragments: a flipped byte, one byte per segment."""
    small = make_body(SMALL_SIZES)
    wire = http_response(small.flipped(2, 100)).wire
    # The client hangs up at the error while segments are still coming: no server error.
    outcome = fetch_one(Run(kind), [REQUEST, SendSegments(wire, 1, gap=0)], allow_disconnect=True)
    assert outcome.indexes == [0, 1]
    outcome.raised(IntegrityError, "^at byte \\d+: file 2: sha256 mismatch")


# -- corrupted data (not a transport fault: no catalogue entry) ----------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
def test_corrupt_data_byte_names_the_file(kind: Kind, body: Body, framing: Framing) -> None:
    outcome = fetch_one(Run(kind), answered(http_response(body.flipped(2, 2500), framing).wire))
    assert outcome.indexes == [0, 1]
    outcome.raised(IntegrityError, r"^at byte \d+: file 2: sha256 mismatch \(expected ")


# -- send blocks: not applicable, shown ----------------------------------------------------------


def test_stop_reading_does_not_block_a_one_request_client(kind: Kind, body: Body) -> None:
    """See NOT_APPLICABLE: the server never reads the request, the client never notices."""
    script = [StopReading(), Send(http_response(body.data).wire)]
    fetch_one(Run(kind, join=False), script).ok(body)


# -- TLS -------------------------------------------------------------------------------------------


def test_tls_with_the_throwaway_ca(kind: Kind, body: Body) -> None:
    """The client trusts the throwaway CA through an httpx transport (``Client`` has no
    ``verify=`` of its own)."""
    outcome = fetch_one(Run(kind, tls=True), answered(http_response(body.data).wire))
    outcome.ok(body)


REASONS: Final = {
    BadCert.EXPIRED: "certificate has expired",
    BadCert.NOT_YET_VALID: "certificate is not yet valid",
    BadCert.WRONG_HOST: "Hostname mismatch, certificate is not valid for 'localhost'",
    BadCert.SELF_SIGNED: "self-signed certificate",
    BadCert.UNKNOWN_CA: "unable to get local issuer certificate",
}


@covers("bad certificate")
@pytest.mark.parametrize("bad", list(BadCert), ids=lambda bad: bad.value)
def test_bad_certificate_is_refused(kind: Kind, body: Body, bad: BadCert) -> None:
    outcome = fetch_one(Run(kind, tls=bad), answered(http_response(body.data).wire))
    error = outcome.raised(
        NetworkError, rf"^cannot connect to https://localhost:\d+/v1/stream: .*{REASONS[bad]}"
    )
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    cause = caused_by(error, ssl.SSLCertVerificationError)
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert cause.verify_code == bad.verify_code


@covers("bad certificate")
def test_default_client_refuses_the_throwaway_ca(body: Body) -> None:
    """Without the CA the good certificate is refused too (verification is on by default)."""
    with ScriptedServer(answered(http_response(body.data).wire), tls=True) as server:
        with (
            Client(f"https://localhost:{server.port}", timeout=GENEROUS) as client,
            pytest.raises(NetworkError, match="unable to get local issuer certificate"),
        ):
            client.stream().open()
        with pytest.raises(ScriptError, match="TLS handshake failed"):  # the server's view
            server.join(JOIN)


@covers("connection reset")
def test_reset_over_tls_after_the_client_has_the_first_files(kind: Kind, body: Body) -> None:
    """Under TLS the two clients classify the same reset differently: the blocking one
    (``ssl`` turns the reset into a ragged EOF, ``suppress_ragged_eofs``) reports the body
    as truncated, the asyncio one (anyio) reports the reset."""
    delivered = threading.Event()
    cut = body.at(2, 1500)
    script = [
        REQUEST,
        Send(http_response(body.data).upto(cut)),
        Expect(predicate=lambda _: delivered.wait(JOIN), size=0),
        Reset(),
    ]

    def on_file(index: int) -> None:
        if index == 1:
            delivered.set()

    outcome = fetch_one(Run(kind, tls=True, threaded=True, on_file=on_file), script)
    assert outcome.indexes == [0, 1]
    if kind == "sync":
        outcome.raised(TruncatedError, "^the response body ended early: .*incomplete chunked")
    else:
        outcome.raised(NetworkError, "^network error: ")
        caused_by(outcome.error, ConnectionResetError)


@covers("connection reset")
def test_reset_over_tls_at_once(kind: Kind, body: Body) -> None:
    """Sent at once, then RST, under TLS: what the server sent just before the reset may be
    lost (seen with a bare ``ssl`` socket client too: the RST overtakes the unread records),
    so only the error is certain. Observed: blocking client, TruncatedError after files 0
    and 1, or NetworkError "Server disconnected without sending a response" with nothing;
    asyncio client, NetworkError with nothing."""
    cut = body.at(2, 1500)
    script = [REQUEST, Send(http_response(body.data).upto(cut)), Reset()]
    outcome = fetch_one(Run(kind, tls=True), script)
    assert outcome.indexes in ([], [0], [0, 1])
    assert isinstance(outcome.error, NetworkError | TruncatedError), outcome
    assert outcome.elapsed < GENEROUS / 2


@covers("EOF")
def test_close_mid_body_over_tls(kind: Kind, body: Body) -> None:
    cut = body.at(2, 1500)
    script = [REQUEST, Send(http_response(body.data).upto(cut)), Close()]
    outcome = fetch_one(Run(kind, tls=True), script)
    assert outcome.indexes == [0, 1]
    outcome.raised(TruncatedError, "incomplete chunked read")


# -- both clients name the OS error ------------------------------------------------------------


@pytest.mark.parametrize("fault", ["refused", "reset"])
def test_async_messages_name_the_os_error(body: Body, fault: str) -> None:
    if fault == "refused":
        with refused_address() as (host, port):
            message = str(open_refused("async", f"http://{host}:{port}"))
        assert "Connection refused" in message
    else:
        script = [REQUEST, Send(http_response(body.data).upto(body.file_ends[1] + 40)), Reset()]
        outcome = fetch_one(Run("async"), script)
        assert "Connection reset by peer" in str(outcome.error)
