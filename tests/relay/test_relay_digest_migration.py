"""Relay data stored before digests had names (schema version 10, plain SHA-256 digest
files) keeps verifying after the upgrade: its rows become algorithm ``sha256``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from wirelab.client import RelayClient
from wirelab.db._migrations import MIGRATIONS, migrate
from wirelab.storage import LocalBlobStore
from wirelab.testing._live import LiveServer

from .conftest import add_users

BEFORE_DIGEST_AGILITY = 10  # the schema version whose relay rows are all SHA-256


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _old_data_folder(folder: Path, data: bytes) -> str:
    """A data folder as the previous version left it: one file for bob; its id."""
    conn = sqlite3.connect(folder / "wirelab.db", isolation_level=None)
    try:
        assert migrate(conn, MIGRATIONS[:BEFORE_DIGEST_AGILITY]) == BEFORE_DIGEST_AGILITY
        now = time.time()
        conn.execute(
            "INSERT INTO relay_files (id, recipient, sender, name, media_type, size, sha256,"
            " blob_key, created_at, expires_at) VALUES ('old1', 'bob', 'alice', 'old.bin',"
            " 'application/octet-stream', ?, ?, 'old1', ?, ?)",
            (len(data), hashlib.sha256(data).hexdigest(), now, now + 3600),
        )
    finally:
        conn.close()

    async def store() -> None:  # the old store wrote a plain hex digest file
        blobs = LocalBlobStore(folder / "relay")
        await blobs.create_upload("old1")
        await blobs.append("old1", 0, _one(data))
        await blobs.commit("old1", "old1", expected_sha256=hashlib.sha256(data).hexdigest())

    asyncio.run(store())
    sidecar = next((folder / "relay" / "blobs").glob("*/old1.sha256"))
    assert sidecar.read_text() == f"{hashlib.sha256(data).hexdigest()}\n"
    return "old1"


@pytest.mark.distributed
def test_old_sha256_files_still_verify_after_the_migration(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    data = os.urandom(100_000)
    folder = tmp_path / "data"
    folder.mkdir()
    file_id = _old_data_folder(folder, data)
    # start-up migrates the db; the old blobs are in the data folder (on any test storage)
    server = server_factory(data_dir=folder, storage_url=None)
    tokens = add_users(server, "alice", "bob")
    conn = sqlite3.connect(folder / "wirelab.db")
    try:
        row = conn.execute("SELECT digest_algorithm FROM relay_files WHERE id = 'old1'")
        assert row.fetchone() == ("sha256",)
    finally:
        conn.close()
    with RelayClient(server.url, token=tokens["bob"], state_dir=tmp_path / "state") as bob:
        [file] = bob.inbox()
        assert (file.id, file.algorithm, file.sha256) == (
            file_id,
            "sha256",
            hashlib.sha256(data).hexdigest(),
        )
        [got] = bob.receive(tmp_path / "out")  # verified against the old SHA-256
        assert got.path.read_bytes() == data
