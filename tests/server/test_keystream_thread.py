"""The keystream thread of zero-wait streams (``stream._prefill``): on by default where
the server may use more than one CPU, off when asked, with worker threads, or on one CPU;
it lives as long as the app."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

from wirelab.cli import serve
from wirelab.server import ServerConfig, create_app
from wirelab.server._app import _keystream_thread

MORE_THAN_ONE_CPU = len(os.sched_getaffinity(0)) > 1


def test_when_streams_get_the_thread(tmp_path: Path) -> None:
    assert _keystream_thread(ServerConfig(data_dir=tmp_path)) is MORE_THAN_ONE_CPU
    assert not _keystream_thread(ServerConfig(data_dir=tmp_path, keystream_thread=False))
    # Worker threads make the whole file, keystream included.
    assert not _keystream_thread(ServerConfig(data_dir=tmp_path, worker_threads=2))


@pytest.mark.asyncio
@pytest.mark.parametrize("enabled", [True, False])
async def test_the_thread_lives_as_long_as_the_app(tmp_path: Path, enabled: bool) -> None:
    config = ServerConfig(data_dir=tmp_path / "data", only="stream", keystream_thread=enabled)
    app = create_app(config)
    runtime = app.state.stream_runtime
    async with app.router.lifespan_context(app):
        assert (runtime.keystream_executor is not None) is (enabled and MORE_THAN_ONE_CPU)
    assert runtime.keystream_executor is None


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, True),
        (["--no-keystream-thread"], {}, False),
        ([], {"WIRELAB_KEYSTREAM_THREAD": "0"}, False),
        ([], {"WIRELAB_KEYSTREAM_THREAD": "false"}, False),
        (["--keystream-thread"], {"WIRELAB_KEYSTREAM_THREAD": "0"}, True),
    ],
)
def test_serve_option_and_environment(
    args: list[str], env: dict[str, str], expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with serve.make_context("serve", args) as ctx:
        assert ctx.params["keystream_thread"] is expected


def test_a_bad_environment_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIRELAB_KEYSTREAM_THREAD", "sometimes")
    with pytest.raises(click.BadParameter, match="sometimes"):
        serve.make_context("serve", [])
