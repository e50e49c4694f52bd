"""The schedule of a stream: each file's size and when it is due (pure; no I/O).

Sizes and waits come from a PCG64 generator seeded with ``SeedSequence([seed, 0])``; each
file takes two raw 64-bit outputs (size, then wait) and converts them with integer
arithmetic, so the plan is identical on every platform and numpy version (numpy only
guarantees stream stability for raw bit generator output).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._params import MAX_SEED, StreamParams

__all__ = ["FileSpec", "iter_plan", "new_seed", "plan_bits"]

_BLOCK = 512  # files planned per draw from the generator (amortizes numpy call overhead)
_TWO_POW_53 = float(2**53)
_MASK32 = 0xFFFFFFFF


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
    cost; the C code under it does no numpy scalar arithmetic that could warn), or
    ``SeedSequence`` itself when this numpy does not allow it or the states differ
    (checked once, at import, with every floating-point error raising)."""
    generate: Any = getattr(np.random.SeedSequence.generate_state, "__wrapped__", None)
    if generate is None:
        return np.random.SeedSequence

    class Unguarded(np.random.SeedSequence):
        generate_state = generate

    try:
        with np.errstate(all="raise"):
            ours = Unguarded([MAX_SEED, 0]).generate_state(4, np.uint64)
        theirs = np.random.SeedSequence([MAX_SEED, 0]).generate_state(4, np.uint64)
    except (ArithmeticError, TypeError, ValueError):
        return np.random.SeedSequence
    return Unguarded if ours.tolist() == theirs.tolist() else np.random.SeedSequence


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


def file_name(index: int, dtype: str) -> str:
    return f"{index:06d}.{dtype}"


def iter_plan(
    params: StreamParams, seed: int, *, size_unit: int | None = None
) -> Iterator[FileSpec]:
    """Yield the ``params.count`` planned files in order, lazily (memory is O(1)).

    Sizes are whole multiples of ``size_unit`` (default: the sample width) between
    ``min_size`` and ``max_size``; both bounds must be multiples of it.
    """
    bits = plan_bits(seed)
    width = size_unit or params.sample_width
    lo_samples = params.min_size // width
    span_samples = params.max_size // width - lo_samples + 1
    lo_wait = params.min_interval
    span_wait = params.max_interval - params.min_interval
    offset = 0.0
    index = 0
    while index < params.count:
        block = min(_BLOCK, params.count - index)
        raw = bits.random_raw(2 * block).tolist()
        for i in range(block):
            size = (lo_samples + raw[2 * i] % span_samples) * width
            wait = lo_wait + (raw[2 * i + 1] >> 11) / _TWO_POW_53 * span_wait
            offset += wait / params.speed
            yield FileSpec(index, file_name(index, params.dtype), size, wait, offset)
            index += 1
