"""Save a stream into a folder, file by file, as verified events arrive.

The layout of a download folder::

    DIR/000000.int16        one file per streamed file, under a checked name
    DIR/000001.int16
    DIR/manifest.json       what was saved, written last (atomically)

Names sent by the server are never trusted as paths (see :func:`safe_name`). Each file is
written to ``NAME.part`` as its chunks arrive, synced to disk, and renamed to ``NAME`` only
after the decoder verified its digest; so a name without ``.part`` always holds verified
bytes, and memory use does not depend on file sizes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, BinaryIO, Final

from .._exceptions import UsageError
from ..framing import (
    Event,
    FileData,
    FileEnded,
    FileStarted,
    StreamEnded,
    StreamStarted,
)

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "PART_SUFFIX",
    "DownloadWriter",
    "is_safe_name",
    "safe_name",
    "write_json_atomically",
]

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_VERSION: Final = 1
PART_SUFFIX: Final = ".part"

_SAFE_NAME: Final = re.compile(r"([0-9]{6,})\.[a-z0-9]{1,16}")


def safe_name(name: object, index: int) -> str:
    """The name to save file ``index`` under.

    The server's ``name`` is kept only if it is a plain ``NNNNNN.ext`` name (six or more
    digits, a short lowercase extension) whose number is ``index``, so it can neither leave
    the folder nor collide with another file's name; otherwise ``f"{index:06d}.bin"``.
    """
    match = _SAFE_NAME.fullmatch(name) if isinstance(name, str) else None
    return match.string if match and int(match.group(1)) == index else f"{index:06d}.bin"


def is_safe_name(name: object) -> bool:
    """Whether ``name`` could have been produced by :func:`safe_name` (for any index)."""
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None


def write_json_atomically(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` via a synced temporary file and a rename, so that
    ``path`` holds either the old or the new document, never a partial one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sync_dir(path: Path) -> None:
    """Make renames in ``path`` durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class DownloadWriter:
    """Writes the events of one stream into ``out`` and keeps the manifest's contents.

    Call :meth:`prepare` before connecting (it creates ``out`` and refuses a folder that
    already holds a download unless ``overwrite``), :meth:`handle` for each verified event
    in order, and :meth:`finish` at the end, also after a failure: it removes the partial
    file and writes ``manifest.json`` listing the verified files.

    With ``overwrite``, the earlier download's manifest and the files it lists are removed
    once the new stream has started (so a refused request leaves the old download intact).
    Other files in ``out`` are left alone.
    """

    def __init__(self, out: Path, *, url: str, overwrite: bool = False) -> None:
        self.out = out
        self.url = url
        self.overwrite = overwrite
        self.seed: int | None = None
        self.count: int | None = None
        self.params: dict[str, Any] | None = None
        self.files: list[dict[str, Any]] = []
        self.bytes_saved = 0
        self._current: FileStarted | None = None
        self._current_name = ""
        self._part: BinaryIO | None = None

    @property
    def manifest_path(self) -> Path:
        return self.out / MANIFEST_NAME

    def prepare(self) -> None:
        """Create ``out`` if needed; raise :class:`~wirelab.UsageError` if it already holds
        a download and ``overwrite`` is false."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.manifest_path.exists() and not self.overwrite:
            raise UsageError(
                f"{self.out} already holds a download ({MANIFEST_NAME}); "
                "use --overwrite to replace it"
            )

    def handle(self, event: Event) -> None:
        """Act on the next verified event (write data, rename a verified file, ...)."""
        if isinstance(event, StreamStarted):
            self.seed, self.count, self.params = event.seed, event.count, dict(event.params)
            if self.overwrite:
                self._remove_previous()
        elif isinstance(event, FileStarted):
            self._start_file(event)
        elif isinstance(event, FileData) and self._part is not None:
            self._part.write(event.data)
        elif isinstance(event, FileEnded):
            self._end_file(event)
        elif isinstance(event, StreamEnded):
            pass  # the session has checked the totals; finish(complete=True) records them

    def finish(self, *, complete: bool) -> Path | None:
        """Drop a partial file and write the manifest (``None`` if the stream never
        started: there is nothing to describe)."""
        self._discard_part()
        if self.seed is None:
            return None
        manifest = {
            "version": MANIFEST_VERSION,
            "url": self.url,
            "seed": self.seed,
            "params": self.params,
            "count": self.count,
            "total_bytes": self.bytes_saved,
            "complete": complete,
            "files": self.files,
        }
        write_json_atomically(self.manifest_path, manifest)
        _sync_dir(self.out)
        return self.manifest_path

    def _start_file(self, event: FileStarted) -> None:
        self._discard_part()
        self._current, self._current_name = event, safe_name(event.name, event.index)
        part = self.out / (self._current_name + PART_SUFFIX)
        part.unlink(missing_ok=True)  # a leftover, or a symlink we must not write through
        self._part = open(part, "xb")  # noqa: SIM115 - closed in _end_file/_discard_part

    def _end_file(self, event: FileEnded) -> None:
        current, part = self._current, self._part
        if current is None or part is None:
            return
        part.flush()
        os.fsync(part.fileno())
        part.close()
        self._part = None
        final = self.out / self._current_name
        os.replace(final.with_name(final.name + PART_SUFFIX), final)
        self.files.append(
            {
                "index": current.index,
                "name": self._current_name,
                "size": current.size,
                # The member is named after the algorithm, as in the server's manifest.
                event.algorithm: event.digest,
                "offset": current.offset,
                "dtype": current.dtype,
                "byteorder": current.byteorder,
            }
        )
        self.bytes_saved += current.size
        self._current = None

    def _discard_part(self) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None
            (self.out / (self._current_name + PART_SUFFIX)).unlink(missing_ok=True)
        self._current = None

    def _remove_previous(self) -> None:
        """Remove the earlier download: its manifest, then the files it lists."""
        try:
            previous = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            listed = [f.get("name") for f in previous.get("files", [])]
        except (OSError, ValueError, AttributeError, TypeError):
            listed = []
        self.manifest_path.unlink(missing_ok=True)
        for name in listed:
            path = self.out / str(name)
            if is_safe_name(name) and not path.is_dir():
                path.unlink(missing_ok=True)
