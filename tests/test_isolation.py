"""Tests leave the user's files alone: every test has its own HOME and XDG folders, no
inherited WIRELAB_* variable, and a run that writes into the user's wirelab folders fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wirelab.server import default_data_dir

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")
SERVER_SETUP = Path(__file__).with_name("_server_setup.py")


def test_each_test_has_a_private_home(isolated_home: Path) -> None:
    assert os.environ["HOME"] == str(isolated_home) and Path.home() == isolated_home
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        assert Path(os.environ[name]).is_relative_to(isolated_home)
    assert default_data_dir().is_relative_to(isolated_home)
    assert [name for name in os.environ if name.startswith("WIRELAB_")] == []


def test_subprocesses_inherit_the_isolated_environment(isolated_home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    child = json.loads(out)
    assert child["HOME"] == str(isolated_home)
    assert child["XDG_DATA_HOME"].startswith(str(isolated_home))


@pytest.mark.slow
@pytest.mark.parametrize("ci", [True, False])
def test_writes_into_the_users_files_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool
) -> None:
    # The inner run's user: its HOME is pytester's folder (pytester sets it; the inner
    # run's own temporary folders are moved inside it) and its wirelab data folder is the
    # one of this test's isolated home. Neither may be written, and an inherited WIRELAB_*
    # variable must not leak into the inner tests.
    users_folder = Path(os.environ["XDG_DATA_HOME"]) / "wirelab"
    users_home = pytester.path
    (users_home / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(users_home / "tmp"))
    monkeypatch.setenv("WIRELAB_DATA_DIR", str(users_folder))
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST.read_text())
    # The conftest imports its sibling module (found through pyproject's pythonpath there).
    pytester.makepyfile(_server_setup=SERVER_SETUP.read_text())
    pytester.makeini(
        "[pytest]\nfilterwarnings = error\nasyncio_mode = strict\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_inner=f"""
import os
from pathlib import Path

def test_environment_is_clean():
    assert "WIRELAB_DATA_DIR" not in os.environ
    assert Path.home() != Path({str(users_home)!r})

def test_writes_into_the_home():
    Path({str(users_home / "leak-home.txt")!r}).write_text("x")

def test_writes_into_the_users_wirelab_folder():
    folder = Path({str(users_folder)!r})
    folder.mkdir(parents=True)
    (folder / "leak.txt").write_text("x")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    # The test that wrote into the home fails (audit hook) wherever it runs; the change
    # of the user's wirelab folder fails the run under CI and is reported elsewhere.
    result.assert_outcomes(passed=3, errors=2 if ci else 1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_writes_into_the_home*",
            "*THE TEST WROTE OUTSIDE ITS TEMPORARY FOLDERS*leak-home.txt*",
            "*THE USER'S WIRELAB FOLDERS CHANGED DURING THE TEST RUN*leak.txt*",
        ]
    )
    if not ci:
        result.stdout.fnmatch_lines(["*not failed outside CI*"])
