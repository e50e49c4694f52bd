"""`wirelab users ...` end to end (CliRunner, and the real console script once)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from wirelab.cli import main


def users(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["users", *args, "--data-dir", str(tmp_path)])
    return result.exit_code, result.output


def test_add_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    code, out = users(tmp_path, "add", "alice", "--json")
    assert code == 0, out
    token = json.loads(out)["token"]
    assert token.startswith("wl_")
    code, out = users(tmp_path, "list")
    assert code == 0 and "alice" in out and token not in out
    db = tmp_path / "wirelab.db"
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert token not in dump and "alice" in dump


def test_list_json_remove_and_rotate(tmp_path: Path) -> None:
    assert users(tmp_path, "add", "bob")[0] == 0
    listed = json.loads(users(tmp_path, "list", "--json")[1])
    assert [u["name"] for u in listed] == ["bob"]
    code, out = users(tmp_path, "rotate-token", "bob", "--json")
    assert code == 0 and json.loads(out)["token"].startswith("wl_")
    assert users(tmp_path, "remove", "bob")[0] == 0
    assert users(tmp_path, "list")[1].strip() == "no users"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["add", "Not Valid"], "name"),
        (["remove", "ghost"], "ghost"),
        (["rotate-token", "ghost"], "ghost"),
    ],
)
def test_errors_are_one_line_and_exit_1(tmp_path: Path, args: list[str], fragment: str) -> None:
    code, out = users(tmp_path, *args)
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wirelab: error:") and fragment in lines[0]


def test_duplicate_name_is_refused(tmp_path: Path) -> None:
    assert users(tmp_path, "add", "carol")[0] == 0
    code, out = users(tmp_path, "add", "carol")
    assert code == 1 and "carol" in out


def test_unknown_database_scheme_names_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["users", "list", "--database-url", "mysql://x/y"])
    assert result.exit_code == 1 and "mysql" in result.output


def test_console_script_with_environment(tmp_path: Path) -> None:
    env = {**os.environ, "WIRELAB_DATA_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "wirelab", "users"]
    added = subprocess.run([*run, "add", "dave", "--json"], env=env, capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert json.loads(added.stdout)["name"] == "dave"
    listed = subprocess.run([*run, "list"], env=env, capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    assert "dave" in listed.stdout


def test_set_quota_and_list(tmp_path: Path) -> None:
    assert users(tmp_path, "add", "erin")[0] == 0
    code, out = users(tmp_path, "set-quota", "erin", "--bytes", "1000", "--files", "5", "--json")
    assert code == 0, out
    (doc,) = json.loads(out)
    assert (doc["quota_bytes"], doc["quota_files"]) == (1000, 5)
    code, out = users(tmp_path, "set-quota", "erin", "--files", "default")
    assert code == 0 and "quota 1000 bytes, default files" in out
    (doc,) = json.loads(users(tmp_path, "list", "--json")[1])
    assert (doc["quota_bytes"], doc["quota_files"]) == (1000, None)
    assert "erin" in users(tmp_path, "list")[1]


def test_set_quota_errors(tmp_path: Path) -> None:
    assert users(tmp_path, "set-quota", "ghost", "--bytes", "1")[0] == 1
    assert users(tmp_path, "add", "erin")[0] == 0
    code, out = users(tmp_path, "set-quota", "erin", "--bytes", "-3")
    assert code == 2 and "--bytes" in out
