"""Default locations of wirelab's files, importable without the server extra."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_data_dir"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/wirelab``, else ``~/.local/share/wirelab``: the server's data."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wirelab"
