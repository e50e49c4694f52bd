"""`wirelab db upgrade`, and `wirelab serve` refusing a PostgreSQL database with an older
schema (the real console script: exit status and the one-line message)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
from click.testing import CliRunner

from wirelab.cli import main
from wirelab.db import SCHEMA_VERSION
from wirelab.db._migrations import MIGRATIONS
from wirelab.db._pg_schema import current_version, migrate


def db_upgrade(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["db", "upgrade", *args])
    return result.exit_code, result.output


def test_upgrade_creates_and_migrates_the_sqlite_store(tmp_path: Path) -> None:
    code, out = db_upgrade("--data-dir", str(tmp_path), "--json")
    assert code == 0, out
    assert json.loads(out) == {
        "ok": True, "from_version": 0, "to_version": SCHEMA_VERSION, "upgraded": True,
    }  # fmt: skip
    code, out = db_upgrade("--data-dir", str(tmp_path))
    assert code == 0, out
    assert out.strip() == f"Schema is current (version {SCHEMA_VERSION}); nothing to do."


def test_upgrade_migrates_postgresql_from_any_version(
    postgres_factory: Callable[..., str],
) -> None:
    url = postgres_factory(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, MIGRATIONS[:4])
    code, out = db_upgrade("--database-url", url)
    assert code == 0, out
    assert out.strip() == f"Upgraded the schema from version 4 to {SCHEMA_VERSION}."
    with psycopg.connect(url, autocommit=True) as conn:
        assert current_version(conn) == SCHEMA_VERSION


def test_upgrade_of_an_unreachable_database_is_one_line() -> None:
    code, out = db_upgrade("--database-url", "postgresql://postgres:pw@127.0.0.1:1/x", "--json")
    assert code == 5
    doc = json.loads(out.splitlines()[-1])
    assert doc["ok"] is False
    assert doc["error"].startswith("cannot upgrade database postgresql://postgres:***@")
    assert "pw@" not in out


def test_serve_refuses_an_older_postgresql_schema(
    postgres_factory: Callable[..., str], tmp_path: Path
) -> None:
    url = postgres_factory(migrated=False)
    serve = [sys.executable, "-m", "wirelab", "serve", "--port", "0"]
    done = subprocess.run(
        [*serve, "--data-dir", str(tmp_path), "--database-url", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"wirelab: error: database schema version 0 is older than this wirelab's "
        f"({SCHEMA_VERSION}): run 'wirelab db upgrade' (with the same --database-url) first"
    ]
