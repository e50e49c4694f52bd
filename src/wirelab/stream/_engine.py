"""The asyncio side of the Stream service: pacing, framing and hashing of one response.

Everything here runs on the event loop except ``frame_chunks`` (``_bodies``) for large files when
the server has worker threads: a shared pool then runs it so that generating and hashing
(both release the GIL) overlap with the loop writing the previous message to the socket,
and, without worker threads, the keystream of zero-wait streams, made a message ahead on
one thread (``_prefill``). There is never a thread per stream.

Fairness: work on the loop is cut into time slices (:class:`TimeSlice`, ~1 ms): a stream
checks its slice after every 64 KiB chunk (1 MiB message of a large random file) and every
file and gives the loop a turn when it is used up, so an unpaced stream read at full speed
cannot starve other requests, and a client's disconnect is noticed within a slice of it
(``_disconnect``).

Memory per stream is bounded: at most two messages (about :data:`MESSAGE_SIZE` bytes each,
built from ``CHUNK_SIZE`` chunks) of one file exist at a time; with a keystream thread,
three or four 1 MiB buffers, from a pool the server's streams share (``_prefill``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..framing import StreamEncoder
from ..framing._schema import STREAM_VERSION
from ..framing._start import StartTemplate
from ._bodies import MESSAGE_SIZE, frame_chunks, frame_plain, small_file_maker
from ._content import CHUNK_SIZE, FILL_MARGIN, Chunk, ContentSource
from ._disconnect import run_until_disconnect
from ._params import StreamParams
from ._plan import PLAN_OF_VERSION, Row, plan_rows
from ._prefill import Prefill
from ._runtime import DirectBody, Message, Receive, Send, StreamRuntime
from ._schedule import start_time

__all__ = ["MESSAGE_SIZE", "run_framed_stream"]


@functools.lru_cache(maxsize=256)
def start_template(params: StreamParams, version: int = STREAM_VERSION) -> StartTemplate:
    """The ``S`` frame of the streams of ``params`` (their member ``seed`` stands for each
    stream's seed), formatted once: the fast path parses a query once for a burst of
    streams that differ only in their seeds, and they share its ``params`` object."""
    return StartTemplate(
        count=params.count, params=params.as_dict(), digest=params.digest, version=version
    )


def _start(headers: list[tuple[bytes, bytes]]) -> Message:
    return {"type": "http.response.start", "status": 200, "headers": headers}


def _body(data: Chunk, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def _hexdigest(hasher: Any | None) -> str:
    assert hasher is not None
    return str(hasher.hexdigest())


class _FramedStream:
    """One ``/v1/stream`` response: pacing, framing and hashing of its files."""

    def __init__(self, runtime: StreamRuntime, params: StreamParams, seed: int, send: Send) -> None:
        self.runtime = runtime
        self.params = params
        self.seed = seed
        self.send = send
        # The server's own frames are valid by construction: skip schema checks (the
        # grammar and sizes are still enforced), it is most of the per-file CPU cost.
        self.encoder = StreamEncoder(validate=False, version=runtime.format_version)
        self.content = ContentSource(params, seed)
        self.slice = runtime.new_slice()
        self._small_file = small_file_maker(self.content, params.digest)
        self.direct: DirectBody | None = None
        self._pacer = runtime.pacer()
        self._last = params.count - 1
        # No waits: each large message is followed at once by the next, which lets the
        # direct writes hold back a few KiB to write whole pages (server._direct).
        self._back_to_back = params.max_interval == 0
        self._prefill = self._prefill_for(runtime)
        # Set by run(), shared with the pacer's callback (_ahead, _tick): the schedule's
        # start, the plan's rows, and the waiter of the task while the timer sends.
        self._t0 = 0.0
        self._rows: Iterator[Row] = iter(())
        self._waiter: asyncio.Future[tuple[Row | None, bool]] | None = None
        self._small_message = self._small_message_maker()

    def _prefill_for(self, runtime: StreamRuntime) -> Prefill | None:
        """A :class:`Prefill` for a stream without waits whose large ``random`` files go
        through :meth:`_send_filled`, when the server has a keystream thread."""
        if (
            runtime.keystream_executor is None
            or not self._back_to_back
            or self.params.max_size <= CHUNK_SIZE
            or runtime.executor is not None
        ):
            return None  # the usual answer, for every paced stream: cheap checks first
        fill = self.content.filler()
        if fill is None:
            return None
        return Prefill(runtime.keystream_executor, fill, runtime.keystream_buffers)

    async def _put(self, data: Chunk, more: bool = True) -> None:
        """Send one body message: straight to the transport when it may be (see
        :class:`DirectBody`), else through ``send``."""
        direct = self.direct
        if more and direct is not None and not direct.blocked():
            direct.write(data)
        else:
            await self._send_body(data, more)

    async def _put_parts(self, parts: list[Chunk], more: bool = True) -> None:
        """:meth:`_put` of ``parts`` joined (written without the join where it can: when
        the socket's buffer is full, an empty message through ``send`` waits for it to
        drain first, which writes nothing). In a stream without waits the direct write may
        keep a few KiB back for the next one (see :class:`DirectBody`)."""
        direct = self.direct
        if more and direct is not None and direct.blocked():
            direct.flush()
            await self.send(_body(b"", True))
        if more and direct is not None and not direct.blocked():
            direct.write_parts(parts, self._back_to_back)
        else:
            await self._send_body(b"".join(parts), more)

    async def _send_body(self, data: Chunk, more: bool) -> None:
        """Send ``data`` through ``send``, after what the direct writes held back."""
        if self.direct is not None:
            self.direct.flush()
        await self.send(_body(data, more))

    def _small_message_maker(self) -> Callable[[Row], bytes]:
        """``small_message(row)``: the message of the small file ``row``, generated and
        hashed whole, then its ``F``, ``D``, ``E`` (and for the last file ``Z``) frames
        built in one piece. A function holding what every file uses (a method reading
        them as attributes cost ~3 k instructions a file more)."""
        params = self.params

        # Bound as default values, not closed over: one tuple per stream instead of a
        # cell per name (fewer objects per open stream for the garbage collector to
        # walk), read as fast locals. Callers pass ``row`` alone.
        def small_message(
            row: Row,
            runtime: StreamRuntime = self.runtime,
            make: Callable[[int], tuple[Chunk, str]] = self._small_file,
            whole_file: Callable[..., bytes] = self.encoder.whole_file,
            dtype: str = params.dtype,
            byteorder: str = params.byteorder,
            last: int = self._last,
        ) -> bytes:
            index, name, size, _, offset = row
            runtime.files_started += 1
            body, digest = make(size)
            return whole_file(
                index, name, size, dtype, byteorder, offset, body, digest, index == last, True
            )

        return small_message

    def start_frame(self) -> bytes:
        """The stream's ``S`` frame (its first bytes)."""
        if self.params.seed is None:  # the fast path's params, shared by a burst of streams
            template = start_template(self.params, self.runtime.format_version)
            return self.encoder.start_from(template, self.seed)
        members = self.params.as_dict()
        members["seed"] = self.seed
        return self.encoder.start(
            seed=self.seed, count=self.params.count, params=members, digest=self.params.digest
        )

    async def run(self, t0: float, start: bytes | None) -> None:
        """Send the stream (the response head is out, and ``start``, the ``S`` frame, is
        to follow: None when it went with the head); ``t0`` (loop time) is when the
        request arrived (``_schedule.start_time``): the schedule counts from there, so time
        spent sending the head is not added to it."""
        if start is not None:
            if (factory := self.runtime.direct_body) is not None:
                self.direct = factory(self.send)
                self.runtime.direct_streams += self.direct is not None
            await self._put(start)
        pacer, last = self._pacer, self._last
        self._t0 = t0
        generator = PLAN_OF_VERSION[self.runtime.format_version]
        self._rows = rows = iter(plan_rows(self.params, self.seed, generator=generator))
        try:
            loop, slice_, runtime, send = pacer.loop, self.slice, self.runtime, self.send
            direct = self.direct
            row, due = next(rows, None), False
            while row is not None:
                index, name, size, _, offset = row
                if (
                    not due
                    and offset > 0
                    and direct is not None
                    and size <= CHUNK_SIZE
                    and index != last
                ):
                    # A paced small file (not the last, which ends the response through
                    # send): the timer sends this file and the next ones itself, and
                    # wakes the task only for a file it cannot send (see _tick). Also
                    # when its time has passed (a stream that starts behind its
                    # schedule): it then goes out in the timer's next round, in deadline
                    # order with the other late files.
                    row, due = await self._ahead(row)
                    slice_.restart()
                    continue
                # _raw._wait_until, inlined: its two coroutines were a measurable part of the
                # cost of a small file.
                if not due and t0 + offset > loop.time():
                    await pacer.sleep_until(t0 + offset)
                    slice_.restart()
                elif slice_.expired():
                    await slice_.pause()
                due = False
                if size > CHUNK_SIZE:
                    after = next(rows, None)
                    after_size = 0 if after is None else after[2]
                    await self._send_file(index, name, size, offset, index == last, after_size)
                    row = after
                    continue
                # A small file (most paced streams), sent here: a coroutine per file was
                # a measurable part of its cost. One message: one HTTP chunk, one write.
                message = self._small_message(row)
                more = index != last
                # self._put, inlined (a coroutine per file, again).
                if more and direct is not None and not direct.blocked():
                    direct.write(message)
                else:  # self._send_body, inlined
                    if direct is not None:
                        direct.flush()
                    await send({"type": "http.response.body", "body": message, "more_body": more})
                runtime.files_sent += 1
                row = next(rows, None)
        except asyncio.CancelledError:
            if not self.runtime.shutting_down:
                raise
            # Shutdown: end the response with an X frame instead of a truncated body.
            if (task := asyncio.current_task()) is not None:
                task.uncancel()
            abort = self.encoder.abort("shutdown", "the server is shutting down")
            await self._send_body(abort, more=False)
            return
        finally:
            self.runtime.pauses += self.slice.pauses
        if not self.encoder.finished:  # no file: the Z frame goes alone
            await self._send_body(self.encoder.end(), more=False)

    def _ahead(self, row: Row) -> asyncio.Future[tuple[Row | None, bool]]:
        """Send ``row`` (a small file, not the last) and the files after it from the
        pacer's callback (:meth:`_tick`), each at its time, without waking the task: the
        future returned says where the task takes over, ``(row, due)``."""
        self._waiter = waiter = self._pacer.loop.create_future()
        self._pacer.call_at(self._t0 + row[4], self._tick, row)
        return waiter

    def _tick(self, row: Row) -> None:
        """The pacer's callback at ``row``'s time: send that small file straight to the
        transport, then schedule the next, or hand the stream back to the task with the
        row it must handle: ``(row, True)`` for this file when the transport takes no
        write now (``send`` waits for it), ``(next row, False)`` for a large file or the
        last one (``send`` ends the response). Any other file stays with the timer, even
        when its time has already passed (a server behind its schedule): it goes out in
        deadline order with the other late files, at the cost of one of them, not of a
        task's wake-up (its offset is not below this one's, so it is paced too: the same
        rule as :meth:`run`'s). A cancelled task (disconnect, shutdown) leaves its waiter
        done: the stream is over and the call does nothing."""
        waiter, direct = self._waiter, self.direct
        if waiter is None or waiter.done() or direct is None:
            return
        try:
            if direct.blocked():
                waiter.set_result((row, True))
                return
            direct.write(self._small_message(row))
            runtime = self.runtime
            runtime.files_sent += 1
            runtime.files_ahead += 1
            after = next(self._rows, None)
            if after is not None and after[2] <= CHUNK_SIZE and after[0] != self._last:
                self._pacer.call_at(self._t0 + after[4], self._tick, after)
                return
            waiter.set_result((after, False))
        except Exception as exc:  # the task raises it, as if it had sent the file itself
            waiter.set_exception(exc)

    async def _send_file(
        self, index: int, name: str, size: int, offset: float, last: bool, after_size: int
    ) -> None:
        """Send one file larger than :data:`CHUNK_SIZE` (:meth:`run` sends the small ones);
        the last one's final message also carries the ``Z`` frame (one write fewer per
        stream: both are due at the same moment). ``after_size``: the next file's size (0
        when there is none)."""
        self.runtime.files_started += 1
        params = self.params
        header = self.encoder.file_start(
            index=index, name=name, size=size,
            dtype=params.dtype, byteorder=params.byteorder, offset=round(offset, 6),
        )  # fmt: skip
        await self._send_large_file(header, size, last, after_size)
        self.runtime.files_sent += 1

    async def _send_large_file(self, header: bytes, size: int, last: bool, after_size: int) -> None:
        """Send a file larger than one chunk (``F`` already formatted) in one message or
        several."""
        digest = self.content.memoized_digest(size)
        if digest is None and size <= self.runtime.body_cache.max_entry:
            # Periodic files up to one message are hashed up front (about a slice of
            # work); larger ones are hashed while they are sent, in slices, like random.
            digest = self.content.known_digest(size)
            await self.slice.checkpoint()
        chunks = self.content.file_chunks(size)
        if digest is not None and size <= self.runtime.body_cache.max_entry:
            # Periodic content: the framed body is shared; F, D..., E go out as one message.
            body = self._cached_body(size, chunks)
            await self._send_last([header, body, self.encoder.file_end(digest)], last)
        elif self.content.fills_in_place and self.runtime.executor is None:
            await self._send_filled(header, size, last, after_size)
        else:
            digest = await self._send_large(header, chunks, digest)
            self.content.remember_digest(size, digest)
            await self._send_last([self.encoder.file_end(digest)], last)

    async def _send_last(self, parts: list[Chunk], last: bool) -> None:
        """Send a file's final message: ``parts`` joined, plus the ``Z`` frame if ``last``."""
        if last:
            parts.append(self.encoder.end())
        await self._put_parts(parts, more=not last)

    async def _send_filled(self, header: bytes, size: int, last: bool, after_size: int) -> None:
        """Send a large ``random`` file whose bytes are generated in one piece per message
        (:meth:`ContentSource.fill`, into a buffer nobody zeroes first) and written as they
        are, the ``D`` frame headers between them (:meth:`_put_parts`: one ``writev``, no
        join). Each message holds about :data:`MESSAGE_SIZE` bytes of ``D`` frames (one
        per :data:`CHUNK_SIZE` bytes of the file, as on the other paths); the first starts
        with ``F``, the last ends with ``E`` (and ``Z`` for the stream's last file).
        Each message is hashed in one piece, with a :meth:`TimeSlice.checkpoint` after it.
        With a :class:`Prefill`, the next message's bytes (this file's, or the first of the
        next file when it is a large one: ``after_size``) are made on the keystream thread
        while this one is hashed and written."""
        hasher = self.content.new_hasher()
        encoder, checkpoint, prefill = self.encoder, self.slice.checkpoint, self._prefill
        done = 0
        while done < size:
            n_msg = min(MESSAGE_SIZE, size - done)
            payload = None if prefill is None else await prefill.take(n_msg)
            if payload is None:
                payload = np.empty(n_msg + FILL_MARGIN, np.uint8).data
                self.content.fill(payload, n_msg)
            if prefill is not None:
                # The next message: this file's, else the next file's first if that one
                # is large too (a small one is made with its message, on the loop).
                rest = size - done - n_msg or (after_size if after_size > CHUNK_SIZE else 0)
                if rest:
                    prefill.start(min(MESSAGE_SIZE, rest))
            # One update a message (1 MiB), not one a chunk: the GIL is given up and
            # taken back once, which matters when the keystream thread wants it too.
            hasher.update(payload[:n_msg])
            parts: list[Chunk] = [header] if header else []
            for start in range(0, n_msg, CHUNK_SIZE):
                chunk = payload[start : min(start + CHUNK_SIZE, n_msg)]
                parts += (encoder.data_header(len(chunk)), chunk)
            await checkpoint()
            done += n_msg
            header = b""
            if done == size:
                parts.append(encoder.file_end(_hexdigest(hasher)))
                if last:
                    parts.append(encoder.end())
            await self._put_parts(parts, more=done < size or not last)

    def _cached_body(self, size: int, chunks: Iterator[Chunk]) -> bytes:
        key = (self.params.content, self.params.dtype, self.params.byteorder, size)
        body = self.runtime.body_cache.get(key, lambda: frame_plain(chunks))
        # Count the cached frames toward the file, as if they were framed here.
        for start in range(0, size, CHUNK_SIZE):
            self.encoder.data_header(min(CHUNK_SIZE, size - start))
        return body

    async def _send_large(self, header: bytes, chunks: Iterator[Chunk], digest: str | None) -> str:
        """Send ``F`` and the ``D`` frames of a file larger than one chunk; return its digest.

        Messages of about :data:`MESSAGE_SIZE` bytes: large writes are what makes loopback
        fast (see docs/design.md), while generation still works in 64 KiB chunks.
        """
        hasher = None if digest is not None else self.content.new_hasher()
        if hasher is not None and self.runtime.executor is not None:
            await self._put(header)
            await self._send_offloaded(chunks, hasher)
        else:
            await self._send_sliced(header, chunks, hasher)
        return digest or _hexdigest(hasher)

    async def _send_sliced(self, header: bytes, chunks: Iterator[Chunk], hasher: Any) -> None:
        """Frame and hash on the loop in ~MESSAGE_SIZE messages, pausing whenever the slice
        is used up: one message may be built across several slices (the chunks it holds are
        never reused by the generator, so they stay valid while other tasks run)."""
        parts: list[Chunk] = [header]
        size = 0
        for chunk in chunks:
            if hasher is not None:
                hasher.update(chunk)
            parts += (self.encoder.data_header(len(chunk)), chunk)
            size += len(chunk)
            if size >= MESSAGE_SIZE:
                await self._put_parts(parts)
                parts, size = [], 0
            await self.slice.checkpoint()
        if size:
            await self._put_parts(parts)

    async def _send_offloaded(self, chunks: Iterator[Chunk], hasher: Any) -> None:
        loop = asyncio.get_running_loop()
        executor = self.runtime.executor
        job = functools.partial(frame_chunks, chunks, self.encoder, hasher, MESSAGE_SIZE)
        pending = loop.run_in_executor(executor, job)
        try:
            while body := await pending:
                # Waiting for the worker gave the loop back: a new slice starts.
                self.slice.restart()
                # Start the next message before writing this one: the two overlap.
                pending = loop.run_in_executor(executor, job)
                await self._put(body)
        finally:
            # On cancellation, let the worker finish its message before anyone touches the
            # shared generator/encoder again (the half-made message is simply dropped).
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
    raw_send: Send | None = None,
) -> None:
    """Serve one ``/v1/stream`` response (params already validated; ``seed`` is the one
    used, whatever ``params.seed`` holds).

    ``raw_send`` is the server's own send, without the framework's per-message wrappers:
    the head goes through ``send`` (so the framework knows the response started), the body
    messages through ``raw_send`` (a paced stream sends thousands of them per second).
    Without ``raw_send`` (no framework in between), the head and the ``S`` frame go out
    in one write where the server allows it (``runtime.direct_start``).
    """
    t0 = start_time(runtime, raw_send or send)
    stream = _FramedStream(runtime, params, seed, raw_send or send)
    start = stream.start_frame()
    direct = None
    if raw_send is None and (direct_start := runtime.direct_start) is not None:
        direct = direct_start(send, headers, start)
    if direct is not None:
        stream.direct = direct
        runtime.direct_streams += 1
        await run_until_disconnect(runtime, receive, stream.run(t0, None), send)
    else:
        await send(_start(headers))
        await run_until_disconnect(runtime, receive, stream.run(t0, start), raw_send or send)
