"""SIGKILL of a real server, several times, in the middle of a send and of a receive.

The client keeps running across the crashes: its retries wait, ask the restarted server
for its durable offset (upload) or continue from the partial file (download), and the
transfer completes with the exact bytes. Nothing is lost, nothing is corrupt, nothing is
delivered twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wirelab.client import RelayClient

from ._progress import StopAfter
from ._serve_process import ServeProcess, add_users

pytestmark = pytest.mark.slow

_MIB = 1024 * 1024


class _KillAt(StopAfter):
    """SIGKILLs and restarts the server each time the transfer passes one of ``at``."""

    def __init__(self, server: ServeProcess, at: list[int]) -> None:
        self.server, self.at, self.kills = server, sorted(at), 0
        super().__init__(self.at[0])

    def hit(self) -> None:
        self.at.pop(0)
        self.kills += 1
        self.limit = self.at[0] if self.at else 2**63
        self.server.restart()  # the transfer in flight breaks on its next write/read


@pytest.mark.parametrize("seed", [1, 2])
def test_send_and_receive_survive_repeated_server_kills(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    tokens = add_users(data_dir, "alice", "bob")
    data = rng.randbytes(20 * _MIB + rng.randrange(_MIB))
    src = tmp_path / "payload.bin"
    src.write_bytes(data)
    server = ServeProcess(data_dir)
    try:
        kills_up = _KillAt(server, [rng.randrange(1, len(data)) for _ in range(3)])
        with RelayClient(server.url, token=tokens["alice"], state_dir=tmp_path / "st") as alice:
            [sent] = alice.send([src], to="bob", chunk_size=4 * _MIB, progress=kills_up)
        assert kills_up.kills == 3
        assert sent.sha256 == hashlib.sha256(data).hexdigest()

        out = tmp_path / "out"
        with RelayClient(server.url, token=tokens["bob"]) as bob:
            [listed] = bob.inbox()  # exactly one file: no duplicate from the retries
            assert (listed.size, listed.sha256) == (len(data), sent.sha256)
            kills_down = _KillAt(server, [rng.randrange(1, len(data)) for _ in range(3)])
            [got] = bob.receive(out, progress=kills_down)
            assert kills_down.kills == 3
            assert got.path.read_bytes() == data
            assert got.acknowledged
            assert bob.inbox() == []
        server.restart()  # the acknowledgement is durable too
        with RelayClient(server.url, token=tokens["bob"]) as bob:
            assert bob.inbox() == []
        assert sorted(os.listdir(out)) == ["payload.bin"]
    finally:
        server.kill()


def test_an_interrupted_cli_send_resumes_when_run_again(tmp_path: Path) -> None:
    """The state of ``wirelab send`` survives the client's own death (SIGKILL)."""
    data_dir = tmp_path / "data"
    tokens = add_users(data_dir, "alice", "bob")
    data = os.urandom(64 * _MIB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    server = ServeProcess(data_dir)
    env = {
        **os.environ,
        "WIRELAB_URL": server.url,
        "WIRELAB_TOKEN": tokens["alice"],
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    command = [sys.executable, "-m", "wirelab", "send", str(src), "--to", "bob", "--json"]
    try:
        child = subprocess.Popen([*command, "--chunk-size", "1M"], env=env)
        uploads = data_dir / "relay" / "uploads"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for some durable progress, then kill
            if any(p.stat().st_size > 8 * _MIB for p in uploads.glob("*.data")):
                break
            time.sleep(0.01)
        child.kill()
        child.wait(10)
        again = subprocess.run(command, env=env, capture_output=True, check=False, timeout=120)
        assert again.returncode == 0, again.stderr
        [doc] = json.loads(again.stdout)["files"]
        assert doc["resumed_from"] > 0
        with RelayClient(server.url, token=tokens["bob"]) as bob:
            [got] = bob.receive(tmp_path / "out")
        assert got.path.read_bytes() == data
    finally:
        server.kill()
