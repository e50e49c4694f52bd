"""Helpers shared by the command modules of the ``wirelab`` CLI: output, errors, options.

The output contract of every command (documented in ``docs/client.md``):

- Results go to stdout; progress bars, notes and errors go to stderr.
- With ``--json``, stdout gets exactly one JSON object, for errors too: ``{"ok": true,
  ...}`` from :func:`emit`, or ``{"ok": false, "error": MESSAGE, "error_kind": KIND,
  "exit_code": N, ...}`` from :func:`handle_errors` (plus what :func:`json_extra`
  recorded, e.g. the files received before the failure).
- Exit status by kind of failure (:func:`classify`): :data:`EXIT_USAGE` for bad usage,
  :data:`EXIT_AUTH` for a missing or refused token, :data:`EXIT_NETWORK` when the server
  could not be reached or the connection broke, :data:`EXIT_DATA` for a problem with the
  data (verification, a local file or disk, a missing user or file, a full quota),
  :data:`EXIT_FAILURE` for anything else (a server error), :data:`EXIT_INTERRUPTED`
  after Ctrl-C.

A command group built with :class:`WirelabGroup` answers click's own usage errors with the
JSON object too when ``--json`` is on the command line. Command modules (relay, users,
media, ...) decorate their commands with :func:`handle_errors` and print with
:func:`emit`; nothing else is needed for the contract.
"""

from __future__ import annotations

import errno
import functools
import gc
import json
import re
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click

from ._exceptions import (
    HTTPStatusError,
    IntegrityError,
    ProtocolError,
    TransportError,
    TruncatedError,
    UsageError,
    WirelabError,
)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "DEFAULT_URL",
    "EXIT_AUTH",
    "EXIT_DATA",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_USAGE",
    "ByteSize",
    "WirelabGroup",
    "check_url",
    "classify",
    "describe_error",
    "emit",
    "fail",
    "handle_errors",
    "http_url",
    "human_size",
    "json_extra",
    "json_option",
    "note",
    "set_hint",
    "tls_verify",
]

DEFAULT_URL = "http://127.0.0.1:8080"  # equal to wirelab.client.DEFAULT_URL (tested)

EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = 3
EXIT_NETWORK: Final = 4
EXIT_DATA: Final = 5
EXIT_INTERRUPTED: Final = 130

_KIND_CODES: Final = {
    "failure": EXIT_FAILURE,
    "usage": EXIT_USAGE,
    "auth": EXIT_AUTH,
    "network": EXIT_NETWORK,
    "data": EXIT_DATA,
    "interrupted": EXIT_INTERRUPTED,
}
# UsageError subclasses that are about the data, not the command line (by name: this
# module must not import the client or the db, which cost start-up time).
_DATA_USAGE_ERRORS: Final = frozenset(
    {"UserNotFoundError", "UserExistsError", "DuplicateError", "DestinationExistsError"}
)
_META_EXTRA: Final = "wirelab.json_extra"
_META_HINTS: Final = "wirelab.hints"


def human_size(n: float) -> str:
    """``n`` bytes for people: ``"512 B"``, ``"1.5 MB"`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
_UNITS: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """A size in bytes: ``1048576``, ``64M``, ``64MiB``, ``1.5G`` (binary multiples).

    ``minimum`` is the smallest accepted value (1 by default: a size of nothing is
    usually a mistake).
    """

    name = "size"

    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            size = value
        else:
            match = _SIZE.fullmatch(str(value).strip())
            if not match or len(match.group(1)) > 30:
                self.fail(f"{value!r} is not a size like 1048576, 64M or 1G", param, ctx)
            size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
        if size < self.minimum:
            self.fail(f"{value!r} is below the minimum of {self.minimum} bytes", param, ctx)
        return size


def describe_error(exc: BaseException) -> str:
    """The one-line message for ``exc``, as ``wirelab: error:`` prints it."""
    if isinstance(exc, OSError):  # no WirelabError is an OSError
        text = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        return " ".join(text.split())
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return " ".join(str(exc).split()) or type(exc).__name__


def classify(exc: BaseException) -> tuple[str, int]:
    """The kind of failure ``exc`` is and the exit status for it (module docstring)."""
    kind = _kind(exc)
    return kind, _KIND_CODES[kind]


def _kind(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, click.ClickException):
        return "usage"
    if isinstance(exc, HTTPStatusError):
        return _http_kind(exc.status_code)
    if isinstance(exc, TransportError | TruncatedError):
        return "network"
    if isinstance(exc, IntegrityError | ProtocolError | OSError):
        return "data"
    name = type(exc).__name__
    if isinstance(exc, UsageError):
        if name in {"AuthenticationError", "MissingCredentials", "InvalidCredentials"}:
            return "auth"
        if name in _DATA_USAGE_ERRORS:
            return "data"
        return "usage"
    if name in {"DatabaseError", "SchemaVersionError"}:
        return "data"
    return "failure"


def _http_kind(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status in (400, 405, 414, 422, 431):
        return "usage"
    if status in (408, 502, 503, 504):
        return "network"
    if 400 <= status < 500 or status == 507:
        return "data"
    return "failure"


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


def _meta() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return {} if ctx is None else ctx.meta


def json_extra(**fields: Any) -> None:
    """Record ``fields`` for the ``--json`` error object of the running command (e.g. the
    files it completed before it failed); later calls replace earlier values."""
    _meta().setdefault(_META_EXTRA, {}).update(fields)


def set_hint(text: str, *, on: str = "interrupted") -> None:
    """What to do next, added to the error message of one kind of failure: ``on`` is
    ``"interrupted"`` (Ctrl-C: how to resume), ``"auth"`` (a refused token: where it came
    from) or ``"disk"`` (a full disk: what was kept)."""
    _meta().setdefault(_META_HINTS, {})[on] = text


def note(text: str) -> None:
    """One informational line on stderr (never on stdout: it belongs to the results)."""
    click.echo(f"wirelab: {text}", err=True)


def emit(doc: dict[str, Any]) -> None:
    """Print the ``--json`` result object: ``{"ok": true, **doc}``, one line on stdout."""
    click.echo(json.dumps({"ok": True, **doc}, ensure_ascii=False))


def json_option(func: F) -> F:
    """The ``--json`` flag, stored as ``as_json`` (what :func:`handle_errors` looks at)."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object on stdout, errors too."
    )(func)


def fail(
    message: str, code: int = EXIT_FAILURE, *, as_json: bool = False, kind: str | None = None
) -> NoReturn:
    """Report one failure and exit with ``code``: one ``wirelab: error:`` line on stderr,
    and with ``as_json`` the error object on stdout as well."""
    click.echo(f"wirelab: error: {message}", err=True)
    if as_json:
        doc = {
            "ok": False,
            "error": message,
            "error_kind": kind or _kind_of_code(code),
            "exit_code": code,
            **_meta().get(_META_EXTRA, {}),
        }
        click.echo(json.dumps(doc, ensure_ascii=False))
    sys.exit(code)


def _kind_of_code(code: int) -> str:
    return next((k for k, c in _KIND_CODES.items() if c == code), "failure")


def _message(exc: BaseException) -> str:
    message = describe_error(exc)
    hints = _meta().get(_META_HINTS, {})
    kind = classify(exc)[0]
    if kind == "interrupted" and "interrupted" in hints:
        message += f"; {hints['interrupted']}"
    if kind == "auth" and "auth" in hints:
        message += f" ({hints['auth']})"
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if full and "kept" not in message:
        message += f"; {hints.get('disk', 'nothing of this file was kept')}"
    return message


def handle_errors(func: F) -> F:
    """Report wirelab, OS and database errors and Ctrl-C as the module docstring says
    (one line, exit status by kind; the JSON object when the command has ``as_json``).
    Click's usage errors pass through to :class:`WirelabGroup`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except (WirelabError, OSError, KeyboardInterrupt) as exc:
            kind, code = classify(exc)
            fail(_message(exc), code, as_json=as_json, kind=kind)

    return wrapper  # type: ignore[return-value]


class WirelabGroup(click.Group):
    """A command group whose usage errors follow the output contract: with ``--json``
    on the command line, the error object on stdout; always exit status 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if "--json" not in argv:
                exc.show()
                sys.exit(EXIT_USAGE)
            fail(exc.format_message(), EXIT_USAGE, as_json=True, kind="usage")
        except click.Abort:
            fail("interrupted", EXIT_INTERRUPTED, as_json="--json" in argv, kind="interrupted")
        finally:
            if args is None:  # the process's own command line: it exits next
                # The interpreter's last garbage collection at exit walks every object
                # the imports made (~30 ms, as much as a whole small send). Nothing is
                # left to it: the commands close their files and connections themselves.
                gc.freeze()
        sys.exit(code if isinstance(code, int) else 0)


def check_url(value: str, option: str = "--url") -> str:
    """``value`` if it is a usable ``http(s)://host[:port]`` URL, else a usage error that
    says why (a malformed URL never reaches the HTTP library)."""
    import httpx

    if not value.lower().startswith(("http://", "https://")):
        raise click.BadParameter(
            f"{value!r} must start with http:// or https://", param_hint=option
        )
    try:
        url = httpx.URL(value)
        port = url.port
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise click.BadParameter(f"{value!r} is not a valid URL: {exc}", param_hint=option) from exc
    if not url.host:
        raise click.BadParameter(f"{value!r} has no host name", param_hint=option)
    if port is not None and not 0 < port < 65536:
        raise click.BadParameter(f"{value!r}: port {port} is out of range", param_hint=option)
    return value


def http_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A click callback: :func:`check_url` for an ``--url`` option."""
    return check_url(value)
