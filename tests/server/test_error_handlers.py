"""The app's input-error boundary: strict-parser errors are 422 naming the field, and
nothing else is: a ``ValueError`` from a bug still answers 500 (in-process, no socket)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from wirelab._validate import InvalidField, parse_int
from wirelab.server import ServerConfig
from wirelab.server._app import create_app


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    app = create_app(ServerConfig(data_dir=tmp_path))

    @app.get("/parse/{raw}")
    async def parse(raw: str) -> int:
        return parse_int(raw, ("path", "raw"))

    @app.get("/bug")
    async def bug() -> None:
        int("not a number")  # a bug: must stay a 500, not become a 4xx

    @app.get("/echo-inf")
    async def echo_inf() -> None:
        error = {"type": "value_error", "loc": ["query", "x"], "msg": "m", "input": math.inf}
        raise RequestValidationError([{**error, "ctx": {"error": InvalidField((), "m")}}])

    return app


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: these routes need neither the database nor the blob store.
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


@pytest.mark.asyncio
async def test_invalid_field_answers_422_naming_it(client: httpx.AsyncClient) -> None:
    r = await client.get("/parse/%C2%B2")
    assert r.status_code == 422
    assert r.json() == {
        "detail": [{"type": "int_parsing", "loc": ["path", "raw"],
                    "msg": "must be a valid integer: ASCII digits 0-9", "input": "\u00b2"}]
    }  # fmt: skip


@pytest.mark.asyncio
async def test_other_value_errors_stay_server_errors(client: httpx.AsyncClient) -> None:
    assert (await client.get("/bug")).status_code == 500


@pytest.mark.asyncio
async def test_validation_errors_with_non_finite_inputs_are_still_json(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/echo-inf")
    assert r.status_code == 422
    assert r.json()["detail"][0]["input"] == "inf"
    assert r.json()["detail"][0]["ctx"] == {"error": "m"}
