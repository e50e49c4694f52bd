"""Where an interrupted ``send`` remembers its uploads, so that running it again resumes.

One small JSON document per send, in the state folder (``$XDG_STATE_HOME/wirelab/sends``
by default), named after a digest of everything that identifies the send: server, user
(a fingerprint of the token, never the token), recipient, options, and each file's
absolute path, size and modification time. Editing a file therefore starts a fresh
upload instead of resuming one of different bytes. Documents are written atomically
(temporary file, fsync, rename) with mode 0600, and removed once the send completed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Final

from .._fsio import atomic_write

__all__ = ["SendState", "default_state_dir", "send_key"]

_VERSION: Final = 1


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/wirelab/sends`` (``~/.local/state/wirelab/sends`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wirelab" / "sends"


def send_key(identity: list[Any]) -> str:
    """The document name for a send described by the JSON-serializable ``identity``."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class SendState:
    """The saved state of one send: ``{"uploads": [url, ...], "batch": id | None}``.

    A missing, unreadable or foreign document reads as empty: the worst case of a lost
    state is a fresh upload, never a wrong one (the server verifies every digest).
    """

    def __init__(self, folder: Path | None, key: str) -> None:
        self.path = None if folder is None else folder / f"{key}.json"

    def load(self) -> dict[str, Any]:
        """The saved document, or ``{}``."""
        if self.path is None:
            return {}
        try:
            doc = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict) or doc.get("version") != _VERSION:
            return {}
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        """Write ``doc`` atomically (readable by the owner only)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({**doc, "version": _VERSION}).encode()
        atomic_write(self.path, data, mode=0o600, sync_dir=False)

    def clear(self) -> None:
        """Forget the send (it completed, or its uploads are gone)."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
