"""Speed of wirelab.crypto: encrypt and decrypt 256 MiB in-process, per chunk size.

Method. One 256 MiB plaintext buffer (a 1 MiB random block repeated: ChaCha20-Poly1305
runs at the same speed whatever the bytes) is encrypted and decrypted entirely in memory,
on one core, for each chunk size. Per round and chunk size:

- ``raw``: ChaCha20-Poly1305 ``encrypt`` of every chunk with no wirelab code around it,
  the ceiling for that chunk size;
- ``encrypt``: ``Encryptor.iter_ciphertext`` over memoryview slices of the buffer (output
  produced and dropped), i.e. key agreement, header and per-chunk bookkeeping included;
- ``decrypt``: ``Decryptor.feed`` of the ciphertext in 1 MiB pieces (as a download
  arrives), then ``close``; the plaintext is produced and dropped;
- ``reader`` (with ``--files``): ``EncryptingReader.read(1 MiB)`` over a 256 MiB file in
  a temporary folder (page cache; the first round warms it), i.e. the upload path.

Rounds are interleaved (every variant once per round) so that drifts of a shared machine
hit all alike; the median MB/s over the rounds is printed (1 MB = 10^6 bytes), with
min/max. Nothing is written to the project tree.

Run: ``.venv/bin/python benchmarks/crypto_speed.py [--rounds 5] [--size-mib 256] [--files]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wirelab.crypto import Decryptor, EncryptingReader, Encryptor, PublicKey, generate_keypair

MB = 1_000_000
MIB = 1024 * 1024
CHUNK_SIZES = (16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024)


def _timed(func: Callable[[], None]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _raw(plaintext: memoryview, chunk: int) -> None:
    aead = ChaCha20Poly1305(bytes(32))
    nonce = bytes(12)
    for offset in range(0, len(plaintext), chunk):
        aead.encrypt(nonce, plaintext[offset : offset + chunk], None)


def _encrypt(encryptor: Encryptor, plaintext: memoryview) -> None:
    for _ in encryptor.iter_ciphertext(lambda off, n: plaintext[off : off + n]):
        pass


def _encrypt_fresh(public: PublicKey, chunk: int, plaintext: memoryview) -> None:
    # A new encryptor per run, as each upload has: its key agreement is timed too.
    _encrypt(Encryptor(public, len(plaintext), chunk_size=chunk), plaintext)


def _decrypt(decryptor: Decryptor, ciphertext: memoryview) -> None:
    for offset in range(0, len(ciphertext), MIB):
        decryptor.feed(ciphertext[offset : offset + MIB])
    decryptor.close()


def _read_file(path: Path, encryptor: Encryptor) -> None:
    with EncryptingReader(path, encryptor) as reader:
        while reader.read(MIB):
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--files", action="store_true", help="also time EncryptingReader")
    args = parser.parse_args()

    size = args.size_mib * MIB
    plaintext = memoryview(os.urandom(MIB) * args.size_mib)
    private, public = generate_keypair()
    ciphertexts = {}
    for chunk in CHUNK_SIZES:
        enc = Encryptor(public, size, chunk_size=chunk)
        ciphertexts[chunk] = (enc, b"".join(enc.iter_ciphertext(lambda o, n: plaintext[o : o + n])))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plain.bin"
        if args.files:
            path.write_bytes(plaintext)
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for chunk, (enc, ct) in ciphertexts.items():
                variants: dict[str, Callable[[], None]] = {
                    "raw": partial(_raw, plaintext, chunk),
                    "encrypt": partial(_encrypt_fresh, public, chunk, plaintext),
                    "decrypt": partial(_decrypt, Decryptor(private), memoryview(ct)),
                }
                if args.files:
                    variants["reader"] = partial(_read_file, path, enc)
                for name, func in variants.items():
                    times.setdefault((name, chunk), []).append(_timed(func))

    print(f"{args.size_mib} MiB in-process, {args.rounds} rounds, median MB/s (min-max)")
    print(f"{'variant':<8} {'chunk':>9} {'median':>8} {'min':>8} {'max':>8}")
    for (name, chunk), secs in sorted(times.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rates = [size / s / MB for s in secs]
        print(
            f"{name:<8} {chunk // 1024:>6} KiB {statistics.median(rates):>8.0f} "
            f"{min(rates):>8.0f} {max(rates):>8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
