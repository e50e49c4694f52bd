"""Cost of ``content=random`` per core: candidate bit generators and the stream digests.

Method. Each candidate produces ``--size-mib`` MiB of fresh random bytes in 64 KiB steps
(the stream engine's ``CHUNK_SIZE``), in one thread, as the engine would consume them:

- ``sfc64``: numpy SFC64 ``random_raw`` viewed as bytes (what wirelab uses; zero-copy);
- ``philox``: numpy Philox ``random_raw``, same use;
- ``aes-ctr``: AES-128-CTR keystream from ``cryptography`` (``update_into`` of a zero
  buffer into a reused output buffer);
- ``aes-gcm``: the same with AES-128-GCM (zero IV): the CTR keystream from block 2 on,
  which is how wirelab makes it (``stream/_keystream.py``);
- ``blake3-xof``: BLAKE3's extendable output (``digest(n, seek=offset)``);
- ``wirelab``: ``ContentSource.file_chunks`` for int16 random files (the generic path);
- ``wirelab-fill``: ``ContentSource.fill`` of 1 MiB messages into fresh numpy buffers
  (the path of large files on ``/v1/stream``);
- ``sha256`` / ``blake3``: hashing the same volume in 64 KiB updates (the per-file
  digest of every ``/v1/stream`` byte).

Rounds are interleaved (every variant once per round) so that drifts of a shared machine
hit all alike; the median GB/s over the rounds is printed (1 GB = 10^9 bytes), with
min/max. Nothing is written anywhere.

Run: ``.venv/bin/python benchmarks/random_gen.py [--rounds 5] [--size-mib 256]``
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import blake3
import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wirelab.stream import ContentSource, StreamParams

STEP = 64 * 1024
MIB = 1024 * 1024


def _sfc64(total: int) -> None:
    bits = np.random.SFC64(1)
    for _ in range(total // STEP):
        bits.random_raw(STEP // 8).data.cast("B")


def _philox(total: int) -> None:
    bits = np.random.Philox(1)
    for _ in range(total // STEP):
        bits.random_raw(STEP // 8).data.cast("B")


def _aes(mode: modes.Mode) -> Callable[[int], None]:
    def run(total: int) -> None:
        cipher: Any = Cipher(algorithms.AES(bytes(16)), mode)  # encryptor() type by mode
        encryptor = cipher.encryptor()
        zeros, out = bytes(STEP), bytearray(STEP + 15)
        for _ in range(total // STEP):
            encryptor.update_into(zeros, out)

    return run


def _blake3_xof(total: int) -> None:
    xof = blake3.blake3(b"seed")
    for offset in range(0, total, STEP):
        xof.digest(STEP, seek=offset)


def _wirelab(total: int) -> None:
    source = ContentSource(StreamParams(content="random"), 1)
    for _ in source.file_chunks(total):
        pass


def _wirelab_fill(total: int) -> None:
    source = ContentSource(StreamParams(content="random"), 1)
    for _ in range(total // MIB):
        source.fill(np.empty(MIB + 15, np.uint8).data, MIB)


def _hash(new: Callable[[], object]) -> Callable[[int], None]:
    block = np.random.default_rng(1).bytes(STEP)

    def run(total: int) -> None:
        hasher = new()
        for _ in range(total // STEP):
            hasher.update(block)  # type: ignore[attr-defined]

    return run


VARIANTS: dict[str, Callable[[int], None]] = {
    "sfc64": _sfc64,
    "philox": _philox,
    "aes-ctr": _aes(modes.CTR(bytes(16))),
    "aes-gcm": _aes(modes.GCM(bytes(12))),
    "blake3-xof": _blake3_xof,
    "wirelab": _wirelab,
    "wirelab-fill": _wirelab_fill,
    "sha256": _hash(hashlib.sha256),
    "blake3": _hash(blake3.blake3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    total = args.size_mib * MIB
    speeds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, run in VARIANTS.items():
            start = time.perf_counter()
            run(total)
            speeds[name].append(total / (time.perf_counter() - start) / 1e9)
    print(f"{'variant':<12} {'median GB/s':>11} {'min':>6} {'max':>6}  ({args.rounds} rounds)")
    for name, values in speeds.items():
        print(f"{name:<12} {statistics.median(values):>11.2f} {min(values):>6.2f} "
              f"{max(values):>6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
