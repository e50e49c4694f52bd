"""Query-string parsing for the Stream endpoints (pure; no I/O).

The stream routes parse their query themselves instead of through FastAPI's dependency
injection: measured, that machinery cost about 1 ms of CPU per request, which dominated
the cost of thousands of short paced streams (benchmarks/concurrency.py). The problems
reported keep FastAPI's 422 shape (``{"type", "loc", "msg", "input"}``) so that clients see
one format, and :data:`PARAMS` also generates the OpenAPI description of the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .._validate import INT64_MIN, InvalidField, parse_int, parse_number
from ._params import CONTENTS, DIGESTS, DTYPES, MAX_SEED, InvalidParams, StreamLimits, StreamParams

__all__ = [
    "PARAMS",
    "QueryCache",
    "QueryError",
    "openapi_parameters",
    "parse_stream_query",
    "split_query",
]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str  # "integer", "number" or "string"
    description: str
    choices: tuple[str, ...] = ()


_DEFAULTS = StreamParams()
PARAMS: tuple[Param, ...] = (
    Param("count", "integer", "Number of files."),
    Param("min_size", "integer", "Smallest file, bytes (a multiple of the sample width)."),
    Param("max_size", "integer", "Largest file, bytes (a multiple of the sample width)."),
    Param("min_interval", "number", "Shortest wait before a file, seconds."),
    Param("max_interval", "number", "Longest wait before a file, seconds."),
    Param("seed", "integer", "Same parameters and seed give a byte-identical response."),
    Param("dtype", "string", "Sample type.", DTYPES),
    Param("byteorder", "string", "Byte order of the samples.", ("little", "big")),
    Param("content", "string", "Sample values.", CONTENTS),
    Param("speed", "number", "Divides every wait (e.g. 1000 for fast tests)."),
    Param("digest", "string", "Digest algorithm of every file's end frame.", DIGESTS),
)
_BY_NAME = {p.name: p for p in PARAMS}


class QueryError(ValueError):
    """Invalid query: ``errors`` is the list for the 422 body's ``detail``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors))
        self.errors = errors


def _error(name: str, kind: str, msg: str, value: object, where: str = "query") -> dict[str, Any]:
    return {"type": kind, "loc": [where, name], "msg": msg, "input": value}


def _convert(param: Param, raw: str) -> tuple[Any, dict[str, Any] | None]:
    """The value of one parameter, by the strict grammar of :mod:`wirelab._validate`
    (ASCII digits, 64-bit integers, finite numbers), or the problem."""
    loc = ("query", param.name)
    try:
        if param.kind == "integer":
            return parse_int(raw, loc, minimum=INT64_MIN), None
        if param.kind == "number":
            return parse_number(raw, loc), None
    except InvalidField as exc:
        return None, exc.as_error()
    if raw not in param.choices:
        options = ", ".join(repr(c) for c in param.choices[:-1])
        msg = f"Input should be {options} or {param.choices[-1]!r}"
        return None, _error(param.name, "literal_error", msg, raw)
    return raw, None


def parse_stream_query(
    pairs: Iterable[tuple[str, str]],
    limits: StreamLimits,
    *,
    allowed: frozenset[str] | None = None,
    fixed: dict[str, Any] | None = None,
    rename: dict[str, str] | None = None,
    manifest: bool = False,
) -> StreamParams:
    """Parse and validate query pairs into :class:`StreamParams`, or raise QueryError.

    ``allowed`` restricts the accepted names (default: all of :data:`PARAMS`); ``fixed``
    sets parameters the endpoint decides (the classic endpoints); ``rename`` maps a
    StreamParams field to the path parameter the endpoint exposes in errors (classic
    ``n``). ``manifest`` also applies the manifest's byte limit. The last of repeated
    parameters wins, as in FastAPI. Every problem is reported at once.
    """
    allowed = frozenset(_BY_NAME) if allowed is None else allowed
    values: dict[str, Any] = dict(fixed or {})
    found: dict[str, dict[str, Any]] = {}  # per name: the last occurrence decides
    for name, raw in pairs:
        param = _BY_NAME.get(name)
        if param is None or name not in allowed:
            found[name] = _error(name, "extra_forbidden", "unknown parameter", raw)
            continue
        value, problem = _convert(param, raw)
        if problem is None:
            values[name] = value
            found.pop(name, None)
        else:
            values.pop(name, None)
            found[name] = problem
    errors = list(found.values())
    params = StreamParams(**{k: v for k, v in values.items() if v is not None})
    if not errors:
        errors = _rule_errors(params, limits, rename or {}, manifest)
    if errors:
        raise QueryError(errors)
    return params


def _rule_errors(
    params: StreamParams, limits: StreamLimits, rename: dict[str, str], manifest: bool
) -> list[dict[str, Any]]:
    try:
        params.validate(limits, manifest=manifest)
    except InvalidParams as exc:
        return [
            # A renamed field is an endpoint's path parameter (classic ``n``).
            _error(rename.get(p.param, p.param), "value_error", p.message,
                   _json_safe(getattr(params, p.param)),
                   "path" if p.param in rename else "query")
            for p in exc.problems
        ]  # fmt: skip
    return []


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def openapi_parameters(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """OpenAPI ``parameters`` entries (in: query) for the given names (default: all)."""
    out = []
    for name in names or [p.name for p in PARAMS]:
        p = _BY_NAME[name]
        schema: dict[str, Any] = {"type": p.kind}
        default = getattr(_DEFAULTS, name)
        if default is not None:
            schema["default"] = default
        if p.choices:
            schema["enum"] = list(p.choices)
        if name == "seed":
            schema.update(minimum=0, maximum=MAX_SEED)
        out.append({"name": name, "in": "query", "required": False,
                    "description": p.description, "schema": schema})  # fmt: skip
    return out


class QueryCache:
    """Valid stream parameters by query, without the seed: the fast path's parser.

    A burst of streams usually differs only in its seeds; validating the same other
    parameters again for each one was most of a short stream's set-up. The seed is parsed
    apart, by the same rules as :func:`parse_stream_query`. Only valid queries are cached
    (at most ``max_entries``, the oldest dropped first); an invalid one is reported by
    ``parse`` returning ``None``, and the caller answers it through the full parser.
    """

    def __init__(self, limits: StreamLimits, max_entries: int = 256) -> None:
        self.limits = limits
        self.max_entries = max_entries
        self._entries: dict[tuple[tuple[str, str], ...], StreamParams] = {}
        self._texts: dict[bytes, StreamParams] = {}  # parse_query's, by text

    def parse(self, pairs: Iterable[tuple[str, str]]) -> tuple[StreamParams, int | None] | None:
        """The parameters (``seed`` unset) and the seed sent (``None``: none), or ``None``
        when the query is invalid."""
        raw_seed: str | None = None
        rest = []
        for pair in pairs:
            if pair[0] == "seed":
                raw_seed = pair[1]  # the last one decides, as in parse_stream_query
            else:
                rest.append(pair)
        key = tuple(rest)
        params = self._entries.get(key)
        if params is None:
            try:
                params = parse_stream_query(key, self.limits)
            except QueryError:
                return None
            if len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = params
        if raw_seed is None:
            return params, None
        try:
            seed = parse_int(raw_seed, minimum=INT64_MIN)
        except InvalidField:
            return None
        return (params, seed) if 0 <= seed <= MAX_SEED else None

    def parse_query(self, query: bytes) -> tuple[StreamParams, int | None] | None:
        """:meth:`parse` of the pairs of a raw query string (as :func:`split_query` splits
        it, decoded as Latin-1), by the text: a query with at most one plain
        ``seed=DIGITS`` and nothing percent-encoded is looked up as its text less that
        pair (one string hash, no pairs), the rest goes through :meth:`parse`."""
        if b"%" in query or b"+" in query:
            return self.parse(split_query(query.decode("latin-1")))
        at = query.find(b"seed")
        if at < 0:
            key, raw_seed = query, b""
        else:
            end = query.find(b"&", at)
            if end < 0:
                end = len(query)
            raw_seed = query[at + 5 : end]
            if (
                (at and query[at - 1] != 0x26)  # not a whole name: "&seed="
                or query[at + 4 : at + 5] != b"="
                or not raw_seed.isdigit()  # ASCII digits only, as parse_int asks
                or len(raw_seed) > 19
                or query.find(b"seed", end) >= 0  # another one: the last decides
            ):
                return self.parse(split_query(query.decode("latin-1")))
            key = query[:at] + query[end:]  # "&&" or a trailing "&": empty pairs, skipped
        params = self._texts.get(key)
        if params is None:
            parsed = self.parse(split_query(key.decode("latin-1")))
            if parsed is None:
                return None
            params = parsed[0]
            if len(self._texts) >= self.max_entries:
                del self._texts[next(iter(self._texts))]
            self._texts[key] = params
        if not raw_seed:
            return params, None
        seed = int(raw_seed)
        return (params, seed) if seed <= MAX_SEED else None


def split_query(query: str) -> list[tuple[str, str]]:
    """The query's pairs, as Starlette splits them (``parse_qsl(query,
    keep_blank_values=True)``), without its per-pair unquoting when nothing is quoted (a
    stream's query is plain digits and words: that is most of ``parse_qsl``'s cost)."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    return [(name, value) for name, _, value in (f.partition("=") for f in query.split("&") if f)]
