"""``GET /v1/stream`` served past the framework: the same answers, errors included, and
the full stack wherever middleware must see the request (CORS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from wirelab.stream._routes import split_query
from wirelab.testing._live import LiveServer

Q = {"count": 4, "min_size": 2, "max_size": 4096, "min_interval": 0, "max_interval": 0}


def test_valid_stream_takes_the_fast_path(server: LiveServer) -> None:
    r = httpx.get(server.url + "/v1/stream", params={**Q, "seed": 9}, timeout=30)
    assert r.status_code == 200 and r.headers["wirelab-seed"] == "9"
    assert r.headers["content-type"] == "application/vnd.wirelab.stream; version=3"
    assert server.stream_runtime.fast_requests == 1


def test_invalid_query_falls_back_to_the_framework_422(server: LiveServer) -> None:
    for bad, problem in (({"count": -1}, "value_error"), ({"bogus": 1}, "extra_forbidden")):
        r = httpx.get(server.url + "/v1/stream", params={**Q, **bad}, timeout=30)
        assert r.status_code == 422, r.text
        assert [(d["loc"], d["type"]) for d in r.json()["detail"]] == [(["query", *bad], problem)]
    assert server.stream_runtime.fast_requests == 0


def test_other_methods_and_paths_are_not_taken(server: LiveServer) -> None:
    assert httpx.head(server.url + "/v1/stream", params=Q, timeout=30).status_code == 405
    assert httpx.get(server.url + "/v1/stream/manifest", params=Q, timeout=30).status_code == 200
    assert server.stream_runtime.fast_requests == 0


def test_same_bytes_as_the_full_stack_which_serves_cors(
    server: LiveServer, server_factory: Callable[..., Any]
) -> None:
    cors: LiveServer = server_factory(cors_origins=("http://app.example",))
    query = {**Q, "seed": 5}
    fast = httpx.get(server.url + "/v1/stream", params=query, timeout=30)
    full = httpx.get(
        cors.url + "/v1/stream", params=query, headers={"Origin": "http://app.example"}, timeout=30
    )
    assert full.headers["access-control-allow-origin"] == "http://app.example"
    assert cors.stream_runtime.fast_requests == 0 and server.stream_runtime.fast_requests == 1
    assert fast.content == full.content and len(fast.content) > 100


@pytest.mark.parametrize(
    "query",
    ["", "count=3", "a=1&b=&c&&d=x=y", "seed=1&seed=2", "x=%41+b&y=1", "name=a+b", "&&", "=v"],
)
def test_query_is_split_as_starlette_splits_it(query: str) -> None:
    assert split_query(query) == parse_qsl(query, keep_blank_values=True)
