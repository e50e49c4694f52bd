"""The classic endpoints' body (``/stream``, ``/streamSLOW``): unframed files, each exactly
one HTTP chunk, paced like a framed stream (see ``_engine``)."""

from __future__ import annotations

from ._content import ContentSource
from ._disconnect import run_until_disconnect
from ._engine import _body, _start
from ._pacer import Pacer
from ._params import StreamParams
from ._plan import iter_plan
from ._runtime import Receive, Send, StreamRuntime
from ._schedule import start_time
from ._slice import TimeSlice

__all__ = ["run_raw_stream"]


async def _wait_until(pacer: Pacer, deadline: float, slice_: TimeSlice) -> None:
    """Wait until ``deadline`` (loop time) on the shared timer; when it has passed, pause
    only if the slice is used up (an unpaced stream must still give the loop back)."""
    if deadline > pacer.loop.time():
        await pacer.sleep_until(deadline)
        slice_.restart()
    else:
        await slice_.checkpoint()


async def _raw_files(
    runtime: StreamRuntime,
    params: StreamParams,
    seed: int,
    size_unit: int,
    send: Send,
    t0: float,
) -> None:
    pacer = runtime.pacer()
    # The classic endpoints keep their original generators: a seed gives the files it gave.
    content = ContentSource(params, seed, random="sfc64")
    slice_ = runtime.new_slice()
    try:
        for spec in iter_plan(params, seed, size_unit=size_unit, generator="pcg64"):
            await _wait_until(pacer, t0 + spec.offset, slice_)
            runtime.files_started += 1
            # One ASGI body message per file: the server writes it as exactly one HTTP
            # chunk (at most 1 MiB of random bits: well under a millisecond of work).
            data = b"".join(content.file_chunks(spec.size))
            await send(_body(data))
            runtime.files_sent += 1
    finally:
        runtime.pauses += slice_.pauses
    await send(_body(b"", more=False))


async def run_raw_stream(
    runtime: StreamRuntime,
    params: StreamParams,
    seed: int,
    size_unit: int,
    headers: list[tuple[bytes, bytes]],
    receive: Receive,
    send: Send,
    raw_send: Send | None = None,
) -> None:
    """Serve one classic (unframed) response: each file is exactly one HTTP chunk.

    This is the one place a whole file is held in memory (at most one per stream, 1 MiB
    for the classic endpoints), because the classic contract is one chunk per file.
    """
    t0 = start_time(runtime, raw_send or send)
    await send(_start(headers))
    body = _raw_files(runtime, params, seed, size_unit, raw_send or send, t0)
    await run_until_disconnect(runtime, receive, body, raw_send or send)
