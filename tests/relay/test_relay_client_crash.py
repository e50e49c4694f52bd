"""SIGKILL of a real server, several times, in the middle of a send and of a receive.

The client keeps running across the crashes: its retries wait, ask the restarted server
for its durable offset (upload) or continue from the partial file (download), and the
transfer completes with the exact bytes. Nothing is lost, nothing is corrupt, nothing is
delivered twice.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from blake3 import blake3

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
        assert sent.digest == blake3(data).hexdigest()

        out = tmp_path / "out"
        with RelayClient(server.url, token=tokens["bob"]) as bob:
            [listed] = bob.inbox()  # exactly one file: no duplicate from the retries
            assert (listed.size, listed.digest) == (len(data), sent.digest)
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


def _payload_and_server(
    tmp_path: Path, size: int
) -> tuple[bytes, Path, dict[str, str], ServeProcess]:
    """Random bytes in ``tmp_path/big.bin``, and a server (data in ``tmp_path/data``)
    with users alice and bob: (data, its path, tokens, server)."""
    data_dir = tmp_path / "data"
    tokens = add_users(data_dir, "alice", "bob")
    data = os.urandom(size)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    return data, src, tokens, ServeProcess(data_dir)


def test_an_interrupted_cli_send_resumes_when_run_again(tmp_path: Path) -> None:
    """The state of ``wirelab send`` survives the client's own death (SIGKILL)."""
    data_dir = tmp_path / "data"
    data, src, tokens, server = _payload_and_server(tmp_path, 64 * _MIB)
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


_DIE_DURING_RECEIVE = """
import os, signal, sys
from pathlib import Path
from wirelab.client import RelayClient

url, token, out, when = sys.argv[1:5]

class DieAt:
    seen = 0
    def begin(self, label, total, done=0): pass
    def end(self): pass
    def advance(self, n):
        self.seen += n
        if when == "download" and self.seen >= 8 * 1024 * 1024:
            os.kill(os.getpid(), signal.SIGKILL)

if when == "ack":  # the file is written and verified; die before the server hears of it
    RelayClient.ack = lambda self, file_id: os.kill(os.getpid(), signal.SIGKILL)
with RelayClient(url, token=token) as client:
    client.receive(Path(out), lease=3600, progress=DieAt())
"""


@pytest.mark.parametrize("when", ["download", "ack"])
def test_a_killed_receive_is_finished_at_once_by_the_next_run(tmp_path: Path, when: str) -> None:
    """SIGKILL of the receiving process mid-download, or between the verified write and
    the acknowledgement: its lease (an hour) would hide the file; the next
    ``wirelab receive`` releases it, resumes or recognizes the file, and succeeds."""
    data, src, tokens, server = _payload_and_server(tmp_path, 24 * _MIB)
    out = tmp_path / "out"
    try:
        with RelayClient(server.url, token=tokens["alice"], state_dir=tmp_path / "st") as alice:
            alice.send([src], to="bob")
        script = [sys.executable, "-c", _DIE_DURING_RECEIVE]
        died = subprocess.run([*script, server.url, tokens["bob"], str(out), when],
                              capture_output=True, check=False, timeout=120)  # fmt: skip
        assert died.returncode == -9, died.stderr
        env = {
            **os.environ,
            "WIRELAB_URL": server.url,
            "WIRELAB_TOKEN": tokens["bob"],
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
        }
        command = [sys.executable, "-m", "wirelab", "receive", "-o", str(out), "--json"]
        again = subprocess.run(command, env=env, capture_output=True, check=False, timeout=120)
        assert again.returncode == 0, again.stderr
        [doc] = json.loads(again.stdout)["files"]
        assert doc["acknowledged"] and (doc["resumed_from"] > 0 or when == "ack")
        assert doc["skipped"] is (when == "ack")
        assert (out / "big.bin").read_bytes() == data
        assert sorted(os.listdir(out)) == ["big.bin"]  # no partial file, no lease marker
    finally:
        server.kill()
