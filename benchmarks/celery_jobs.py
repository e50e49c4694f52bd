"""Media jobs on Celery workers vs in the server, in one run.

1. Round trip of one short ``fast`` clip (2 s of the local MP4): submit to ``succeeded``
   (polled every 10 ms), on a server running jobs itself (embedded) and on a server with
   ``--jobs-url`` plus one ``wirelab worker``; rounds alternate, medians.
2. Jobs per minute: ``--jobs`` distinct ``exact`` clips submitted at once, with one
   worker and with two (each ``--media-workers 2``), until all succeeded.

Needs Redis on 127.0.0.1:6379 (keys under a fresh prefix, deleted at the end).
Run: ``.venv/bin/python benchmarks/celery_jobs.py [--rounds 7] [--jobs 8] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
from _relay_procs import WirelabServer, add_user
from _util import median

from wirelab.media.testing import make_test_media, media_server

REDIS = "redis://127.0.0.1:6379/0"


@contextmanager
def worker(wirelab: str, data: Path, queue: str, log: Path) -> Iterator[None]:
    """A ``wirelab worker`` process, ready (consuming) when entered."""
    argv = [wirelab, "worker", "--data-dir", str(data), "--jobs-url", REDIS]
    argv += ["--jobs-queue", queue, "--media-allow-network", "127.0.0.0/8"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start: see {log}")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def server(wirelab: str, root: Path, name: str, queue: str | None) -> Iterator[httpx.Client]:
    """A ``wirelab serve`` (Celery when ``queue``) and a client of user alice."""
    data = root / name
    data.mkdir()
    token = add_user([wirelab], "alice", data)
    proc = WirelabServer([wirelab], data, root / f"{name}.log")
    proc.argv += ["--media-allow-network", "127.0.0.0/8"]
    if queue:
        proc.argv += ["--jobs-url", REDIS, "--jobs-queue", queue]
    proc.start()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=proc.url, headers=headers, timeout=60) as client:
            yield client
    finally:
        proc.stop()


def finish(client: httpx.Client, ids: list[str]) -> None:
    """Poll until every job of ``ids`` succeeded."""
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            state = client.get(f"/v1/media/jobs/{job_id}").json()["state"]
            if state == "succeeded":
                pending.discard(job_id)
            elif state in ("failed", "canceled"):
                raise SystemExit(f"job {job_id} {state}")
        time.sleep(0.01)


def round_trip(client: httpx.Client, source: str) -> float:
    started = time.perf_counter()
    body = {"source": source, "start": "3", "end": "5", "accuracy": "fast"}
    job_id = client.post("/v1/media/jobs", json=body).json()["id"]
    finish(client, [job_id])
    took = time.perf_counter() - started
    client.delete(f"/v1/media/jobs/{job_id}")  # the next identical request: a new job
    return took


def batch(client: httpx.Client, source: str, jobs: int, offset: float) -> float:
    """Jobs per minute for ``jobs`` distinct 6 s exact clips submitted at once (starting
    ``offset`` s into whole seconds, so each batch asks for new clips)."""
    started = time.perf_counter()
    ids = [
        client.post(
            "/v1/media/jobs", json={"source": source, "start": str(n + offset),
                                    "end": str(n + offset + 6),
                                    "accuracy": "exact"}
        ).json()["id"]
        for n in range(jobs)
    ]  # fmt: skip
    finish(client, ids)
    return jobs * 60 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wirelab = str(Path(__import__("sys").executable).parent / "wirelab")
    queue = f"wirelab-bench-{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        media = make_test_media(root / "media", duration=30)
        source = stack.enter_context(media_server(media.root)).url("video.mp4")
        embedded = stack.enter_context(server(wirelab, root, "embedded", None))
        celery = stack.enter_context(server(wirelab, root, "celery", queue))
        stack.enter_context(worker(wirelab, root / "celery", queue, root / "worker1.log"))
        times: dict[str, list[float]] = {"embedded": [], "celery": []}
        for n in range(args.rounds + 1):  # round 0 warms both up, untimed
            legs = [("embedded", embedded), ("celery", celery)]
            for name, client in legs if n % 2 else legs[::-1]:
                took = round_trip(client, source)
                if n:
                    times[name].append(took)
        for name, values in times.items():
            results[f"round_trip_{name}_ms"] = round(median(values) * 1000, 1)
        results["round_trip_ratio"] = round(median(times["celery"]) / median(times["embedded"]), 2)
        results["jobs_per_min_1_worker"] = round(batch(celery, source, args.jobs, 0.0), 1)
        stack.enter_context(worker(wirelab, root / "celery", queue, root / "worker2.log"))
        results["jobs_per_min_2_workers"] = round(batch(celery, source, args.jobs, 0.5), 1)
    store: Any = redis.Redis.from_url(REDIS)
    keys = list(store.scan_iter(match=f"{queue}:*"))
    if keys:
        store.delete(*keys)
    store.close()
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
