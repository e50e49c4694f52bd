"""Scale-out: relay sends with the embedded coordination, Redis, and 2 server processes.

Question: what does sharing the relay's state through Redis cost per request, and what do
two server processes (``wirelab serve --workers 2``) give on this machine?
Target (ratio within one run): the Redis-coordinated server keeps >= 0.7x the embedded
one's concurrent send rate.

Method: users alice and bob, one temporary data folder per configuration, the machine's
Redis (``--redis``, default ``redis://127.0.0.1:6379/0``; keys under a random prefix,
deleted at the end). Configurations: ``embedded`` (one process, no coordination),
``redis`` (one process, ``WIRELAB_COORDINATION_URL``), ``redis-2`` (``--workers 2``).
For each, ``--rounds`` times, interleaved: ``--senders`` concurrent senders (one
connection each) send ``--files`` files of ``--size`` bytes (durable direct sends,
``POST /v1/relay/files``); files/s = files / wall time. The best round of each
configuration is reported (the machine is shared: the best is the least disturbed), and
every file is verified (listed with its SHA-256, downloaded and compared, untimed).

Run: ``.venv/bin/python benchmarks/scaleout.py [--rounds 3] [--senders 40] [--files 600]
[--size 65536] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
from _relay_procs import add_user
from _util import HOST, free_port, install_cleanup, wirelab_command, wirelab_server
from small_files import concurrent, verify

CONFIGS = {"embedded": (None, 1), "redis": ("redis", 1), "redis-2": ("redis", 2)}


def _wait_for_pids(url: str, count: int, timeout: float = 60) -> None:
    """Until ``count`` different server processes answered ``/healthz``."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {count} server processes answered")
        seen.add(httpx.get(url + "/healthz").json()["pid"])


def run_config(name: str, coordination: str, args: argparse.Namespace, tmp: Path) -> float:
    """One round of configuration ``name``: files/s."""
    kind, workers = CONFIGS[name]
    log_dir = tmp / f"{name}-{secrets.token_hex(3)}"
    data = log_dir / "data"
    data.mkdir(parents=True)
    command = wirelab_command(args.server)
    tokens = {n: add_user(command[:-1], n, data) for n in ("alice", "bob")}
    env = {"WIRELAB_WORKERS": str(workers)}
    if kind is not None:
        env["WIRELAB_COORDINATION_URL"] = coordination
    port = free_port()
    with wirelab_server(port, log_dir, command, env):
        url = f"http://{HOST}:{port}"
        _wait_for_pids(url, workers)
        wall, _times, bodies = asyncio.run(
            concurrent(url, tokens["alice"], args.senders, args.files, args.size)
        )
        lost = verify(url, tokens["bob"], bodies)
    if lost:
        raise SystemExit(f"{name}: {lost} files lost or damaged")
    files: int = args.files
    return files / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=40)
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--server", default=None, help="command that starts the server")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    install_cleanup()
    prefix = f"wirelab-bench-{secrets.token_hex(6)}:"
    coordination = f"{args.redis}?prefix={prefix}"
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    try:
        with tempfile.TemporaryDirectory(prefix="wirelab-scaleout-") as tmp:
            for _ in range(args.rounds):
                for name in CONFIGS:
                    rates[name].append(run_config(name, coordination, args, Path(tmp)))
    finally:
        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    return report(args, {name: max(r) for name, r in rates.items()})


def report(args: argparse.Namespace, best: dict[str, float]) -> int:
    redis_ratio = best["redis"] / best["embedded"]
    workers_ratio = best["redis-2"] / best["redis"]
    result = {
        "files_per_s": best,
        "redis_vs_embedded": redis_ratio,
        "two_processes_vs_one": workers_ratio,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "targets_met": redis_ratio >= 0.7,
    }
    if args.json:
        print(json.dumps(result))
    else:
        what = f"{args.senders} senders x {args.files} files of {args.size} B"
        print(f"{what} (best of {args.rounds})")
        for name, rate in best.items():
            print(f"  {name:<10} {rate:8.0f} files/s")
        print(f"redis / embedded             {redis_ratio:.2f}x (target >= 0.7)")
        print(f"2 processes / 1 (redis)      {workers_ratio:.2f}x")
        print(f"cores {result['cores']}, load average (1 min) {result['load_average']:.1f}")
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
