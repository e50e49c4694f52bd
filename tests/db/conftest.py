"""The db contract suite runs every backend-neutral case against each backend: a test
that takes ``db_url`` runs once on SQLite and once on PostgreSQL (its own database)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab.db import sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty store (current schema) of the parametrized backend."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "w.db")
    make: Callable[..., str] = request.getfixturevalue("postgres_factory")
    return make()
