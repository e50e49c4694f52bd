"""``/docs`` and ``/redoc`` that work offline, and the bearer scheme for Authorize.

FastAPI's default ``/docs`` page loads Swagger UI from a CDN (and ``/redoc`` ReDoc): on a
machine without internet access the page stays blank. Here both load their assets from the
``fastapi-offline`` package (MIT; Swagger UI 5 and ReDoc 2 inside, Apache-2.0 and MIT),
served under ``/docs/assets/``; the Swagger validator badge and ReDoc's web fonts (more
outside requests) are off. (Swagger UI 5 is needed: 4.x cannot read OpenAPI 3.1.)

The OpenAPI document declares an HTTP bearer scheme, and every operation that documents a
401 answer requires it: Swagger UI then shows "Authorize" (paste the API token that
``wirelab users add`` printed) and sends ``Authorization: Bearer ...`` with those calls.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import FileResponse, HTMLResponse

__all__ = ["ASSETS", "BEARER_SCHEME", "install_docs"]

ASSETS_URL = "/docs/assets"
# The only files served: no path from the request ever reaches the file system.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_STATIC = files("fastapi_offline") / "static"
BEARER_SCHEME = "bearer"  # the name the relay's routes declare too

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - API docs</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{openapi_url}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
</script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (made with ``docs_url=None``,
    ``redoc_url=None``) and the bearer scheme to its OpenAPI document."""
    page = _PAGE.format(title=app.title, assets=ASSETS_URL, openapi_url=app.openapi_url)

    redoc = get_redoc_html(
        openapi_url=str(app.openapi_url),
        title=f"{app.title} - API docs",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return redoc

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no docs asset {name!r}")
        return FileResponse(str(_STATIC / name), media_type=media_type)

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_bearer(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented hook


def _with_bearer(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    # Routes may declare it themselves: theirs is kept, and so is their "security".
    components.setdefault("securitySchemes", {}).setdefault(
        BEARER_SCHEME,
        {
            "type": "http",
            "scheme": "bearer",
            "description": "The API token `wirelab users add NAME` printed.",
        },
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "401" in operation.get("responses", {}):
                operation.setdefault("security", [{BEARER_SCHEME: []}])
    return schema
