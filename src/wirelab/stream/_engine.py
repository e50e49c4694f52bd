"""The asyncio side of the Stream service: pacing, framing and hashing of one response.

Everything here runs on the event loop except :func:`_produce_batch`, which a shared thread
pool runs for large files so that generating and hashing (both release the GIL) overlap with
the loop writing the previous batch to the socket. There is never a thread per stream.

Memory per stream is bounded: at most two batches (``BATCH_CHUNKS`` chunks of
``CHUNK_SIZE`` bytes each) of one file exist at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from ..framing import StreamEncoder
from ._content import CHUNK_SIZE, Chunk, ContentSource
from ._params import StreamParams
from ._plan import FileSpec, iter_plan

__all__ = ["BATCH_CHUNKS", "StreamRuntime", "run_framed_stream", "run_raw_stream"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]

log = logging.getLogger("wirelab.stream")

#: Chunks produced per hand-off to the thread pool (4 x 64 KiB = 256 KiB).
BATCH_CHUNKS = 4


@dataclass(eq=False)
class StreamRuntime:
    """Shared state of the Stream service in one server process.

    ``active`` holds the tasks of streams in progress so shutdown can end them with an
    ``X`` frame; the counters are for ``/healthz`` and for tests that check generation
    stopped.
    """

    executor: Executor | None = None
    active: set[asyncio.Task[Any]] = field(default_factory=set)
    shutting_down: bool = False
    streams_started: int = 0
    streams_finished: int = 0
    streams_disconnected: int = 0
    files_sent: int = 0
    bytes_sent: int = 0

    def shutdown(self) -> None:
        """Ask every stream in progress to end now (each sends an ``X`` frame if it can)."""
        self.shutting_down = True
        for task in list(self.active):
            task.cancel("wirelab: server shutdown")


async def _watch_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _run_until_disconnect(
    runtime: StreamRuntime, receive: Receive, body: Awaitable[None]
) -> None:
    """Run ``body`` until it ends or the client goes away, whichever is first."""
    producer = asyncio.ensure_future(body)
    watcher = asyncio.ensure_future(_watch_disconnect(receive))
    runtime.active.add(producer)
    runtime.streams_started += 1
    try:
        await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        runtime.active.discard(producer)
        if not producer.done():
            # The client disconnected (or we were cancelled): stop generating at once.
            producer.cancel()
            runtime.streams_disconnected += 1
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        with contextlib.suppress(asyncio.CancelledError):
            await producer
    if producer.done() and not producer.cancelled():
        runtime.streams_finished += 1
        producer.result()  # re-raise an unexpected error in the producer


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


def _start(headers: list[tuple[bytes, bytes]]) -> Message:
    return {"type": "http.response.start", "status": 200, "headers": headers}


def _body(data: Chunk, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def _produce_batch(
    chunks: Iterator[Chunk], encoder: StreamEncoder, hasher: Any | None
) -> list[bytes]:
    """Generate up to ``BATCH_CHUNKS`` chunks as framed ``D`` bodies, hashing as it goes.

    Runs in a worker thread: numpy generation and ``hashlib`` release the GIL for large
    buffers, so this overlaps with the loop thread writing the previous batch.
    """
    out: list[bytes] = []
    for chunk in chunks:
        if hasher is not None:
            hasher.update(chunk)
        out.append(b"".join((encoder.data_header(len(chunk)), chunk)))
        if len(out) == BATCH_CHUNKS:
            break
    return out


class _FramedStream:
    """One ``/v1/stream`` response: pacing, framing and hashing of its files."""

    def __init__(self, runtime: StreamRuntime, params: StreamParams, seed: int, send: Send) -> None:
        self.runtime = runtime
        self.params = params
        self.seed = seed
        self.send = send
        self.encoder = StreamEncoder()
        self.content = ContentSource(params, seed)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = self.encoder.start(
            seed=self.seed, count=self.params.count, params=self.params.as_dict()
        )
        await self.send(_body(start))
        t0 = loop.time()
        try:
            for spec in iter_plan(self.params, self.seed):
                await _sleep_until(loop, t0 + spec.offset)
                await self._send_file(spec)
        except asyncio.CancelledError:
            if not self.runtime.shutting_down:
                raise
            # Shutdown: end the response with an X frame instead of a truncated body.
            if (task := asyncio.current_task()) is not None:
                task.uncancel()
            abort = self.encoder.abort("shutdown", "the server is shutting down")
            await self.send(_body(abort, more=False))
            return
        await self.send(_body(self.encoder.end(), more=False))

    async def _send_file(self, spec: FileSpec) -> None:
        header = self.encoder.file_start(
            index=spec.index,
            name=spec.name,
            size=spec.size,
            dtype=self.params.dtype,
            byteorder=self.params.byteorder,
            offset=round(spec.offset, 6),
        )
        digest = self.content.known_digest(spec.size)
        hasher = None if digest is not None else hashlib.sha256()
        chunks = self.content.file_chunks(spec.size)
        if spec.size <= CHUNK_SIZE:
            # Small file: F, D, E in one message (one HTTP chunk, one write).
            parts: list[Chunk] = [header]
            for chunk in chunks:
                if hasher is not None:
                    hasher.update(chunk)
                parts += (self.encoder.data_header(len(chunk)), chunk)
            tail = b"".join(parts)
        else:
            # Large file: one message per 64 KiB chunk, so every copy (ours, the server's,
            # the kernel's) works on cache-resident data; never a whole-file buffer.
            await self.send(_body(header))
            if hasher is not None and self.runtime.executor is not None:
                await self._send_offloaded(chunks, hasher)
            else:
                for chunk in chunks:
                    if hasher is not None:
                        hasher.update(chunk)
                    await self.send(_body(b"".join((self.encoder.data_header(len(chunk)), chunk))))
            tail = b""
        if hasher is not None:
            digest = hasher.hexdigest()
        assert digest is not None
        await self.send(_body(tail + self.encoder.file_end(digest)))
        self.runtime.files_sent += 1
        self.runtime.bytes_sent += spec.size

    async def _send_offloaded(self, chunks: Iterator[Chunk], hasher: Any | None) -> None:
        loop = asyncio.get_running_loop()
        executor = self.runtime.executor
        pending = loop.run_in_executor(executor, _produce_batch, chunks, self.encoder, hasher)
        try:
            while batch := await pending:
                # Start the next batch before writing this one: the two overlap.
                pending = loop.run_in_executor(
                    executor, _produce_batch, chunks, self.encoder, hasher
                )
                for body in batch:
                    await self.send(_body(body))
        finally:
            # On cancellation, let the worker finish its batch before anyone touches the
            # shared generator/encoder again (a half-run batch is simply dropped).
            if not pending.done():
                with contextlib.suppress(BaseException):
                    await asyncio.shield(pending)


async def run_framed_stream(
    runtime: StreamRuntime,
    params: StreamParams,
    seed: int,
    headers: list[tuple[bytes, bytes]],
    receive: Receive,
    send: Send,
) -> None:
    """Serve one ``/v1/stream`` response (params already validated)."""
    stream = _FramedStream(runtime, params, seed, send)
    await send(_start(headers))
    await _run_until_disconnect(runtime, receive, stream.run())


async def _raw_files(
    runtime: StreamRuntime, params: StreamParams, seed: int, size_unit: int, send: Send
) -> None:
    loop = asyncio.get_running_loop()
    content = ContentSource(params, seed)
    t0 = loop.time()
    for spec in iter_plan(params, seed, size_unit=size_unit):
        await _sleep_until(loop, t0 + spec.offset)
        # One ASGI body message per file: the server writes it as exactly one HTTP chunk.
        data = b"".join(content.file_chunks(spec.size))
        await send(_body(data))
        runtime.files_sent += 1
        runtime.bytes_sent += spec.size
    await send(_body(b"", more=False))


async def run_raw_stream(
    runtime: StreamRuntime,
    params: StreamParams,
    seed: int,
    size_unit: int,
    headers: list[tuple[bytes, bytes]],
    receive: Receive,
    send: Send,
) -> None:
    """Serve one classic (unframed) response: each file is exactly one HTTP chunk.

    This is the one place a whole file is held in memory (at most one per stream, 1 MiB
    for the classic endpoints), because the classic contract is one chunk per file.
    """
    await send(_start(headers))
    await _run_until_disconnect(
        runtime, receive, _raw_files(runtime, params, seed, size_unit, send)
    )
