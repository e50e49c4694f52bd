"""The CLI's shared output contract (``wirelab._cli_common``): kinds, exit codes, JSON."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from wirelab import HTTPStatusError, IntegrityError, NetworkError, TimeoutError, UsageError
from wirelab._cli_common import (
    EXIT_INTERRUPTED,
    ByteSize,
    WirelabGroup,
    classify,
    emit,
    handle_errors,
    json_extra,
    json_option,
    set_hint,
)
from wirelab.auth import InvalidCredentials
from wirelab.db import DatabaseError


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (click.BadParameter("x"), "usage", 2),
        (UsageError("bad argument"), "usage", 2),
        (InvalidCredentials("no"), "auth", 3),
        (HTTPStatusError("x", status_code=401), "auth", 3),
        (HTTPStatusError("x", status_code=403), "auth", 3),
        (HTTPStatusError("x", status_code=422), "usage", 2),
        (HTTPStatusError("x", status_code=503), "network", 4),
        (HTTPStatusError("x", status_code=404), "data", 5),
        (HTTPStatusError("x", status_code=507), "data", 5),
        (HTTPStatusError("x", status_code=500), "failure", 1),
        (NetworkError("refused"), "network", 4),
        (TimeoutError("slow"), "network", 4),
        (IntegrityError("sha"), "data", 5),
        (OSError(errno.ENOSPC, "full"), "data", 5),
        (DatabaseError("locked"), "data", 5),
        (KeyboardInterrupt(), "interrupted", 130),
    ],
)
def test_every_failure_has_a_kind_and_an_exit_status(
    exc: BaseException, kind: str, code: int
) -> None:
    assert classify(exc) == (kind, code)


@pytest.mark.parametrize(
    ("text", "size"), [("1048576", 1048576), ("64M", 64 << 20), ("1G", 1 << 30), ("1.5k", 1536)]
)
def test_sizes_take_units(text: str, size: int) -> None:
    assert ByteSize().convert(text, None, None) == size


@pytest.mark.parametrize("text", ["lots", "-3", "0", "1e999", "9" * 40])
def test_nonsense_sizes_are_refused(text: str) -> None:
    with pytest.raises(click.BadParameter):
        ByteSize().convert(text, None, None)


@click.group(cls=WirelabGroup)
def cli() -> None:
    pass


@cli.command()
@click.option("--count", type=int, required=True)
@json_option
@handle_errors
def work(count: int, as_json: bool) -> None:
    json_extra(done=count - 1)
    set_hint("run it again to resume")
    set_hint("the 2 files before it are kept", on="disk")
    if count == 0:
        raise KeyboardInterrupt
    if count == 1:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/f.part")
    if count < 0:
        raise IntegrityError("the bytes do not match")
    emit({"done": count})


def test_success_and_failure_print_one_object() -> None:
    ok = CliRunner().invoke(cli, ["work", "--count", "3", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {"ok": True, "done": 3}
    bad = CliRunner().invoke(cli, ["work", "--count", "-1", "--json"])
    assert bad.exit_code == 5
    assert json.loads(bad.stdout) == {
        "ok": False,
        "error": "the bytes do not match",
        "error_kind": "data",
        "exit_code": 5,
        "done": -2,
    }
    assert bad.stderr == "wirelab: error: the bytes do not match\n"


def test_an_interruption_says_how_to_resume() -> None:
    result = CliRunner().invoke(cli, ["work", "--count", "0"])
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.stderr == "wirelab: error: interrupted; run it again to resume\n"


def test_click_usage_errors_follow_the_contract_with_json() -> None:
    result = CliRunner().invoke(cli, ["work", "--json"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["error_kind"] == "usage" and "--count" in doc["error"]
    plain = CliRunner().invoke(cli, ["work", "--count", "x"])
    assert plain.exit_code == 2 and plain.stdout == "" and "Usage:" in plain.stderr


def test_a_full_disk_names_the_path_and_what_was_kept() -> None:
    result = CliRunner().invoke(cli, ["work", "--count", "1", "--json"])
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"] == (
        "No space left on device: /data/out/f.part; the 2 files before it are kept"
    )


def test_importing_the_cli_leaves_the_heavy_modules_to_the_commands_that_use_them() -> None:
    # Every command pays for what `import wirelab.cli` imports (start-up time of a send).
    code = (
        "import sys, wirelab.cli; "
        "print(sorted(m for m in ('asyncio', 'numpy', 'httpx', 'uvicorn', 'sqlite3', "
        "'wirelab.server', 'wirelab.db', 'wirelab.relay') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
