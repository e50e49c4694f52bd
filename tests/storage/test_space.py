"""The disk reserve and the translation of a full file system (no full disk needed)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from wirelab.storage import StorageFullError
from wirelab.storage._space import DiskReserve, no_space


def test_no_space_translates_only_a_full_file_system() -> None:
    full = pytest.raises(StorageFullError, match=r"no space left .* for the bytes")
    with full as caught, no_space("the bytes"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(StorageFullError), no_space("the bytes"):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    with pytest.raises(PermissionError), no_space("the bytes"):
        raise PermissionError(errno.EACCES, "denied")


def test_reserve_is_real_space_released_and_restored(tmp_path: Path) -> None:
    reserve = DiskReserve(tmp_path / "reserve", 256 * 1024)
    reserve.restore()
    st = os.stat(reserve.path)
    assert st.st_size == 256 * 1024
    assert st.st_blocks * 512 >= 256 * 1024  # allocated, not a sparse file
    with_file = reserve.available()
    assert reserve.release() is True
    assert reserve.release() is False
    # Without its file the reserve is still kept out of what uploads may use.
    assert abs(reserve.available() - with_file) < 256 * 1024
    reserve.restore()
    assert reserve.path.exists()
    assert DiskReserve(tmp_path / "none", 0).available() > 0
