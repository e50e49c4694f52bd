"""Schema-based fuzzing of every endpoint of a real server (schemathesis over the OpenAPI
document): no answer may be a 5xx, and every status must be listed in the document.

Cases are generated from the document itself, both conforming (positive) and
non-conforming (negative) ones, with alice's or bob's token, a bad one or none, and for
the file and upload routes also with the id of a real file or upload (so that ``Range``
and the tus offsets meet real state). ``Range``, ``Upload-Length``, ``Upload-Offset`` and
the ``max_downloads`` metadata are also drawn from numbers the strict grammar refuses
(past 64 bits, past Python's int-string limit, other scripts' digits): with any of those
parsers reverted to ``int()`` this test fails. Generation is derandomized and bounded, so
the run is reproducible and takes seconds.
"""

from __future__ import annotations

from base64 import b64encode
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from wirelab.server._app import create_app
from wirelab.testing._live import LiveServer

from .conftest import Relay
from .test_relay_api import send

pytestmark = pytest.mark.slow

#: Examples per operation, and for those that parse ``Range`` and the tus numbers (on
#: real state: the pinned file and upload).
EXAMPLES = 15
EXAMPLES_DEEP = 30
# Routes whose pinned id would block (a live stream of an unfinished upload) or be
# consumed by the first example (deletions).
_NOT_PINNED = {("GET", "/v1/relay/live/{upload_id}")}
# A tus PATCH body is raw bytes, as any octet stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the document (built without a server)."""
    doc = create_app().openapi()
    return [
        (m.upper(), p)
        for p, item in doc["paths"].items()
        for m in item
        # Media jobs fetch the URLs they are given: random URLs would leave the machine.
        if not p.startswith("/v1/media/")
    ]


@dataclass
class Target:
    server: LiveServer
    doc: dict[str, Any]
    schema: Any
    tokens: dict[str, str]
    file_id: str
    upload_id: str


@pytest.fixture(scope="module")
def target(module_relay: Relay) -> Target:
    """The module's server, with a file for bob and an upload in progress to bob."""
    sent = send(module_relay.alice, b"0123456789" * 100, name="fuzz.bin")
    assert sent.status_code == 201, sent.text
    created = module_relay.alice.post(
        "/v1/relay/uploads",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": "4096",
                 "Upload-Metadata": "filename ZnV6ego=,to Ym9i"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    doc = module_relay.alice.get("/openapi.json").json()
    return Target(
        module_relay.server,
        doc,
        schemathesis.openapi.from_dict(doc),
        module_relay.tokens,
        sent.json()["id"],
        created.headers["Location"].rsplit("/", 1)[1],
    )


def _strategies(target: Target, method: str, path: str) -> st.SearchStrategy[Any]:
    operation = target.schema[path][method]
    definition = target.doc["paths"][path][method.lower()]
    pinned: dict[str, str] = {}
    if (method, path) not in _NOT_PINNED and method != "DELETE":
        if "{file_id}" in path:
            pinned = {"file_id": target.file_id}
        elif "{upload_id}" in path:
            pinned = {"upload_id": target.upload_id}
    modes = [GenerationMode.POSITIVE]
    if definition.get("parameters") or "requestBody" in definition:
        modes.append(GenerationMode.NEGATIVE)
    found = [operation.as_strategy(mode) for mode in modes]
    if pinned:  # mostly the real id: most of the parsing happens once it is found
        found += 2 * [operation.as_strategy(mode, path_parameters=pinned) for mode in modes]
    return st.one_of(found)


_LATIN1 = st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_categories=["Cc"])
# Numbers around the strict grammar's edges: past 64 bits, past Python's 4300-digit
# int-string limit, digits of other scripts that latin-1 can carry (², ³, ¹), signs.
_HUGE = "9" * 5000
_NUMBER = st.one_of(
    st.sampled_from([_HUGE, "\xb2", "1\xb3", str(2**64), "-1", "+1", "1_0"]),
    st.integers(0, 2**70).map(str),
    st.from_regex(r"\A[-+]?[0-9\xb2\xb3\xb9]{1,25}\Z"),
)
_RANGE = st.one_of(
    st.sampled_from([f"bytes={_HUGE}-", f"bytes=0-{_HUGE}", f"bytes=-{_HUGE}", "bytes=\xb2-"]),
    st.builds("bytes={}-{}".format, _NUMBER | st.just(""), _NUMBER | st.just("")),
    st.text(_LATIN1, max_size=40),
)


def _metadata(max_downloads: str) -> str:
    """tus metadata of a valid upload to bob, but for its ``max_downloads``."""
    return "filename YS5iaW4=,to Ym9i,max_downloads " + b64encode(max_downloads.encode()).decode()


# Per path: headers the document describes with a schema schemathesis keeps to, drawn
# here from nastier values (each one sometimes, else schemathesis' own value is sent).
_NASTY: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "/v1/relay/files/{file_id}": {"Range": _RANGE},  # (If-Range: schemathesis' values)
    "/v1/relay/uploads": {"Upload-Length": _NUMBER, "Upload-Metadata": _NUMBER.map(_metadata)},
    "/v1/relay/uploads/{upload_id}": {"Upload-Offset": _NUMBER},
}


def _extra_headers(path: str) -> st.SearchStrategy[dict[str, str]]:
    nasty = _NASTY.get(path, {})
    # Hypothesis starts from the first branch: the nasty values, not their absence.
    return st.fixed_dictionaries(nasty) | st.fixed_dictionaries({}, optional=nasty)


@pytest.mark.parametrize(("method", "path"), _operations())
def test_no_server_error_and_every_status_documented(
    target: Target, method: str, path: str
) -> None:
    documented = set(target.doc["paths"][path][method.lower()]["responses"])
    # Mostly the recipient (the one who can see the pinned file), sometimes no access.
    who = st.sampled_from(["bob", "bob", "bob", "alice", "not-a-token", None])

    deep = path in _NASTY and method in ("GET", "HEAD", "POST", "PATCH")

    @settings(
        max_examples=EXAMPLES_DEEP if deep else EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategies(target, method, path), user=who, extra=_extra_headers(path))
    def check(case: Any, user: str | None, extra: dict[str, str]) -> None:
        headers = dict(extra)
        if user is not None:
            headers["Authorization"] = f"Bearer {target.tokens.get(user, user)}"
        response = case.call(base_url=target.server.url, headers=headers, timeout=30)
        assert response.status_code < 500, (response.status_code, response.text[:500])
        assert str(response.status_code) in documented, (
            f"{method} {path} answered {response.status_code}, not in the OpenAPI document:"
            f" {response.text[:300]}"
        )

    check()
