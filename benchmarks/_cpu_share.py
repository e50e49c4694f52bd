"""A server held to a fraction of one core, to reproduce a slower machine on demand.

The shared machines these benchmarks run on have slow phases (the floor's CPU per paced
file 41-50 us instead of 27-36) that come and go on their own. ``cpu_share(pid, 0.75)``
puts a process in a cgroup whose CPU bandwidth is 75 % of one core, in 10 ms periods
(short, so the throttling shows as the slower core it stands for rather than as 25 ms
stalls), and takes it out again on exit. Linux only, as root, with the cgroup v2 ``cpu``
controller or the v1 ``cpu`` hierarchy mounted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cpu_share"]

_PERIOD_US = 10_000
_ROOT = Path("/sys/fs/cgroup")


def _controller() -> tuple[Path, bool]:
    """The folder new cgroups go in, and whether it is cgroup v2."""
    enabled = _ROOT / "cgroup.subtree_control"  # v2: controllers its children get
    if enabled.exists() and "cpu" in enabled.read_text().split():
        return _ROOT, True
    if (_ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        return _ROOT / "cpu", False
    raise SystemExit("--server-cpu-share: no cgroup cpu controller on this machine")


@contextlib.contextmanager
def cpu_share(pid: int, share: float) -> Iterator[None]:
    """Hold process ``pid`` (all its threads) to ``share`` of one core while inside."""
    if not 0.05 <= share <= 1.0:
        raise SystemExit(f"--server-cpu-share must be between 0.05 and 1, got {share}")
    parent, v2 = _controller()
    group = parent / f"wirelab-bench-{os.getpid()}-{pid}"
    quota = int(share * _PERIOD_US)
    try:
        group.mkdir()
        if v2:
            (group / "cpu.max").write_text(f"{quota} {_PERIOD_US}\n")
        else:
            (group / "cpu.cfs_period_us").write_text(f"{_PERIOD_US}\n")
            (group / "cpu.cfs_quota_us").write_text(f"{quota}\n")
        (group / "cgroup.procs").write_text(f"{pid}\n")
    except PermissionError as exc:
        raise SystemExit(f"--server-cpu-share needs root (cgroups): {exc}") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the process may have exited: nothing to move
            (parent / "cgroup.procs").write_text(f"{pid}\n")
        with contextlib.suppress(OSError):
            group.rmdir()
