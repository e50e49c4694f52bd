"""Helpers shared by the command modules of the ``wirelab`` CLI (errors, URLs, TLS)."""

from __future__ import annotations

import functools
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ._exceptions import WirelabError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "DEFAULT_URL",
    "describe_error",
    "fail",
    "handle_errors",
    "http_url",
    "human_size",
    "tls_verify",
]

DEFAULT_URL = "http://127.0.0.1:8080"  # equal to wirelab.client.DEFAULT_URL (tested)


def human_size(n: float) -> str:
    """``n`` bytes for people: ``"512 B"``, ``"1.5 MB"`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


def describe_error(exc: BaseException) -> str:
    """The one-line message for ``exc``, as ``wirelab: error:`` prints it."""
    if isinstance(exc, OSError):  # no WirelabError is an OSError
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return " ".join(str(exc).split()) or type(exc).__name__


def tls_verify(cacert: Path | None, insecure: bool) -> ssl.SSLContext | bool:
    """The client's ``verify`` for --cacert / --insecure (default: the system's CAs)."""
    if insecure:
        return False
    if cacert is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(cacert))
    except ssl.SSLError as exc:
        raise click.BadParameter(f"no CA certificate in {cacert}: {exc}") from exc


def fail(message: str, code: int = 1) -> None:
    """Print one readable line to stderr and exit with ``code``."""
    click.echo(f"wirelab: error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn wirelab and OS errors into one readable line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (WirelabError, OSError) as exc:
            fail(describe_error(exc))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        return None

    return wrapper  # type: ignore[return-value]


def http_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://")
    return value
