"""End to end through a live relay: an encrypted tus upload, interrupted and resumed from
the saved encryptor state, then downloaded and decrypted by the recipient.

The server only ever holds ciphertext; the test checks that too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import httpx

from wirelab.crypto import (
    DecryptingWriter,
    EncryptingReader,
    Encryptor,
    generate_keypair,
)
from wirelab.db import connect
from wirelab.testing._live import LiveServer


def _add_users(server: LiveServer, *names: str) -> dict[str, str]:
    url = server.app.state.config.metadata_url

    async def run() -> dict[str, str]:
        async with await connect(url) as db:
            return {name: (await db.users.add_user(name))[1] for name in names}

    return asyncio.run(run())


def _ciphertext_sha256(reader: EncryptingReader) -> str:
    digest = hashlib.sha256()
    reader.seek(0)
    while block := reader.read(1 << 20):
        digest.update(block)
    reader.seek(0)
    return digest.hexdigest()


def test_encrypted_upload_resumes_and_decrypts(server: LiveServer, tmp_path: Path) -> None:
    from tusclient.client import TusClient

    tokens = _add_users(server, "alice", "bob")
    bob_private, bob_public = generate_keypair()
    plaintext = os.urandom(300_000)
    source = tmp_path / "secret.bin"
    source.write_bytes(plaintext)

    # First run: encrypt from a fresh encryptor, persist its state, stop part-way.
    encryptor = Encryptor(bob_public, len(plaintext), chunk_size=4096)
    saved = tmp_path / "upload-state.json"
    client = TusClient(
        server.url + "/v1/relay/uploads",
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    with EncryptingReader(source, encryptor) as reader:
        metadata = {"filename": "secret.bin", "to": "bob", "sha256": _ciphertext_sha256(reader)}
        saved.write_text(json.dumps({"state": encryptor.state(), "stamp": reader.stamp}))
        uploader = client.uploader(file_stream=reader, chunk_size=10_000, metadata=metadata)
        uploader.upload(stop_at=123_457)  # not on a chunk boundary of either layer
        location = str(uploader.url)

    # Second run (as after a crash): everything comes from the saved state.
    persisted = json.loads(saved.read_text())
    resumed = Encryptor.from_state(persisted["state"])
    with EncryptingReader(source, resumed, expect_stamp=persisted["stamp"]) as reader:
        client.uploader(
            file_stream=reader, chunk_size=10_000, metadata=metadata, url=location
        ).upload()

    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {tokens['bob']}"}
    ) as bob:
        (doc,) = bob.get("/v1/relay/inbox").json()["files"]
        assert doc["size"] == encryptor.ciphertext_size
        assert doc["sha256"] == metadata["sha256"]  # the server verified the ciphertext
        out = tmp_path / "received.bin"
        with (
            bob.stream("GET", doc["url"]) as response,
            DecryptingWriter(out, bob_private, expected_size=doc["size"]) as writer,
        ):
            stored_prefix = b""
            for block in response.iter_bytes():
                stored_prefix = stored_prefix or block[:1000]
                writer.write(block)
    assert out.read_bytes() == plaintext
    assert plaintext[:64] not in stored_prefix  # what the server served is not the plaintext
    assert stored_prefix.startswith(b"\x89WLE")
