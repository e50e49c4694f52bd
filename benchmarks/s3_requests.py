"""S3 requests and store CPU per relayed file, against ``rclone serve s3``.

A relayed file goes through the S3 store as the relay drives it: *send* (a direct
``put`` of a freshly generated key), *download* (``open`` and read it all) and
*acknowledge* (``delete``; with ``--delete-batch N``, ``delete_many`` of N keys at a time,
as the relay deletes acknowledged files' blobs in the background under load),
``--concurrency`` files at a time. For each leg this counts
the S3 requests per file (every request, through botocore or the lean client, see
``S3BlobStore.bucket.watch``) and the CPU seconds of this process per file (the store's
own cost: hashing, signing, HTTP, threads; rclone runs in its own process and is not
counted). The CPU figure depends far less on the machine's load than a rate does.

Two rows: ``lean`` (single-object requests through the lean client, the default) and
``botocore`` (``S3BlobStore(lean=False)``: everything through botocore). Run against an
older checkout (``PYTHONPATH=<its src>``), the script measures what that version does
(one row: as installed).

    .venv/bin/python benchmarks/s3_requests.py [--files 200] [--size-kib 256] [--rounds 3]
        [--concurrency 1] [--delete-batch 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _util import set_env

from wirelab.storage import S3BlobStore
from wirelab.testing._s3server import aws_env, rclone_server

LEGS = ("send", "download", "acknowledge")


async def body(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def _watch(store: S3BlobStore, seen: list[str]) -> None:
    """Record every S3 request of *store* (older versions: botocore's event only)."""
    watch = getattr(store.bucket, "watch", None)
    if watch is not None:
        watch(seen.append)
        return
    store.bucket.client.meta.events.register(
        "before-call.s3", lambda model, **_: seen.append(model.name)
    )


async def one_round(
    store: S3BlobStore, data: bytes, files: int, concurrency: int, delete_batch: int = 1
) -> dict[str, dict[str, Any]]:
    """Per leg: requests per file, CPU ms per file, and the operations of one file (at
    concurrency 1: the first file's, in order)."""
    seen: list[str] = []
    _watch(store, seen)
    digest = hashlib.sha256(data).hexdigest()
    keys = [uuid.uuid4().hex for _ in range(files)]
    new_key = "new_key" in inspect.signature(store.put).parameters
    extra: dict[str, Any] = {"new_key": True} if new_key else {}
    slots = asyncio.Semaphore(concurrency)

    async def one(leg: str, key: str) -> None:
        async with slots:
            if leg == "send":
                await store.put(key, body(data), expected_sha256=digest, **extra)
            elif leg == "download":
                async with await store.open(key) as reader:
                    size = sum([len(part) async for part in reader])
                assert size == len(data)
            else:
                await store.delete(key)

    async def legs(leg: str) -> None:
        if leg == "acknowledge" and delete_batch > 1:
            for first in range(0, len(keys), delete_batch):
                await store.delete_many(keys[first : first + delete_batch])
        else:
            await asyncio.gather(*(one(leg, key) for key in keys))

    result: dict[str, dict[str, Any]] = {}
    for leg in LEGS:
        seen.clear()
        cpu = time.process_time()
        await legs(leg)
        used = time.process_time() - cpu
        first = seen[: len(seen) // files]
        result[leg] = {"requests": len(seen) / files, "cpu_ms": used * 1000 / files, "ops": first}
    return result


async def measure(bucket: str, lean: bool | None, args: argparse.Namespace) -> dict[str, Any]:
    options = {} if lean is None else {"lean": lean}
    store = S3BlobStore(bucket, f"bench-{uuid.uuid4().hex[:8]}/", **options)
    data = os.urandom(args.size_kib * 1024)
    # warm-up: connections, imports, signing keys
    await one_round(store, data, 5, args.concurrency, args.delete_batch)
    rounds = [
        await one_round(store, data, args.files, args.concurrency, args.delete_batch)
        for _ in range(args.rounds)
    ]
    best: dict[str, Any] = {}
    for leg in LEGS:
        best[leg] = dict(rounds[0][leg], cpu_ms=min(r[leg]["cpu_ms"] for r in rounds))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-kib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1, help="files in flight at once")
    parser.add_argument(
        "--delete-batch", type=int, default=1, help="keys per delete_many (1: delete each)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    has_lean = "lean" in inspect.signature(S3BlobStore).parameters
    modes: dict[str, bool | None] = {"lean": True, "botocore": False} if has_lean else {}
    modes = modes or {"as installed": None}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, rclone_server(Path(tmp)) as server:
        set_env(aws_env(server, Path(tmp)))
        bucket = server.new_bucket()
        rows = {label: asyncio.run(measure(bucket, lean, args)) for label, lean in modes.items()}
    report = {"files": args.files, "size_KiB": args.size_kib, "concurrency": args.concurrency}
    report["delete_batch"] = args.delete_batch
    report["load_start"] = load
    report |= {"load_end": os.getloadavg()[0], "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{args.files} files of {args.size_kib} KiB, {args.concurrency} at a time, deleted "
        f"{args.delete_batch} per request, rclone "
        f"serve s3; CPU: best of "
        f"{args.rounds} rounds; load average {load:.1f} -> {report['load_end']:.1f}"
    )
    print(f"{'client':<13}" + "".join(f"{leg + ' req':>16}{'ms CPU':>8}" for leg in LEGS))
    for label, row in rows.items():
        cells = "".join(f"{row[leg]['requests']:>16.1f}{row[leg]['cpu_ms']:>8.2f}" for leg in LEGS)
        total = sum(row[leg]["requests"] for leg in LEGS)
        print(f"{label:<13}{cells}   total {total:.1f} requests/file")
    for label, row in rows.items():
        print(f"{label}: " + "; ".join(f"{leg} {' '.join(row[leg]['ops'])}" for leg in LEGS))


if __name__ == "__main__":
    main()
