"""Many concurrent paced streams against one wirelab server process: lateness and cost.

For each N (default 1000, 5000, 10000) a fresh ``wirelab serve`` process is started and N
clients each read ``GET /v1/stream?count=C&min_size=1024&max_size=4096&min_interval=0.5
&max_interval=0.5&seed=i``, with C chosen so that a stream lasts ``--duration`` seconds.
Connections are opened evenly over ``--ramp`` seconds so the accept burst does not
dominate.

Lateness of a file = arrival of its E frame - (the moment the client sent its request +
the F frame's ``offset``): what a client sees, so a server slow to accept a connection or to
answer makes every file of that stream late. It is reported for every file ("all") and for
the files scheduled after the ramp's planned end ("steady"). Also: the response
head's delay after the request, files received vs expected, errors (connection resets and
streams that did not finish counted apart), server peak RSS (VmHWM) and CPU over the run,
and the client's own CPU and event-loop lag, which show whether the client kept up.

Targets: 3,000 streams opened over 2 s with head p99 <= 50 ms and lateness p99 <= 25 ms;
10,000 streams with no error and steady p99 within 1.5x the floor's in the same run
(``--compare-reference`` runs the floor before wirelab for each N).

The client is 1-2 worker processes (at most ~9,000 sockets each: the per-process open-file
limit is 20,000), each with its own event loop (uvloop when installed), speaking raw
HTTP/1.1 over asyncio protocols and decoding the frames minimally. All timestamps use
CLOCK_MONOTONIC, which is comparable across processes.

This script starts the servers and the client workers and samples the server; the client
is in ``_conc_client.py`` (worker processes) and ``_conc_protocol.py`` (HTTP and frame
decoding), the figures and tables in ``_conc_report.py``, the GC trace in ``_conc_gc.py``.

Run: ``.venv/bin/python benchmarks/concurrency.py [--streams 1000 5000] [--json]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _conc_client import (
    MAX_SOCKETS_PER_WORKER,
    Plan,
    WorkerJob,
    await_ready,
    worker_processes,
)
from _conc_gc import LOG_ENV, gc_figures, install_hook, read_gc_log
from _conc_report import Measured, Report, print_report, summarise, verdict
from _cpu_share import cpu_share
from _util import (
    BENCH_DIR,
    ProcStats,
    Server,
    free_port,
    install_cleanup,
    loadavg,
    log,
    tree_stats,
    uvicorn_server,
    wirelab_command,
    wirelab_server,
)


def server_label(args: argparse.Namespace) -> str:
    if args.server == "reference":
        return f"reference (paced_app, {args.reference_gc} GC settings)"
    return "wirelab"


def _plan(n: int, args: argparse.Namespace) -> Plan:
    count = max(1, math.ceil(args.duration / args.interval))
    workers = args.workers or (1 if n <= 5_000 else 2)
    workers = max(workers, math.ceil(n / MAX_SOCKETS_PER_WORKER))
    ramp = args.ramp if args.ramp is not None else max(2.0, n / 2500)
    path = (
        f"/v1/stream?count={count}&min_size={args.min_size}&max_size={args.max_size}"
        f"&min_interval={args.interval}&max_interval={args.interval}&seed={{seed}}"
        f"&content={args.content}"
    )
    return Plan(n, count, args.interval, ramp, workers, path)


def _server_env(args: argparse.Namespace, run_dir: Path, gc_log: Path) -> dict[str, str]:
    """Environment for the server: PYTHONPATH (GC hook, reference app), GC settings."""
    extra_env: dict[str, str] = {}
    pythonpath = [os.environ.get("PYTHONPATH", "")]
    if args.server == "reference":
        pythonpath.insert(0, str(BENCH_DIR))
    if args.gc_trace:
        pythonpath.insert(0, str(install_hook(run_dir)))
        extra_env[LOG_ENV] = str(gc_log)
    extra_env["PYTHONPATH"] = os.pathsep.join(p for p in pythonpath if p)
    if args.server == "reference" and args.reference_gc != "default":
        extra_env["BENCH_GC_TUNING"] = args.reference_gc
    return extra_env


def _server(
    args: argparse.Namespace, command: list[str], run_dir: Path, extra_env: dict[str, str]
) -> Server:
    port = free_port()
    if args.server != "reference":
        return wirelab_server(port, run_dir, command, extra_env)
    env = dict(os.environ, **extra_env)  # PYTHONPATH holds this folder for the reference
    return uvicorn_server("reference", "_apps:paced_app", port, run_dir, env)


def _sample(
    pid: int, conns: list[Connection], t_go: float, give_up: float, period: float
) -> tuple[list[Report], list[tuple[float, ProcStats]], ProcStats | None]:
    """Sample the server while the clients run; their reports, the samples, the CPU at go."""
    samples: list[tuple[float, ProcStats]] = []
    results: list[Report] = []
    pending = list(conns)
    at_go: ProcStats | None = None
    while pending:
        now = time.monotonic()
        if now >= t_go and at_go is None:
            at_go = tree_stats(pid)
        samples.append((now, tree_stats(pid)))
        for conn in list(pending):
            if conn.poll(0):
                results.append(conn.recv())
                pending.remove(conn)
        if time.monotonic() > give_up:
            raise RuntimeError("client workers did not report back")
        time.sleep(period)
    return results, samples, at_go


def _drive(server: Server, jobs: list[WorkerJob], sample_period: float) -> Measured:
    """Run the client workers against ``server``, sampling it until they all reported."""
    base = tree_stats(server.pid)
    with worker_processes(jobs) as conns:
        loops = await_ready(conns)
        t_go = time.monotonic() + 0.3
        for conn in conns:
            conn.send(t_go)
        give_up = t_go + jobs[0].deadline + 30
        results, samples, at_go = _sample(server.pid, conns, t_go, give_up, sample_period)
        t_end = time.monotonic()
        final = tree_stats(server.pid)
    return Measured(loops, results, base, at_go or base, final, samples, t_go, t_end)


def run_one(n: int, args: argparse.Namespace, command: list[str], tmp: Path) -> dict[str, Any]:
    """One N, on a fresh server: the run's JSON object."""
    plan = _plan(n, args)
    run_dir = tmp / f"n{n}"
    run_dir.mkdir(parents=True)
    gc_log = run_dir / "gc.log"
    extra_env = _server_env(args, run_dir, gc_log)
    label = server_label(args)
    log(f"--- {label}: {n} streams x {plan.count} files, ramp {plan.ramp:.1f} s, "
        f"{plan.workers} client process(es)")  # fmt: skip
    with _server(args, command, run_dir, extra_env) as server:
        share = args.server_cpu_share
        with cpu_share(server.pid, share) if share is not None else contextlib.nullcontext():
            m = _drive(server, plan.jobs(server.port, args.grace), args.sample_period)
    gc_events, gc_summary = read_gc_log(gc_log) if args.gc_trace else ([], "")
    gc_events = [g for g in gc_events if m.t_go <= g.start <= m.t_end]  # not start-up, shutdown
    gc = gc_figures(gc_events, m.t_go, bool(args.gc_trace), gc_summary)
    return summarise(label, plan, m, gc_events, gc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _load_options(parser)
    _output_options(parser)
    return parser


def _load_options(parser: argparse.ArgumentParser) -> None:
    """The streams, their files and the client."""
    parser.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=[1000, 5000, 10000],
        help="numbers of concurrent streams, one run each (default 1000 5000 10000)",
    )
    parser.add_argument(
        "--duration", type=float, default=12.0, help="seconds of files per stream (default 12)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between files (default 0.5)"
    )
    parser.add_argument(
        "--server-cpu-share",
        type=float,
        default=None,
        metavar="FRACTION",
        help="hold each server to this fraction of one core (cgroups, root; e.g. 0.75): "
        "a slower machine on demand, the same for the floor and wirelab",
    )
    parser.add_argument("--min-size", type=int, default=1024)
    parser.add_argument("--max-size", type=int, default=4096)
    parser.add_argument("--content", default="random", choices=["random", "sine", "ramp"])
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="seconds over which connections open (default max(2, N/2500))",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="client processes (default 1 up to 5,000 streams, else 2)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=20.0,
        help="seconds past the schedule before unfinished streams count as timeouts (default 20)",
    )
    parser.add_argument(
        "--sample-period", type=float, default=0.25, help="server /proc sampling period, seconds"
    )


def _output_options(parser: argparse.ArgumentParser) -> None:
    """What to trace and print, and which server."""
    parser.add_argument(
        "--gc-trace",
        action="store_true",
        help="log the server's garbage collections (a sitecustomize hook)",
    )
    parser.add_argument("--timeline", action="store_true", help="print per-second figures")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--server", choices=["wirelab", "reference"], default="wirelab",
        help="wirelab (default), or the floor: uvicorn with the same settings serving "
        "_apps.paced_app, one write per file and nothing else",
    )  # fmt: skip
    parser.add_argument(
        "--compare-reference", action="store_true",
        help="for each N, run the floor (--server reference) first, in the same run",
    )  # fmt: skip
    parser.add_argument(
        "--reference-gc", default="wirelab", metavar="SETTINGS",
        help="GC settings of the reference server: wirelab (default: gc.freeze() after "
        "start-up and its thresholds), default (CPython's) or freeze:T0,T1,T2",
    )  # fmt: skip
    parser.add_argument(
        "--wirelab-cmd",
        metavar="CMD",
        help="command that starts the server instead of `wirelab serve`",
    )


def main() -> int:
    args = _parser().parse_args()
    install_cleanup()
    load = loadavg()
    command = wirelab_command(args.wirelab_cmd) if args.server == "wirelab" else []
    runs = []
    servers = ["reference", args.server] if args.compare_reference else [args.server]
    with tempfile.TemporaryDirectory(prefix="wirelab-bench-") as tmp:
        for n in args.streams:
            for server in dict.fromkeys(servers):  # each N: the floor first, then wirelab
                run_args = argparse.Namespace(**{**vars(args), "server": server})
                cmd = command or wirelab_command(args.wirelab_cmd)
                runs.append(run_one(n, run_args, cmd, Path(tmp) / server))
    status, detail = verdict(runs)
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "loadavg_at_start": load, "runs": runs,
                          "target": {"status": status, "detail": detail}}, indent=2))  # fmt: skip
    else:
        print_report(runs, args.timeline)
        print(f"load average at start: {load:.2f} (other work on the machine skews the figures)")
    return 0 if status != "FAIL" else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
