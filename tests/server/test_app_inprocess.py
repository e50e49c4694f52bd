"""The service endpoints and the API docs, through the in-process tier (no socket).

``/docs`` must work offline: the page loads only assets the server itself serves, and the
OpenAPI document declares the bearer scheme that its Authorize button uses.
"""

from __future__ import annotations

import re

import httpx
import pytest

from wirelab import __version__
from wirelab.server._docs import ASSETS, BEARER_SCHEME

pytestmark = pytest.mark.asyncio


async def test_root_names_service_and_version(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "wirelab" in r.text and __version__ in r.text


async def test_healthz(app_client: httpx.AsyncClient) -> None:
    body = (await app_client.get("/healthz")).json()
    assert body["status"] == "ok" and body["streams_active"] == 0


async def test_openapi_documents_every_endpoint(app_client: httpx.AsyncClient) -> None:
    paths = (await app_client.get("/openapi.json")).json()["paths"]
    for path in (
        "/v1/stream",
        "/v1/stream/manifest",
        "/stream",
        "/stream/{n}",
        "/streamSLOW",
        "/streamSLOW/{n}",
        "/healthz",
        "/",
    ):
        assert path in paths
    assert "seed" in {p["name"] for p in paths["/v1/stream"]["get"]["parameters"]}
    assert "swagger" in (await app_client.get("/docs")).text.lower()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_only_local_assets_that_answer(
    app_client: httpx.AsyncClient, page: str
) -> None:
    r = await app_client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', r.text)
    assert len(urls) >= 3, r.text  # a script, the icon, the OpenAPI document (+ style)
    assert "http" not in r.text  # no outside address at all (fonts, CDN, validator)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await app_client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
    scripts = re.findall(r'src="([^"]+)"', r.text)
    assert any(url.endswith(".js") for url in scripts)


async def test_swagger_ui_reads_openapi_3_1(app_client: httpx.AsyncClient) -> None:
    # Swagger UI 4 shows "Unable to render this definition" for OpenAPI 3.1 documents,
    # which FastAPI writes: the bundled one must be 5 or later.
    doc = (await app_client.get("/openapi.json")).json()
    bundle = (await app_client.get("/docs/assets/swagger-ui-bundle.js")).text
    assert doc["openapi"].startswith("3.1")
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle)
    assert version is not None and int(version.group(1)) >= 5
    assert "validatorUrl: null" in (await app_client.get("/docs")).text
    assert "SwaggerUIBundle" in bundle


async def test_docs_assets_are_a_fixed_list(app_client: httpx.AsyncClient) -> None:
    for name, media_type in ASSETS.items():
        r = await app_client.get(f"/docs/assets/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == media_type
    for name in ("index.html", "..%2F..%2F__init__.py", "core.py"):
        r = await app_client.get(f"/docs/assets/{name}")
        assert r.status_code == 404 and "detail" in r.json()


async def test_openapi_declares_bearer_auth_where_a_token_is_needed(
    app_client: httpx.AsyncClient,
) -> None:
    doc = (await app_client.get("/openapi.json")).json()
    scheme = doc["components"]["securitySchemes"][BEARER_SCHEME]
    assert scheme == {"type": "http", "scheme": "bearer", "description": scheme["description"]}
    secured = {
        (path, method)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if op.get("security") == [{BEARER_SCHEME: []}]
    }
    assert ("/v1/relay/files", "post") in secured
    assert ("/v1/relay/inbox", "get") in secured
    assert ("/healthz", "get") not in secured and ("/v1/stream", "get") not in secured
    # Every operation that can answer 401 says which credentials it wants.
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if "401" in op.get("responses", {}):
                assert (path, method) in secured


async def test_in_process_tier_runs_the_lifespan(app_client: httpx.AsyncClient) -> None:
    # The relay service exists only once the lifespan ran: 401 (it asked for a token),
    # not 503 (service not started).
    r = await app_client.get("/v1/relay/inbox")
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
