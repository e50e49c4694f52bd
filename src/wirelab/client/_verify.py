"""Check a download folder against its ``manifest.json`` (see :mod:`._download`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

from .._digests import DIGEST_LABELS
from .._exceptions import IntegrityError, UsageError
from ..framing._digests import DIGEST_ALGORITHMS, new_hasher
from ._download import MANIFEST_NAME, is_safe_name

__all__ = ["Problem", "VerifyReport", "verify_download"]

ProblemKind = Literal["missing", "corrupt", "extra", "invalid", "incomplete"]


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a download: ``kind``, the file ``name`` and a ``detail``."""

    kind: ProblemKind
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}: {self.detail}"


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of :func:`verify_download`; ``ok`` when there is no problem at all."""

    out: Path
    listed: int
    good: int
    complete: bool
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _load_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no {MANIFEST_NAME} in {out}: not a download folder") from None
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise IntegrityError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise IntegrityError(f"{path} is not a download manifest (no 'files' list)")
    return manifest


_BLOCK = 1024 * 1024
_LABELS = DIGEST_LABELS


def _file_digest(path: Path, algorithm: str) -> str:
    hasher = new_hasher(algorithm)
    with open(path, "rb") as f:  # hashed in blocks: files may be larger than memory
        while block := f.read(_BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


def _entry_digest(entry: dict[str, Any]) -> tuple[str, Any]:
    """The (algorithm, digest) of a manifest entry: the member named after an algorithm
    (``blake3`` from stream format version 2 on, ``sha256`` in older downloads)."""
    for algorithm in DIGEST_ALGORITHMS:
        if algorithm in entry:
            return algorithm, entry[algorithm]
    return "sha256", None


def _check_file(out: Path, entry: Any) -> Problem | None:
    """The problem with one manifest entry, or ``None`` if the file is intact."""
    if not isinstance(entry, dict):
        return Problem("invalid", "?", "manifest entry is not an object")
    name, size = entry.get("name"), entry.get("size")
    algorithm, digest = _entry_digest(entry)
    if not is_safe_name(name):
        return Problem("invalid", repr(name), "not an acceptable file name")
    if not isinstance(size, int) or not isinstance(digest, str):
        return Problem("invalid", str(name), "manifest entry lacks size or digest")
    path = out / str(name)
    if not path.is_file():
        return Problem("missing", str(name), "listed in the manifest, not in the folder")
    actual = path.stat().st_size
    if actual != size:
        return Problem("corrupt", str(name), f"{actual} bytes, manifest says {size}")
    if _file_digest(path, algorithm) != digest:
        return Problem("corrupt", str(name), f"{_LABELS[algorithm]} does not match the manifest")
    return None


def verify_download(out: Path) -> VerifyReport:
    """Check every file listed in ``out/manifest.json``: present, right size, right digest
    (BLAKE3 or SHA-256, as the manifest names it; hashed in blocks, so any file size
    works). Also reports files not in the manifest (``extra``, e.g. a leftover ``.part``)
    and a download that did not complete.

    Raises :class:`~wirelab.UsageError` when ``out`` has no manifest and
    :class:`~wirelab.IntegrityError` when the manifest is unreadable; ``OSError`` from
    reading files propagates.
    """
    manifest = _load_manifest(out)
    entries: list[Any] = manifest["files"]
    checks = [_check_file(out, entry) for entry in entries]
    problems = [p for p in checks if p is not None]
    listed = {e.get("name") for e in entries if isinstance(e, dict)} | {MANIFEST_NAME}
    problems += [
        Problem("extra", p.name, "in the folder, not in the manifest")
        for p in sorted(out.iterdir())
        if p.name not in listed
    ]
    complete = manifest.get("complete") is True
    count = manifest.get("count")
    if not complete:
        problems.append(
            Problem(
                "incomplete",
                MANIFEST_NAME,
                f"the stream stopped after {len(entries)} of {count} files",
            )
        )
    elif count != len(entries):
        problems.append(
            Problem("invalid", MANIFEST_NAME, f"lists {len(entries)} files, count is {count}")
        )
    return VerifyReport(
        out=out,
        listed=len(entries),
        good=checks.count(None),
        complete=complete,
        problems=tuple(problems),
    )
