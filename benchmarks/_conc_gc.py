"""The server's garbage collections, for ``concurrency.py --gc-trace``.

:data:`GC_HOOK` is a ``sitecustomize`` module put first on the server's PYTHONPATH: through
``gc.callbacks`` it logs every collection of generation 2 or longer than 1 ms (pid, start
on CLOCK_MONOTONIC, seconds, generation, objects collected) to the file named by
``WIRELAB_BENCH_GC_LOG``, and at exit a summary line of the whole server lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_ENV = "WIRELAB_BENCH_GC_LOG"  # the name GC_HOOK reads

GC_HOOK = """\
# written by the wirelab concurrency benchmark: logs the server's garbage collections
import atexit, gc, os, time

_path = os.environ.get("WIRELAB_BENCH_GC_LOG")
if _path:
    _fh = open(_path, "a", buffering=1)
    _t0 = [0.0]
    _counts = [0, 0, 0]
    _total = [0.0, 0.0, 0.0]

    def _gc_cb(phase, info):
        if phase == "start":
            _t0[0] = time.monotonic()
            return
        dt = time.monotonic() - _t0[0]
        gen = info["generation"]
        _counts[gen] += 1
        _total[gen] += dt
        if gen == 2 or dt >= 0.001:
            _fh.write(f"{os.getpid()} {_t0[0]:.6f} {dt:.6f} {gen} {info['collected']}\\n")

    def _gc_summary():
        ms = "/".join(f"{x * 1000:.0f}" for x in _total)
        _fh.write(f"# pid {os.getpid()}: gen0/1/2 collections {_counts[0]}/{_counts[1]}/"
                  f"{_counts[2]} taking {ms} ms in all, whole server lifetime\\n")

    gc.callbacks.append(_gc_cb)
    atexit.register(_gc_summary)
"""


def install_hook(run_dir: Path) -> Path:
    """Write the hook below ``run_dir``; the folder to put first on the PYTHONPATH."""
    hook_dir = run_dir / "gc-hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(GC_HOOK)
    return hook_dir


@dataclass(frozen=True)
class GcEvent:
    start: float
    seconds: float
    generation: int


def read_gc_log(path: Path) -> tuple[list[GcEvent], str]:
    """The logged collections and the summary line (read once the server has stopped)."""
    events: list[GcEvent] = []
    summary = ""
    if not path.exists():
        return events, summary
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            summary = line[2:]
            continue
        parts = line.split()
        if len(parts) == 5:
            events.append(GcEvent(float(parts[1]), float(parts[2]), int(parts[3])))
    return events, summary


def max_pause_ms(events: list[GcEvent]) -> float:
    """The longest of ``events`` in ms (0.0 for none)."""
    return round(max((g.seconds for g in events), default=0.0) * 1000, 2)


def gc_figures(events: list[GcEvent], t_go: float, traced: bool, summary: str) -> dict[str, Any]:
    """The ``gc`` part of a run's JSON: collections during the run (``t_go`` = its start)."""
    gen2 = [g for g in events if g.generation == 2]
    return {
        "traced": traced,
        "gen2_count": len(gen2),
        "gen2_max_ms": max_pause_ms(gen2),
        "max_pause_ms": max_pause_ms(events),
        "max_pause_ms_by_gen": [
            max_pause_ms([g for g in events if g.generation == gen]) for gen in range(3)
        ],
        "pauses_over_10ms": sum(1 for g in events if g.seconds > 0.010),
        "longest": [  # (seconds into the run, pause ms, generation)
            [round(g.start - t_go, 2), round(g.seconds * 1000, 1), g.generation]
            for g in sorted(events, key=lambda g: -g.seconds)[:10]
        ],
        "summary": summary,
    }
