"""Malformed numbers from a hostile client answer 4xx JSON naming the field, never 500.

Each case was a 500 (or silently accepted) before every number went through the strict
parser (:mod:`wirelab._validate`): non-ASCII digits in ``Upload-Length`` and
``Upload-Offset``, numbers past Python's int-string limit in headers, paths and
``Range``, integers past 64 bits (``max_downloads``), ``1e999``, ``NaN`` and ``Infinity``
in JSON bodies. Every answer must also be a status the OpenAPI document lists.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest

from .conftest import Relay

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


@pytest.fixture(scope="module")
def documented(module_relay: Relay) -> dict[tuple[str, str], set[str]]:
    doc = module_relay.alice.get("/openapi.json").json()
    return {(m.upper(), p): set(op["responses"]) for p, item in doc["paths"].items()
            for m, op in item.items()}  # fmt: skip


def _assert_names(
    response: httpx.Response,
    status: int,
    field: str,
    route: tuple[str, str],
    documented: dict[tuple[str, str], set[str]],
) -> None:
    """``response`` is ``status`` with a JSON body naming ``field``, listed in the docs."""
    assert response.status_code == status, response.text
    assert str(status) in documented[route]
    detail = response.json()["detail"]
    text = detail if isinstance(detail, str) else json.dumps(detail)
    assert field.lower() in text.lower(), text


@pytest.mark.parametrize(
    "value", [SUPERSCRIPT_TWO, HUGE.encode(), PAST_64_BITS.encode(), b"1_0", b"+5", b"0x10"]
)
def test_upload_length(
    module_relay: Relay, documented: dict[tuple[str, str], set[str]], value: bytes
) -> None:
    r = module_relay.alice.post(
        "/v1/relay/uploads",
        headers=_raw(TUS, {"Upload-Length": value, "Upload-Metadata": _meta().encode()}),
    )
    _assert_names(r, 400, "Upload-Length", ("POST", "/v1/relay/uploads"), documented)
    assert r.headers["Tus-Resumable"] == "1.0.0"


@pytest.fixture(scope="module")
def upload_url(module_relay: Relay) -> str:
    r = module_relay.alice.post(
        "/v1/relay/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": _meta()}
    )
    assert r.status_code == 201, r.text
    return r.headers["Location"]


@pytest.mark.parametrize("value", [SUPERSCRIPT_TWO, HUGE.encode(), PAST_64_BITS.encode()])
def test_upload_offset(
    module_relay: Relay,
    documented: dict[tuple[str, str], set[str]],
    upload_url: str,
    value: bytes,
) -> None:
    headers = _raw(TUS, {"Content-Type": b"application/offset+octet-stream",
                         "Upload-Offset": value})  # fmt: skip
    r = module_relay.alice.patch(upload_url, content=b"abc", headers=headers)
    route = ("PATCH", "/v1/relay/uploads/{upload_id}")
    _assert_names(r, 400, "Upload-Offset", route, documented)
    # Nothing was stored: the upload is still at 0.
    assert module_relay.alice.head(upload_url, headers=TUS).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("value", [PAST_64_BITS, HUGE, "\u0661\u0662", "0", "-1", "1.0"])
def test_max_downloads_metadata(
    module_relay: Relay, documented: dict[tuple[str, str], set[str]], value: str
) -> None:
    r = module_relay.alice.post(
        "/v1/relay/uploads",
        headers={**TUS, "Upload-Length": "3", "Upload-Metadata": _meta(max_downloads=value)},
    )
    _assert_names(r, 400, "max_downloads", ("POST", "/v1/relay/uploads"), documented)


@pytest.fixture(scope="module")
def file_url(module_relay: Relay) -> str:
    data = b"abcdefghij"
    r = module_relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "ten.bin"},
        content=data,
        headers={"Wirelab-Sha256": hashlib.sha256(data).hexdigest()},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["url"])


@pytest.mark.parametrize(
    "value", [f"bytes={HUGE}-", f"bytes=0-{HUGE}", f"bytes=-{HUGE}", f"bytes={PAST_64_BITS}-"]
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_range_numbers_past_64_bits(
    module_relay: Relay,
    documented: dict[tuple[str, str], set[str]],
    file_url: str,
    value: str,
    method: str,
) -> None:
    r = module_relay.bob.request(method, file_url, headers={"Range": value})
    assert r.status_code == 416
    assert str(416) in documented[(method, "/v1/relay/files/{file_id}")]
    assert r.headers["Content-Range"] == "bytes */10"
    if method == "GET":
        assert r.json()["detail"].startswith("Range: ")


def test_range_with_non_ascii_digits_is_ignored(module_relay: Relay, file_url: str) -> None:
    # Not a valid range (RFC 9110 lets a server ignore it): the whole file, not a 500.
    r = module_relay.bob.get(file_url, headers=_raw({}, {"Range": b"bytes=\xb2-"}))
    assert r.status_code == 200
    assert r.content == b"abcdefghij"


def _send(relay: Relay, **params: str) -> httpx.Response:
    return relay.alice.post(
        "/v1/relay/files",
        params={"to": "bob", "name": "x.bin", **params},
        content=b"x",
        headers={"Wirelab-Sha256": hashlib.sha256(b"x").hexdigest()},
    )


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
def test_send_query_numbers(
    module_relay: Relay, documented: dict[tuple[str, str], set[str]], param: str, value: str
) -> None:
    r = _send(module_relay, **{param: value})
    _assert_names(r, 422, param, ("POST", "/v1/relay/files"), documented)
    assert r.json()["detail"][0]["loc"] == ["query", param]


@pytest.mark.parametrize(
    ("param", "value"), [("lease", "nan"), ("lease", "1e999"), ("wait", "-inf"), ("wait", HUGE)]
)
def test_next_query_numbers(
    module_relay: Relay, documented: dict[tuple[str, str], set[str]], param: str, value: str
) -> None:
    r = module_relay.carol.post("/v1/relay/inbox/next", params={param: value})
    _assert_names(r, 422, param, ("POST", "/v1/relay/inbox/next"), documented)


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
def test_batch_json_numbers(
    module_relay: Relay, documented: dict[tuple[str, str], set[str]], body: str, loc: list[Any]
) -> None:
    r = module_relay.alice.post(
        "/v1/relay/batches", content=body, headers={"Content-Type": "application/json"}
    )
    _assert_names(r, 422, str(loc[-1]), ("POST", "/v1/relay/batches"), documented)
    assert r.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize(
    "body",
    [
        '{"algorithm": "x25519", "public_key": NaN}',
        "[" * 100_000 + "]" * 100_000,  # deeper than the parser's recursion limit
        b'{"algorithm": "\xff"}',
    ],
)
def test_key_body_is_parsed_strictly(
    module_relay: Relay, documented: dict[tuple[str, str], set[str]], body: str | bytes
) -> None:
    r = module_relay.alice.put(
        "/v1/relay/keys/me", content=body, headers={"Content-Type": "application/json"}
    )
    _assert_names(r, 422, "body", ("PUT", "/v1/relay/keys/me"), documented)


@pytest.mark.parametrize(
    "path", [f"/stream/{HUGE}", f"/streamSLOW/{PAST_64_BITS}", "/stream/\u0661"]
)
def test_classic_count_in_the_path(
    module_relay: Relay, documented: dict[tuple[str, str], set[str]], path: str
) -> None:
    r = module_relay.alice.get(path)
    route = ("GET", "/streamSLOW/{n}" if "SLOW" in path else "/stream/{n}")
    _assert_names(r, 422, "n", route, documented)
    assert r.json()["detail"][0]["loc"] == ["path", "n"]


@pytest.mark.parametrize(
    ("param", "value"),
    [("count", "\u0661"), ("seed", HUGE), ("speed", "nan"), ("min_interval", "1e999")],
)
@pytest.mark.parametrize("route", ["/v1/stream", "/v1/stream/manifest"])
def test_stream_query_numbers(
    module_relay: Relay,
    documented: dict[tuple[str, str], set[str]],
    route: str,
    param: str,
    value: str,
) -> None:
    r = module_relay.alice.get(route, params={param: value})
    _assert_names(r, 422, param, ("GET", route), documented)


def test_strict_numbers_still_accept_ordinary_values(module_relay: Relay, file_url: str) -> None:
    assert _send(module_relay, ttl="3600", max_downloads="2").status_code == 201
    assert _send(module_relay, ttl="1.5e3").status_code == 201
    ranged = module_relay.bob.get(file_url, headers={"Range": "bytes=2-4"})
    assert (ranged.status_code, ranged.content) == (206, b"cde")
    r = module_relay.alice.post(
        "/v1/relay/batches",
        json={"to": "carol", "ttl": 60.5, "max_downloads": 3, "files": [{"name": "a", "size": 1}]},
    )
    assert r.status_code == 201, r.text
