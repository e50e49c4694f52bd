"""Strict parsing of untrusted request fields: numbers and JSON (pure; no I/O).

Every number a client sends (a header, a query or path parameter, a tus metadata value,
a JSON body) is parsed here, so that one grammar applies everywhere:

- integers are ASCII ``[0-9]`` digits, optionally after ``-``, at most 19 of them (Python's
  ``int()`` also accepts ``"١٢"``, ``" 1_0 "`` and raises a plain ``ValueError`` past 4300
  digits), and must lie in a 64-bit range (what SQLite and the other stores can hold);
- numbers are ASCII decimal literals of at most :data:`NUMBER_MAX_CHARS` characters that
  are finite once parsed (no ``nan``, ``inf``, ``1e999``);
- JSON bodies are parsed with the same rules for every number they contain (no ``NaN``,
  ``Infinity``, ``1e999``, no integer past 64 bits) and a bounded nesting depth.

A failure raises :class:`InvalidField`, which names the field (``loc``, as in FastAPI's
422 bodies) and the rule; the server answers it with a 4xx JSON error. Being a
:class:`~wirelab.UsageError` (a ``ValueError``) it is also accepted where a validator
callback (pydantic) expects a ``ValueError``; the server never maps any *other*
``ValueError`` to a 4xx, so real bugs keep answering 500.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Final

from ._exceptions import UsageError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "NUMBER_MAX_CHARS",
    "InvalidField",
    "json_safe",
    "loads_json",
    "parse_int",
    "parse_number",
]

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
#: Longest decimal number literal accepted (a float needs at most 17 significant digits).
NUMBER_MAX_CHARS: Final = 64
#: Longest ``input`` echoed back in an error (the rest is cut, never the field name).
_ECHO_MAX: Final = 100

_INT_RE: Final = re.compile(r"-?[0-9]{1,19}")
_NUMBER_RE: Final = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

Loc = Sequence[str | int]


def json_safe(value: object) -> object:
    """``value`` as something a strict JSON encoder accepts, short enough to echo back:
    non-finite floats become strings, long strings and byte strings are cut."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str) and len(value) > _ECHO_MAX:
        return f"{value[:_ECHO_MAX]}... ({len(value)} characters)"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json_safe(repr(value))


class InvalidField(UsageError):
    """A request field breaks its rule. ``loc`` names it as FastAPI does (``("header",
    "Upload-Length")``, ``("body", "files", 0, "size")``), ``message`` states the rule,
    ``kind`` is the error ``type`` of the 422 item and ``value`` the offending input."""

    def __init__(
        self, loc: Loc, message: str, value: object = None, kind: str = "value_error"
    ) -> None:
        self.loc = tuple(loc)
        self.message = message
        self.value = value
        self.kind = kind
        name = " ".join(str(part) for part in self.loc[1:]) or " ".join(map(str, self.loc))
        super().__init__(f"{name}: {message}" if name else message)

    def as_error(self) -> dict[str, Any]:
        """The item of a FastAPI-shaped 422 ``detail`` list, safe to encode as JSON."""
        return {
            "type": self.kind,
            "loc": list(self.loc),
            "msg": self.message,
            "input": json_safe(self.value),
        }


def _range_text(minimum: int, maximum: int) -> str:
    return f"an integer between {minimum} and {maximum}"


def parse_int(raw: str, loc: Loc = (), *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """``raw`` as an integer in ``[minimum, maximum]`` (both within 64 bits).

    Only ASCII digits, optionally after ``-``; no spaces, signs ``+``, underscores or
    other scripts' digits; at most 19 digits (so ``int()`` never meets a huge string).
    """
    if _INT_RE.fullmatch(raw) is None:
        if re.fullmatch(r"-?[0-9]+", raw, flags=re.ASCII) is not None:
            raise InvalidField(loc, f"must be {_range_text(minimum, maximum)}", raw)
        sign = ", optionally after '-'" if minimum < 0 else ""
        msg = f"must be a valid integer: ASCII digits 0-9{sign}"
        raise InvalidField(loc, msg, raw, "int_parsing")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidField(loc, f"must be {_range_text(minimum, maximum)}", raw)
    return value


def parse_number(raw: str, loc: Loc = ()) -> float:
    """``raw`` as a finite float: an ASCII decimal literal (``-1.5``, ``2e3``, ``.5``) of at
    most :data:`NUMBER_MAX_CHARS` characters; ``nan``, ``inf`` and values that overflow
    (``1e999``) are refused."""
    if len(raw) > NUMBER_MAX_CHARS or _NUMBER_RE.fullmatch(raw) is None:
        msg = f"must be a valid number: a decimal of at most {NUMBER_MAX_CHARS} ASCII characters"
        raise InvalidField(loc, msg, raw, "float_parsing")
    value = float(raw)
    if not math.isfinite(value):
        raise InvalidField(loc, "must be a finite number", raw, "float_parsing")
    return value


class _Refused:
    """Stands for a JSON number or constant that breaks the rules, until its path is known."""

    __slots__ = ("message", "raw")

    def __init__(self, raw: str, message: str) -> None:
        self.raw = raw
        self.message = message


def loads_json(data: bytes | str, root: Loc = ("body",)) -> Any:
    """Parse a JSON document strictly; raise :class:`InvalidField` naming the value.

    Refused: invalid UTF-8 or JSON, ``NaN``/``Infinity`` (Python's ``json`` accepts them),
    numbers that overflow a float (``1e999``), integers outside 64 bits, and nesting deeper
    than the interpreter's recursion limit. The error's ``loc`` is ``root`` plus the path of the
    offending value (``("body", "files", 0, "size")``).
    """
    refused: list[_Refused] = []

    def refuse(raw: str, message: str) -> _Refused:
        marker = _Refused(raw, message)
        refused.append(marker)
        return marker

    def number(raw: str) -> float | _Refused:
        value = float(raw)
        return value if math.isfinite(value) else refuse(raw, "must be a finite number")

    def integer(raw: str) -> int | _Refused:
        if _INT_RE.fullmatch(raw) is None or not INT64_MIN <= int(raw) <= INT64_MAX:
            return refuse(raw, f"must be {_range_text(INT64_MIN, INT64_MAX)}")
        return int(raw)

    def constant(raw: str) -> _Refused:
        return refuse(raw, f"{raw} is not JSON: numbers must be finite")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        document = json.loads(text, parse_float=number, parse_int=integer, parse_constant=constant)
    except UnicodeDecodeError:
        raise InvalidField(root, "must be UTF-8 encoded JSON", None, "json_invalid") from None
    except RecursionError:  # the C parser recurses per nesting level, and checks it
        raise InvalidField(root, "JSON nested too deeply", None, "json_invalid") from None
    except json.JSONDecodeError as exc:
        raise InvalidField(
            root, f"invalid JSON: {exc.msg} at position {exc.pos}", None, "json_invalid"
        ) from None
    if refused:
        path = _find(document, refused[0])
        raise InvalidField((*root, *path), refused[0].message, refused[0].raw)
    return document


def _find(document: Any, marker: _Refused) -> list[str | int]:
    """The path of ``marker`` in ``document`` (iterative: documents may nest deeply)."""
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        node, path = stack.pop()
        if node is marker:
            return path
        if isinstance(node, dict):
            stack.extend((value, [*path, key]) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, [*path, i]) for i, value in enumerate(node))
    return []  # pragma: no cover - the marker is always in the document
