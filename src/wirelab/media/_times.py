"""Clip times, sans-IO: strict parsing into exact decimals and ffmpeg formatting.

Accepted forms: ``HH:MM:SS[.fff]``, ``MM:SS[.fff]`` and plain seconds (``12``, ``12.5``;
a JSON number too). Minutes and seconds fields are below 60 (hours are not bounded);
at most 6 decimals (ffmpeg's microsecond resolution); no sign, exponent, blank or
``nan``/``inf``. Arithmetic stays in :class:`decimal.Decimal`, so ``end - start`` is exact.
"""

from __future__ import annotations

import re
from decimal import Decimal

from ._errors import InvalidRequest

__all__ = ["format_seconds", "parse_time"]

_CLOCK = re.compile(r"(?:(\d+):)?([0-5]?\d):([0-5]\d(?:\.\d{1,6})?)", re.ASCII)
_SECONDS = re.compile(r"\d+(?:\.\d{1,6})?", re.ASCII)
_MAX_SECONDS = Decimal(10**8)  # ~3 years: anything longer is a typo


def parse_time(value: object, name: str = "time") -> Decimal:
    """``value`` (a string in one of the accepted forms, or a non-negative int/float) as
    exact seconds; :class:`InvalidRequest` naming ``name`` otherwise."""
    if isinstance(value, bool) or value is None:
        raise InvalidRequest(f"{name} must be a time like '00:01:02.5', '01:02' or 62.5")
    if isinstance(value, int | float):
        # repr() of a float is the shortest string that round-trips: 0.1 -> "0.1".
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string or a number")
    if _SECONDS.fullmatch(value):
        seconds = Decimal(value)
    elif match := _CLOCK.fullmatch(value):
        hours, minutes, secs = match.groups()
        seconds = Decimal(hours or 0) * 3600 + Decimal(minutes) * 60 + Decimal(secs)
    else:
        raise InvalidRequest(
            f"{name} {value!r} is not a time: use HH:MM:SS[.ffffff], MM:SS[.ffffff] or seconds"
            " (at most 6 decimals, no sign)"
        )
    if seconds >= _MAX_SECONDS:
        raise InvalidRequest(f"{name} {value!r} is too large")
    return seconds


def format_seconds(seconds: Decimal) -> str:
    """``seconds`` for ffmpeg's ``-ss``/``-t`` (plain decimal, microsecond precision)."""
    quantized = seconds.quantize(Decimal("0.000001"))
    text = format(quantized, "f").rstrip("0").rstrip(".")
    return text or "0"
