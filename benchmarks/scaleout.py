"""Scale-out: the distributed configuration vs the embedded one, 1 vs 2 server processes,
1 vs 2 media workers, in one run.

Questions and targets (ratios within one run):

1. relay send and receive throughput (files/s, MB/s) of the embedded configuration
   (SQLite, the local folder store, one process) and of the distributed one (PostgreSQL,
   an S3 server, Redis coordination, Celery) with 1 and 2 server processes (``wirelab
   serve --workers N``). Target: distributed, 1 process >= 0.7x embedded (send and
   receive);
2. media jobs per minute on the distributed configuration with 1 vs 2 ``wirelab worker``
   processes (each runs one job at a time: ``--media-workers 1``), reported;
3. paced streams: the largest count of concurrent ``/v1/stream`` streams whose p99
   lateness stays within ``--stream-bound`` ms on one server process; target: 2 server
   processes hold twice that count within the same bound.

Method. Everything runs on this machine, on 127.0.0.1: the machine's PostgreSQL (a
temporary database, migrated with ``wirelab db upgrade``, dropped at the end) and Redis
(keys under a fresh prefix, deleted at the end), an S3 server started by the script
(``--s3 rclone``, the default: ``rclone serve s3``, a compiled server that checks
signatures, over a temporary folder; or ``--s3 moto``, moto in server mode, a Python
server whose own cost per byte is high), users alice and bob in each configuration.
The three servers run for the whole run (idle ones cost nothing measurable).

Relay: ``--rounds`` rounds; in each, every configuration (the order rotating) gets
``--senders`` concurrent senders of ``--files`` files of ``--size`` random bytes (durable
direct sends, ``POST /v1/relay/files``), then ``--receivers`` concurrent receivers that
lease (``POST /v1/relay/inbox/next``), download, compare and acknowledge every file until
the inbox is empty. files/s = files / wall time of the leg; the best round of each is
reported (the machine is shared: the best is the least disturbed). The CPU seconds of the
server processes, the S3 server, PostgreSQL, Redis and this client during the legs are
reported per file: where the time goes. With ``local-store`` in ``--parts`` a fourth
configuration, ``pg-redis-local``, is the distributed one (1 process) on the local folder
store instead of S3: the difference to ``distributed-1`` is what S3 costs. The services
alone: sequential round trips from the benchmark process (PostgreSQL ``SELECT 1``, an
INSERT + COMMIT; an S3 PUT and GET of ``--size`` bytes), medians.

Media: short ``exact`` clips (``--clip`` s, 320x240, of a local MP4 rendered with ffmpeg
and served on 127.0.0.1), ``--media-jobs`` distinct ones submitted at once to the
distributed server (1 process), until all succeeded; with one worker, then two, each
round (the order alternating); best round.

Streams: 1-4 KB files every 0.5 s for ``--stream-duration`` s per stream, opened over
max(2, N/2500) s, read by the client of ``concurrency.py``. On one server process, N
starts at ``--stream-start`` and doubles while p99 lateness (every file, from the
client's request) is within the bound and every file arrived (halves until it is, when
the start is not), then one step halfway to the first count out of bound; then 2
processes read 2N.

Caveat: the machine has 2 cores. Two server processes, the client, PostgreSQL, Redis and
the S3 server share them, so a second process cannot double anything here; re-measure
on a machine with spare cores.

Run: ``.venv/bin/python benchmarks/scaleout.py [--rounds 3] [--s3 rclone|moto]
[--parts relay,local-store,media,streams] [--json]``; exit status 0 when the targets are met.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import _scaleout_load as load
from _scaleout_setup import (
    Config,
    CpuShares,
    distributed,
    embedded,
    serve,
    service_probes,
    worker,
)
from _util import HOST, Server, fmt_table, install_cleanup, loadavg, log

from wirelab.media._tools import find_tools
from wirelab.media.testing import make_test_media, media_server

RELAY = ("embedded", "distributed-1", "distributed-2")
LOCAL_STORE = "pg-redis-local"  # the distributed configuration with the local folder store
GROUPS = ("server", "s3", "postgres", "redis", "client")


def _url(server: Server) -> str:
    return f"http://{HOST}:{server.port}"


class Relay:
    """Rates and CPU of the relay legs, by configuration and direction."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.rates: dict[str, dict[str, list[load.Rate]]] = {
            n: {"send": [], "receive": []} for n in names
        }
        self.cpu: dict[str, dict[str, dict[str, float]]] = {
            n: {d: dict.fromkeys(GROUPS, 0.0) for d in ("send", "receive")} for n in names
        }
        self.files: dict[str, int] = dict.fromkeys(names, 0)

    def round(
        self, name: str, config: Config, server: Server, s3_pid: int | None, a: argparse.Namespace
    ) -> None:
        shares = CpuShares([server.pid], s3_pid)
        url = _url(server)
        shares.start()
        rate, bodies = load.send(url, config.tokens["alice"], a.senders, a.files, a.size)
        self._add(name, "send", rate, shares.stop())
        shares.start()
        rate = load.receive(url, config.tokens["bob"], a.receivers, bodies)
        self._add(name, "receive", rate, shares.stop())
        self.files[name] += len(bodies)
        log(f"  {name}: {self.rates[name]['send'][-1].per_s:.0f} / {rate.per_s:.0f} files/s")

    def _add(self, name: str, leg: str, rate: load.Rate, used: dict[str, float]) -> None:
        self.rates[name][leg].append(rate)
        for group, seconds in used.items():
            self.cpu[name][leg][group] += seconds

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.names:
            out[name] = {}
            for leg, rates in self.rates[name].items():
                best = max(rates, key=lambda r: r.per_s)
                cpu = self.cpu[name][leg]
                out[name][leg] = {
                    "files_per_s": round(best.per_s, 1),
                    "mb_per_s": round(best.mb_per_s, 2),
                    "all_rounds_files_per_s": [round(r.per_s, 1) for r in rates],
                    "cpu_ms_per_file": {
                        g: round(cpu[g] / self.files[name] * 1000, 2) for g in GROUPS
                    },
                }
        return out


def run_relay(a: argparse.Namespace, setups: dict[str, tuple[Config, Server, int | None]]) -> Relay:
    names = list(setups)
    relay = Relay(names)
    for r in range(a.rounds):
        log(f"relay round {r + 1}/{a.rounds}")
        turn = r % len(names)
        order = names[turn:] + names[:turn]
        for name in order:
            config, server, s3_pid = setups[name]
            relay.round(name, config, server, s3_pid, a)
    return relay


def run_media(
    a: argparse.Namespace, config: Config, server: Server, data: Path, root: Path
) -> dict[str, Any]:
    """Jobs per minute with one and with two workers, best of ``a.rounds``."""
    ffmpeg = find_tools().ffmpeg
    duration = a.media_jobs * (int(a.clip) + 2) + 2
    media = make_test_media(root / "media", duration=duration, ffmpeg=ffmpeg)
    per_min: dict[str, list[float]] = {"1_worker": [], "2_workers": []}
    token = config.tokens["alice"]
    with ExitStack() as stack:
        source = stack.enter_context(media_server(media.root)).url("video.mp4")
        stack.enter_context(worker(config, data, root / "worker-1.log"))
        batch = 0
        for r in range(a.rounds):
            for two in (False, True) if r % 2 == 0 else (True, False):
                offset = (batch % 9 + 1) / 10  # a new set of clips every batch
                batch += 1
                with ExitStack() as second:
                    if two:
                        second.enter_context(worker(config, data, root / f"worker-2-{r}.log"))
                    rate = load.media_batch(
                        _url(server), token, source, a.media_jobs, a.clip, offset
                    )
                key = "2_workers" if two else "1_worker"
                per_min[key].append(rate.per_s * 60)
                log(f"  media, {key}: {rate.per_s * 60:.1f} jobs/min")
    best = {k: round(max(v), 1) for k, v in per_min.items()}
    return {
        "jobs_per_min": best,
        "all_rounds_jobs_per_min": {k: [round(x, 1) for x in v] for k, v in per_min.items()},
        "two_workers_vs_one": round(best["2_workers"] / best["1_worker"], 2),
    }


def _ladder(within: Callable[[int], bool], start: int, most: int) -> tuple[int, int]:
    """(the largest count found within the bound, the smallest found out of it; 0: none):
    doubling from ``start`` while within (up to ``most``), else halving (down to 50)."""
    if within(start):
        n = start
        while n * 2 <= most:
            if not within(n * 2):
                return n, n * 2
            n *= 2
        return n, 0
    n = start // 2
    while n >= 50:
        if within(n):
            return n, n * 2
        n //= 2
    return 0, 0


def run_streams(a: argparse.Namespace, one: Server, two: Server) -> dict[str, Any]:
    """The capacity of one process within the bound, then two processes at twice it."""
    runs: list[dict[str, Any]] = []

    def probe(server: Server, processes: int, n: int) -> load.StreamRun:
        run = load.streams(server, n, a.stream_duration, 0.5)
        runs.append({"processes": processes, "streams": n, "p99_ms": run.p99_ms,
                     "complete": run.complete, "server_cpu_pct": run.server_cpu_pct,
                     "client_cpu_pct": run.client_cpu_pct})  # fmt: skip
        # CPU in % of one core: what the run asked of the machine's cores, which bounds
        # what twice the streams can get (twice the server and twice the client work).
        log(f"  streams, {processes} process(es), {n}: p99 {run.p99_ms:.1f} ms"
            f"{'' if run.complete else ', incomplete'}; CPU server {run.server_cpu_pct:.0f}%"
            f" + client {run.client_cpu_pct:.0f}% of a core")  # fmt: skip
        return run

    def within(n: int) -> bool:
        return probe(one, 1, n).within(a.stream_bound)

    capacity, over = _ladder(within, a.stream_start, a.stream_max)
    mid = (capacity + over) // 2
    if capacity and over and mid > capacity and within(mid):
        capacity = mid
    held = probe(two, 2, 2 * capacity).within(a.stream_bound) if capacity else False
    return {"bound_ms": a.stream_bound, "capacity_1_process": capacity,
            "two_processes_hold_2x": held, "runs": runs}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--senders", type=int, default=40)
    p.add_argument("--receivers", type=int, default=40)
    p.add_argument("--files", type=int, default=200, help="files per relay leg")
    p.add_argument("--size", type=int, default=256 * 1024, help="bytes per relay file")
    p.add_argument("--s3", choices=["rclone", "moto"], default="rclone")
    p.add_argument("--media-jobs", type=int, default=4, help="jobs per media batch")
    p.add_argument("--clip", type=float, default=4.0, help="seconds per media clip")
    p.add_argument("--stream-bound", type=float, default=50.0, help="p99 lateness bound, ms")
    p.add_argument("--stream-start", type=int, default=500)
    p.add_argument("--stream-max", type=int, default=8000)
    p.add_argument("--stream-duration", type=float, default=6.0)
    p.add_argument(
        "--parts",
        default="relay,local-store,media,streams",
        help="local-store: also the distributed configuration on the local folder store",
    )
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--json", action="store_true")
    return p


def main() -> int:
    a = _parser().parse_args()
    parts = set(a.parts.split(","))
    install_cleanup()
    result: dict[str, Any] = {"cores": os.cpu_count(), "load_average_start": loadavg(),
                              "s3_server": a.s3}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="wirelab-scaleout-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        emb = embedded(root)
        dist = stack.enter_context(distributed(root, a.s3, a.redis))
        servers = {
            "embedded": stack.enter_context(serve(emb, 1, emb.data)),
            "distributed-1": stack.enter_context(serve(dist.config, 1, root / "d1")),
            "distributed-2": stack.enter_context(serve(dist.config, 2, root / "d2")),
        }
        result["services"] = service_probes(dist, a.size)
        if "relay" in parts:
            setups = {
                "embedded": (emb, servers["embedded"], None),
                "distributed-1": (dist.config, servers["distributed-1"], dist.s3_pid),
                "distributed-2": (dist.config, servers["distributed-2"], dist.s3_pid),
            }
            if "local-store" in parts:  # where the time goes: S3 or the rest
                local = replace(dist.config, name=LOCAL_STORE, env=dict(dist.config.env))
                del local.env["WIRELAB_STORAGE_URL"]
                server = stack.enter_context(serve(local, 1, root / "local"))
                setups[LOCAL_STORE] = (local, server, None)
            result["relay"] = run_relay(a, setups).summary()
        if "media" in parts:
            log("media jobs")
            result["media"] = run_media(a, dist.config, servers["distributed-1"], root / "d1",
                                        root)  # fmt: skip
        if "streams" in parts:
            log("paced streams")
            result["streams"] = run_streams(a, servers["distributed-1"], servers["distributed-2"])
    result["load_average_end"] = loadavg()
    return report(a, result)


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    if relay := result.get("relay"):
        for leg in ("send", "receive"):
            ratio = (
                relay["distributed-1"][leg]["files_per_s"] / relay["embedded"][leg]["files_per_s"]
            )
            targets[f"distributed_vs_embedded_{leg}"] = round(ratio, 2)
            two = relay["distributed-2"][leg]["files_per_s"]
            targets[f"two_vs_one_process_{leg}"] = round(
                two / relay["distributed-1"][leg]["files_per_s"], 2
            )
        targets["relay_met"] = all(targets[f"distributed_vs_embedded_{x}"] >= 0.7
                                   for x in ("send", "receive"))  # fmt: skip
    if streams := result.get("streams"):
        targets["streams_met"] = streams["two_processes_hold_2x"]
    return targets


def report(a: argparse.Namespace, result: dict[str, Any]) -> int:
    result["targets"] = targets = _targets(result)
    met = all(v for k, v in targets.items() if k.endswith("_met"))
    if a.json:
        print(json.dumps(result, indent=2))
        return 0 if met else 1
    if relay := result.get("relay"):
        print(f"relay: {a.senders} senders / {a.receivers} receivers, {a.files} files of "
              f"{a.size} B per leg, best of {a.rounds} rounds; S3 server: {a.s3}")  # fmt: skip
        rows = []
        for name in relay:
            for leg in ("send", "receive"):
                r = relay[name][leg]
                cpu = r["cpu_ms_per_file"]
                rows.append([name, leg, f"{r['files_per_s']:.0f}", f"{r['mb_per_s']:.1f}",
                             *(f"{cpu[g]:.2f}" for g in GROUPS)])  # fmt: skip
        header = ["config", "leg", "files/s", "MB/s", *(f"{g} ms/file" for g in GROUPS)]
        print(fmt_table(header, rows))
        for key, value in targets.items():
            if key.startswith(("distributed_vs", "two_vs")):
                print(f"  {key:34} {value:.2f}x")
    if services := result.get("services"):
        alone = ", ".join(f"{k.removesuffix('_ms')} {v:.2f}" for k, v in services.items())
        print(f"services alone (ms, sequential medians, {a.size} B S3 bodies): {alone}")
    if media := result.get("media"):
        jobs = media["jobs_per_min"]
        print(f"media ({a.media_jobs} exact clips of {a.clip:g} s a batch): 1 worker "
              f"{jobs['1_worker']:.1f} jobs/min, 2 workers {jobs['2_workers']:.1f} "
              f"({media['two_workers_vs_one']:.2f}x)")  # fmt: skip
    if streams := result.get("streams"):
        print(f"streams within p99 {streams['bound_ms']:g} ms: 1 process "
              f"{streams['capacity_1_process']}; 2 processes hold 2x: "
              f"{streams['two_processes_hold_2x']}")  # fmt: skip
        for run in streams["runs"]:
            print(
                f"  {run['processes']} process(es) {run['streams']:>6} streams: p99 "
                f"{run['p99_ms']:.1f} ms{'' if run['complete'] else ' (incomplete)'}"
            )
    print(
        f"targets met: {met}; cores {result['cores']}, load average "
        f"{result['load_average_start']:.1f} at start, {result['load_average_end']:.1f} at end"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
