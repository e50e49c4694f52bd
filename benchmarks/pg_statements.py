"""SQL statements per relay operation on PostgreSQL, counted on the wire.

A ``wirelab serve`` process (a temporary PostgreSQL database, the folder store, no
coordination) talks to PostgreSQL through a counting proxy in this process: every
frontend message is parsed, and a simple query (``Q``) or an extended-protocol execute
(``E``) is one statement, a ``Sync`` or a simple query one round trip. ``BEGIN`` and
``COMMIT`` count as statements (they are round trips like any other). No server
extension (``pg_stat_statements``) is needed and nothing in wirelab is patched.

Measured, per file, one request at a time (so the token cache of the server hits after
the first request, as it does under load): ``--files`` direct sends of ``--size`` bytes
(above the inline limit: reservation, blob, file row), then as many receives (lease
``POST /v1/relay/inbox/next``, download ``GET``, acknowledge ``DELETE``), each step
counted on its own. The sweeper and the presence loop may add a statement now and then:
the figures are averages over ``--files`` files. Exit status 0.

Run: ``.venv/bin/python benchmarks/pg_statements.py [--files 50]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from _relay_procs import run_checked
from _scaleout_setup import Config, _add_users, _postgres_database, serve, wirelab_exe
from _util import HOST

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


@dataclass
class Counts:
    """What the proxy has seen so far (all connections)."""

    statements: float = 0
    round_trips: float = 0

    def copy(self) -> Counts:
        return Counts(self.statements, self.round_trips)


class CountingProxy:
    """A TCP proxy in front of PostgreSQL that counts the statements passing through.

    Runs its own event loop in a daemon thread; ``port`` is where clients connect. The
    client must not ask for TLS (``sslmode=disable``): the proxy reads the messages."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.counts = Counts()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, daemon=True, name="pg-proxy").start()
        self._ready.wait(10)

    def snapshot(self) -> Counts:
        """The counts now (a copy)."""
        with self._lock:
            return self.counts.copy()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, HOST, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        down = asyncio.create_task(_forward(up_reader, writer))
        try:
            await self._count_and_forward(reader, up_writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_writer.close()
            down.cancel()
            writer.close()

    async def _count_and_forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Untyped start-up messages first (an SSL/GSS request, answered 'N', then the
        # startup packet), then typed ones: one type byte and a 4-byte length.
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            writer.write(head + await reader.readexactly(length - 8))
            if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                break
        while True:
            head = await reader.readexactly(5)
            (length,) = struct.unpack("!i", head[1:])
            body = await reader.readexactly(length - 4)
            kind = head[:1]
            with self._lock:
                if kind in (b"Q", b"E"):
                    self.counts.statements += 1
                if kind in (b"Q", b"S"):
                    self.counts.round_trips += 1
            writer.write(head + body)
            await writer.drain()


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@contextmanager
def _counted_server() -> Iterator[tuple[CountingProxy, str, dict[str, str]]]:
    """A server on a fresh database behind a :class:`CountingProxy`: (proxy, URL, tokens)."""
    with (
        tempfile.TemporaryDirectory(prefix="wirelab-pg-statements-") as tmp,
        _postgres_database() as database,
    ):
        root = Path(tmp)
        run_checked([wirelab_exe(), "db", "upgrade", "--database-url", database], timeout=120)
        host_port = database.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        proxy = CountingProxy((host, int(port)))
        name = database.rsplit("/", 1)[1]
        via = f"postgresql://postgres@{HOST}:{proxy.port}/{name}?sslmode=disable&gssencmode=disable"
        config = Config("pg-counted", {"WIRELAB_DATABASE_URL": via}, root / "data")
        config.data.mkdir(parents=True)
        _add_users(config)
        with serve(config, 1, root / "serve") as server:
            yield proxy, f"http://{HOST}:{server.port}", config.tokens


def _delta(proxy: CountingProxy, before: Counts) -> Counts:
    now = proxy.snapshot()
    return Counts(now.statements - before.statements, now.round_trips - before.round_trips)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def measure(files: int, size: int) -> dict[str, Counts]:
    """Statements and round trips per file: ``send``, ``lease``, ``download``, ``ack``."""
    totals = {step: Counts() for step in ("send", "lease", "download", "ack")}

    def add(step: str, counts: Counts) -> None:
        totals[step].statements += counts.statements
        totals[step].round_trips += counts.round_trips

    with _counted_server() as (proxy, url, tokens):
        alice = httpx.Client(base_url=url, headers=_auth(tokens["alice"]))
        bob = httpx.Client(base_url=url, headers=_auth(tokens["bob"]))
        body = b"x" * size
        digest = hashlib.sha256(body).hexdigest()
        for n in range(files):
            before = proxy.snapshot()
            sent = alice.post(
                    "/v1/relay/files", params={"to": "bob", "name": f"f{n}.bin"}, content=body,
                    headers={"Wirelab-Sha256": digest},
                )  # fmt: skip
            sent.raise_for_status()
            add("send", _delta(proxy, before))
        for _ in range(files):
            before = proxy.snapshot()
            leased = bob.post("/v1/relay/inbox/next", params={"lease": 60})
            leased.raise_for_status()
            add("lease", _delta(proxy, before))
            file_id = leased.json()["id"]
            before = proxy.snapshot()
            got = bob.get(f"/v1/relay/files/{file_id}")
            assert got.content == body, "download differs from what was sent"
            add("download", _delta(proxy, before))
            before = proxy.snapshot()
            bob.delete(f"/v1/relay/files/{file_id}").raise_for_status()
            add("ack", _delta(proxy, before))
        alice.close()
        bob.close()
    return {step: Counts(c.statements / files, c.round_trips / files) for step, c in totals.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=50)
    p.add_argument("--size", type=int, default=256 * 1024)
    args = p.parse_args()
    per = measure(args.files, args.size)
    print(f"per file, {args.files} files of {args.size} bytes: statements (round trips)")
    for step, c in per.items():
        print(f"  {step:9} {c.statements:6.2f} ({c.round_trips:.2f})")
    receive = [per[s] for s in ("lease", "download", "ack")]
    print(f"  receive   {sum(c.statements for c in receive):6.2f}"
          f" ({sum(c.round_trips for c in receive):.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
