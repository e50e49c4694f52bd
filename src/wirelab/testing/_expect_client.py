"""What an :class:`ExpectServer` can learn from an asyncio client in the test's own process.

The server sees only its side of the socket. An asyncio client reads eagerly: the bytes the
server sent sit in the client's :class:`asyncio.StreamReader` buffer whether or not the
client code read them, and a close with bytes left there is a clean FIN, not a reset. So
for clients made by ``asyncio.open_connection`` in the test's process, the ``tcpserver``
fixtures hand the client's stream objects to :meth:`ExpectServer.observe_client`, and the
disconnect checks use what a :class:`ClientObserver` records, as pytest-tcpclient did:

* how many bytes the client code consumed: what was fed to the reader minus what is left
  in its buffer (whatever read method it used: ``read``, ``readline``, ``readuntil``,
  ``readexactly``, async iteration);
* whether ``writer.close()`` and ``writer.wait_closed()`` were called, and how many
  sends the test had queued since it last waited for the server when it closed.

Nothing else about the streams changes: the wrappers call the originals and only count.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ClientObserver", "peer_key"]


def peer_key(address: Any) -> str:
    """``"host:port"`` of a socket address, as the server names its peers."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


class ClientObserver:
    """Counts what one asyncio client did with its streams (see the module docstring).

    Updated in the client's thread, read in the server's: each field is one reference or
    int, written whole; ``on_change`` is called (in the client's thread) after each change
    that the server may be waiting for.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._lock = threading.Lock()
        self._reader = reader
        # Bytes fed before we wrapped feed_data are still in the buffer: nothing could
        # consume them before open_connection returned the reader.
        self._fed = len(self._buffer())
        self.close_called = False
        self.wait_closed_called = False
        self.on_change: Callable[[], None] = lambda: None
        self.pending_sends: Callable[[], int] = lambda: 0
        self.pending_sends_at_close = 0
        feed_data = reader.feed_data
        close = writer.close
        wait_closed = writer.wait_closed

        def counting_feed_data(data: bytes) -> None:
            with self._lock:  # count and buffer together, for a consistent `consumed`
                self._fed += len(data)
                feed_data(data)

        def noting_close() -> None:
            if not self.close_called:
                self.pending_sends_at_close = self.pending_sends()
            self.close_called = True
            self.on_change()
            close()

        async def noting_wait_closed() -> None:
            self.wait_closed_called = True
            self.on_change()
            await wait_closed()

        # Instance attributes shadow the methods; the stream's protocol calls them too.
        reader.feed_data = counting_feed_data  # type: ignore[method-assign,assignment]
        writer.close = noting_close  # type: ignore[method-assign]
        writer.wait_closed = noting_wait_closed  # type: ignore[method-assign]

    @staticmethod
    def supported(reader: asyncio.StreamReader) -> bool:
        """Whether this reader keeps its buffer where the observer can measure it."""
        return isinstance(getattr(reader, "_buffer", None), bytearray)

    def _buffer(self) -> bytearray:
        buffer: bytearray = self._reader._buffer  # type: ignore[attr-defined]
        return buffer

    @property
    def consumed(self) -> int:
        """Bytes the client code has read from its reader so far."""
        with self._lock:
            return self._fed - len(self._buffer())
