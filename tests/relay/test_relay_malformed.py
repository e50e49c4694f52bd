"""Malformed numbers from a hostile client answer 4xx JSON naming the field, never 500.

Each case was a 500 (or silently accepted) before every number went through the strict
parser (:mod:`wirelab._validate`): non-ASCII digits in ``Upload-Length`` and
``Upload-Offset``, numbers past Python's int-string limit in headers, paths and
``Range``, integers past 64 bits (``max_downloads``), ``1e999``, ``NaN`` and ``Infinity``
in JSON bodies. Every answer must also be a status the OpenAPI document lists.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .conftest import Relay
from .test_relay_api import send

TUS = {"Tus-Resumable": "1.0.0"}
HUGE = "9" * 5000  # past Python's 4300-digit int-string limit
PAST_64_BITS = str(2**64)
SUPERSCRIPT_TWO = b"\xb2"  # latin-1 "²": str.isdigit() says yes, int() raises


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _raw(text: dict[str, str], raw: dict[str, bytes]) -> httpx.Headers:
    """Headers with raw byte values (httpx would refuse non-ASCII ``str`` values)."""
    return httpx.Headers({**{k.encode(): v.encode() for k, v in text.items()},
                          **{k.encode(): v for k, v in raw.items()}})  # fmt: skip


def _meta(**pairs: str) -> str:
    return ",".join(f"{k} {_b64(v)}" for k, v in {"filename": "a", "to": "bob", **pairs}.items())


@dataclass
class Api:
    """The module's server, and the statuses its OpenAPI document lists per route."""

    relay: Relay
    documented: dict[tuple[str, str], set[str]]

    def expect(self, response: httpx.Response, status: int, field: str) -> None:
        """``response`` is ``status``, listed for its route, with a JSON body naming
        ``field``."""
        assert response.status_code == status, response.text
        route = self._route(response.request.method, response.request.url.path)
        assert str(status) in self.documented[route]
        detail = response.json()["detail"] if response.content else field
        text = detail if isinstance(detail, str) else json.dumps(detail)
        assert field.lower() in text.lower(), text

    def _route(self, method: str, path: str) -> tuple[str, str]:
        for m, template in self.documented:
            pattern = re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(template))
            if m == method and re.fullmatch(pattern, path):
                return m, template
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")


@pytest.fixture(scope="module")
def api(module_relay: Relay) -> Api:
    doc = module_relay.alice.get("/openapi.json").json()
    documented = {(m.upper(), p): set(op["responses"]) for p, item in doc["paths"].items()
                  for m, op in item.items()}  # fmt: skip
    return Api(module_relay, documented)


@pytest.mark.parametrize(
    "value", [SUPERSCRIPT_TWO, HUGE.encode(), PAST_64_BITS.encode(), b"1_0", b"+5", b"0x10"]
)
def test_upload_length(api: Api, value: bytes) -> None:
    r = api.relay.alice.post(
        "/v1/relay/uploads",
        headers=_raw(TUS, {"Upload-Length": value, "Upload-Metadata": _meta().encode()}),
    )
    api.expect(r, 400, "Upload-Length")
    assert r.headers["Tus-Resumable"] == "1.0.0"


@pytest.fixture(scope="module")
def upload_url(api: Api) -> str:
    r = api.relay.alice.post(
        "/v1/relay/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": _meta()}
    )
    assert r.status_code == 201, r.text
    return r.headers["Location"]


@pytest.mark.parametrize("value", [SUPERSCRIPT_TWO, HUGE.encode(), PAST_64_BITS.encode()])
@pytest.mark.distributed
def test_upload_offset(api: Api, upload_url: str, value: bytes) -> None:
    headers = _raw(TUS, {"Content-Type": b"application/offset+octet-stream",
                         "Upload-Offset": value})  # fmt: skip
    api.expect(api.relay.alice.patch(upload_url, content=b"abc", headers=headers),
               400, "Upload-Offset")  # fmt: skip
    # Nothing was stored: the upload is still at 0.
    assert api.relay.alice.head(upload_url, headers=TUS).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("value", [PAST_64_BITS, HUGE, "\u0661\u0662", "0", "-1", "1.0"])
def test_max_downloads_metadata(api: Api, value: str) -> None:
    meta = _meta(max_downloads=value)
    r = api.relay.alice.post(
        "/v1/relay/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": meta}
    )
    api.expect(r, 400, "max_downloads")


@pytest.fixture(scope="module")
def file_url(api: Api) -> str:
    r = send(api.relay.alice, b"abcdefghij", name="ten.bin")
    assert r.status_code == 201, r.text
    return str(r.json()["url"])


@pytest.mark.parametrize(
    "value", [f"bytes={HUGE}-", f"bytes=0-{HUGE}", f"bytes=-{HUGE}", f"bytes={PAST_64_BITS}-"]
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_range_numbers_past_64_bits(api: Api, file_url: str, value: str, method: str) -> None:
    r = api.relay.bob.request(method, file_url, headers={"Range": value})
    api.expect(r, 416, "Range")
    assert r.headers["Content-Range"] == "bytes */10"


def test_range_with_non_ascii_digits_is_ignored(api: Api, file_url: str) -> None:
    # Not a valid range (RFC 9110 lets a server ignore it): the whole file, not a 500.
    r = api.relay.bob.get(file_url, headers=_raw({}, {"Range": b"bytes=\xb2-"}))
    assert (r.status_code, r.content) == (200, b"abcdefghij")


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("max_downloads", PAST_64_BITS),
        ("max_downloads", HUGE),
        ("max_downloads", "\u0661"),
        ("ttl", "1e999"),
        ("ttl", "nan"),
        ("ttl", "inf"),
        ("ttl", "Infinity"),
        ("ttl", HUGE),
    ],
)
def test_send_query_numbers(api: Api, param: str, value: str) -> None:
    r = send(api.relay.alice, b"x", **{param: value})
    api.expect(r, 422, param)
    assert r.json()["detail"][0]["loc"] == ["query", param]


@pytest.mark.parametrize(
    ("param", "value"), [("lease", "nan"), ("lease", "1e999"), ("wait", "-inf"), ("wait", HUGE)]
)
def test_next_query_numbers(api: Api, param: str, value: str) -> None:
    api.expect(api.relay.carol.post("/v1/relay/inbox/next", params={param: value}), 422, param)


_BATCH = '{"to": "bob", %s "files": [{"name": "a", "size": %s}]}'


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (_BATCH % ('"ttl": 1e999,', "1"), ["body", "ttl"]),
        (_BATCH % ('"ttl": NaN,', "1"), ["body", "ttl"]),
        (_BATCH % ('"ttl": Infinity,', "1"), ["body", "ttl"]),
        (_BATCH % ('"ttl": -Infinity,', "1"), ["body", "ttl"]),
        (_BATCH % (f'"max_downloads": {PAST_64_BITS},', "1"), ["body", "max_downloads"]),
        (_BATCH % ("", "1e999"), ["body", "files", 0, "size"]),
        (_BATCH % ("", "NaN"), ["body", "files", 0, "size"]),
        (_BATCH % ("", PAST_64_BITS), ["body", "files", 0, "size"]),
        (_BATCH % ("", HUGE), ["body", "files", 0, "size"]),
    ],
)
def test_batch_json_numbers(api: Api, body: str, loc: list[Any]) -> None:
    r = api.relay.alice.post(
        "/v1/relay/batches", content=body, headers={"Content-Type": "application/json"}
    )
    api.expect(r, 422, str(loc[-1]))
    assert r.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize(
    "body",
    [
        '{"algorithm": "x25519", "public_key": NaN}',
        "[" * 100_000 + "]" * 100_000,  # deeper than the parser's recursion limit
        b'{"algorithm": "\xff"}',
    ],
)
def test_key_body_is_parsed_strictly(api: Api, body: str | bytes) -> None:
    r = api.relay.alice.put(
        "/v1/relay/keys/me", content=body, headers={"Content-Type": "application/json"}
    )
    api.expect(r, 422, "body")


@pytest.mark.parametrize(
    "path", [f"/stream/{HUGE}", f"/streamSLOW/{PAST_64_BITS}", "/stream/\u0661"]
)
def test_classic_count_in_the_path(api: Api, path: str) -> None:
    # Not a whole number the server can hold: 404, as for any unknown path (the original).
    api.expect(api.relay.alice.get(path), 404, "n")


_STREAM_QUERIES = [("count", "\u0661"), ("seed", HUGE), ("speed", "nan"), ("min_interval", "1e999")]


@pytest.mark.parametrize("route", ["/v1/stream", "/v1/stream/manifest"])
@pytest.mark.parametrize(("param", "value"), _STREAM_QUERIES)
def test_stream_query_numbers(api: Api, route: str, param: str, value: str) -> None:
    api.expect(api.relay.alice.get(route, params={param: value}), 422, param)


def test_strict_numbers_still_accept_ordinary_values(api: Api, file_url: str) -> None:
    assert send(api.relay.alice, b"x", ttl="3600", max_downloads="2").status_code == 201
    assert send(api.relay.alice, b"x", ttl="1.5e3").status_code == 201
    ranged = api.relay.bob.get(file_url, headers={"Range": "bytes=2-4"})
    assert (ranged.status_code, ranged.content) == (206, b"cde")
    r = api.relay.alice.post(
        "/v1/relay/batches",
        json={"to": "carol", "ttl": 60.5, "max_downloads": 3, "files": [{"name": "a", "size": 1}]},
    )
    assert r.status_code == 201, r.text
