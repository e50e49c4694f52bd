"""What the server keeps private: no query values in the access log, data folders 0700."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wirelab.server._access_log import redact_query
from wirelab.testing._live import LiveServer


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/v1/x", "/v1/x"),
        ("/v1/x?token=s3cret", "/v1/x?token=***"),
        ("/v1/x?a=1&key=s3cret&flag", "/v1/x?a=***&key=***&***"),
        ("/v1/x?s3cret", "/v1/x?***"),
        ("/v1/x?", "/v1/x?***"),
    ],
)
def test_redact_query_keeps_names_only(target: str, logged: str) -> None:
    assert redact_query(target) == logged


def test_access_log_never_records_query_values(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    r = httpx.get(server.url + "/healthz", params={"token": "s3cret-token", "count": "7"})
    assert r.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/healthz?token=***&count=***" in line for line in lines), lines
    assert "s3cret-token" not in caplog.text


def test_data_folder_is_created_private(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    data = tmp_path / "new" / "data"
    server = server_factory(data_dir=data)
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    relay = data / "relay"
    for folder in (relay, relay / "uploads", relay / "blobs", relay / "tmp"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_open_existing_data_folder_is_kept_with_a_warning(
    server_factory: Callable[..., LiveServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o750)
    caplog.set_level(logging.WARNING, logger="wirelab.server")
    server_factory(data_dir=data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o750  # sharing may be deliberate
    warnings = [r.getMessage() for r in caplog.records if r.name == "wirelab.server"]
    assert any(str(data) in m and "750" in m and "chmod 700" in m for m in warnings), warnings


def test_private_folder_is_quiet(
    server_factory: Callable[..., LiveServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wirelab.server")
    server_factory(data_dir=tmp_path / "d")
    assert [r for r in caplog.records if r.name == "wirelab.server"] == []
