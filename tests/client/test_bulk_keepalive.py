"""The bulk connection notices a keep-alive connection that the server closed while it
was idle, and opens a new one instead of failing a request on it (then waiting to retry)."""

from __future__ import annotations

import http.client
import socket
import time

from wirelab.client._bulk import _dropped


def test_an_idle_connection_closed_by_the_peer_is_dropped() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        conn = http.client.HTTPConnection("127.0.0.1", listener.getsockname()[1], timeout=5)
        assert not _dropped(conn)  # not connected yet: nothing to drop
        conn.connect()
        peer, _ = listener.accept()
        try:
            assert not _dropped(conn)  # open and idle
            peer.close()  # what a server does after its keep-alive timeout
            deadline = time.monotonic() + 10  # the FIN is in flight, not necessarily there
            while not _dropped(conn):
                assert time.monotonic() < deadline, "the closed connection looks alive"
                time.sleep(0.01)
        finally:
            conn.close()
