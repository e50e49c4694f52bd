"""The loads of ``scaleout.py``: relay sends and receives, media jobs, paced streams.

Relay: ``small_files.concurrent`` sends (alice to bob, durable direct sends); receivers
lease (``POST /v1/relay/inbox/next``), download, compare with what was sent and
acknowledge (``DELETE``) until the inbox is empty: every file is verified by the receive
leg itself. Streams: the client of ``concurrency.py`` (its worker processes, its
lateness figures).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx
from _conc_client import MAX_SOCKETS_PER_WORKER, Plan
from _conc_report import summarise
from _util import HOST, MB, Server
from celery_jobs import finish
from concurrency import _drive
from small_files import concurrent


@dataclass(frozen=True)
class Rate:
    """Files (or jobs) per second and MB/s of one timed leg."""

    per_s: float
    mb_per_s: float


def send(url: str, token: str, senders: int, files: int, size: int) -> tuple[Rate, list[bytes]]:
    """``files`` durable sends of ``size`` random bytes by ``senders`` connections."""
    wall, _times, bodies = asyncio.run(concurrent(url, token, senders, files, size))
    return Rate(files / wall, files * size / wall / MB), bodies


async def _receive(url: str, token: str, receivers: int, bodies: list[bytes]) -> float:
    wanted = {hashlib.sha256(b).hexdigest(): b for b in bodies}
    problems: list[str] = []

    async def receiver() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
            while True:
                leased = await client.post("/v1/relay/inbox/next", params={"lease": 60})
                if leased.status_code == 204:
                    return
                leased.raise_for_status()
                file = leased.json()
                body = (await client.get(f"/v1/relay/files/{file['id']}")).content
                if wanted.pop(hashlib.sha256(body).hexdigest(), None) is None:
                    problems.append(f"{file['id']}: not sent, twice, or damaged")
                (await client.delete(f"/v1/relay/files/{file['id']}")).raise_for_status()

    t0 = time.perf_counter()
    await asyncio.gather(*(receiver() for _ in range(receivers)))
    wall = time.perf_counter() - t0
    if problems or wanted:
        raise SystemExit(f"receive: {len(problems)} bad, {len(wanted)} missing: {problems[:3]}")
    return wall


def receive(url: str, token: str, receivers: int, bodies: list[bytes]) -> Rate:
    """Lease, download, verify and acknowledge every file of ``bodies`` (exactly those)."""
    wall = asyncio.run(_receive(url, token, receivers, bodies))
    return Rate(len(bodies) / wall, sum(map(len, bodies)) / wall / MB)


# ---------------------------------------------------------------------------------------
# media jobs


def media_batch(url: str, token: str, source: str, jobs: int, clip: float, offset: float) -> Rate:
    """``jobs`` distinct ``exact`` clips of ``clip`` s submitted at once, until all
    succeeded: jobs per second (``mb_per_s``: the results' MB/s). ``offset`` (< 1) makes
    each batch ask for new clips. The jobs are deleted afterwards (untimed)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        t0 = time.perf_counter()
        ids = []
        for n in range(jobs):
            start = n * (clip + 1) + offset
            body = {"source": source, "start": f"{start:.2f}", "end": f"{start + clip:.2f}",
                    "accuracy": "exact"}  # fmt: skip
            resp = client.post("/v1/media/jobs", json=body)
            if resp.status_code >= 300:
                raise SystemExit(f"media job refused: {resp.status_code} {resp.text}")
            ids.append(resp.json()["id"])
        finish(client, ids)
        wall = time.perf_counter() - t0
        docs = [client.get(f"/v1/media/jobs/{i}").json() for i in ids]
        size = sum((doc.get("result") or {}).get("size") or 0 for doc in docs)
        for job_id in ids:
            client.delete(f"/v1/media/jobs/{job_id}")
    return Rate(jobs / wall, size / wall / MB)


# ---------------------------------------------------------------------------------------
# paced streams


@dataclass(frozen=True)
class StreamRun:
    streams: int
    p99_ms: float  # lateness of every file, from the client's request
    complete: bool  # every file of every stream arrived, no error
    server_cpu_pct: float  # the server's process tree, % of one core over the run
    client_cpu_pct: float  # all client worker processes together, % of one core

    def within(self, bound_ms: float) -> bool:
        return self.complete and self.p99_ms <= bound_ms


def streams(server: Server, n: int, duration: float, interval: float) -> StreamRun:
    """``n`` concurrent paced streams of 1-4 KB files every ``interval`` s for
    ``duration`` s, opened over max(2, n/2500) s, against ``server``."""
    count = max(1, math.ceil(duration / interval))
    workers = max(1 if n <= 5_000 else 2, math.ceil(n / MAX_SOCKETS_PER_WORKER))
    path = (f"/v1/stream?count={count}&min_size=1024&max_size=4096&min_interval={interval}"
            f"&max_interval={interval}&seed={{seed}}&content=random")  # fmt: skip
    plan = Plan(n, count, interval, max(2.0, n / 2500), workers, path)
    measured = _drive(server, plan.jobs(server.port, 20.0), 0.25)
    run: dict[str, Any] = summarise(f"http://{HOST}:{server.port}", plan, measured, [], {})
    p99 = run["lateness_all_ms"]["p99"]
    complete = run["files_received"] == run["files_expected"] and not run["errors"]
    server_cpu = run["server_cpu_pct"] or 0.0
    client_cpu = sum(run["client_cpu_pct"])
    return StreamRun(n, math.inf if p99 is None else p99, complete, server_cpu, client_cpu)
