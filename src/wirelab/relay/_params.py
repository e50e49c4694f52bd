"""The relay routes' strict request parsing: parameter types and a strict-JSON route class.

Both apply :mod:`wirelab._validate` (one grammar for every number a client sends) inside
FastAPI: :data:`STRICT_INT` and :data:`STRICT_FLOAT` annotate numeric query, header and
body fields (``Annotated`` with the usual ``Query``/``Field`` constraints, so the
OpenAPI document keeps describing them), and :class:`StrictJSONRoute` parses JSON bodies
with :func:`~wirelab._validate.loads_json` before FastAPI does, so ``NaN``, ``Infinity``,
``1e999`` and integers past 64 bits are refused with a 422 naming the field instead of
reaching the handlers (and the database) or breaking the error's own JSON encoding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BeforeValidator
from starlette.requests import Request
from starlette.responses import Response

from .._validate import INT64_MAX, INT64_MIN, InvalidField, loads_json, parse_int, parse_number

__all__ = ["STRICT_FLOAT", "STRICT_INT", "StrictJSONRoute"]


def _strict_int(value: object) -> object:
    """A text value (query, header) parsed by the strict grammar; a decoded JSON integer
    checked against the 64-bit range; anything else is left to pydantic's own errors."""
    if isinstance(value, str):
        return parse_int(value, minimum=INT64_MIN)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidField((), f"must be an integer between {INT64_MIN} and {INT64_MAX}")
    return value


def _strict_float(value: object) -> object:
    """A text value parsed by the strict grammar (finite, ASCII); a float checked finite."""
    if isinstance(value, str):
        return parse_number(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidField((), "must be a finite number")
    return value


#: Metadata of an integer field (``Annotated[int | None, STRICT_INT, Query(ge=1)]``):
#: ASCII digits, 64-bit range; the field's own bounds stay in ``Query``/``Field``.
STRICT_INT = BeforeValidator(_strict_int)
#: Metadata of a number field: a finite ASCII decimal (no ``nan``, ``inf``, ``1e999``).
STRICT_FLOAT = BeforeValidator(_strict_float)

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


def _declares_json(content_type: str | None) -> bool:
    # A superset of the content types FastAPI decodes as JSON (application/json, */*+json):
    # checking more bodies than FastAPI parses only turns a later 422 into this one.
    return content_type is not None and "json" in content_type.lower()


class StrictJSONRoute(APIRoute):
    """An ``APIRoute`` whose JSON request body is first parsed by ``loads_json``.

    A body that breaks the strict rules raises :class:`~wirelab._validate.InvalidField`
    (answered 422 by the app's handler) before FastAPI parses it its own way. Routes
    without a body model are left as they are (their bodies stream).
    """

    def get_route_handler(self) -> Endpoint:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict_handler(request: Request) -> Response:
            if _declares_json(request.headers.get("content-type")):
                loads_json(await request.body())  # the body is cached for FastAPI
            return await handler(request)

        return strict_handler
