"""Lease markers: how a receive that died gives its files back on the next run.

Before downloading a leased file, the receiver writes ``.<file id>.wirelab-lease`` (the
lease id) beside the partial file in the output folder, and removes it once the file was
acknowledged or its lease released. A marker that is still there when ``receive`` starts
belongs to a run that was killed (or lost the network) in between: that run's lease is
released at once, so the file is offered again now instead of when the lease ends, and
the partial file next to it resumes. Only the lease named in the marker is released: a
lease that another receiver took since is left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Final

from .._fsio import atomic_write
from ._relay_models import InboxFile

__all__ = ["LEASE_SUFFIX", "LeaseMarker", "stale_markers"]

LEASE_SUFFIX: Final = ".wirelab-lease"
_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LeaseMarker:
    """The marker of one leased file in ``out_dir`` (nothing for a file without lease)."""

    def __init__(self, out_dir: Path, file_id: str, lease_id: str | None) -> None:
        self.file_id = file_id
        self.lease_id = lease_id
        valid = lease_id is not None and _ID.fullmatch(file_id) and _ID.fullmatch(lease_id)
        self.path = out_dir / f".{file_id}{LEASE_SUFFIX}" if valid else None

    @classmethod
    def of(cls, out_dir: Path, file: InboxFile) -> LeaseMarker:
        return cls(out_dir, file.id, file.lease_id)

    def save(self) -> None:
        """Write the marker (creating the folder); an OSError means the folder is not
        writable, and the caller gives the lease back."""
        if self.path is None or self.lease_id is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, self.lease_id.encode(), mode=0o600, sync_dir=False)

    def clear(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()


def stale_markers(out_dir: Path) -> list[LeaseMarker]:
    """The markers left in ``out_dir`` by earlier runs (unreadable ones are skipped)."""
    found: list[LeaseMarker] = []
    try:
        names = os.listdir(out_dir)
    except OSError:  # no folder yet: nothing was left
        return found
    for name in sorted(names):
        if not (name.startswith(".") and name.endswith(LEASE_SUFFIX)):
            continue
        try:
            lease_id = (out_dir / name).read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        marker = LeaseMarker(out_dir, name[1 : -len(LEASE_SUFFIX)], lease_id)
        if marker.path is not None:
            found.append(marker)
    return found
