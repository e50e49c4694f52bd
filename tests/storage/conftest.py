"""The BlobStore contract fixtures: every test written against ``store`` / ``store_factory``
runs for each implementation listed in ``IMPLEMENTATIONS``.

To run the contract against a new implementation, add a factory here: it receives a
fresh temporary folder and returns a function that opens a *new instance* on the same
backing storage each time it is called (the tests use that to simulate a restart).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab.storage import BlobStore, LocalBlobStore

StoreFactory = Callable[[], BlobStore]


def _local(tmp: Path) -> StoreFactory:
    return lambda: LocalBlobStore(tmp / "store")


IMPLEMENTATIONS: dict[str, Callable[[Path], StoreFactory]] = {"local": _local}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens new store instances on one backing storage (one per test)."""
    return IMPLEMENTATIONS[request.param](tmp_path)


@pytest.fixture
def store(store_factory: StoreFactory) -> BlobStore:
    """A store instance on empty backing storage."""
    return store_factory()
