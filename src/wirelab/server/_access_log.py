"""The access log never records query values: they may carry secrets (tokens, keys).

uvicorn logs each request as ``client - "METHOD TARGET HTTP/x" status``; the filter below
rewrites TARGET so that every query value reads ``***`` (names are kept, to stay useful
for debugging), and a query part without ``=`` is replaced whole.
"""

from __future__ import annotations

import logging

__all__ = ["REDACTED", "install_access_log_redaction", "redact_query"]

REDACTED = "***"
_ACCESS_LOGGER = "uvicorn.access"


def redact_query(target: str) -> str:
    """``/p?token=abc&x`` -> ``/p?token=***&***``; a target without a query is unchanged."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        parts.append(f"{name}={REDACTED}" if eq else REDACTED)
    return f"{path}?{'&'.join(parts)}"


class _RedactQuery(logging.Filter):
    """Rewrites the request target of uvicorn's access records (argument 2 of 5)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


_FILTER = _RedactQuery()


def install_access_log_redaction() -> None:
    """Attach the filter to uvicorn's access logger (idempotent: one filter per process)."""
    logging.getLogger(_ACCESS_LOGGER).addFilter(_FILTER)
