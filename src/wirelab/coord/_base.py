"""The :class:`Coordinator` interface: what the processes of one deployment share.

Three primitives, each with a time-to-live so that a process that dies (SIGKILL, a lost
host) never blocks the others for longer than that:

* **Wake-ups**: :meth:`Coordinator.publish` a topic (e.g. ``inbox:alice``); every
  :class:`Listener` of that topic in every process is woken. Delivery is best effort and
  carries no data: a woken listener re-reads the state it waits for (the database), and
  waits with a timeout anyway.
* **Leases** (named locks with a TTL): :meth:`Coordinator.try_acquire` returns a
  :class:`Lease` with a random token, or ``None`` while someone else holds the name;
  :meth:`~Coordinator.renew` and :meth:`~Coordinator.release` act only while the token
  still holds the name (a lease that expired and was taken over is never released or
  extended by its old holder). :meth:`Coordinator.hold` acquires (waiting), renews in the
  background and releases: the usual way to use a lease.
* **Set once**: :meth:`Coordinator.set_if_absent` atomically marks a name for a TTL and
  says whether this call marked it (e.g. an upload offered live to one receiver only).
* **Presence**: :meth:`Coordinator.join` a group (renewed like a lease) and list its
  live :meth:`~Coordinator.members` (e.g. the server processes that are running).

Names are free text of printable characters; implementations add their own namespace.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

from .._exceptions import WirelabError
from .._ids import token_hex

__all__ = [
    "CoordinationError",
    "Coordinator",
    "Lease",
    "LeaseBusy",
    "LeaseLost",
    "Listener",
    "released_topic",
]

_log = logging.getLogger("wirelab.coord")

_POLL_MIN_S = 0.02
"""First re-try of a busy lease; doubles up to a quarter of its TTL (a dead holder's lease
ends without a release message, so waiting is never only on messages)."""


class CoordinationError(WirelabError):
    """The coordination service cannot be reached or answered an error."""


class LeaseBusy(WirelabError):
    """:meth:`Coordinator.hold` could not acquire a lease within its wait."""


class LeaseLost(WirelabError):
    """A held lease could not be renewed (it expired, or the service is unreachable):
    the work it protected was cancelled."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A held name: ``token`` proves ownership to :meth:`Coordinator.renew`/``release``."""

    name: str
    token: str


class Listener:
    """Wake-ups of one topic in this process (from :meth:`Coordinator.listen`).

    Use as a context manager; :meth:`wait` returns when a wake-up arrived since the last
    :meth:`clear` (or creation), or after the given time.
    """

    def __init__(self, topics: _Topics, topic: str) -> None:
        self._topics = topics
        self.topic = topic
        self.event = asyncio.Event()
        topics.add(topic, self.event)

    def clear(self) -> None:
        """Forget the wake-ups seen so far."""
        self.event.clear()

    async def wait(self, seconds: float) -> bool:
        """Whether a wake-up arrived within ``seconds`` (``False``: it did not)."""
        if self.event.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), max(0.0, seconds))
            return True
        return False

    def close(self) -> None:
        """Stop listening (idempotent)."""
        self._topics.discard(self.topic, self.event)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Topics:
    """This process's listeners, by topic."""

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    def add(self, topic: str, event: asyncio.Event) -> None:
        self._events.setdefault(topic, set()).add(event)

    def discard(self, topic: str, event: asyncio.Event) -> None:
        events = self._events.get(topic)
        if events is not None:
            events.discard(event)
            if not events:
                del self._events[topic]

    def __contains__(self, topic: str) -> bool:
        return topic in self._events

    def wake(self, topic: str) -> None:
        for event in self._events.get(topic, ()):
            event.set()

    def wake_all(self) -> None:
        for events in self._events.values():
            for event in events:
                event.set()


class Coordinator(abc.ABC):
    """Shared wake-ups, leases and set-once marks; see the module docstring.

    ``distributed`` says whether other processes can share this coordinator's state (an
    embedded one is private to its process). :meth:`start` before use, :meth:`close`
    after; both are idempotent.
    """

    distributed: bool = False

    def __init__(self) -> None:
        self._topics = _Topics()

    @property
    def description(self) -> str:
        """What coordinates (for messages and the data-folder lock; no secrets)."""
        return "embedded"

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Connect; :class:`CoordinationError` when the service cannot be reached."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Disconnect; held leases expire by themselves."""

    # -- wake-ups ---------------------------------------------------------------------

    def listen(self, topic: str) -> Listener:
        """Start listening to ``topic`` (before reading the state waited for, so that a
        change in between is not missed)."""
        return Listener(self._topics, topic)

    def listening(self, topic: str) -> bool:
        """Whether a listener of ``topic`` exists in this process."""
        return topic in self._topics

    def publish(self, topic: str) -> None:
        """Wake every listener of ``topic``: this process's at once, other processes'
        within milliseconds (best effort; never raises, never blocks)."""
        self._topics.wake(topic)

    # -- leases -----------------------------------------------------------------------

    @abc.abstractmethod
    async def try_acquire(self, name: str, ttl: float) -> Lease | None:
        """Hold ``name`` for ``ttl`` seconds, or ``None`` if it is held."""

    @abc.abstractmethod
    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease`` to ``ttl`` seconds from now; ``False`` if it is no longer held
        by its token (expired, or taken over)."""

    @abc.abstractmethod
    async def release(self, lease: Lease, *, announce: bool = True) -> bool:
        """Give ``lease`` up; ``False`` (and nothing done) if its token no longer holds it.
        With ``announce``, publishes :func:`released_topic` so that waiters retry at once
        (without: they find out by polling; for names nobody else can know yet)."""

    # -- set once ---------------------------------------------------------------------

    @abc.abstractmethod
    async def set_if_absent(self, name: str, ttl: float) -> bool:
        """Mark ``name`` for ``ttl`` seconds; whether this call marked it (atomic)."""

    # -- presence ---------------------------------------------------------------------

    @abc.abstractmethod
    async def join(self, group: str, member: str, ttl: float) -> None:
        """Count ``member`` in ``group`` for ``ttl`` seconds from now (join or renew)."""

    @abc.abstractmethod
    async def leave(self, group: str, member: str) -> None:
        """Stop counting ``member`` in ``group`` (idempotent)."""

    @abc.abstractmethod
    async def members(self, group: str) -> set[str]:
        """The members of ``group`` whose TTL has not run out."""

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def new_token() -> str:
        """A random lease token."""
        return token_hex(16)

    async def acquire(self, name: str, ttl: float, wait: float | None) -> Lease | None:
        """:meth:`try_acquire`, re-tried for up to ``wait`` seconds (``None``: forever);
        a release in any process wakes the waiter at once."""
        lease = await self.try_acquire(name, ttl)  # the usual case: free
        if lease is not None or wait == 0:
            return lease
        loop = asyncio.get_running_loop()
        deadline = None if wait is None else loop.time() + wait
        pause = _POLL_MIN_S
        with self.listen(released_topic(name)) as released:
            while True:
                released.clear()
                lease = await self.try_acquire(name, ttl)
                if lease is not None:
                    return lease
                remaining = pause if deadline is None else min(pause, deadline - loop.time())
                if remaining <= 0:
                    return None
                await released.wait(remaining)
                pause = min(pause * 2, max(_POLL_MIN_S, ttl / 4))

    @contextlib.asynccontextmanager
    async def hold(
        self, name: str, ttl: float, wait: float | None = 0.0, *, announce: bool = True
    ) -> AsyncIterator[Lease]:
        """Hold ``name`` for the body: acquired within ``wait`` seconds (else
        :class:`LeaseBusy`), renewed every third of ``ttl``, released at the end
        (``announce``: see :meth:`release`).

        If a renewal fails, the body is cancelled and :class:`LeaseLost` raised: work that
        needs exclusivity must not go on without it.
        """
        lease = await self.acquire(name, ttl, wait)
        if lease is None:
            raise LeaseBusy(f"{name} is busy")
        owner = asyncio.current_task()
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep(lease, ttl, owner, lost), name=f"lease {name}")
        try:
            yield lease
        except asyncio.CancelledError:
            if lost.is_set() and owner is not None and owner.uncancel() == 0:
                raise LeaseLost(f"lost the lease {name}") from None
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if not lost.is_set():
                await self._release_quietly(lease, announce)

    async def _keep(
        self, lease: Lease, ttl: float, owner: asyncio.Task[object] | None, lost: asyncio.Event
    ) -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                held = await self.renew(lease, ttl)
            except CoordinationError:
                _log.warning("cannot renew the lease %s; trying again", lease.name)
                continue  # it may still hold: the TTL decides
            if not held:
                _log.error("lost the lease %s: cancelling the work it protects", lease.name)
                lost.set()
                if owner is not None:
                    owner.cancel()
                return

    async def _release_quietly(self, lease: Lease, announce: bool) -> None:
        try:
            await self.release(lease, announce=announce)
        except CoordinationError:  # it expires by itself
            _log.warning("cannot release the lease %s; it expires by itself", lease.name)

    async def __aenter__(self) -> Coordinator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def released_topic(name: str) -> str:
    """The topic published when lease ``name`` is released."""
    return f"released:{name}"
