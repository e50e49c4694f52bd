"""The query parameters of a stream request, typed once for every client method."""

from __future__ import annotations

from typing import Final, TypedDict

from .._exceptions import UsageError

__all__ = ["StreamOptions", "stream_query"]


class StreamOptions(TypedDict, total=False):
    """The query parameters of ``/v1/stream`` and ``/v1/stream/manifest``.

    All are optional; a parameter left out, or given as ``None``, is not sent and the
    server uses its default. The server validates the values (HTTP 422 otherwise):

    - ``count``: number of files; ``min_size``/``max_size``: file size bounds, bytes.
    - ``min_interval``/``max_interval``: wait before each file, seconds (divided by ``speed``).
    - ``seed``: reproduce a stream exactly (0 .. 2**63-1); without it the server picks one.
    - ``dtype``: ``int16``, ``int8``, ``int32`` or ``float32``; ``byteorder``: ``little``
      or ``big``; ``content``: ``random``, ``sine`` or ``ramp``.
    - ``digest``: ``blake3`` (the server's default) or ``sha256``, the algorithm of the
      digests the decoder checks.
    """

    count: int | None
    min_size: int | None
    max_size: int | None
    min_interval: float | None
    max_interval: float | None
    seed: int | None
    dtype: str | None
    byteorder: str | None
    content: str | None
    speed: float | None
    digest: str | None


_OPTION_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "count": (int,),
    "min_size": (int,),
    "max_size": (int,),
    "min_interval": (int, float),
    "max_interval": (int, float),
    "seed": (int,),
    "dtype": (str,),
    "byteorder": (str,),
    "content": (str,),
    "speed": (int, float),
    "digest": (str,),
}


def stream_query(options: StreamOptions) -> dict[str, str]:
    """The query string parameters for ``options``, leaving out ``None`` values.

    Raises :class:`~wirelab.UsageError` for an unknown option or a value of the wrong
    type (``bool`` is refused where a number is expected). Ranges are the server's job.
    """
    query: dict[str, str] = {}
    for name, value in options.items():
        types = _OPTION_TYPES.get(name)
        if types is None:
            raise UsageError(f"unknown stream option {name!r}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise UsageError(f"{name} must be {' or '.join(t.__name__ for t in types)}")
        query[name] = str(value)
    return query
