"""End-to-end encryption and batches through the relay client, against a live server."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from blake3 import blake3
from click.testing import CliRunner

from wirelab import IntegrityError, UsageError
from wirelab.cli import main
from wirelab.client import RelayClient
from wirelab.crypto import HEADER_SIZE, WrongKeyError, generate_keypair, save_private_key

from ._progress import StopAfter
from .conftest import Relay

MAGIC = bytes.fromhex("89574c450d0a1a0a")


def _publish(c: RelayClient) -> None:
    private, public = generate_keypair()
    save_private_key(c.key_file, private)
    c.publish_key(public)


def test_encrypted_send_stores_only_ciphertext(
    relay: Relay, client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    bob = client("bob")
    _publish(bob)
    plain = b"the secret plans " * 10_000
    src = tmp_path / "plans.txt"
    src.write_bytes(plain)
    [sent] = client("alice").send([src], to="bob", encrypt=True)
    [listed] = bob.inbox()
    assert listed.encryption is not None and listed.encryption.startswith("wirelab-e2e-v1")
    assert listed.size == sent.size > len(plain) + HEADER_SIZE
    stored = relay.bob.get(f"/v1/relay/files/{listed.id}").content  # what the server holds
    assert stored.startswith(MAGIC) and b"secret plans" not in stored
    assert blake3(stored).hexdigest() == listed.digest == sent.digest
    [got] = bob.receive(tmp_path / "out")
    assert got.path.read_bytes() == plain
    assert got.path.name == "plans.txt" and got.acknowledged
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["plans.txt"]


@pytest.mark.distributed
def test_interrupted_encrypted_send_resumes_with_the_same_ciphertext(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    bob = client("bob")
    _publish(bob)
    plain = os.urandom(5 * 1024 * 1024 + 3)
    src = tmp_path / "big.bin"
    src.write_bytes(plain)
    alice = client("alice")

    with pytest.raises(KeyboardInterrupt):
        alice.send(
            [src],
            to="bob",
            encrypt=True,
            chunk_size=1 << 20,
            progress=StopAfter(3 * 1024 * 1024 + 1),
        )
    [sent] = alice.send([src], to="bob", encrypt=True, chunk_size=1 << 20)
    assert sent.resumed_from >= 1 << 20  # continued: the server verified the whole digest
    [got] = bob.receive(tmp_path / "out")
    assert got.path.read_bytes() == plain


def test_cannot_encrypt_for_a_user_without_a_key(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(UsageError, match="no public key for user 'carol'"):
        client("alice").send([tmp_path / "f"], to="carol", encrypt=True)
    assert client("carol").inbox() == []


def test_wrong_key_writes_nothing_and_keeps_the_file(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    bob = client("bob")
    _publish(bob)
    (tmp_path / "f.txt").write_bytes(b"for the old key")
    client("alice").send([tmp_path / "f.txt"], to="bob", encrypt=True)
    private, _ = generate_keypair()  # bob loses his key and makes a new one
    save_private_key(bob.key_file, private, overwrite=True)
    out = tmp_path / "out"
    with pytest.raises(WrongKeyError):
        bob.receive(out)
    assert not (out / "f.txt").exists()
    assert len(bob.inbox()) == 1  # not acknowledged
    assert isinstance(WrongKeyError("x"), IntegrityError)


def test_cli_keygen_and_encrypted_send_receive(relay: Relay, tmp_path: Path) -> None:
    base = {
        "WIRELAB_URL": relay.server.url,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_STATE_HOME": str(tmp_path / "st"),
        "WIRELAB_CONFIG": "",
        "WIRELAB_KEY_FILE": "",
        "WIRELAB_TOKEN_FILE": "",
    }
    bob = {**base, "WIRELAB_TOKEN": relay.tokens["bob"]}
    alice = {**base, "WIRELAB_TOKEN": relay.tokens["alice"]}
    runner = CliRunner()
    made = runner.invoke(main, ["keygen", "--json"], env=bob)
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    assert doc["created"] is True and doc["fingerprint"].startswith("SHA256:")
    key = Path(doc["key_file"])
    assert key.stat().st_mode & 0o777 == 0o600
    again = runner.invoke(main, ["keygen", "--json"], env=bob)
    assert json.loads(again.stdout) == {**doc, "created": False}  # kept, published again

    (tmp_path / "n.txt").write_text("quiet")
    sent = runner.invoke(
        main, ["send", str(tmp_path / "n.txt"), "--to", "bob", "--encrypt"], env=alice
    )
    assert sent.exit_code == 0, sent.output
    assert "encrypted" in sent.stdout
    got = runner.invoke(main, ["receive", "--out", str(tmp_path / "o")], env=bob)
    assert got.exit_code == 0, got.output
    assert (tmp_path / "o" / "n.txt").read_text() == "quiet"


@pytest.mark.distributed
def test_batch_of_files_arrives_together(
    relay: Relay, client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    files = []
    for i, data in enumerate([b"", os.urandom(2 * 1024 * 1024 + 1), "ünïcode".encode()]):
        path = tmp_path / f"part-{i}.bin"
        path.write_bytes(data)
        files.append(path)
    alice = client("alice")

    with pytest.raises(KeyboardInterrupt):
        alice.send(files, to="bob", chunk_size=512 * 1024, progress=StopAfter(1024 * 1024 + 1))
    assert client("bob").inbox() == []  # the first file is complete but the batch is not
    sent = alice.send(files, to="bob", chunk_size=512 * 1024)
    assert [s.name for s in sent] == ["part-0.bin", "part-1.bin", "part-2.bin"]
    listed = client("bob").inbox()
    assert [f.name for f in listed] == ["part-0.bin", "part-1.bin", "part-2.bin"]
    batch_ids = {f.batch["id"] for f in listed if f.batch}
    assert len(batch_ids) == 1 and [f.batch["index"] for f in listed if f.batch] == [0, 1, 2]
    got = client("bob").receive(tmp_path / "out", all_files=True)
    assert [g.path.read_bytes() for g in got] == [p.read_bytes() for p in files]


def test_a_new_recipient_key_restarts_an_interrupted_encrypted_send(
    client: Callable[[str], RelayClient], tmp_path: Path
) -> None:
    bob = client("bob")
    _publish(bob)
    plain = os.urandom(3 * 1024 * 1024)
    src = tmp_path / "doc.bin"
    src.write_bytes(plain)
    alice = client("alice")

    with pytest.raises(KeyboardInterrupt):
        alice.send(
            [src],
            to="bob",
            encrypt=True,
            chunk_size=1 << 20,
            progress=StopAfter(2 * 1024 * 1024 + 1),
        )
    private, public = generate_keypair()  # bob replaces his key in between
    save_private_key(bob.key_file, private, overwrite=True)
    bob.publish_key(public)
    [sent] = alice.send([src], to="bob", encrypt=True, chunk_size=1 << 20)
    assert sent.resumed_from == 0  # the old ciphertext was for the old key
    [got] = bob.receive(tmp_path / "out")
    assert got.path.read_bytes() == plain
