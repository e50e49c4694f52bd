"""The app's error answers for invalid input: one boundary, FastAPI's 422 shape.

- :class:`~wirelab._validate.InvalidField` (raised by the strict parsers wherever a route
  reads a header, parameter or JSON body) answers 422 ``{"detail": [{"type", "loc",
  "msg", "input"}]}``, the shape of FastAPI's own validation errors. Only this class is
  mapped: any other ``ValueError`` is a bug and keeps answering 500.
- FastAPI's ``RequestValidationError`` is answered in the same shape, with every
  ``input`` made JSON-safe (a non-finite float, or a huge echoed value, must not turn a
  422 into a 500 while it is encoded).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse

from .._validate import InvalidField, json_safe
from ..coord import CoordinationError

__all__ = ["install_error_handlers"]


def _safe(value: Any) -> Any:
    """``value`` with every leaf passed through ``json_safe`` (inputs, ``ctx`` values)."""
    if isinstance(value, dict):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return json_safe(value)


def _item(error: dict[str, Any]) -> dict[str, Any]:
    item = dict(error)
    if "input" in item:
        item["input"] = _safe(item["input"])
    if "ctx" in item:
        item["ctx"] = _safe(item["ctx"])
    return item


async def _invalid_field(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidField)
    return JSONResponse({"detail": [exc.as_error()]}, status_code=422)


def _plain_ctx(error: dict[str, Any]) -> dict[str, Any]:
    """``error`` with an exception in its ``ctx`` (a validator's) given as its message."""
    ctx = error.get("ctx")
    if isinstance(ctx, dict) and isinstance(ctx.get("error"), BaseException):
        return {**error, "ctx": {**ctx, "error": str(ctx["error"])}}
    return error


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder([_plain_ctx(e) for e in exc.errors()])
    return JSONResponse({"detail": [_item(e) for e in errors]}, status_code=422)


async def _coordination(request: Request, exc: Exception) -> JSONResponse:
    """The coordination service (Redis) is unreachable: the request cannot be served
    safely now (503; the client retries)."""
    return JSONResponse(
        {"detail": f"service temporarily unavailable: {exc}"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the input-error (and coordination outage) handlers on ``app``."""
    app.add_exception_handler(InvalidField, _invalid_field)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(CoordinationError, _coordination)
