"""The checking forward proxy that every ffmpeg connection of a job goes through.

ffmpeg is started with ``-http_proxy`` pointing here, so each request it makes for the
source, for playlist segments and for redirect targets arrives as an absolute-form
``GET http://host/...`` (plain http) or a ``CONNECT host:443`` tunnel (https: ffmpeg's
TLS layer tunnels through the proxy). For each one the proxy:

1. resolves the host once (``getaddrinfo``);
2. keeps only the addresses the :class:`~wirelab.media._safety.NetworkPolicy` allows;
   none left: it answers ``403`` and records the refusal, *without any connection
   attempt* to the refused address;
3. connects to a checked address (never re-resolving, so DNS rebinding cannot swap it)
   and relays bytes. Plain http requests are rewritten to origin form with
   ``Connection: close``; the connection to ffmpeg is closed after each response, so one
   client connection can never carry a request for another host.

The proxy belongs to one job and listens on ``127.0.0.1`` port 0 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._errors import SourceRefused
from ._safety import NetworkPolicy

__all__ = ["CheckingProxy", "resolve_checked"]

_log = logging.getLogger("wirelab.media")

HEAD_MAX = 64 * 1024
CONNECT_TIMEOUT = 10.0
_CHUNK = 256 * 1024
_HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "te"}


class _Refused(Exception):
    pass


class _BadGateway(Exception):
    pass


@dataclass
class CheckingProxy:
    """A per-job checking proxy. ``async with CheckingProxy(policy) as proxy: proxy.url``.

    ``refusals`` lists why requests were refused; ``failures`` the upstream connection
    errors (both for the job's error message).
    """

    policy: NetworkPolicy
    refusals: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    url: str = ""

    async def __aenter__(self) -> CheckingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            # Only __aexit__ cancels these tasks; ending quietly keeps asyncio's stream
            # callback from logging the cancellation as an error.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _read_head(reader)
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        try:
            if method.upper() == "CONNECT":
                host, port = _split_authority(target, 443)
                upstream = await self._open(host, port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await _pipe_both(reader, writer, *upstream)
                return
            url = urlsplit(target)
            if url.scheme.lower() != "http" or not url.hostname:
                raise _Refused(f"the proxy only forwards absolute http URLs, not {target!r}")
            upstream = await self._open(url.hostname, url.port or 80)
        except _Refused as exc:
            self.refusals.append(str(exc))
            _log.warning("media source refused: %s", exc)
            _answer(writer, 403, str(exc))
            return
        except _BadGateway as exc:
            self.failures.append(str(exc))
            _answer(writer, 502, str(exc))
            return
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        up_reader, up_writer = upstream
        up_writer.write(_rewrite_request(method, path, version, rest))
        await _pipe_response(reader, writer, up_reader, up_writer)

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve ``host`` once, check, and connect to a checked address."""
        try:
            allowed = await resolve_checked(self.policy, host, port)
        except SourceRefused as exc:
            raise _Refused(str(exc)) from None
        except OSError as exc:
            raise _BadGateway(f"cannot resolve {host!r}: {exc}") from None
        errors: list[str] = []
        for address in allowed:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(address, port, limit=HEAD_MAX), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                errors.append(f"{address}:{port}: {exc.strerror or exc or type(exc).__name__}")
        raise _BadGateway(f"cannot connect to {host}:{port} ({'; '.join(errors)})")


async def resolve_checked(policy: NetworkPolicy, host: str, port: int) -> list[str]:
    """The addresses of ``host`` that ``policy`` allows (resolved once, in order).

    :class:`SourceRefused` when none is allowed (naming why each was refused);
    ``OSError`` when the name does not resolve.
    """
    try:
        # An address literal needs no resolver (and no trip to its thread pool): it is
        # checked as it is. Anything else (names, "127.1" shorthands) is resolved.
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
    allowed: list[str] = []
    reasons: list[str] = []
    for address in addresses:
        reason = policy.refusal(address)
        if reason is None:
            allowed.append(address)
        else:
            reasons.append(reason)
    if not allowed:
        raise SourceRefused(f"host {host!r}: {'; '.join(dict.fromkeys(reasons))}")
    return list(dict.fromkeys(allowed))


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > HEAD_MAX:
        raise ValueError("request head too large")
    return head


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit("//" + authority)
    if not parts.hostname:
        raise _Refused(f"bad CONNECT target {authority!r}")
    return parts.hostname, parts.port or default_port


def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = (message + "\n").encode()
    reason = "Forbidden" if status == 403 else "Bad Gateway"
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


def _rewrite_headers(header_block: bytes) -> list[bytes]:
    """The header lines without hop-by-hop ones, plus ``Connection: close``."""
    lines = [
        line
        for line in header_block.split(b"\r\n")
        if line and line.split(b":", 1)[0].strip().lower().decode("latin-1") not in _HOP_BY_HOP
    ]
    lines.append(b"Connection: close")
    return lines


def _rewrite_request(method: str, path: str, version: str, header_block: bytes) -> bytes:
    lines = [f"{method} {path} {version}".encode("latin-1"), *_rewrite_headers(header_block)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _pipe_response(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Send the request body (if any) up and the response down, with ``Connection:
    close`` in the response head; close both sides at the end."""
    sending = asyncio.ensure_future(_copy(reader, up_writer, close=False))
    try:
        head = await _read_head(up_reader)
        status_line, _, rest = head.partition(b"\r\n")
        writer.write(b"\r\n".join([status_line, *_rewrite_headers(rest)]) + b"\r\n\r\n")
        await _copy(up_reader, writer, close=False)
    finally:
        sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        up_writer.close()


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Relay both directions until either side closes (a CONNECT tunnel)."""
    up = asyncio.ensure_future(_copy(reader, up_writer, close=True))
    down = asyncio.ensure_future(_copy(up_reader, writer, close=True))
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        up_writer.close()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, close: bool) -> None:
    with contextlib.suppress(OSError):
        while chunk := await src.read(_CHUNK):
            dst.write(chunk)
            await dst.drain()
        if close and dst.can_write_eof():
            dst.write_eof()
