"""How fast is the metadata store on PostgreSQL, relative to SQLite, in one run?

One "send" is what the relay does in the database for a small direct send and its
pickup: reserve quota, insert the file (under quota), lease it, delete it (journaled).
``--concurrency`` tasks do sends for ``--seconds`` on each backend, in alternating rounds
(so both see the same machine load); the ratio of the medians is the result.

    .venv/bin/python benchmarks/db_backends.py [--seconds 3] [--rounds 3] [--concurrency 16]
        [--pool-sizes 2 8 16]   # PostgreSQL connections per store (default: the shipped 8)

Needs the machine's PostgreSQL (``--admin-url``, default the local superuser with trust
auth): a database is created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from wirelab.db import Database, QuotaDefaults, RelayFile, _postgres, connect, sqlite_url, upgrade

QUOTA = QuotaDefaults(bytes=10**15, files=10**9)


async def _sends(db: Database, seconds: float, concurrency: int) -> float:
    """Sends per second of ``concurrency`` tasks for ``seconds``."""
    deadline = time.monotonic() + seconds
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < deadline:
            key = f"w{w}-{n}-{uuid.uuid4().hex[:6]}"
            now = time.time()
            recipient = f"r{w % 4}"
            await db.relay.reserve([(key, 1000)], recipient, now, QUOTA, sender="s", until=now + 60)
            file = RelayFile(
                id=key, recipient=recipient, sender="s", name="f", media_type="text/plain",
                note=None, size=1000, sha256="00", blob_key=key, created_at=now,
                expires_at=now + 3600,
            )  # fmt: skip
            await db.relay.insert_file(file, QUOTA)
            leased = await db.relay.lease_next(recipient, now, f"l{w}", now + 60)
            assert leased is not None
            await db.relay.delete_file(recipient, leased.id, now)
            await db.relay.journal_remove(leased.blob_key)
            n += 1
            done += 1

    start = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.monotonic() - start)


async def _open(url: str) -> Database:
    db = await connect(url)
    for r in range(4):
        if await db.users.get_user(f"r{r}") is None:
            await db.users.add_user(f"r{r}")
    return db


async def main(args: argparse.Namespace) -> None:
    name = f"wirelab_bench_{uuid.uuid4().hex[:8]}"
    base = args.admin_url.rsplit("/", 1)[0]
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as folder:
            pg_url = f"{base}/{name}"
            await upgrade(pg_url)
            stores = {"sqlite": await _open(sqlite_url(Path(folder) / "w.db"))}
            for size in args.pool_sizes:
                _postgres.POOL_SIZE = size  # read when a store opens
                stores[f"pg pool={size}"] = await _open(pg_url)
            rates: dict[str, list[float]] = {k: [] for k in stores}
            try:
                for _ in range(args.rounds):
                    for kind, db in stores.items():
                        rates[kind].append(await _sends(db, args.seconds, args.concurrency))
            finally:
                for db in stores.values():
                    await db.close()
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    medians = {kind: statistics.median(r) for kind, r in rates.items()}
    print(f"db sends/s, {args.concurrency} concurrent tasks, median of {args.rounds} rounds")
    for kind, rate in medians.items():
        ratio = rate / medians["sqlite"]
        rounds = ", ".join(f"{r:.0f}" for r in rates[kind])
        print(f"  {kind:<12} {rate:8.0f}  x{ratio:.2f} of sqlite   rounds: {rounds}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool-sizes", type=int, nargs="+", default=[8])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    asyncio.run(main(parser.parse_args()))
