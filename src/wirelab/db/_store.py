"""What both backends share on top of their ``run``/``write``: the repositories, the
schema version and the ``async with`` protocol of a :class:`~wirelab.db.Database`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

from ._repo_batch import RelayStore
from ._repo_media import MediaJobs
from ._repo_users import Users
from ._sql import Conn, Dialect

__all__ = ["Store"]

T = TypeVar("T")


class Store(ABC):
    """A :class:`~wirelab.db.Database` built from a backend's ``run``/``write`` (see
    :class:`~wirelab.db._sql.Backend`). Subclasses call ``super().__init__(version)``."""

    def __init__(self, version: int) -> None:
        self._version = version
        self._users = Users(self)
        self._relay = RelayStore(self)
        self._media = MediaJobs(self)

    @property
    @abstractmethod
    def dialect(self) -> Dialect:
        """The engine's :class:`~wirelab.db._sql.Dialect`."""

    @abstractmethod
    async def run(self, func: Callable[[Conn], T]) -> T:
        """Run a read (see :class:`~wirelab.db._sql.Backend`)."""

    @abstractmethod
    async def write(self, func: Callable[[Conn], T]) -> T:
        """Run a write transaction (see :class:`~wirelab.db._sql.Backend`)."""

    async def write_one(self, func: Callable[[Conn], T]) -> T:
        """A write of one statement (see :class:`~wirelab.db._sql.Backend`); by default
        :meth:`write`."""
        return await self.write(func)

    async def write_pipelined(self, func: Callable[[Conn], Callable[[], T]]) -> T:
        """A write whose results are read after its commit (see
        :class:`~wirelab.db._sql.Backend`); by default :meth:`write` calling ``finish``
        inside the transaction."""
        return await self.write(lambda conn: func(conn)())

    async def read_concurrent(self, func: Callable[[Conn], T]) -> T:
        """A read with no order to calls in flight (see :class:`~wirelab.db._sql.Backend`);
        by default :meth:`run`."""
        return await self.run(func)

    @abstractmethod
    async def close(self) -> None:
        """Release the connections. Idempotent."""

    @property
    def users(self) -> Users:
        """The users and their tokens."""
        return self._users

    @property
    def relay(self) -> RelayStore:
        """The relay files and the blob journal."""
        return self._relay

    @property
    def media(self) -> MediaJobs:
        """The media jobs."""
        return self._media

    @property
    def schema_version(self) -> int:
        """The schema version at open time."""
        return self._version

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
