"""Small files: durable direct sends (``POST /v1/relay/files``) of small files.

Question: what does the durability promise (a 201 means the file is on disk, crash-safe)
cost per small file, one after another and with many senders at once?
Targets (ratios within one run): sequential 1 KB sends p50 <= 3x the same client's
``/healthz`` round trip plus one fsync; 40 concurrent senders of 200 KB files >= 200
files/s; nothing lost.

Method: a temporary data folder (``--dir``, default a temporary folder; its file system
decides what an fsync costs), users alice and bob (``wirelab users add``), one ``wirelab
serve`` on 127.0.0.1 (log level warning). Then, in one run:

1. the cost of one fsync in the data folder: write 1 KB to a file and ``fsync`` it,
   ``--fsyncs`` times; the median;
2. the ``/healthz`` round trip on one kept-alive httpx connection, ``--count`` times;
3. ``--count`` sequential 1 KB sends on that same connection (a different random body
   each, its SHA-256 in ``Wirelab-Sha256``); p50 and p99 per send;
4. ``--senders`` concurrent senders (one asyncio task and connection each) sending
   ``--concurrent-files`` files of 200 KB in total; files/s = files / wall time, and the
   p99 per send.

Every file is then checked: bob's inbox must list exactly the files sent, each with the
size and SHA-256 of its body, and every body is downloaded and compared (untimed). Exit
status 0 when both targets are met and nothing was lost.

Run: ``.venv/bin/python benchmarks/small_files.py [--count 300] [--senders 40]
[--concurrent-files 1200] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _relay_procs import add_user
from _util import HOST, free_port, install_cleanup, proc_stats, wirelab_command, wirelab_server


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def fsync_cost(folder: Path, rounds: int) -> float:
    """Median seconds of one 1 KB write + fsync in ``folder``."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        for _ in range(rounds):
            os.write(fd, os.urandom(1024))
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def _headers(token: str, body: bytes) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Wirelab-Sha256": hashlib.sha256(body).hexdigest()}


def sequential(url: str, token: str, count: int) -> tuple[list[float], list[float], list[bytes]]:
    """/healthz and 1 KB send round trips on one connection: (healthz, send, bodies)."""
    health, sends, bodies = [], [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/healthz")  # open the connection
        for i in range(count):
            t0 = time.perf_counter()
            client.get("/healthz").raise_for_status()
            health.append(time.perf_counter() - t0)
            body = os.urandom(1024)
            headers = _headers(token, body)
            t0 = time.perf_counter()
            resp = client.post(
                "/v1/relay/files",
                params={"to": "bob", "name": f"seq-{i}.bin"},
                headers=headers,
                content=body,
            )
            sends.append(time.perf_counter() - t0)
            if resp.status_code != 201:
                raise SystemExit(f"send {i} failed: {resp.status_code} {resp.text}")
            bodies.append(body)
    return health, sends, bodies


async def concurrent(
    url: str, token: str, senders: int, files: int, size: int
) -> tuple[float, list[float], list[bytes]]:
    """``files`` sends of ``size`` bytes by ``senders`` tasks: (seconds, per send, bodies)."""
    bodies = [os.urandom(size) for _ in range(files)]
    headers = [_headers(token, b) for b in bodies]
    queue = list(range(files))
    times: list[float] = []

    async def sender() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            while queue:
                i = queue.pop()
                t0 = time.perf_counter()
                resp = await client.post(
                    "/v1/relay/files",
                    params={"to": "bob", "name": f"conc-{i}.bin"},
                    headers=headers[i],
                    content=bodies[i],
                )
                times.append(time.perf_counter() - t0)
                if resp.status_code != 201:
                    raise SystemExit(f"concurrent send {i} failed: {resp.status_code} {resp.text}")

    t0 = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return time.perf_counter() - t0, times, bodies


def verify(url: str, token: str, bodies: list[bytes]) -> int:
    """Number of sent bodies missing or damaged in bob's inbox (each one downloaded)."""
    wanted = {hashlib.sha256(b).hexdigest(): b for b in bodies}
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=120, headers=auth) as client:
        bad = 0  # listed files that were not sent (or twice), or whose bytes differ
        for f in client.get("/v1/relay/inbox").json()["files"]:
            body = wanted.pop(f["sha256"], None)
            if body is None or client.get(f"/v1/relay/files/{f['id']}").content != body:
                bad += 1
        return bad + len(wanted)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="sequential 1 KB sends")
    parser.add_argument("--senders", type=int, default=40)
    parser.add_argument("--concurrent-files", type=int, default=1200)
    parser.add_argument("--size", type=int, default=200_000, help="bytes per concurrent file")
    parser.add_argument("--fsyncs", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the data folder")
    parser.add_argument("--server", default=None, help="command that starts the server")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    install_cleanup()
    with tempfile.TemporaryDirectory(prefix="wirelab-small-", dir=args.dir) as tmp:
        log_dir = Path(tmp)
        command = wirelab_command(args.server)
        wirelab = [*command[:-1]]  # the CLI without "serve", for `users add`
        data = log_dir / "data"
        data.mkdir()
        tokens = {n: add_user(wirelab, n, data) for n in ("alice", "bob")}
        fsync = fsync_cost(data, args.fsyncs)
        port = free_port()
        with wirelab_server(port, log_dir, command) as server:
            url = f"http://{HOST}:{port}"
            health, sends, seq_bodies = sequential(url, tokens["alice"], args.count)
            before = proc_stats(server.pid)
            wall, conc_times, conc_bodies = asyncio.run(
                concurrent(url, tokens["alice"], args.senders, args.concurrent_files, args.size)
            )
            cpu = (proc_stats(server.pid) - before).cpu / args.concurrent_files
            lost = verify(url, tokens["bob"], seq_bodies + conc_bodies)
    return report(args, fsync, health, sends, (wall, cpu), conc_times, lost)


def report(
    args: argparse.Namespace,
    fsync: float,
    health: list[float],
    sends: list[float],
    concurrent_run: tuple[float, float],
    conc_times: list[float],
    lost: int,
) -> int:
    ms = 1000.0
    wall, cpu = concurrent_run
    hz, p50 = statistics.median(health), statistics.median(sends)
    budget = 3 * hz + fsync
    rate = args.concurrent_files / wall
    result = {
        "fsync_ms": fsync * ms,
        "healthz_ms": hz * ms,
        "send_1k_p50_ms": p50 * ms,
        "send_1k_p99_ms": percentile(sends, 0.99) * ms,
        "send_1k_budget_ms": budget * ms,
        "concurrent_files_per_s": rate,
        "concurrent_p99_s": percentile(conc_times, 0.99),
        "server_cpu_ms_per_file": cpu * ms,
        "lost_or_damaged": lost,
        "load_average": os.getloadavg()[0],
        "targets_met": p50 <= budget and rate >= 200 and lost == 0,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"fsync (1 KB, data folder)    {result['fsync_ms']:.2f} ms")
        print(f"/healthz round trip p50      {result['healthz_ms']:.2f} ms")
        print(f"1 KB send p50 / p99          {p50 * ms:.2f} / {result['send_1k_p99_ms']:.2f} ms")
        print(f"  target: p50 <= 3 x healthz + fsync = {budget * ms:.2f} ms")
        print(f"{args.senders} senders x {args.size} B     {rate:.0f} files/s (target >= 200)")
        print(f"  p99 per send               {result['concurrent_p99_s'] * ms:.1f} ms")
        print(f"  server CPU per file        {cpu * ms:.2f} ms")
        print(f"lost or damaged              {lost}")
        print(f"load average (1 min)         {result['load_average']:.1f}")
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
