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
    assert listed["ok"] is True and [u["name"] for u in listed["users"]] == ["bob"]
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
def test_errors_are_one_line_with_their_exit_status(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    assert users(tmp_path, "add", "someone")[0] == 0
    code, out = users(tmp_path, *args)
    assert code == (2 if args[0] == "add" else 5)  # an invalid name; a missing user
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wirelab: error:") and fragment in lines[0]


def test_duplicate_name_is_refused(tmp_path: Path) -> None:
    assert users(tmp_path, "add", "carol")[0] == 0
    code, out = users(tmp_path, "add", "carol")
    assert code == 5 and "carol" in out


def test_unknown_database_scheme_names_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["users", "list", "--database-url", "mysql://x/y"])
    assert result.exit_code == 2 and "mysql" in result.output


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
    doc = json.loads(out)["user"]
    assert (doc["quota_bytes"], doc["quota_files"]) == (1000, 5)
    code, out = users(tmp_path, "set-quota", "erin", "--files", "default")
    assert code == 0 and "quota 1000 bytes, default files" in out
    (doc,) = json.loads(users(tmp_path, "list", "--json")[1])["users"]
    assert (doc["quota_bytes"], doc["quota_files"]) == (1000, None)
    assert "erin" in users(tmp_path, "list")[1]


def test_set_quota_errors(tmp_path: Path) -> None:
    assert users(tmp_path, "add", "erin")[0] == 0
    assert users(tmp_path, "set-quota", "ghost", "--bytes", "1")[0] == 5
    code, out = users(tmp_path, "set-quota", "erin", "--bytes", "-3")
    assert code == 2 and "--bytes" in out


def test_set_quota_takes_sizes_with_units(tmp_path: Path) -> None:
    assert users(tmp_path, "add", "erin")[0] == 0
    code, out = users(tmp_path, "set-quota", "erin", "--bytes", "1G", "--json")
    assert code == 0, out
    assert json.loads(out)["user"]["quota_bytes"] == 1024**3


@pytest.mark.parametrize("args", [["list"], ["remove", "bob"], ["rotate-token", "bob"]])
def test_a_folder_without_a_database_is_named_not_created(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["users", *args, "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 5
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["error_kind"] == "data" and doc["exit_code"] == 5
    assert "no wirelab database" in doc["error"] and str(tmp_path) in doc["error"]
    assert list(tmp_path.iterdir()) == []  # nothing created


_BLOCK_SERVER_EXTRA = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"fastapi", "uvicorn", "starlette"}:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None

sys.meta_path.insert(0, Block())
"""


def test_users_commands_work_without_the_server_extra(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCK_SERVER_EXTRA)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "WIRELAB_DATA_DIR": str(tmp_path / "data"),
    }
    run = [sys.executable, "-m", "wirelab"]

    def wirelab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*run, *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    blocked = wirelab("serve", "--port", "0")
    assert blocked.returncode == 1 and "wirelab[server]" in blocked.stderr  # the hook works
    assert "Traceback" not in blocked.stderr
    added = wirelab("users", "add", "dave", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["token"].startswith("wl_")
    for args in (["list"], ["set-quota", "dave", "--files", "3"], ["rotate-token", "dave"]):
        done = wirelab("users", *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert wirelab("users", "remove", "dave").returncode == 0
