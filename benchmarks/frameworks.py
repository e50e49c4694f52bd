"""Framework comparison: the same trivial streaming endpoint under several ASGI stacks.

Every server streams one constant 1 MiB buffer 256 times (256 MiB, chunked) from
``_apps.py``; curl reads it to /dev/null. The same 256 MiB is also sent as 4096 x 64 KiB,
the size of wirelab's data frames, where the per-send cost of each stack shows more. All
servers run at once (idle ones cost nothing) and the reads are interleaved round by round,
in a rotated order, so that drifts of the machine hit every server alike. Prints the
median MB/s (1 MB = 10^6 bytes) with min/max and the server CPU seconds spent per GB sent.

Run: ``.venv/bin/python benchmarks/frameworks.py [--rounds 7] [--json]``
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _util import (
    BENCH_DIR,
    HOST,
    MB,
    Server,
    curl,
    fmt_table,
    free_port,
    have_curl,
    install_cleanup,
    loadavg,
    log,
    median,
    python_argv,
    tree_stats,
)


@dataclass
class Stack:
    key: str
    label: str
    argv: Callable[[int], list[str]]
    module: str  # the server package that must be importable
    server: Server | None = None


def _uvicorn(app: str, http: str, loop: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return python_argv(
            "-m", "uvicorn", app, "--host", HOST, "--port", str(port), "--http", http,
            "--loop", loop, "--lifespan", "on", "--log-level", "warning", "--no-access-log",
        )  # fmt: skip

    return argv


def _granian(app: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return python_argv(
            "-m", "granian", "--interface", "asgi", "--host", HOST, "--port", str(port),
            "--workers", "1", "--loop", "uvloop", "--http", "1", "--no-access-log",
            "--log-level", "warning", app,
        )  # fmt: skip

    return argv


def _hypercorn(app: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return python_argv(
            "-m", "hypercorn", "--bind", f"{HOST}:{port}", "--worker-class", "uvloop",
            "--workers", "1", "--log-level", "warning", app,
        )  # fmt: skip

    return argv


def stacks() -> list[Stack]:
    return [
        Stack("uvicorn-raw", "uvicorn httptools+uvloop, raw ASGI app",
              _uvicorn("_apps:raw_app", "httptools", "uvloop"), "uvicorn"),
        Stack("uvicorn-starlette", "uvicorn httptools+uvloop, Starlette StreamingResponse",
              _uvicorn("_apps:starlette_app", "httptools", "uvloop"), "uvicorn"),
        Stack("uvicorn-fastapi", "uvicorn httptools+uvloop, FastAPI StreamingResponse",
              _uvicorn("_apps:fastapi_app", "httptools", "uvloop"), "uvicorn"),
        Stack("uvicorn-fastapi-rawresp",
              "uvicorn httptools+uvloop, FastAPI + raw ASGI response class",
              _uvicorn("_apps:fastapi_raw_app", "httptools", "uvloop"), "uvicorn"),
        Stack("uvicorn-h11-raw", "uvicorn h11+asyncio, raw ASGI app",
              _uvicorn("_apps:raw_app", "h11", "asyncio"), "uvicorn"),
        Stack("uvicorn-h11-fastapi", "uvicorn h11+asyncio, FastAPI StreamingResponse",
              _uvicorn("_apps:fastapi_app", "h11", "asyncio"), "uvicorn"),
        Stack("granian-raw", "granian ASGI (uvloop), raw ASGI app",
              _granian("_apps:raw_app"), "granian"),
        Stack("granian-fastapi", "granian ASGI (uvloop), FastAPI StreamingResponse",
              _granian("_apps:fastapi_app"), "granian"),
        Stack("hypercorn-raw", "hypercorn (uvloop), raw ASGI app",
              _hypercorn("_apps:raw_app"), "hypercorn"),
    ]  # fmt: skip


@dataclass(frozen=True)
class Workload:
    size: int
    count: int

    @property
    def key(self) -> str:
        return f"{self.count}x{self.size // 1024}KiB"

    @property
    def total(self) -> int:
        return self.size * self.count

    def path(self) -> str:
        return f"/?size={self.size}&count={self.count}"


WORKLOADS = {
    # what the brief asks: one constant 1 MiB buffer, 256 times
    "1MiB": Workload(1024 * 1024, 256),
    # the same 256 MiB in 64 KiB sends: wirelab's D frame size, 16x the per-send overhead
    "64KiB": Workload(64 * 1024, 4096),
}


@dataclass
class Sample:
    mbps: list[float] = field(default_factory=list)
    cpu_per_gb: list[float] = field(default_factory=list)
    sys_share: list[float] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--workload", nargs="+", choices=sorted(WORKLOADS), default=["1MiB", "64KiB"],
        help="send sizes to run (default both: 256 x 1 MiB and 4096 x 64 KiB)",
    )  # fmt: skip
    parser.add_argument("--only", nargs="+", metavar="KEY", help="run only these stacks")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    if not have_curl():
        log("curl is not installed")
        return 2
    install_cleanup()
    load = loadavg()

    selected: list[Stack] = []
    skipped: list[str] = []
    for st in stacks():
        if args.only and st.key not in args.only:
            continue
        if importlib.util.find_spec(st.module) is None:
            skipped.append(f"{st.label}: {st.module} not installed")
            continue
        selected.append(st)
    workloads = [WORKLOADS[w] for w in args.workload]
    samples = {(st.key, wl.key): Sample() for st in selected for wl in workloads}

    env = dict(os.environ, PYTHONPATH=str(BENCH_DIR), PYTHONUNBUFFERED="1")
    with contextlib.ExitStack() as stack:
        for st in selected:
            port = free_port()
            log(f"starting {st.label} on port {port}")
            srv = Server(st.key, st.argv(port), port, env=env, cwd=BENCH_DIR)
            st.server = stack.enter_context(srv)
            for wl in workloads:  # warm-up, not counted
                curl(f"http://{HOST}:{port}{wl.path()}", expect_size=wl.total)
        jobs = [(st, wl) for wl in workloads for st in selected]
        for rnd in range(args.rounds):
            shift = rnd % len(jobs)
            for st, wl in jobs[shift:] + jobs[:shift]:
                assert st.server is not None
                before = tree_stats(st.server.pid)
                res = curl(f"http://{HOST}:{st.server.port}{wl.path()}", expect_size=wl.total)
                spent = tree_stats(st.server.pid) - before
                smp = samples[st.key, wl.key]
                smp.mbps.append(res.mb_per_s)
                smp.cpu_per_gb.append(spent.cpu / (res.size / 1e9))
                smp.sys_share.append(spent.cpu_sys / spent.cpu if spent.cpu > 0 else 0.0)
            log(f"round {rnd + 1}/{args.rounds} done")

    results: list[dict[str, Any]] = []
    for wl in workloads:
        raw = samples.get(("uvicorn-raw", wl.key))
        base = median(raw.mbps) if raw is not None else None
        for st in selected:
            smp = samples[st.key, wl.key]
            med = median(smp.mbps)
            results.append({
                "workload": wl.key,
                "key": st.key,
                "stack": st.label,
                "median_mb_s": round(med, 1),
                "min_mb_s": round(min(smp.mbps), 1),
                "max_mb_s": round(max(smp.mbps), 1),
                "vs_uvicorn_raw": round(med / base, 3) if base else None,
                "server_cpu_s_per_gb": round(median(smp.cpu_per_gb), 3),
                "server_sys_share": round(median(smp.sys_share), 3),
                "runs_mb_s": [round(v, 1) for v in smp.mbps],
            })  # fmt: skip
    if args.json:
        print(json.dumps({"rounds": args.rounds, "cpus": os.cpu_count(),
                          "loadavg_at_start": load, "results": results, "skipped": skipped},
                         indent=2))  # fmt: skip
        return 0
    for wl in workloads:
        print(f"\n{wl.count} x {wl.size // 1024} KiB constant buffer ({wl.total / MB:.0f} MB) "
              f"read by curl, {args.rounds} interleaved rounds, {os.cpu_count()} CPUs; "
              "MB/s = 10^6 bytes/s")  # fmt: skip
        rows = [
            [
                str(r["stack"]),
                f"{r['median_mb_s']:.0f}",
                f"{r['min_mb_s']:.0f} - {r['max_mb_s']:.0f}",
                f"{r['vs_uvicorn_raw']:.2f}" if r["vs_uvicorn_raw"] is not None else "-",
                f"{r['server_cpu_s_per_gb']:.2f} ({r['server_sys_share']:.0%} sys)",
            ]
            for r in results
            if r["workload"] == wl.key
        ]
        print(fmt_table(["server, app", "median MB/s", "min - max", "vs raw uvicorn",
                         "server CPU s/GB"], rows))  # fmt: skip
    print(f"\nload average at start: {load:.2f} (other work on the machine skews the figures)")
    for note in skipped:
        print(f"skipped: {note}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
