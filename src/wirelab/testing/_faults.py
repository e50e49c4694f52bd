"""The fault catalogue: each fault a scripted server can inject, named by what the client
observes, and :func:`refused_address` for the one fault that needs no server at all.

Every entry is checked against a real client socket on the running OS by
``tests/testing/test_faults.py``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from ._realsock import RealSocket

__all__ = ["FAULTS", "Fault", "refused_address"]


@dataclass(frozen=True)
class Fault:
    """One fault: how to produce it and what a client observes."""

    name: str
    """Short name of what the client observes."""
    produce: str
    """The step or server argument that produces it."""
    observes: str
    """What a client using plain (blocking) sockets sees."""


FAULTS: Final[tuple[Fault, ...]] = (
    Fault(
        "connection refused",
        "refused_address(), or then='refuse' after the last script",
        "connect() raises ConnectionRefusedError (ECONNREFUSED)",
    ),
    Fault(
        "connection reset",
        "Reset()",
        "recv()/send() raise ConnectionResetError (ECONNRESET), not EOF (as the first step, "
        "possibly connect() already); on Unix sockets only if the script left client input "
        "unread, EOF otherwise; CPython 3.11's blocking ssl sockets report SSLEOFError",
    ),
    Fault(
        "EOF",
        "Close(), or the end of the script",
        "recv() returns b'' after the bytes sent before it",
    ),
    Fault(
        "half-close",
        "HalfClose()",
        "recv() returns b'', but send() still works and the server still reads",
    ),
    Fault(
        "read timeout",
        "Stall()",
        "recv() blocks: socket.timeout / TimeoutError with a timeout set",
    ),
    Fault(
        "send blocks",
        "StopReading()",
        "send()/sendall() block once the buffers fill: TimeoutError with a timeout set, "
        "BlockingIOError on a non-blocking socket",
    ),
    Fault(
        "slow reads",
        "Drip(data, bytes_per_second=...)",
        "recv() returns small pieces at the given rate",
    ),
    Fault(
        "fragmented reads",
        "SendSegments(data, sizes=[...], gap=...)",
        "recv() returns one segment at a time: a message spread over several reads",
    ),
    Fault(
        "late answer",
        "Sleep(seconds) before a Send",
        "recv() waits; times out if its timeout is shorter",
    ),
    Fault(
        "bad certificate",
        "tls=BadCert.EXPIRED / NOT_YET_VALID / WRONG_HOST / SELF_SIGNED / UNKNOWN_CA",
        "the handshake raises ssl.SSLCertVerificationError with verify_code "
        "10 / 9 / 62 / 18 / 20 (BadCert.verify_code)",
    ),
)
"""Every fault, in the order of the documentation."""


@contextmanager
def refused_address(host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
    """Yield ``(host, port)`` of a port that refuses connections, for the block's duration.

    The port is bound but not listening, so the kernel answers a connect with RST (the
    client sees ``ConnectionRefusedError``) and no other program can take the port while
    the block runs. Works for ``"::1"`` too.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = RealSocket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        yield (host, sock.getsockname()[1])
    finally:
        sock.close()
