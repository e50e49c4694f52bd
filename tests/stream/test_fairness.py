"""Fairness of the stream engine: time slices, disconnects, and the manifest's cost.

The engine tests drive the ASGI callables directly with a ``send`` that never suspends
(a client that reads as fast as the server writes); the functional tests use a real
server on 127.0.0.1 port 0. No assertion depends on wall-clock speed: the slices are
checked by counting loop turns, generation by the engine's counters.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import blake3
import httpx
import pytest
from click.testing import CliRunner

from _waiting import wait_for
from wirelab.framing import FileEnded, StreamDecoder, StreamEnded
from wirelab.stream import ContentSource, StreamLimits, StreamParams, StreamRuntime, _content
from wirelab.stream._engine import run_framed_stream
from wirelab.stream._raw import run_raw_stream
from wirelab.stream._runtime import Message
from wirelab.stream._slice import TimeSlice
from wirelab.testing._live import LiveServer

MIB = 1024 * 1024
UNPACED = {"min_interval": 0, "max_interval": 0}


class FakeClock:
    """A clock that advances only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- TimeSlice ---------------------------------------------------------------------------


def test_slice_expires_after_its_length_and_restarts() -> None:
    clock = FakeClock()
    slice_ = TimeSlice(0.002, clock)
    assert not slice_.expired()
    clock.now += 0.0019
    assert not slice_.expired()
    clock.now += 0.0001
    assert slice_.expired()
    slice_.restart()
    assert not slice_.expired()


@pytest.mark.asyncio
async def test_checkpoint_pauses_only_when_the_slice_is_used_up() -> None:
    clock = FakeClock()
    slice_ = TimeSlice(0.001, clock)
    turns = 0

    async def other() -> None:
        nonlocal turns
        turns += 1

    task = asyncio.ensure_future(other())
    await slice_.checkpoint()  # slice not used up: returns without suspending
    assert turns == 0 and slice_.pauses == 0
    clock.now += 0.001
    await slice_.checkpoint()  # used up: the other task gets its turn
    assert turns == 1 and slice_.pauses == 1
    assert not slice_.expired()  # a new slice started
    await task


# --- the engine gives the loop back --------------------------------------------------------


class FastClient:
    """ASGI ``send``/``receive`` of a client that reads instantly and never disconnects,
    plus a probe task that counts the loop turns other tasks get meanwhile."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.messages = 0
        self.turns = 0
        self.turns_at_message: list[int] = []
        self._gone = asyncio.Event()

    @property
    def turns_while_sending(self) -> int:
        """Loop turns other tasks got between the first and the last body message (the
        task machinery around the stream takes a few turns of its own outside it)."""
        return self.turns_at_message[-1] - self.turns_at_message[0]

    async def send(self, message: Message) -> None:  # never suspends, like a fast reader
        if message["type"] == "http.response.body":
            self.body += message["body"]
            self.messages += 1
            self.turns_at_message.append(self.turns)

    async def receive(self) -> Message:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def probe(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.turns += 1


async def run_engine(runtime: StreamRuntime, params: StreamParams, raw: bool = False) -> FastClient:
    client = FastClient()
    probe = asyncio.ensure_future(client.probe())
    await asyncio.sleep(0)  # the probe runs before the stream starts
    try:
        if raw:
            await run_raw_stream(runtime, params, 1, 1024, [], client.receive, client.send)
        else:
            await run_framed_stream(runtime, params, 1, [], client.receive, client.send)
    finally:
        probe.cancel()
    return client


def unpaced(count: int, size: int, content: str = "random") -> StreamParams:
    return StreamParams(
        count=count, min_size=size, max_size=size, content=content,  # type: ignore[arg-type]
        min_interval=0, max_interval=0, seed=1,
    )  # fmt: skip


@pytest.mark.asyncio
async def test_unpaced_stream_gives_the_loop_a_turn_every_slice() -> None:
    # A zero-length slice expires at every check: after each ~1 MiB message of a large
    # random file (made and hashed in one piece each) and before each file. Today's engine
    # never suspends when send does not, so the probe never runs.
    runtime = StreamRuntime(slice_seconds=0.0)
    client = await run_engine(runtime, unpaced(4, 4 * MIB))
    messages = 4 * 4  # more than the 4 checks before the files alone would give
    assert client.turns_while_sending >= messages
    assert runtime.pauses >= messages
    # Large writes are kept: a slice boundary does not cut a message short.
    assert client.messages <= 1 + 4 * 5 + 1  # S, then per file 4 x ~1 MiB of D + E, then Z
    decoder = StreamDecoder()
    events = decoder.feed(bytes(client.body))
    assert sum(isinstance(e, FileEnded) for e in events) == 4
    assert isinstance(events[-1], StreamEnded)


@pytest.mark.asyncio
async def test_fake_clock_sets_how_much_work_fits_in_a_slice() -> None:
    # The clock advances by half a slice per message sent (the S frame, then one message
    # per small file): the engine pauses before every second file.
    clock = FakeClock()
    runtime = StreamRuntime(slice_seconds=0.001, clock=clock)
    client = FastClient()

    async def send(message: Message) -> None:
        await client.send(message)
        clock.now += 0.0005  # each file is one message here (F, D, E): half a slice

    probe = asyncio.ensure_future(client.probe())
    await asyncio.sleep(0)  # the probe runs before the stream starts
    try:
        await run_framed_stream(runtime, unpaced(8, 8 * 1024), 1, [], client.receive, send)
    finally:
        probe.cancel()
    assert runtime.pauses == 4  # before files 1, 3, 5 and 7
    assert client.turns_while_sending == 4


@pytest.mark.asyncio
async def test_large_periodic_files_are_hashed_while_sent_not_up_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Hashing a 16 MiB file of a new size up front kept the loop ~25-45 ms: only files
    # up to one message may be hashed before they are sent.
    computed: list[int] = []
    real = _content.periodic_digest

    def recording(content: str, dtype: str, byteorder: str, size: int, algorithm: str) -> str:
        computed.append(size)
        return real(content, dtype, byteorder, size, algorithm)

    monkeypatch.setattr(_content, "periodic_digest", recording)
    size = 3 * MIB + 2  # a size no other test memoized
    runtime = StreamRuntime(slice_seconds=0.0)
    client = await run_engine(runtime, unpaced(2, size, "sine"))
    assert all(s <= MIB for s in computed)
    ends = [e for e in StreamDecoder().feed(bytes(client.body)) if isinstance(e, FileEnded)]
    source = ContentSource(unpaced(1, size, "sine"), 1)
    expected = blake3.blake3(b"".join(source.file_chunks(size))).hexdigest()
    assert [(e.algorithm, e.digest) for e in ends] == [("blake3", expected)] * 2
    # Memoized once sent: the manifest and the next stream need not hash it again.
    assert source.memoized_digest(size) == expected


@pytest.mark.asyncio
async def test_slices_do_not_pause_when_the_slice_is_long() -> None:
    runtime = StreamRuntime(slice_seconds=3600.0)
    client = await run_engine(runtime, unpaced(3, 2 * MIB))
    assert runtime.pauses == 0 and client.turns_while_sending == 0
    assert runtime.files_started == runtime.files_sent == 3


@pytest.mark.asyncio
async def test_classic_stream_also_gives_the_loop_a_turn() -> None:
    runtime = StreamRuntime(slice_seconds=0.0)
    params = StreamParams(
        count=20, min_size=1024, max_size=64 * 1024, min_interval=0, max_interval=0,
        dtype="int16", byteorder="big", seed=1,
    )  # fmt: skip
    client = await run_engine(runtime, params, raw=True)
    assert client.turns_while_sending >= 19 and runtime.files_sent == 20


# --- real server: disconnects and /healthz ----------------------------------------------------


def stream_query(count: int) -> str:
    query = {"count": count, "min_size": MIB, "max_size": MIB, "content": "random", **UNPACED}
    return "/v1/stream?" + urlencode(query)


def open_stream(server: LiveServer, count: int) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=30)
    request = f"GET {stream_query(count)} HTTP/1.1\r\nHost: {server.host}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def read_at_least(sock: socket.socket, size: int) -> int:
    got = 0
    while got < size:
        block = sock.recv(1 << 20)
        if not block:
            break
        got += len(block)
    return got


@pytest.mark.parametrize("threads", [0, 2])
def test_disconnect_mid_stream_stops_generation(
    server_factory: Callable[..., LiveServer], threads: int
) -> None:
    server = server_factory(worker_threads=threads)
    runtime = server.stream_runtime
    count = 2000  # 2000 MiB if nothing stopped it
    sock = open_stream(server, count)
    assert read_at_least(sock, 4 * MIB) >= 4 * MIB
    sock.close()  # unread data: Linux resets the connection
    wait_for(lambda: not runtime.active)
    assert runtime.streams_disconnected == 1
    started = runtime.files_started
    # Generation stopped within a few files of the disconnect (the socket buffers hold
    # a few MiB), far from the 2000 asked for; and nothing runs afterwards.
    assert started < count // 10
    time.sleep(0.2)
    assert runtime.files_started == started


def test_healthz_answers_while_an_unpaced_stream_is_read(server: LiveServer) -> None:
    sock = open_stream(server, 4000)  # 4000 MiB: far more than is read before /healthz
    stop = threading.Event()
    read = [0]

    def reader() -> None:
        while not stop.is_set():
            block = sock.recv(1 << 20)
            if not block:
                return
            read[0] += len(block)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        wait_for(lambda: read[0] >= MIB)
        health = httpx.get(server.url + "/healthz", timeout=60).json()
        assert health["streams_active"] == 1  # answered while the stream was running
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(30)
        sock.close()
    wait_for(lambda: not server.stream_runtime.active)


# --- the manifest's cost is bounded -------------------------------------------------------------


def manifest(server: LiveServer, **query: Any) -> httpx.Response:
    return httpx.get(server.url + "/v1/stream/manifest", params=query, timeout=60)


def test_manifest_over_its_byte_limit_is_a_422_naming_it(server: LiveServer) -> None:
    limit = StreamLimits().max_manifest_bytes
    count = limit // MIB + 1  # within the stream's own 4 GiB limit
    r = manifest(server, count=count, min_size=MIB, max_size=MIB, **UNPACED)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["query", "count"]
    assert f"server limit of {limit} bytes per manifest" in problem["msg"]
    assert "max_manifest_bytes" in problem["msg"]
    # The same request is a valid stream: the lower limit is the manifest's alone.
    query = {"count": count, "min_size": MIB, "max_size": MIB, **UNPACED}
    with httpx.stream("GET", server.url + "/v1/stream", params=query, timeout=30) as r:
        assert r.status_code == 200


def test_manifest_limit_is_configurable(server_factory: Callable[..., LiveServer]) -> None:
    small = server_factory(stream_limits=StreamLimits(max_manifest_bytes=4096))
    assert manifest(small, count=2, min_size=2048, max_size=2048).status_code == 200
    r = manifest(small, count=3, min_size=2048, max_size=2048)
    assert r.status_code == 422 and "4096 bytes per manifest" in r.text


def test_manifest_limit_option_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from wirelab import cli
    from wirelab.server import _serve

    seen: list[Any] = []

    def run(config: Any, workers: int = 1) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(_serve, "run", run)
    env = {"WIRELAB_STREAM_LIMIT_MANIFEST_BYTES": "12345"}
    result = CliRunner().invoke(cli.main, ["serve", "--port", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert seen[0].stream_limits.max_manifest_bytes == 12345
    help_text = CliRunner().invoke(cli.main, ["serve", "--help"]).output
    assert "--stream-limit-manifest-bytes" in help_text
