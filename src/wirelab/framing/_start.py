"""The ``S`` frame of trusted senders, formatted once for streams that differ only in
their seeds (the encoder's fast path; see :class:`StartTemplate`).

A server answers bursts of streams whose parameters are the same but for the seed. The
``S`` payload is then the same JSON text around the places the seed goes: it is formatted
once, with a mark where the seed goes, and each stream joins the pieces with its seed.
The bytes are those of :func:`~._frames.encode_json_frame` of the same members.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, Final

from .._exceptions import UsageError
from ._frames import HEADER, MAX_JSON_PAYLOAD, PREAMBLE, FrameType, encode_json_frame

__all__ = ["StartTemplate", "fast_start", "start_members"]

_pack_header: Final = HEADER.pack
_STREAM: Final = int(FrameType.STREAM)

#: Stands for the seed in a cached ``S`` payload; JSON writes it ``"\u0000seed\u0000"``.
#: A member holding this text itself is told apart by the number of marks, and formatted
#: whole.
_SEED_MARK: Final = "\x00seed\x00"
_SEED_MARK_JSON: Final = json.dumps(_SEED_MARK)

#: Value types of the members a cached ``S`` template may hold.
_KEYED_TYPES: Final = frozenset((str, int, float, bool, type(None)))
_STR: Final = frozenset((str,))


def start_members(
    version: int, seed: object, count: object, digest: str, params: object
) -> dict[str, Any]:
    """The ``S`` frame's members, in the order the format writes them."""
    obj: dict[str, Any] = {"version": version, "seed": seed, "count": count}
    if version >= 2:
        obj["digest"] = digest
    obj["params"] = params
    return obj


def _pieces(version: int, count: int, digest: str, members: dict[str, object]) -> tuple[str, ...]:
    """The ``S`` payload with the seed left out: the text around each place the seed goes
    (``members`` holds the mark where it goes in the params). Raises what
    :func:`encode_json_frame` raises."""
    frame = encode_json_frame(
        FrameType.STREAM, start_members(version, _SEED_MARK, count, digest, members)
    )
    return tuple(frame[HEADER.size :].decode().split(_SEED_MARK_JSON))


@functools.lru_cache(maxsize=256)
def _start_template(
    version: int,
    count: int,
    digest: str,
    members: tuple[tuple[str, object], ...],
    reprs: tuple[str, ...],
) -> tuple[str, ...]:
    """:func:`_pieces`, memoized. ``reprs`` (the members' values' ``repr``) is only part
    of the cache key."""
    return _pieces(version, count, digest, dict(members))


def _keyable(members: dict[str, Any]) -> bool:
    """Whether a template can stand for these members: names are strings and values
    scalars (containers would need the same care for their items)."""
    return _KEYED_TYPES.issuperset(map(type, members.values())) and _STR.issuperset(
        map(type, members)
    )


def _template_key(
    params: Mapping[str, Any], seed: int
) -> tuple[tuple[tuple[str, object], ...], tuple[str, ...], int] | None:
    """The cache key of an ``S`` template: the members (a member ``seed`` equal to the
    seed replaced by the mark) and their values' ``repr``, and the number of places the
    seed goes; None when they must be formatted whole (see :func:`_keyable`).

    The ``repr`` is part of the key because equal values that hash alike may be written
    apart: ``1``, ``1.0`` and ``True``; ``0.0`` and ``-0.0``. Made of C-level steps (no
    Python call per member): it runs per stream.
    """
    members = dict(params)
    places = 1
    if type(members.get("seed")) is int and members["seed"] == seed:
        members["seed"] = _SEED_MARK
        places = 2
    if not _keyable(members):
        return None
    try:
        return tuple(members.items()), tuple(map(repr, members.values())), places
    except ValueError:  # an int past the interpreter's digit limit: json refuses it too
        return None


def _frame(payload: bytes) -> bytes:
    return _pack_header(_STREAM, len(payload)) + payload


def fast_start(
    version: int, seed: int, count: int, digest: str, params: Mapping[str, Any]
) -> bytes:
    """The ``S`` frame, byte-identical to ``encode_json_frame`` (from a cached template
    when the members allow it: see :func:`_template_key`)."""
    key = _template_key(params, seed)
    payload = b""
    if key is not None:
        members, reprs, places = key
        try:
            pieces = _start_template(version, count, digest, members, reprs)
        except UsageError:  # raised below, about the members as they are
            pieces = ()
        if len(pieces) == places + 1:  # else a member holds the mark's text
            payload = str(seed).join(pieces).encode()
    if not payload or len(payload) > MAX_JSON_PAYLOAD:
        return encode_json_frame(
            FrameType.STREAM, start_members(version, seed, count, digest, dict(params))
        )
    return _frame(payload)


class StartTemplate:
    """The preamble and ``S`` frame of every stream with these members but its seed,
    formatted once: :meth:`frame` joins the text around the seed with each stream's.

    ``params`` are the ``params`` member; its member ``seed``, if any, stands for the
    stream's seed (its value here does not matter). ``count``, ``digest`` and ``version``
    are not checked here: :meth:`StreamEncoder.start_from` checks them as
    :meth:`StreamEncoder.start` would. Members that no template can stand for (see
    :func:`_keyable`), or whose JSON is invalid, are formatted whole by every call of
    :meth:`frame` (which then raises what :func:`encode_json_frame` raises).
    """

    __slots__ = ("_pieces", "count", "digest", "params", "version")

    def __init__(self, *, count: int, params: Mapping[str, Any], digest: str, version: int) -> None:
        self.count = count
        self.digest = digest
        self.version = version
        self.params = dict(params)  # a copy: the caller may change its mapping
        self._pieces: tuple[bytes, ...] | None = None
        members = dict(self.params)
        seeded = "seed" in members
        if seeded:
            members["seed"] = _SEED_MARK
        if type(count) is not int or not _keyable(members):
            return
        try:
            pieces = _pieces(version, count, digest, members)
        except UsageError:  # raised by frame(), about the members as they are
            return
        if len(pieces) == 2 + seeded:  # the mark where the seeds go, and nowhere else
            self._pieces = tuple(piece.encode() for piece in pieces)

    def members(self, seed: int) -> dict[str, Any]:
        """The ``params`` member of the stream with this seed."""
        params = dict(self.params)
        if "seed" in params:
            params["seed"] = seed
        return params

    def frame(self, seed: int) -> bytes:
        """The preamble and the ``S`` frame of the stream with this seed (an ``int``)."""
        if self._pieces is not None and type(seed) is int:
            payload = str(seed).encode().join(self._pieces)
            if len(payload) <= MAX_JSON_PAYLOAD:
                return PREAMBLE + _frame(payload)
        obj = start_members(self.version, seed, self.count, self.digest, self.members(seed))
        return PREAMBLE + encode_json_frame(FrameType.STREAM, obj)
