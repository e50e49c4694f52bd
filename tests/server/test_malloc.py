"""The allocator tuning applies on glibc and is a harmless no-op elsewhere."""

from __future__ import annotations

import platform
import subprocess
import sys


def test_tune_malloc_in_a_fresh_process() -> None:
    code = "from wirelab.server._malloc import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert out.stdout.strip() == str(glibc)
