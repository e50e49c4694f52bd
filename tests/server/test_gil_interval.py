"""The GIL switch interval of a server process: 0.5 ms by default, from
``WIRELAB_GIL_SWITCH_INTERVAL`` if set, refused in one line when bad."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from wirelab import UsageError
from wirelab.cli import main
from wirelab.server._serve import GIL_SWITCH_INTERVAL, tune_gil


@pytest.fixture(autouse=True)
def keep_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_default_and_setting() -> None:
    assert tune_gil({}) == GIL_SWITCH_INTERVAL == pytest.approx(sys.getswitchinterval())
    assert tune_gil({"WIRELAB_GIL_SWITCH_INTERVAL": "0.002"}) == 0.002
    assert sys.getswitchinterval() == pytest.approx(0.002)


@pytest.mark.parametrize("bad", ["", "fast", "0", "-1", "2", "nan"])
def test_a_bad_value_is_refused_and_changes_nothing(bad: str) -> None:
    before = sys.getswitchinterval()
    with pytest.raises(UsageError, match="WIRELAB_GIL_SWITCH_INTERVAL must be seconds"):
        tune_gil({"WIRELAB_GIL_SWITCH_INTERVAL": bad})
    assert sys.getswitchinterval() == before


def test_serve_refuses_a_bad_value_in_one_line(tmp_path: Path) -> None:
    env = {"WIRELAB_GIL_SWITCH_INTERVAL": "soon"}
    result = CliRunner().invoke(
        main, ["serve", "--data-dir", str(tmp_path), "--port", "0"], env=env
    )
    assert result.exit_code != 0
    assert "WIRELAB_GIL_SWITCH_INTERVAL must be seconds between 0 and 1, not 'soon'" in (
        result.output
    )
