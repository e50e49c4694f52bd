"""The Stream service's shared state in one server process (:class:`StreamRuntime`), and
the interfaces the engine (``_engine``) writes a response through: ASGI ``send`` and, past
it, a :class:`DirectBody` the server provides."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..framing._schema import STREAM_VERSION
from ._bodies import BodyCache
from ._content import Chunk
from ._disconnect import Watch
from ._pacer import Pacer
from ._plan import PLAN_OF_VERSION
from ._prefill import BufferPool
from ._slice import SLICE_SECONDS, TimeSlice

__all__ = ["DirectBody", "Message", "Receive", "Send", "StreamRuntime"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]


class DirectBody(Protocol):
    """Writes a response's body chunks past ``send`` (the server's, once the head is
    out: see ``wirelab.server._direct``). The engine writes through it only while
    :meth:`blocked` is False, and always sends a response's last message through
    ``send``, which also waits for a full socket and drops writes after a disconnect."""

    def blocked(self) -> bool:
        """True when the next write must go through ``send``."""

    def write(self, data: Chunk) -> None:
        """Write ``data`` (not empty) as one body chunk."""

    def write_parts(self, parts: Sequence[Chunk], hold_tail: bool = False) -> None:
        """Write ``parts`` as one body chunk, without joining them; with ``hold_tail``
        (another write follows at once) it may keep the last few KiB for that one."""

    def flush(self) -> None:
        """Write what :meth:`write_parts` kept back: before anything goes through
        ``send``."""


@dataclass(eq=False)
class StreamRuntime:
    """Shared state of the Stream service in one server process.

    ``active`` holds the tasks of streams in progress so shutdown can end them with an
    ``X`` frame (``/healthz`` reports how many). The counters are for tests and
    diagnostics: ``fast_requests`` counts streams served past the framework (see
    ``_routes.build_fast_path``), ``direct_streams`` those whose body went past ``send``
    (see ``direct_body``), ``files_ahead`` the files the pacer's callback sent without
    waking their stream's task; ``files_started`` (files whose generation began) shows
    that generation stopped; ``pauses`` (turns given to the loop, added when a stream
    ends) shows that streams shared the loop. ``slice_seconds`` and ``clock`` set each stream's
    :class:`TimeSlice`. ``direct_body`` (set by the server) gives a framed stream a
    :class:`DirectBody` for its ``send``, or None where there is none; ``direct_start``
    also writes the response's head and first chunk (``wirelab.server._direct``).
    ``request_age`` (set by the server) says how many seconds ago the request of a
    ``send`` reached the host, or 0 where it cannot tell (see ``_schedule.start_time``).
    ``watch_connection`` (set by the server) watches the connection of a ``send`` for the
    client's disconnect, or returns None where ``receive()`` must be watched instead
    (see ``_disconnect.run_until_disconnect``). ``keystream_executor`` (one thread, set
    by the server) makes the keystream of zero-wait streams a message ahead
    (``_prefill``), into ``keystream_buffers``; None keeps it on the loop.
    ``format_version`` is the stream format the engine writes: 3 (the current one), or 2,
    whose bodies differ only in the plan drawn from a seed and the version in ``S``
    (docs/protocol/stream.md, Versions).
    """

    executor: Executor | None = None
    keystream_executor: Executor | None = None
    keystream_buffers: BufferPool = field(default_factory=BufferPool)
    body_cache: BodyCache = field(default_factory=lambda: BodyCache())
    active: set[asyncio.Task[Any]] = field(default_factory=set)
    shutting_down: bool = False
    streams_disconnected: int = 0
    fast_requests: int = 0
    direct_streams: int = 0
    files_ahead: int = 0
    files_sent: int = 0
    files_started: int = 0
    pauses: int = 0
    slice_seconds: float = SLICE_SECONDS
    clock: Callable[[], float] = time.perf_counter
    direct_body: Callable[[Send], DirectBody | None] | None = None
    direct_start: Callable[[Send, list[tuple[bytes, bytes]], bytes], DirectBody | None] | None = (
        None
    )
    request_age: Callable[[Send], float] | None = None
    watch_connection: Callable[[Send, Callable[[], object]], Watch | None] | None = None
    format_version: int = STREAM_VERSION
    _pacer: Pacer | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.format_version not in PLAN_OF_VERSION:
            versions = " or ".join(map(str, PLAN_OF_VERSION))
            raise ValueError(f"format_version must be {versions}, got {self.format_version!r}")

    def pacer(self) -> Pacer:
        """The shared timer of the running loop's paced streams (one per loop)."""
        loop = asyncio.get_running_loop()
        if self._pacer is None or self._pacer.loop is not loop:
            self._pacer = Pacer(loop)
        return self._pacer

    def new_slice(self) -> TimeSlice:
        """A time slice for one stream, with this runtime's length and clock."""
        return TimeSlice(self.slice_seconds, self.clock)

    def shutdown(self) -> None:
        """Ask every stream in progress to end now (each sends an ``X`` frame if it can)."""
        self.shutting_down = True
        for task in list(self.active):
            task.cancel("wirelab: server shutdown")
