"""Relay on PostgreSQL + Redis + the folder store vs embedded, this code vs a baseline.

The relay legs of ``scaleout.py`` (``--senders`` durable direct sends of ``--files``
files of ``--size`` bytes, then ``--receivers`` receivers that lease, download, verify
and acknowledge every file) against up to four ``wirelab serve`` processes started at
once: ``embedded`` (SQLite, the folder store) and ``pg-redis-local`` (a temporary
PostgreSQL database, Redis coordination, the folder store), each with this checkout's
code and, with ``--baseline-src DIR``, with the wirelab package in ``DIR`` (``DIR/wirelab``;
e.g. ``git archive REV src | tar -x -C /some/dir`` gives ``/some/dir/src``) in front of
``PYTHONPATH``. Rounds rotate the order; per configuration the best round's files/s and
the lowest server CPU per file (ms, the server's process tree) are reported, with the
ratio pg-redis-local / embedded of each code. Exit status 0.

Run: ``.venv/bin/python benchmarks/relay_pg.py [--rounds 3] [--baseline-src DIR]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from _relay_procs import run_checked
from _scaleout_load import receive, send
from _scaleout_setup import (
    Config,
    _add_users,
    _postgres_database,
    _redis_prefix,
    embedded,
    serve,
    wirelab_exe,
)
from _util import HOST, tree_stats

Key = tuple[str, str]  # (code, configuration)


def _configs(root: Path, redis_url: str, stack: ExitStack) -> dict[str, Config]:
    database = stack.enter_context(_postgres_database())
    prefix = stack.enter_context(_redis_prefix(redis_url))
    run_checked([wirelab_exe(), "db", "upgrade", "--database-url", database], timeout=120)
    env = {
        "WIRELAB_DATABASE_URL": database,
        "WIRELAB_COORDINATION_URL": f"{redis_url}?prefix={prefix}-coord:",
    }
    pg = Config("pg-redis-local", env, root / "pg-scratch")
    pg.data.mkdir(parents=True)
    _add_users(pg)
    return {"pg-redis-local": pg}


def _leg(pid: int, url: str, config: Config, args: argparse.Namespace) -> tuple[float, ...]:
    """(sends/s, receives/s, server CPU ms per sent file, per received file)."""
    c0 = tree_stats(pid).cpu
    sent, bodies = send(url, config.tokens["alice"], args.senders, args.files, args.size)
    c1 = tree_stats(pid).cpu
    got = receive(url, config.tokens["bob"], args.receivers, bodies)
    c2 = tree_stats(pid).cpu
    per = 1000 / args.files
    return sent.per_s, got.per_s, (c1 - c0) * per, (c2 - c1) * per


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--senders", type=int, default=40)
    p.add_argument("--receivers", type=int, default=40)
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--size", type=int, default=256 * 1024)
    p.add_argument("--baseline-src", type=Path, help="a folder holding an older wirelab")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = p.parse_args()
    codes = {"this": os.environ.get("PYTHONPATH", "")}
    if args.baseline_src is not None:
        if not (args.baseline_src / "wirelab" / "__init__.py").is_file():
            raise SystemExit(f"--baseline-src: no wirelab package in {args.baseline_src}")
        codes["baseline"] = str(args.baseline_src.resolve())
    results: dict[Key, list[tuple[float, ...]]] = {}
    with tempfile.TemporaryDirectory(prefix="wirelab-relay-pg-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        shared = _configs(root, args.redis, stack)
        servers = {}
        for code, path in codes.items():
            for config in (embedded(root / code), shared["pg-redis-local"]):
                env = {**config.env, "PYTHONPATH": path} if path else config.env
                run_config = Config(config.name, env, config.data, config.tokens)
                data = config.data if config.name == "embedded" else root / f"pg-{code}"
                servers[(code, config.name)] = (
                    stack.enter_context(serve(run_config, 1, data)),
                    config,
                )
        keys = list(servers)
        for r in range(args.rounds):
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                server, config = servers[key]
                row = _leg(server.pid, f"http://{HOST}:{server.port}", config, args)
                results.setdefault(key, []).append(row)
                print(f"round {r} {key[0]:8} {key[1]:14} send {row[0]:6.1f}/s recv {row[1]:6.1f}/s"
                      f" cpu {row[2]:5.2f} / {row[3]:5.2f} ms/file"
                      f" (load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    _report(results, codes)
    return 0


def _report(results: dict[Key, list[tuple[float, ...]]], codes: dict[str, str]) -> None:
    best = {
        key: (max(r[0] for r in rows), max(r[1] for r in rows), min(r[2] for r in rows),
              min(r[3] for r in rows))
        for key, rows in results.items()
    }  # fmt: skip
    print("\nbest round: sends/s, receives/s, server CPU ms per file (send / receive)")
    for (code, name), (s, r, cs, cr) in best.items():
        print(f"  {code:8} {name:14} {s:6.1f} {r:6.1f}   {cs:5.2f} / {cr:5.2f}")
    for code in codes:
        emb, pg = best[(code, "embedded")], best[(code, "pg-redis-local")]
        print(f"  {code}: pg-redis-local / embedded {pg[0] / emb[0]:.2f}x send,"
              f" {pg[1] / emb[1]:.2f}x receive")  # fmt: skip
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    raise SystemExit(main())
