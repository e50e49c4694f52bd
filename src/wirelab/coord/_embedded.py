"""The embedded :class:`Coordinator`: this process's memory, for one-process servers.

Free of I/O: leases and marks are dictionary entries with a deadline on the monotonic
clock, wake-ups are :class:`asyncio.Event`\\ s. Nothing is shared with other processes
(``distributed`` is ``False``), so a server using it owns its data folder alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ._base import Coordinator, Lease, released_topic

__all__ = ["EmbeddedCoordinator"]


class EmbeddedCoordinator(Coordinator):
    """Leases, set-once marks and wake-ups in process memory (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (token, deadline)
        self._marks: dict[str, float] = {}  # name -> deadline
        self._groups: dict[str, dict[str, float]] = {}  # group -> member -> deadline

    def _live(self, table: dict[str, tuple[str, float]], name: str) -> tuple[str, float] | None:
        entry = table.get(name)
        if entry is not None and entry[1] <= self._clock():
            del table[name]
            return None
        return entry

    async def try_acquire(self, name: str, ttl: float) -> Lease | None:
        if self._live(self._leases, name) is not None:
            return None
        lease = Lease(name, self.new_token())
        self._leases[name] = (lease.token, self._clock() + ttl)
        return lease

    async def renew(self, lease: Lease, ttl: float) -> bool:
        entry = self._live(self._leases, lease.name)
        if entry is None or entry[0] != lease.token:
            return False
        self._leases[lease.name] = (lease.token, self._clock() + ttl)
        return True

    async def release(self, lease: Lease, *, announce: bool = True) -> bool:
        entry = self._live(self._leases, lease.name)
        if entry is None or entry[0] != lease.token:
            return False
        del self._leases[lease.name]
        if announce:
            self.publish(released_topic(lease.name))
        return True

    async def set_if_absent(self, name: str, ttl: float) -> bool:
        now = self._clock()
        if len(self._marks) > 1024:  # forget expired marks now and then: bounded memory
            self._marks = {k: d for k, d in self._marks.items() if d > now}
        deadline = self._marks.get(name)
        if deadline is not None and deadline > now:
            return False
        self._marks[name] = now + ttl
        return True

    async def join(self, group: str, member: str, ttl: float) -> None:
        self._groups.setdefault(group, {})[member] = self._clock() + ttl

    async def leave(self, group: str, member: str) -> None:
        self._groups.get(group, {}).pop(member, None)

    async def members(self, group: str) -> set[str]:
        now = self._clock()
        live = {m: d for m, d in self._groups.get(group, {}).items() if d > now}
        self._groups[group] = live
        return set(live)
