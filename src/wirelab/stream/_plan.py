"""The schedule of a stream: each file's size and when it is due (pure; no I/O).

Each file takes two 64-bit words (size, then wait) and converts them with integer
arithmetic, so the plan is identical on every platform. The words come from one of two
generators (:data:`PLAN_GENERATORS`):

* ``blake3`` (stream format version 3, ``/v1/stream``): the BLAKE3 extendable output of
  ``b"wirelab stream plan v3"`` followed by the seed as 8 little-endian bytes, read as
  little-endian 64-bit words (file *i* takes bytes ``16 i`` to ``16 i + 15``);
* ``pcg64`` (versions 1 and 2, and the classic endpoints, which keep what a seed gave): a
  PCG64 generator seeded with ``SeedSequence([seed, 0])``, two raw outputs per file (numpy
  only guarantees stream stability for raw bit generator output).

BLAKE3 replaced PCG64 in version 3 because seeding numpy's generator (``SeedSequence``,
``PCG64`` and a first draw: a dozen Python-level calls) was the largest part of a short
stream's set-up that a server without a plan does not pay: a one-file stream cost the
server 478 k instructions with it and 406 k with BLAKE3 (``benchmarks/request_cost.py``).
"""

from __future__ import annotations

import functools
import secrets
import struct
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from blake3 import blake3

from ._params import MAX_SEED, StreamParams

__all__ = [
    "PLAN_GENERATORS",
    "PLAN_OF_VERSION",
    "FileSpec",
    "PlanGenerator",
    "file_name",
    "iter_plan",
    "new_seed",
    "plan_bits",
    "plan_rows",
]

PlanGenerator = Literal["blake3", "pcg64"]
#: The generator of each stream format version a server can write.
PLAN_OF_VERSION: dict[int, PlanGenerator] = {2: "pcg64", 3: "blake3"}

_BLOCK = 512  # files planned per draw from the generator (amortizes numpy call overhead)
#: A stream's first files, converted one by one as the stream asks for them (see
#: :func:`plan_rows`).
_FIRST_BLOCK = 32
#: Later blocks of at least this many files are converted with numpy.
_VECTOR_MIN = 32
_NAMED = 4096  # files whose names are made once per dtype (see _names)
_TWO_POW_53 = float(2**53)
_MASK32 = 0xFFFFFFFF
_PLAN_LABEL = b"wirelab stream plan v3"
#: ``_UNPACK[n](data)``: the ``n`` little-endian 64-bit words of ``data`` as Python ints
#: (every count a scalar draw can ask for: up to two words per file of a first block).
_UNPACK = [struct.Struct(f"<{n}Q").unpack for n in range(2 * _FIRST_BLOCK + 1)]


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One planned file.

    ``wait`` is the drawn wait before the file (seconds, not divided by speed); ``offset``
    is when the file is due, in seconds after the stream starts, already divided by speed.
    """

    index: int
    name: str
    size: int
    wait: float
    offset: float


def new_seed() -> int:
    """A fresh seed for a request that did not send one (fits in JSON and int64)."""
    return secrets.randbelow(MAX_SEED + 1)


def _unguarded_seed_sequence() -> type[np.random.SeedSequence]:
    """``SeedSequence`` with ``generate_state`` unwrapped from numpy's ``errstate``
    decorator (a Python context manager entered on every call, a tenth of a short plan's
    cost; the C code under it does no numpy scalar arithmetic that could warn), and the
    four 64-bit words ``PCG64`` asks for made as eight 32-bit words viewed as 64-bit ones
    on a little-endian machine (numpy converts them with three array operations, which
    give the same words there), or ``SeedSequence`` itself when this numpy does not allow
    it or the states differ (checked once, at import, with every floating-point error
    raising)."""
    generate: Any = getattr(np.random.SeedSequence.generate_state, "__wrapped__", None)
    if generate is None:
        return np.random.SeedSequence
    little = sys.byteorder == "little"

    class Unguarded(np.random.SeedSequence):
        def generate_state(self, n_words: int, dtype: Any = np.uint32) -> Any:
            if n_words == 4 and dtype is np.uint64 and little:  # what PCG64 asks
                return generate(self, 8, np.uint32).view(np.uint64)
            return generate(self, n_words, dtype)

    try:
        with np.errstate(all="raise"):
            ours = [Unguarded([MAX_SEED, 0]).generate_state(4, t) for t in (np.uint64, np.uint32)]
        theirs = [
            np.random.SeedSequence([MAX_SEED, 0]).generate_state(4, t)
            for t in (np.uint64, np.uint32)
        ]
    except (ArithmeticError, TypeError, ValueError):
        return np.random.SeedSequence
    same = all(
        a.dtype == b.dtype and a.tolist() == b.tolist() for a, b in zip(ours, theirs, strict=True)
    )
    return Unguarded if same else np.random.SeedSequence


_SeedSequence = _unguarded_seed_sequence()


def plan_bits(seed: int) -> np.random.PCG64:
    """The plan's generator: exactly ``PCG64(SeedSequence([seed, 0]))`` (``seed >= 0``).

    ``SeedSequence`` turns a list into 32-bit words with numpy scalars, one small array per
    element and a concatenation, which cost a short stream about as much as the rest of
    its plan; here the same words (the seed's, least significant first, at least one,
    then the 0) go in as one ``uint32`` array, so the pool, the state and every output
    are the same (tests/stream/test_plan_bits.py compares them with numpy's own).
    """
    words = [seed & _MASK32]
    rest = seed >> 32
    while rest:
        words.append(rest & _MASK32)
        rest >>= 32
    words.append(0)
    return np.random.PCG64(_SeedSequence(np.array(words, dtype=np.uint32)))


class _PCG64Words:
    """The 64-bit words of a ``pcg64`` plan in order (raw outputs of :func:`plan_bits`):
    ``scalars(n)`` as Python ints, ``array(n)`` as a ``uint64`` array."""

    __slots__ = ("_bits",)

    def __init__(self, seed: int) -> None:
        self._bits = plan_bits(seed)

    def scalars(self, n: int) -> list[int]:
        words: list[int] = self._bits.random_raw(n).tolist()
        return words

    def array(self, n: int) -> npt.NDArray[np.uint64]:
        words: npt.NDArray[np.uint64] = self._bits.random_raw(n)
        return words


class _Blake3Words:
    """The words of a ``blake3`` plan, as :class:`_PCG64Words` gives them (``scalars`` up
    to 64 at a time): the XOF of the label and the seed, read on from where it stopped
    (the XOF's ``seek``: a block of a long stream costs only its own bytes)."""

    __slots__ = ("_next", "_xof")

    def __init__(self, seed: int) -> None:
        self._xof = blake3(_PLAN_LABEL + seed.to_bytes(8, "little"))
        self._next = 0  # bytes of the output read so far

    def _take(self, n: int) -> bytes:
        start, self._next = self._next, self._next + 8 * n
        data: bytes = self._xof.digest(8 * n, seek=start)
        return data

    def scalars(self, n: int) -> list[int]:
        return list(_UNPACK[n](self._take(n)))

    def array(self, n: int) -> npt.NDArray[np.uint64]:
        return np.frombuffer(self._take(n), dtype="<u8").astype(np.uint64, copy=False)


_Words = _PCG64Words | _Blake3Words
_WORDS: dict[PlanGenerator, type[_Words]] = {"blake3": _Blake3Words, "pcg64": _PCG64Words}
#: The plan's generators (see the module doc); the first is the current format's.
PLAN_GENERATORS: tuple[PlanGenerator, ...] = tuple(_WORDS)


def file_name(index: int, dtype: str) -> str:
    """The name of file ``index`` of a stream of ``dtype`` samples (``000042.int16``)."""
    return f"{index:06d}.{dtype}"


@functools.lru_cache(maxsize=8)
def _names(dtype: str) -> tuple[str, ...]:
    # The first names of every stream of a dtype, made once: formatting one per file
    # cost a few percent of a small file.
    return tuple(file_name(index, dtype) for index in range(_NAMED))


def iter_plan(
    params: StreamParams,
    seed: int,
    *,
    size_unit: int | None = None,
    generator: PlanGenerator = "blake3",
) -> Iterator[FileSpec]:
    """Yield the ``params.count`` planned files in order, lazily (memory is O(1)).

    Sizes are whole multiples of ``size_unit`` (default: the sample width) between
    ``min_size`` and ``max_size``; both bounds must be multiples of it. ``generator``
    chooses the words the plan is drawn from (see the module doc): ``blake3`` is the
    plan of ``/v1/stream`` (stream format version 3), ``pcg64`` that of earlier versions
    and of the classic endpoints.
    """
    for row in plan_rows(params, seed, size_unit=size_unit, generator=generator):
        yield FileSpec(*row)


Row = tuple[int, str, int, float, float]


def plan_rows(
    params: StreamParams,
    seed: int,
    *,
    size_unit: int | None = None,
    generator: PlanGenerator = "blake3",
) -> Iterator[Row]:
    """:func:`iter_plan` as plain ``(index, name, size, wait, offset)`` tuples (the stream
    engine reads these: a frozen dataclass per file costs more than the file's draw).

    The first :data:`_FIRST_BLOCK` files are drawn at once and converted one by one, in
    Python, as they are asked for: a stream's request pays only for the draws (numpy's
    dozen calls to convert a block cost a short stream's request as much as the rest of
    its plan, and its files are sent over seconds). Later blocks of :data:`_BLOCK` files
    are converted with numpy when they hold at least :data:`_VECTOR_MIN`: element-wise
    the same operations in the same order as the per-file loop (integer modulo, exact
    int-to-float, then the float multiply and add; the offsets a sequential running sum),
    so both give bit-identical plans.
    """
    source = _WORDS.get(generator)  # a str from outside may be anything
    if source is None:
        raise ValueError(f"plan generator must be one of {PLAN_GENERATORS}, got {generator!r}")
    words = source(seed)
    draw = _Draw(params, size_unit or params.sample_width)
    first = min(params.count, _FIRST_BLOCK)
    rows = draw.scalar(words.scalars(2 * first), 0, 0.0)
    if first == params.count:
        return rows
    return _block_rows(params, words, draw, rows)


def _block_rows(
    params: StreamParams, words: _Words, draw: _Draw, first: Generator[Row, None, float]
) -> Iterator[Row]:
    offset = yield from first
    index = _FIRST_BLOCK
    while index < params.count:
        block = min(_BLOCK, params.count - index)
        if block >= _VECTOR_MIN:
            sizes, waits, offsets = draw.vector(words.array(2 * block), offset)
            rows = zip(range(index, index + block), sizes, waits, offsets, strict=True)
            names, dtype = draw.names, draw.dtype
            for i, size, wait, at in rows:
                yield i, names[i] if i < _NAMED else file_name(i, dtype), size, wait, at
            offset = offsets[-1]
        else:
            offset = yield from draw.scalar(words.scalars(2 * block), index, offset)
        index += block


class _Draw:
    """Turns raw 64-bit draws into sizes and waits (two draws per file: size, then wait)."""

    __slots__ = ("dtype", "lo_samples", "lo_wait", "names", "span_samples", "span_wait",
                 "speed", "width")  # fmt: skip

    def __init__(self, params: StreamParams, width: int) -> None:
        self.width = width
        self.lo_samples = params.min_size // width
        self.span_samples = params.max_size // width - self.lo_samples + 1
        self.lo_wait = params.min_interval
        self.span_wait = params.max_interval - params.min_interval
        self.speed = params.speed
        self.dtype = params.dtype
        self.names = _names(params.dtype)

    def scalar(self, raw: list[int], index: int, offset: float) -> Generator[Row, None, float]:
        """Yield the rows of the files from ``index`` on (their offsets running on from
        ``offset``), converted in Python one by one; return the last offset."""
        lo, span, width = self.lo_samples, self.span_samples, self.width
        lo_wait, span_wait, speed = self.lo_wait, self.span_wait, self.speed
        names, dtype = self.names, self.dtype
        for i in range(0, len(raw), 2):
            wait = lo_wait + (raw[i + 1] >> 11) / _TWO_POW_53 * span_wait
            offset += wait / speed
            name = names[index] if index < _NAMED else file_name(index, dtype)
            yield index, name, (lo + raw[i] % span) * width, wait, offset
            index += 1
        return offset

    def vector(
        self, raw: npt.NDArray[np.uint64], offset: float
    ) -> tuple[list[int], list[float], list[float]]:
        """Sizes, waits and offsets (running on from ``offset``) of a block, with numpy."""
        sizes = (raw[0::2] % np.uint64(self.span_samples) + np.uint64(self.lo_samples)) * (
            np.uint64(self.width)
        )
        # Below 2**53: the conversion is exact, as Python's int / float is.
        fraction = (raw[1::2] >> np.uint64(11)).astype(np.float64) / _TWO_POW_53
        waits = self.lo_wait + fraction * self.span_wait
        steps = np.empty(len(waits) + 1)
        steps[0] = offset
        steps[1:] = waits / self.speed
        # cumsum adds strictly left to right (it is not a pairwise reduction).
        offsets = np.cumsum(steps)[1:]
        return sizes.tolist(), waits.tolist(), offsets.tolist()
