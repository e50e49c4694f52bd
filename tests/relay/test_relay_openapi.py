"""The OpenAPI document describes what clients need: the bearer scheme, the tus, ``Range``
and ``If-Range`` headers, and the statuses every relay route can answer (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wirelab.server import ServerConfig
from wirelab.server._app import create_app


@pytest.fixture
def doc(tmp_path: Path) -> dict[str, Any]:
    document: dict[str, Any] = create_app(ServerConfig(data_dir=tmp_path)).openapi()
    return document


def _headers(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}


def test_the_bearer_scheme_secures_every_relay_route(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path.startswith("/v1/relay/") and method != "options":  # tus discovery: open
                assert operation.get("security") == [{"bearer": []}], (method, path)
                assert {"401", "503"} <= set(operation["responses"]), (method, path)


def test_the_tus_and_range_headers_are_described(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    create = paths["/v1/relay/uploads"]["post"]
    assert _headers(create) >= {
        "Tus-Resumable", "Upload-Length", "Upload-Metadata", "Upload-Defer-Length"
    }  # fmt: skip
    patch = paths["/v1/relay/uploads/{upload_id}"]["patch"]
    assert _headers(patch) >= {"Tus-Resumable", "Upload-Offset", "Upload-Checksum"}
    assert "application/offset+octet-stream" in patch["requestBody"]["content"]
    for method in ("get", "head"):
        download = paths["/v1/relay/files/{file_id}"][method]
        assert _headers(download) >= {"Range", "If-Range"}
        assert {"200", "206", "404", "410", "416"} <= set(download["responses"])
    assert {"400", "409", "412", "415", "460"} <= set(patch["responses"])
