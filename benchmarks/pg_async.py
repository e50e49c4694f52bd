"""PostgreSQL from the event loop: the thread pool of the db layer vs async psycopg.

Both sides run the same one-row statements (a primary-key SELECT, then a one-row UPDATE
in autocommit) from ``--tasks`` concurrent tasks on ``--pool`` connections, ``--count``
statements a leg: ``threads`` through :class:`wirelab.db.PostgresDatabase` (``run`` and
``write_one``: sync psycopg in the pool's executor threads), ``async`` through
``psycopg.AsyncConnection`` in a ``psycopg_pool.AsyncConnectionPool`` on the event loop.
Reported per leg, best of ``--rounds`` (order alternating): this process's CPU per
statement (all threads) and statements per second. Exit status 0.

Run: ``.venv/bin/python benchmarks/pg_async.py [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from _scaleout_setup import _postgres_database
from psycopg_pool import AsyncConnectionPool

from wirelab.db import upgrade
from wirelab.db._postgres import PostgresDatabase

_SELECT = "SELECT name, quota_bytes FROM users WHERE name = %s"
_UPDATE = "UPDATE users SET quota_files = quota_files WHERE name = %s"


async def _leg(
    one: Callable[[int], Awaitable[object]], tasks: int, count: int
) -> tuple[float, ...]:
    """(CPU ms per statement, statements/s) of ``count`` calls of ``one`` by ``tasks``."""
    per_task = count // tasks

    async def worker(w: int) -> None:
        for i in range(per_task):
            await one(w * per_task + i)

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    done = per_task * tasks
    return cpu * 1000 / done, done / wall


async def _threads(url: str, pool: int, tasks: int, count: int) -> dict[str, tuple[float, ...]]:
    db = await PostgresDatabase.open(url, pool_size=pool)
    try:
        select = await _leg(
            lambda n: db.run(lambda c: c.execute(_SELECT.replace("%s", "?"), ("u",)).fetchone()),
            tasks, count,
        )  # fmt: skip
        update = await _leg(
            lambda n: db.write_one(lambda c: c.execute(_UPDATE.replace("%s", "?"), ("u",))),
            tasks, count,
        )  # fmt: skip
    finally:
        await db.close()
    return {"select": select, "update": update}


async def _async(url: str, pool: int, tasks: int, count: int) -> dict[str, tuple[float, ...]]:
    async with AsyncConnectionPool(
        url, min_size=pool, max_size=pool, kwargs={"autocommit": True}, open=False
    ) as apool:
        await apool.wait()

        async def select(n: int) -> object:
            async with apool.connection() as conn:
                return await (await conn.execute(_SELECT, ("u",))).fetchone()

        async def update(n: int) -> object:
            async with apool.connection() as conn:
                return await conn.execute(_UPDATE, ("u",))

        return {
            "select": await _leg(select, tasks, count),
            "update": await _leg(update, tasks, count),
        }


async def _prepare(url: str) -> None:
    await upgrade(url)
    db = await PostgresDatabase.open(url)
    try:
        await db.users.add_user("u")
    finally:
        await db.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tasks", type=int, default=16)
    p.add_argument("--pool", type=int, default=8)
    p.add_argument("--count", type=int, default=4000)
    args = p.parse_args()
    legs = {"threads": _threads, "async": _async}
    best: dict[tuple[str, str], tuple[float, float]] = {}
    with _postgres_database() as url:
        asyncio.run(_prepare(url))
        for r in range(args.rounds):
            for name in list(legs)[r % 2 :] + list(legs)[: r % 2]:
                result = asyncio.run(legs[name](url, args.pool, args.tasks, args.count))
                for stmt, (cpu, rate) in result.items():
                    old = best.get((name, stmt), (float("inf"), 0.0))
                    best[(name, stmt)] = (min(old[0], cpu), max(old[1], rate))
                    load = os.getloadavg()[0]
                    print(f"round {r} {name:7} {stmt:6} {cpu:6.3f} ms CPU/statement"
                          f" {rate:7.0f}/s (load {load:.1f})", flush=True)  # fmt: skip
    print("\nbest round: CPU ms per statement, statements/s")
    for (name, stmt), (cpu, rate) in sorted(best.items()):
        print(f"  {name:7} {stmt:6} {cpu:6.3f} {rate:7.0f}")
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
