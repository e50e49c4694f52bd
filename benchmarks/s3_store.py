"""How fast do bytes go through the S3 blob store (on moto in server mode) vs the local
folder store, in one run?

Each round uploads SIZE bytes through ``create_upload`` + ``append`` (one append, in
64 KiB chunks, as a tus PATCH) + ``commit`` (digest verified from the running hash), then
reads the blob back through ``open``. Reported: MB/s (10^6 bytes) per direction, best of
the rounds, and the S3/local ratio. moto keeps objects in its own memory, so this
measures the store's own overhead plus one local S3 server, not a network.

    .venv/bin/python benchmarks/s3_store.py [--size-mib 64] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from _util import set_env

from wirelab.storage import BlobStore, LocalBlobStore, S3BlobStore
from wirelab.testing._s3server import aws_env, moto_server

CHUNK = bytes(range(256)) * 256  # 64 KiB


async def chunks(size: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        part = CHUNK[: min(len(CHUNK), size - sent)]
        sent += len(part)
        yield part


async def one_round(store: BlobStore, name: str, size: int) -> tuple[float, float]:
    """(upload MB/s, download MB/s) of one blob of *size* bytes."""
    start = time.perf_counter()
    await store.create_upload(name)
    await store.append(name, 0, chunks(size))
    await store.commit(name, name, expected_sha256=None)
    up = time.perf_counter() - start
    start = time.perf_counter()
    received = 0
    async with await store.open(name) as reader:
        async for part in reader:
            received += len(part)
    down = time.perf_counter() - start
    assert received == size
    await store.delete(name)
    return size / up / 1e6, size / down / 1e6


async def measure(make: Callable[[], BlobStore], size: int, rounds: int) -> dict[str, float]:
    store = make()
    results = [await one_round(store, f"r{i}", size) for i in range(rounds)]
    return {"upload_MBps": max(r[0] for r in results), "download_MBps": max(r[1] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp)) as server:
        set_env(aws_env(server, Path(tmp)))
        bucket = server.new_bucket()
        local = asyncio.run(measure(lambda: LocalBlobStore(Path(tmp) / "local"), size, args.rounds))
        s3 = asyncio.run(measure(lambda: S3BlobStore(bucket, "bench/"), size, args.rounds))
    report = {
        "size_MiB": args.size_mib,
        "local": local,
        "s3_moto": s3,
        "ratio_upload": s3["upload_MBps"] / local["upload_MBps"],
        "ratio_download": s3["download_MBps"] / local["download_MBps"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.size_mib} MiB blob, best of {args.rounds} rounds (MB/s)")
    print(f"{'store':<10} {'upload':>10} {'download':>10}")
    for label, row in (("local", local), ("s3 (moto)", s3)):
        print(f"{label:<10} {row['upload_MBps']:>10.1f} {row['download_MBps']:>10.1f}")
    print(f"s3/local   {report['ratio_upload']:>10.2f}x {report['ratio_download']:>9.2f}x")


if __name__ == "__main__":
    main()
