"""The classic endpoints' own rules (``/stream``, ``/streamSLOW``): the file count taken
from the path, and the slow variant's delivery pacing. Pure except for the pacing sender.

The original service's ``/streamSLOW`` waited as ``/stream`` does (1 ms to 1 s before each
file) and was slower only because it produced the samples slowly. :class:`SlowPacer`
reproduces that: before each file it waits the file's drawn wait, then the time producing
the file would take at :data:`SLOW_RATE` bytes per second, so every gap is
``wait + size / SLOW_RATE`` (both divided by ``speed``): at most 2 s with the classic sizes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from starlette.types import Message, Send

from .._validate import InvalidField, parse_int
from ._plan import FileSpec

__all__ = ["SLOW_RATE", "SlowPacer", "classic_count", "slow_gap"]

#: Bytes per second at which ``/streamSLOW`` "produces" each file (1 MiB/s: a 1 MiB file
#: takes 1 s on top of its wait; a 100-file stream takes about 100 s on average).
SLOW_RATE = 1024 * 1024


def classic_count(raw: str | None, default: int) -> int | None:
    """The file count in a classic path, or None when it is not a whole number >= 0
    (the original answered 404 then, as for any unknown path)."""
    if raw is None:
        return default
    try:  # strict: a 5,000-digit n must not reach int() (a 500)
        return parse_int(raw)
    except InvalidField:
        return None


def slow_gap(spec: FileSpec, speed: float) -> float:
    """Seconds between the previous file (or the response start) and this file on
    ``/streamSLOW``: the file's wait, then its production time."""
    return (spec.wait + spec.size / SLOW_RATE) / speed


class SlowPacer:
    """An ASGI ``send`` that delivers the k-th file body ``slow_gap`` seconds after the
    previous one, whatever the stream engine's own schedule says (the engine's waits are
    then already over, so it adds none).

    ``plan`` must be the plan the engine is sending, in order; messages that carry no file
    (the response start, the final empty body) pass through at once. Create it in the
    response's task, when the response starts.
    """

    def __init__(self, send: Send, plan: Iterator[FileSpec], speed: float) -> None:
        self._send = send
        self._plan = plan
        self._speed = speed
        # When the previous file went out; the first gap counts from the response start.
        self._last = asyncio.get_running_loop().time()

    async def __call__(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        if message["type"] == "http.response.body" and message.get("more_body", False):
            spec = next(self._plan)
            delay = self._last + slow_gap(spec, self._speed) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last = loop.time()
        await self._send(message)
