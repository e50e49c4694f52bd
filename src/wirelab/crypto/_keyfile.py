"""Private key files: atomic, owner-only writes and refusing unsafe files on load.

The file holds one line, ``wirelab-x25519-private-v1:<base64>`` (see
:meth:`PrivateKey.to_text`). Like ssh, loading refuses a key file that other users could
read or that another user owns: such a key must be considered leaked.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .._fsio import fsync_dir, install
from ._errors import KeyFileError
from ._keys import PrivateKey

_MAX_KEY_FILE = 4096  # a key file is ~72 bytes; never read more than this


def save_private_key(
    path: str | os.PathLike[str], key: PrivateKey, *, overwrite: bool = False
) -> None:
    """Write *key* to *path* with mode 0600, atomically and durably.

    Missing parent folders are created with mode 0700. Without *overwrite*, an existing
    *path* is a :class:`KeyFileError` (replacing a key makes every file encrypted for the
    old one unreadable); the check and the creation are one atomic step.
    """
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)  # mkstemp's mode already, but say it: the umask must not matter
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.to_text())
            f.flush()
            os.fsync(f.fileno())
        try:
            install(tmp, target, overwrite=overwrite)
        except FileExistsError as exc:
            raise KeyFileError(
                f"{target} already exists; refusing to replace a private key (files "
                "encrypted for it would become unreadable)"
            ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Read a private key file written by :func:`save_private_key`.

    Raises :class:`KeyFileError` when the file is readable or writable by group or others,
    owned by another user, too large or malformed; ``FileNotFoundError`` when missing.
    """
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        _check_safe(path, os.fstat(fd))
        data = f.read(_MAX_KEY_FILE + 1)
    if len(data) > _MAX_KEY_FILE:
        raise KeyFileError(f"{path} is not a wirelab private key (too large)")
    try:
        return PrivateKey.from_text(data.decode("ascii"))
    except (UnicodeDecodeError, KeyFileError) as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def _check_safe(path: str | os.PathLike[str], st: os.stat_result) -> None:
    if os.name != "posix":  # pragma: no cover - permission bits mean little elsewhere
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"{path} is accessible by other users (mode {mode:04o}); the key may be "
            f"compromised. Fix with: chmod 600 {path}"
        )
    if st.st_uid != os.geteuid():
        raise KeyFileError(f"{path} is owned by another user (uid {st.st_uid})")
