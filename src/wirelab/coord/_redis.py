"""The Redis :class:`Coordinator`: several server processes (on one host or many) share it.

* Wake-ups are Redis pub/sub messages on ``<prefix>wake:<topic>``. Each process keeps one
  pattern subscription (``<prefix>wake:*``) on its own connection and wakes its local
  listeners; its own messages are recognised by their payload (the process's random id)
  and skipped, since :meth:`publish` already woke the local listeners. After the
  subscription connection broke and came back, every local listener is woken: messages
  may have been missed, and a woken listener only re-reads its state.
* A lease is the key ``<prefix>lease:<name>`` holding the holder's random token,
  created with ``SET NX PX`` (so it vanishes after its TTL without any process's help);
  renewal and release are Lua scripts that act only while the key still holds the token.
* A set-once mark is ``SET <prefix>mark:<name> 1 NX PX``.
* A presence group is the sorted set ``<prefix>group:<name>``: members scored by their
  deadline on the Redis server's clock (so the processes' clocks do not matter).

The URL is redis-py's (``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for
TLS) plus an optional ``prefix`` query parameter (default ``wirelab:``) that keeps the
keys of several deployments, or test runs, apart on one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ._base import CoordinationError, Coordinator, Lease, released_topic

__all__ = ["DEFAULT_PREFIX", "RedisCoordinator", "split_url"]

_log = logging.getLogger("wirelab.coord")

DEFAULT_PREFIX: Final = "wirelab:"
_CONNECT_TIMEOUT_S: Final = 5.0
_RECONNECT_MAX_S: Final = 2.0

# KEYS[1] the lease key, ARGV[1] the token, ARGV[2] the new TTL in ms.
_RENEW: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] the lease key, ARGV[1] the token.
_RELEASE: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

# KEYS[1] the group, ARGV[1] the member ('' to only list), ARGV[2] the TTL in ms.
_PRESENCE: Final = """
redis.replicate_commands()  -- writes after TIME (the default since Redis 7)
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if ARGV[1] ~= '' then
    redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
    if redis.call('pttl', KEYS[1]) < tonumber(ARGV[2]) then
        redis.call('pexpire', KEYS[1], ARGV[2])  -- the set outlives its last member only
    end
end
return redis.call('zrange', KEYS[1], 0, -1)
"""


def split_url(url: str) -> tuple[str, str]:
    """``url`` without its ``prefix`` query parameter, and that prefix (or the default)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def _ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


class RedisCoordinator(Coordinator):
    """A :class:`Coordinator` on Redis (see the module docstring)."""

    distributed = True

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url, self.prefix = split_url(url)
        parts = urlsplit(self._url)
        host = parts.hostname or "localhost"
        self._where = f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path or '/0'}"
        self._id = secrets.token_hex(8).encode()
        self._client: aioredis.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[Any]] = set()

    @property
    def description(self) -> str:
        return f"{self._where} prefix {self.prefix}"

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise CoordinationError("the Redis coordinator is not started")
        return self._client

    async def start(self) -> None:
        if self._client is not None:
            return
        client = aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            health_check_interval=30,
        )
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise CoordinationError(
                f"cannot reach the coordination service at {self._where}: {exc}"
            ) from None
        self._client = client
        subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(subscribed), name="wirelab-coord")
        try:
            await asyncio.wait_for(subscribed.wait(), _CONNECT_TIMEOUT_S)
        except TimeoutError:
            await self.close()
            raise CoordinationError(
                f"cannot subscribe to wake-ups at {self._where}: no answer"
            ) from None

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- wake-ups ---------------------------------------------------------------------

    def publish(self, topic: str) -> None:
        super().publish(topic)
        if self._client is None:
            return
        task = asyncio.create_task(self._publish(topic))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, topic: str) -> None:
        try:
            await self._redis().publish(f"{self.prefix}wake:{topic}", self._id)
        except (RedisError, OSError, CoordinationError) as exc:
            _log.warning("cannot publish wake-up %s: %s", topic, exc)

    async def _listen(self, subscribed: asyncio.Event) -> None:
        """Deliver other processes' wake-ups to local listeners, reconnecting forever."""
        pattern = f"{self.prefix}wake:*".encode()
        skip = len(pattern) - 1
        pause = 0.05
        while True:
            pubsub = self._redis().pubsub()
            try:
                await pubsub.psubscribe(pattern)
                async for message in pubsub.listen():
                    if message["type"] == "psubscribe":
                        if subscribed.is_set():  # a reconnection: messages may be lost
                            self._topics.wake_all()
                        subscribed.set()
                        pause = 0.05
                    elif message["type"] == "pmessage" and message["data"] != self._id:
                        self._topics.wake(message["channel"][skip:].decode())
            except (RedisError, OSError) as exc:
                _log.warning("wake-up subscription lost (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    # cast: redis's stubs type aclose() in some releases and not in others
                    await cast(Any, pubsub).aclose()
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RECONNECT_MAX_S)

    # -- leases and marks -------------------------------------------------------------

    async def _call(self, script: str, key: str, *args: str | int) -> Any:
        """Run ``script`` on ``key`` (``"SET NX"``: create it with ``args`` value and TTL)."""
        client = self._redis()
        try:
            if script == "SET NX":
                return await client.set(key, args[0], nx=True, px=int(args[1]))
            return await client.eval(script, 1, key, *args)
        except (RedisError, OSError) as exc:
            raise CoordinationError(f"coordination service {self._where}: {exc}") from None

    async def try_acquire(self, name: str, ttl: float) -> Lease | None:
        lease = Lease(name, self.new_token())
        held = await self._call("SET NX", f"{self.prefix}lease:{name}", lease.token, _ms(ttl))
        return lease if held else None

    async def renew(self, lease: Lease, ttl: float) -> bool:
        key = f"{self.prefix}lease:{lease.name}"
        return bool(await self._call(_RENEW, key, lease.token, _ms(ttl)))

    async def release(self, lease: Lease, *, announce: bool = True) -> bool:
        key = f"{self.prefix}lease:{lease.name}"
        released = bool(await self._call(_RELEASE, key, lease.token))
        if released and announce:
            self.publish(released_topic(lease.name))
        return released

    async def set_if_absent(self, name: str, ttl: float) -> bool:
        return bool(await self._call("SET NX", f"{self.prefix}mark:{name}", "1", _ms(ttl)))

    async def join(self, group: str, member: str, ttl: float) -> None:
        if not member:
            raise CoordinationError("a group member needs a name")
        await self._call(_PRESENCE, f"{self.prefix}group:{group}", member, _ms(ttl))

    async def leave(self, group: str, member: str) -> None:
        try:
            await self._redis().zrem(f"{self.prefix}group:{group}", member)
        except (RedisError, OSError) as exc:
            raise CoordinationError(f"coordination service {self._where}: {exc}") from None

    async def members(self, group: str) -> set[str]:
        found = await self._call(_PRESENCE, f"{self.prefix}group:{group}", "", 0)
        return {m.decode() for m in found}
