"""What the server processes of one relay share, through a :class:`~wirelab.coord.Coordinator`.

* **Upload leases** (``upload:<key>``): every operation that writes or removes the bytes
  of a key holds its lease: a direct send from its journal entry to its file row, a tus
  creation, append, completion or termination, and a discard of another request's
  upload. So a tus upload started on one process resumes on another (the second append
  waits for the first, up to ``lock_ttl`` + 1 s, else 423), and a crashed holder's lease
  ends after ``lock_ttl``.
* **Recovery** (:func:`recover`): processes start one at a time (lease
  ``relay:recovery``). A process that finds no other live server process (presence group
  ``relay:servers``) runs the full crash recovery, blob store included. Otherwise others
  have work in flight: the blob store's recovery (which truncates uploads and removes
  temporary files) is skipped, and each journaled key or unfinished upload is finished
  or removed only under its lease, re-read after the lease is held; a key whose lease is
  held is in flight elsewhere and left alone.
* **The sweeper** (:func:`run_sweeper`): only the holder of ``relay:sweeper`` sweeps; a
  dead leader's lease ends after ``lock_ttl`` and another process takes over. Each sweep
  also removes what a process that died while others ran left behind: journaled keys
  with no upload row whose lease is free (:func:`sweep_orphans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from ..coord import LeaseBusy, LeaseLost
from ._errors import UploadBusy

if TYPE_CHECKING:
    from ._service import RelayService

__all__ = [
    "SERVERS",
    "Claims",
    "exclusive",
    "exclusive_all",
    "instance_name",
    "recover",
    "run_presence",
    "run_sweeper",
    "sweep_orphans",
]

_log = logging.getLogger("wirelab.relay")

SERVERS = "relay:servers"
RECOVERY = "relay:recovery"
SWEEPER = "relay:sweeper"


def instance_name() -> str:
    """This process's name in the presence group: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def exclusive(service: RelayService, key: str, *, wait: bool = True) -> AsyncIterator[None]:
    """Hold the lease of ``key`` for the body (waiting up to ``lock_ttl`` + 1 s when
    ``wait``, else not at all); :class:`UploadBusy` when it stays busy."""
    ttl = service.limits.lock_ttl
    async with contextlib.AsyncExitStack() as stack:
        try:
            # A key nobody waits for (a new one) is released without a message.
            hold = service.coord.hold(f"upload:{key}", ttl, ttl + 1 if wait else 0, announce=wait)
            await stack.enter_async_context(hold)
        except LeaseBusy:
            raise UploadBusy(
                f"upload {key!r} is being written by another request; retry later"
            ) from None
        yield


@contextlib.asynccontextmanager
async def exclusive_all(service: RelayService, keys: Sequence[str]) -> AsyncIterator[None]:
    """Hold the leases of new ``keys`` (nobody else knows them yet: no wait)."""
    async with contextlib.AsyncExitStack() as stack:
        for key in keys:
            await stack.enter_async_context(exclusive(service, key, wait=False))
        yield


class Claims:
    """Leases taken during a recovery: :meth:`claim` one key (``False`` when another
    process holds it), all released by :meth:`aclose`."""

    def __init__(self, service: RelayService) -> None:
        self._service = service
        self._stack = contextlib.AsyncExitStack()

    async def claim(self, key: str) -> bool:
        ttl = self._service.limits.lock_ttl
        try:
            await self._stack.enter_async_context(
                self._service.coord.hold(f"upload:{key}", ttl, wait=0)
            )
        except LeaseBusy:
            return False
        return True

    async def aclose(self) -> None:
        await self._stack.aclose()


async def recover(service: RelayService) -> None:
    """Start-up recovery, one starting process at a time (see the module docstring); then
    this process joins the presence group, renewed by :func:`run_presence`."""
    coord, ttl = service.coord, service.limits.lock_ttl
    async with coord.hold(RECOVERY, ttl, wait=None):
        others = await coord.members(SERVERS) - {service.instance}
        if others:
            _log.info("relay recovery: %d other server process(es) running", len(others))
        else:
            await service.blobs.recover()
        claims = Claims(service)
        try:
            keep = await service.uploads.recover(claims.claim)
            await _discard_orphans(service, keep, claims)
        finally:
            await claims.aclose()
        await coord.join(SERVERS, service.instance, ttl)


async def _discard_orphans(service: RelayService, keep: set[str], claims: Claims) -> None:
    """Discard the journaled keys that are neither kept uploads nor in flight elsewhere."""
    claimed = [
        key for key in await service.db.relay.journal_list() if key not in keep
        if await claims.claim(key)
    ]  # fmt: skip
    if not claimed:
        return
    # Re-read under the leases: a send that finished in between dropped its entry (its
    # blob is a file's now), and an upload created in between has a row.
    journaled = set(await service.db.relay.journal_list())
    uploads = {u.id for u in await service.db.relay.list_uploads()}  # kept or handled
    for key in claimed:
        if key in journaled and key not in uploads:
            await service.discard(key)


async def sweep_orphans(service: RelayService) -> None:
    """Discard the journaled keys without an upload row that no process is writing: what
    a send or an upload creation left when its process died."""
    claims = Claims(service)
    try:
        uploads = {u.id for u in await service.db.relay.list_uploads()}
        await _discard_orphans(service, uploads, claims)
    finally:
        await claims.aclose()


async def run_presence(service: RelayService) -> None:
    """Renew this process's place in the presence group until cancelled, then leave."""
    coord, ttl = service.coord, service.limits.lock_ttl
    try:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await coord.join(SERVERS, service.instance, ttl)
            except Exception as exc:
                _log.warning("cannot renew this server's presence: %s", exc)
    finally:
        with contextlib.suppress(Exception):
            await coord.leave(SERVERS, service.instance)


async def run_sweeper(service: RelayService) -> None:
    """Sweep every ``sweep_interval`` while this process leads (holds ``relay:sweeper``);
    otherwise wait for the lease. Until cancelled."""
    coord, ttl = service.coord, service.limits.lock_ttl
    while True:
        try:
            async with coord.hold(SWEEPER, ttl, wait=None):
                _log.info("relay sweeper: this process (pid %d) sweeps", os.getpid())
                while True:
                    await asyncio.sleep(service.limits.sweep_interval)
                    await _sweep_once(service)
        except LeaseLost:
            _log.warning("relay sweeper: lost the lead; waiting to lead again")
        except Exception as exc:  # the coordination service is down: retry
            _log.warning("relay sweeper: %s; retrying", exc)
            await asyncio.sleep(min(ttl, 1.0))


async def _sweep_once(service: RelayService) -> None:
    try:
        removed = await service.sweep()
    except Exception:
        _log.exception("relay sweep failed")
    else:
        _log.debug("relay sweep done (pid %d)", os.getpid())
        if removed:
            _log.info("relay sweep removed %d expired files", removed)
