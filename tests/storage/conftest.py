"""The BlobStore contract fixtures: every test written against ``store`` / ``store_factory``
runs for each implementation listed in ``IMPLEMENTATIONS``.

To run the contract against a new implementation, add a factory here: it receives the
test's fixture request and a fresh temporary folder and returns a function that opens a
*new instance* on the same backing storage each time it is called (the tests use that to
simulate a restart, or another server process).

The S3 store runs against moto in server mode and ``rclone serve s3`` (subprocesses
started once per session: ``moto_s3``, ``rclone_s3`` in the root conftest), with a bucket
per test, configured through the standard ``AWS_*`` variables.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab.storage import BlobStore, LocalBlobStore
from wirelab.storage._s3 import MIN_PART_SIZE, S3BlobStore
from wirelab.testing._s3server import S3Server, aws_env

StoreFactory = Callable[[], BlobStore]


def new_bucket(server: S3Server, mp: pytest.MonkeyPatch, tmp: Path) -> str:
    """A fresh bucket on *server*, with the ``AWS_*`` variables pointing at it."""
    for name, value in aws_env(server, tmp).items():
        mp.setenv(name, value) if value is not None else mp.delenv(name, raising=False)
    return server.new_bucket()


def _local(request: pytest.FixtureRequest, tmp: Path) -> StoreFactory:
    return lambda: LocalBlobStore(tmp / "store")


def _s3(server_fixture: str) -> Callable[[pytest.FixtureRequest, Path], StoreFactory]:
    def make(request: pytest.FixtureRequest, tmp: Path) -> StoreFactory:
        server: S3Server = request.getfixturevalue(server_fixture)
        bucket = new_bucket(server, request.getfixturevalue("monkeypatch"), tmp)
        return lambda: S3BlobStore(bucket, "wl/", part_size=MIN_PART_SIZE)

    return make


IMPLEMENTATIONS: dict[str, Callable[[pytest.FixtureRequest, Path], StoreFactory]] = {
    "local": _local,
    "s3": _s3("moto_s3"),
    "s3-rclone": _s3("rclone_s3"),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens new store instances on one backing storage (one per test)."""
    return IMPLEMENTATIONS[request.param](request, tmp_path)


@pytest.fixture
def store(store_factory: StoreFactory) -> BlobStore:
    """A store instance on empty backing storage."""
    return store_factory()
