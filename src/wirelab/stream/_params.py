"""Stream parameters, server limits and their validation (pure; no I/O).

Validation reports every broken rule at once as :class:`ParamProblem` items, each naming
the parameter and the rule, so the HTTP layer can answer one 422 listing them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = [
    "CONTENTS",
    "DIGESTS",
    "DTYPES",
    "SAMPLE_WIDTH",
    "Byteorder",
    "Content",
    "Digest",
    "Dtype",
    "InvalidParams",
    "ParamProblem",
    "StreamLimits",
    "StreamParams",
]

Dtype = Literal["int8", "int16", "int32", "float32"]
Byteorder = Literal["little", "big"]
Content = Literal["random", "sine", "ramp"]
Digest = Literal["blake3", "sha256"]

DTYPES: tuple[Dtype, ...] = ("int16", "int8", "int32", "float32")
CONTENTS: tuple[Content, ...] = ("random", "sine", "ramp")
#: Digest algorithms of the E frames (docs/protocol/stream.md); the first is the default.
DIGESTS: tuple[Digest, ...] = ("blake3", "sha256")
SAMPLE_WIDTH: dict[str, int] = {"int8": 1, "int16": 2, "int32": 4, "float32": 4}

#: Largest seed accepted (seeds are unsigned 63-bit so they survive JSON and signed int64).
MAX_SEED = 2**63 - 1
#: ``speed`` bounds: a stream cannot be slowed down more than 1000x or sped up past 10^9.
MIN_SPEED = 0.001
MAX_SPEED = 1e9


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Server-side caps; a request that could exceed one is refused, never silently capped.

    Checks use the worst case the parameters allow (``count * max_size`` bytes and
    ``count * max_interval / speed`` seconds), so a request is accepted or refused before
    any byte is generated, and the answer does not depend on the seed.

    ``max_manifest_bytes`` caps ``count * max_size`` for ``/v1/stream/manifest``, which
    generates and hashes every file before it answers (a stream hashes as it sends, paced
    by its reader, and stops when the reader goes): lower than ``max_total_bytes`` so that
    one manifest costs at most about half a second of CPU (benchmarks/README.md).
    """

    max_count: int = 100_000
    max_file_size: int = 16 * 1024 * 1024
    max_total_bytes: int = 4 * 1024**3
    max_duration: float = 3600.0
    max_manifest_bytes: int = 256 * 1024**2


@dataclass(frozen=True, slots=True)
class ParamProblem:
    """One broken rule: ``param`` names the query parameter, ``message`` states the rule."""

    param: str
    message: str


class InvalidParams(ValueError):
    """Raised by :meth:`StreamParams.validate`; ``problems`` lists every broken rule."""

    def __init__(self, problems: list[ParamProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.param}: {p.message}" for p in problems))


@dataclass(frozen=True, slots=True)
class StreamParams:
    """What a client asked for. Defaults are the classic service's: 100 int16 files of
    1 KiB to 1 MiB, each after a wait of 1 ms to 1 s."""

    count: int = 100
    min_size: int = 1024
    max_size: int = 1024 * 1024
    min_interval: float = 0.001
    max_interval: float = 1.0
    dtype: Dtype = "int16"
    byteorder: Byteorder = "little"
    content: Content = "random"
    speed: float = 1.0
    seed: int | None = None
    digest: Digest = "blake3"

    @property
    def sample_width(self) -> int:
        return SAMPLE_WIDTH[self.dtype]

    def as_dict(self) -> dict[str, Any]:
        """The parameters as JSON-ready members (in field order, as ``asdict`` gives them:
        every field is a plain value, so no deep copy is needed; ``asdict`` cost more
        than the rest of a stream's set-up)."""
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    def validate(self, limits: StreamLimits, *, manifest: bool = False) -> None:
        """Raise :class:`InvalidParams` listing every rule these parameters break;
        ``manifest`` adds the manifest's own byte limit."""
        problems = [*self._check_ranges(), *self._check_limits(limits)]
        if manifest and not problems:
            problems = self._check_manifest(limits)
        if problems:
            raise InvalidParams(problems)

    def _check_ranges(self) -> list[ParamProblem]:
        p: list[ParamProblem] = []
        width = self.sample_width
        if self.count < 0:
            p.append(ParamProblem("count", "must be >= 0"))
        for name in ("min_size", "max_size"):
            value = getattr(self, name)
            if value < 0:
                p.append(ParamProblem(name, "must be >= 0"))
            elif value % width:
                p.append(
                    ParamProblem(
                        name,
                        f"must be a multiple of the sample width ({width} bytes for {self.dtype})",
                    )
                )
        if self.min_size > self.max_size:
            p.append(ParamProblem("max_size", "must be >= min_size"))
        for name in ("min_interval", "max_interval"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                p.append(ParamProblem(name, "must be a finite number >= 0"))
        if self.min_interval > self.max_interval:
            p.append(ParamProblem("max_interval", "must be >= min_interval"))
        if not (math.isfinite(self.speed) and MIN_SPEED <= self.speed <= MAX_SPEED):
            p.append(ParamProblem("speed", f"must be between {MIN_SPEED} and {MAX_SPEED:g}"))
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            p.append(ParamProblem("seed", f"must be between 0 and {MAX_SEED}"))
        return p

    def _check_limits(self, limits: StreamLimits) -> list[ParamProblem]:
        p: list[ParamProblem] = []
        if self.count > limits.max_count:
            p.append(ParamProblem("count", f"must be <= {limits.max_count} (server limit)"))
        if self.max_size > limits.max_file_size:
            p.append(ParamProblem("max_size", f"must be <= {limits.max_file_size} (server limit)"))
        worst_bytes = self.count * self.max_size
        if worst_bytes > limits.max_total_bytes:
            p.append(
                ParamProblem(
                    "count",
                    f"count * max_size = {worst_bytes} bytes exceeds the server limit of "
                    f"{limits.max_total_bytes} bytes per stream",
                )
            )
        if math.isfinite(self.max_interval) and self.speed > 0:
            worst_seconds = self.count * self.max_interval / self.speed
            if worst_seconds > limits.max_duration:
                p.append(
                    ParamProblem(
                        "max_interval",
                        f"count * max_interval / speed = {worst_seconds:g} s exceeds the "
                        f"server limit of {limits.max_duration:g} s per stream",
                    )
                )
        return p

    def _check_manifest(self, limits: StreamLimits) -> list[ParamProblem]:
        worst_bytes = self.count * self.max_size
        if worst_bytes <= limits.max_manifest_bytes:
            return []
        message = (
            f"count * max_size = {worst_bytes} bytes exceeds the server limit of "
            f"{limits.max_manifest_bytes} bytes per manifest (max_manifest_bytes: the "
            "manifest hashes every file before answering; /v1/stream has no such limit)"
        )
        return [ParamProblem("count", message)]


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(StreamParams))
