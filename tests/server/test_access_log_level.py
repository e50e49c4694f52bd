"""The access line is prepared only when the access logger would write it (INFO on)."""

from __future__ import annotations

import asyncio
import logging

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from wirelab.server._config import ConnectionLimits
from wirelab.server._http_guard import guarded_protocol


async def _app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
    raise AssertionError("never called: no request is made")


@pytest.mark.parametrize(
    ("level", "logs"), [(logging.DEBUG, True), (logging.INFO, True), (logging.WARNING, False)]
)
def test_access_log_follows_the_access_loggers_level(
    level: int, logs: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # No log_config, no log_level: the test sets the level (caplog's handler is the one
    # that makes uvicorn see a handler at all).
    config = uvicorn.Config(_app, log_config=None, log_level=None)
    caplog.set_level(level, logger="uvicorn.access")
    loop = asyncio.new_event_loop()
    try:
        protocol = guarded_protocol(ConnectionLimits())(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    assert protocol.access_log is logs
