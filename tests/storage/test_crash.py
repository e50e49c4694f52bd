"""A real crash test: SIGKILL a process that uploads and commits, then recover and check.

After every kill a new store on the same root recovers, and then every upload is a
byte-exact prefix of the data written and every blob is complete with its digest, or
absent. The child (crash_child.py) resumes from whatever survived.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab.storage import BlobNotFoundError, LocalBlobStore, UploadNotFoundError

CHILD = Path(__file__).with_name("crash_child.py")
_spec = importlib.util.spec_from_file_location("wirelab_storage_crash_child", CHILD)
assert _spec is not None and _spec.loader is not None
_child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_child)
BLOBS: int = _child.BLOBS
size: Callable[[int], int] = _child.size
expected: Callable[[int, int, int], bytes] = _child.expected


def start_child(root: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


async def check_consistent(root: Path) -> int:
    """Recover with a new store and check every byte; return the number of blobs."""
    store = LocalBlobStore(root)
    await store.recover()
    assert not list((root / "tmp").iterdir())
    assert not [p for p in (root / "uploads").iterdir() if p.name.startswith(".")]
    committed = 0
    for i in range(BLOBS):
        try:
            info = await store.stat(f"b{i}")
        except BlobNotFoundError:
            try:
                offset = await store.upload_offset(f"u{i}")
            except UploadNotFoundError:
                continue
            assert 0 <= offset <= size(i)
            content = (root / "uploads" / f"u{i}.data").read_bytes()
            assert content == expected(i, 0, offset), f"upload u{i} is not a clean prefix"
            continue
        want = hashlib.sha256(expected(i, 0, size(i))).hexdigest()
        assert (info.size, info.sha256) == (size(i), want)
        digest = hashlib.sha256()
        async with await store.open(f"b{i}") as reader:
            async for part in reader:
                digest.update(part)
        assert digest.hexdigest() == want
        with pytest.raises(UploadNotFoundError):
            await store.upload_offset(f"u{i}")
        committed += 1
    return committed


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_at_random_moments_never_corrupts(tmp_path: Path) -> None:
    rounds = 0
    root = tmp_path / "store0"
    rng = random.Random()
    kills = 0
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        proc = start_child(root)
        time.sleep(rng.uniform(0.0, 0.06))
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        output = proc.stdout.read()
        proc.stdout.close()
        if finished or output == "done\n":
            assert proc.returncode == 0
            if kills >= 3:
                break
            # Finished before enough kills landed (a fast machine): start over, empty.
            rounds += 1
            root = tmp_path / f"store{rounds}"
            continue
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        asyncio.run(check_consistent(root))
    assert kills >= 3
    # Let the last run finish: everything that survived must resume to completion.
    proc = start_child(root)
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (0, "done\n")
    assert asyncio.run(check_consistent(root)) == BLOBS
