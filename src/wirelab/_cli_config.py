"""The client configuration file written by ``wirelab login``: server URL and API token.

Location: ``$WIRELAB_CONFIG`` if set, else ``$XDG_CONFIG_HOME/wirelab/config.json``
(``~/.config/wirelab/config.json``). It holds a secret, so it is written atomically with
mode 0600 in a 0700 folder, and a file readable by others is refused when read (like
ssh does with private keys).

Precedence for every command: a command-line option, then the ``WIRELAB_*`` environment
variable, then this file, then the built-in default.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ._exceptions import UsageError
from ._fsio import atomic_write

__all__ = ["config_path", "load_config", "remove_config", "save_config"]


def config_path() -> Path:
    """Where the configuration file lives (see the module docstring)."""
    explicit = os.environ.get("WIRELAB_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wirelab" / "config.json"


def load_config() -> dict[str, Any]:
    """The saved settings (``{}`` if there is no file).

    Raises :class:`~wirelab.UsageError` for an unreadable or invalid file, or one that
    others may read (it contains a token).
    """
    path = config_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path} is readable by others; run: chmod 600 {path}")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"{path} is not a JSON object")
    return doc


def save_config(settings: dict[str, Any]) -> Path:
    """Merge ``settings`` into the file (``None`` values remove keys); return its path."""
    path = config_path()
    doc = load_config()
    doc.update(settings)
    doc = {k: v for k, v in doc.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)
    return path


def remove_config() -> bool:
    """Delete the file; ``False`` if there was none."""
    try:
        config_path().unlink()
    except FileNotFoundError:
        return False
    return True
