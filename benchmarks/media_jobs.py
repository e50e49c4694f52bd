"""Media jobs: what the service adds to ffmpeg's own time, alone and under load.

Questions and targets:

1. one job, a 20 s ``exact`` clip of the local HLS source, submit to downloaded result
   (``MediaClient.submit`` + ``follow``: long polls, download, SHA-256 check, atomic
   write), vs the same ffmpeg command run directly: target <= 1.15x. The same for a 4 s
   ``fast`` clip (reported; there ffmpeg takes a fraction of a second, so fixed costs
   dominate). Case ``proxy``: the checking proxy's share of ffmpeg's time for both clips.
2. 8 concurrent jobs on a server with ``--media-workers 2`` vs the 8 bare ffmpeg commands
   run two at a time: total time (reported), and the server's peak RSS, target <= 200 MB
   (VmHWM of the server process; the ffmpeg children are other processes).
3. a ``smart`` vs an ``exact`` cut of a 60 s clip through the service: time ratio.

Method: test media rendered once with ffmpeg's lavfi sources (``--size``, default 640x360,
25 fps, a keyframe every 2 s, ``--duration`` s, default 90) as MP4 and 2 s HLS segments,
served by ``wirelab.media.testing.media_server`` on 127.0.0.1; a ``wirelab serve --port 0``
subprocess (its own data folder, ``--media-allow-network 127.0.0.0/8``) and one user. The
direct command is the service's own (``wirelab.media._commands.cut_plan`` after
``probe_source``), without the checking proxy; the service's run adds the proxy, the
source probe, the output probe, storing, following the job and the download. Each round
runs the service leg and the direct leg, the order alternating; round 0 warms caches and
is dropped; after a service leg the job is deleted (untimed) so that the next identical
request makes a new job. Medians over ``--rounds`` (default 5). For each job the server's
timestamps split the service time into: ``submit``, ``queue`` (created to started),
``run`` (started to finished), ``seen`` (finished to the client's last look) and
``download`` (the rest); the server's log line for the job splits ``run`` into
``run.probe`` (proxy start, source probe), ``run.ffmpeg``, ``run.measure`` (the output
probe), ``run.store`` and ``run.other`` (db writes, clean-up). The ratio is that of the
medians; the median of the per-round ratios is printed too (each round's two legs ran
back to back, so it is less sensitive to load changing during the run). The proxy case
runs the direct command with and without a checking proxy served by the benchmark's own
event loop, interleaved. The concurrent case runs four rounds on a fresh server: bare,
service, service (its jobs deleted first), bare; medians.

Run: ``.venv/bin/python benchmarks/media_jobs.py [--rounds 5] [--cases exact20,fast4,...]
[--size 640x360] [--json]``;
exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from _relay_procs import RssSampler, WirelabServer, add_user
from _util import MB, fmt_table, loadavg, log, median, proc_stats, venv_script

from wirelab.client import MediaClient, MediaJob
from wirelab.media import MediaSettings, NetworkPolicy, parse_networks, parse_request
from wirelab.media._commands import cut_plan
from wirelab.media._probe import probe_source
from wirelab.media._proxy import CheckingProxy
from wirelab.media._tools import find_tools
from wirelab.media.testing import make_test_media, media_server

TARGET_RATIO = 1.15
TARGET_RSS = 200 * MB
CONCURRENT = 8
CASES = ("exact20", "fast4", "proxy", "smart60", "concurrent")


@dataclass
class Leg:
    """Times of one kind of work, one value per round (seconds)."""

    times: list[float] = field(default_factory=list)
    parts: list[dict[str, float]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.times)


def _ts(text: str | None) -> float:
    return datetime.fromisoformat(text).timestamp() if text else float("nan")


def breakdown(job: MediaJob, submitted: float, seen: float, done: float) -> dict[str, float]:
    """Where a service leg's time went (see the module docstring)."""
    raw = job.raw
    created, started, finished = (_ts(raw.get(k)) for k in ("created_at", "started_at",
                                                             "finished_at"))  # fmt: skip
    return {
        "submit": created - submitted,
        "queue": started - created,
        "run": finished - started,
        "seen": seen - finished,
        "download": done - seen,
    }


_JOB_TIMINGS = re.compile(r"media job ([0-9a-f]{32}) succeeded: (.*)")


def job_timings(server_log: Path, job_id: str) -> dict[str, float]:
    """The server's own split of a job's ``run`` (its log line for the job: probe,
    ffmpeg, measure, store); ``{}`` when the line is not (yet) there."""
    for match in _JOB_TIMINGS.finditer(server_log.read_text(errors="replace")):
        if match.group(1) == job_id:
            parts = (item.rsplit(" ", 2) for item in match.group(2).split(", "))
            return {f"run.{name}": float(value) for name, value, _unit in parts}
    return {}


def service_leg(
    client: MediaClient, body: dict[str, Any], out: Path, server_log: Path | None = None
) -> tuple[float, Any]:
    """Submit, follow, download (verified); then delete the job (untimed). With the
    server's log, the job's ``run`` is split as the server measured it."""
    t0 = time.time()
    job = client.submit(**body)
    last: list[float] = [t0]

    def seen(_: MediaJob) -> None:
        last.append(time.time())

    final = client.wait(job.id, on_update=seen)
    seen_at = last[-1]
    if final.state != "succeeded":
        raise SystemExit(f"the job failed: {final.raw}")
    client.download(final, out, overwrite=True)
    t1 = time.time()
    client.cancel(job.id)
    out.unlink()
    parts = breakdown(final, t0, seen_at, t1)
    if server_log is not None:
        inner = job_timings(server_log, job.id)
        if inner:
            parts.update(inner)
            parts["run.other"] = parts["run"] - sum(inner.values())
    return t1 - t0, parts


def direct_command(body: dict[str, Any], output: Path, proxy: str | None = None) -> list[str]:
    """The service's ffmpeg command for ``body``, without the checking proxy (or with
    the one at ``proxy``)."""
    tools = find_tools()
    settings = MediaSettings()
    request = parse_request(body, template=None, limits=settings)
    status, stderr, info = asyncio.run(probe_source(tools, request.source, None, 5.0))
    if info is None:
        raise SystemExit(f"ffprobe failed ({status}): {stderr}")
    steps = cut_plan(request, info, url=request.source, proxy=proxy, output=str(output),
                     max_size=settings.max_output_size)  # fmt: skip
    if len(steps) != 1:
        raise SystemExit(f"expected one ffmpeg step for {body}, got {len(steps)}")
    return [tools.ffmpeg, *steps[0].args]


def direct_leg(argv: list[str], out: Path) -> float:
    t0 = time.time()
    subprocess.run(argv, check=True, capture_output=True)
    elapsed = time.time() - t0
    out.unlink()
    return elapsed


def compare(
    name: str,
    client: MediaClient,
    body: dict[str, Any],
    work: Path,
    rounds: int,
    server_log: Path,
) -> dict[str, Any]:
    """Question 1 for one clip: the service vs the direct command, ``rounds`` times."""
    out = work / f"{name}.mp4"
    argv = direct_command(body, out)
    service, direct = Leg(), Leg()
    for i in range(rounds + 1):  # round 0 warms caches and is not counted
        direct_first = i % 2 == 0
        direct_s = direct_leg(argv, out) if direct_first else 0.0
        service_s, parts = service_leg(client, body, out, server_log)
        if not direct_first:
            direct_s = direct_leg(argv, out)
        if i:
            service.times.append(service_s)
            service.parts.append(parts)
            direct.times.append(direct_s)
        shares = ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
        log(f"{name} round {i}: service {service_s:.3f} s ({shares}), direct {direct_s:.3f} s")
    parts = {k: median([p.get(k, float("nan")) for p in service.parts]) for k in service.parts[0]}
    paired = [a / b for a, b in zip(service.times, direct.times, strict=True)]
    return {
        "service_s": service.median,
        "direct_s": direct.median,
        "ratio": service.median / direct.median,
        "ratio_paired_median": median(paired),
        "service_parts_s": parts,
        "service_all_s": service.times,
        "direct_all_s": direct.times,
    }


def proxy_share(name: str, body: dict[str, Any], work: Path, rounds: int) -> dict[str, Any]:
    """The checking proxy's share of ffmpeg's time: the direct command with and without
    the proxy (served by this process's event loop, as in the server), interleaved, round
    0 dropped; medians and the median of the per-round ratios."""
    out = work / f"{name}-proxy.mp4"
    plain = direct_command(body, out)

    async def ffmpeg(argv: list[str]) -> float:
        t0 = time.time()
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        if await process.wait() != 0:
            raise SystemExit(f"ffmpeg failed: {argv}")
        out.unlink()
        return time.time() - t0

    async def legs() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {"proxy": [], "direct": []}
        async with CheckingProxy(NetworkPolicy(parse_networks("127.0.0.0/8"))) as proxy:
            proxied = await asyncio.to_thread(direct_command, body, out, proxy.url)
            for i in range(rounds + 1):
                order = ("proxy", "direct") if i % 2 else ("direct", "proxy")
                for leg in order:
                    took = await ffmpeg(proxied if leg == "proxy" else plain)
                    if i:
                        times[leg].append(took)
        return times

    times = asyncio.run(legs())
    paired = [a / b for a, b in zip(times["proxy"], times["direct"], strict=True)]
    proxy_s, direct_s = median(times["proxy"]), median(times["direct"])
    log(f"{name} proxy share: with {proxy_s:.3f} s, without {direct_s:.3f} s")
    return {
        "with_proxy_s": proxy_s,
        "without_s": direct_s,
        "ratio": proxy_s / direct_s,
        "ratio_paired_median": median(paired),
        "all_s": times,
    }


def concurrent_service(url: str, token: str, bodies: list[dict[str, Any]], work: Path) -> float:
    """Submit every body at once (one client each), follow all; total seconds."""

    def one(index: int) -> None:
        with MediaClient(url, token=token, timeout=120) as client:
            job = client.submit(**bodies[index])
            client.follow(job.id, dest=work / f"c{index}.mp4", overwrite=True)

    t0 = time.time()
    with ThreadPoolExecutor(len(bodies)) as pool:
        list(pool.map(one, range(len(bodies))))
    return time.time() - t0


def concurrent_direct(commands: list[list[str]]) -> float:
    t0 = time.time()
    with ThreadPoolExecutor(2) as pool:  # two at a time, as --media-workers 2
        list(pool.map(lambda a: subprocess.run(a, check=True, capture_output=True), commands))
    return time.time() - t0


def start_server(work: Path, workers: int) -> tuple[WirelabServer, str]:
    exe = venv_script("wirelab")
    if exe is None:
        raise SystemExit("wirelab is not installed in this environment (pip install -e .)")
    data = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    token = add_user([exe], "bench", data)
    env = dict(
        os.environ,
        WIRELAB_MEDIA_ALLOW_NETWORK="127.0.0.0/8",
        WIRELAB_MEDIA_WORKERS=str(workers),
    )
    server = WirelabServer([exe], data, data.with_suffix(".log"), env)
    return server.start(), token


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    log(f"rendering {args.duration} s of {args.size} test media ...")
    media = make_test_media(work / "media", duration=args.duration, size=args.size)
    results: dict[str, Any] = {"load_average_at_start": loadavg(), "size": args.size}
    cases = set(args.cases.split(","))
    with media_server(media.root) as source:
        hls = source.url(media.hls)
        server, token = start_server(work, 2)
        try:
            with MediaClient(server.url, token=token, timeout=120) as client:
                exact20 = {"source": hls, "start": "5", "end": "25", "accuracy": "exact"}
                fast4 = {"source": hls, "start": "10", "end": "14", "accuracy": "fast"}
                if "exact20" in cases:
                    results["exact_20s"] = compare(
                        "exact20", client, exact20, work, args.rounds, server.log_path
                    )
                if "fast4" in cases:
                    results["fast_4s"] = compare(
                        "fast4", client, fast4, work, args.rounds, server.log_path
                    )
                if "proxy" in cases:
                    results["proxy"] = {
                        name: proxy_share(name, body, work, args.rounds)
                        for name, body in (("exact20", exact20), ("fast4", fast4))
                    }
                if "smart60" in cases:
                    results["smart_vs_exact_60s"] = smart_vs_exact(client, hls, work, args.rounds)
        finally:
            server.stop()
        if "concurrent" in cases:
            results["concurrent"] = concurrency(work, hls)
    return results


def smart_vs_exact(client: MediaClient, hls: str, work: Path, rounds: int) -> dict[str, Any]:
    """Question 3: a 60 s clip starting and ending between keyframes."""
    times: dict[str, list[float]] = {"smart": [], "exact": []}
    for i in range(rounds):
        kinds = ["smart", "exact"] if i % 2 == 0 else ["exact", "smart"]
        for kind in kinds:
            body = {"source": hls, "start": "3.32", "end": "63.32", "accuracy": kind}
            took, _ = service_leg(client, body, work / f"{kind}60.mp4")
            times[kind].append(took)
        log(f"60 s round {i}: smart {times['smart'][-1]:.2f} s exact {times['exact'][-1]:.2f} s")
    smart, exact = median(times["smart"]), median(times["exact"])
    return {"smart_s": smart, "exact_s": exact, "ratio": smart / exact, "all_s": times}


def concurrency(work: Path, hls: str) -> dict[str, Any]:
    """Question 2, on a fresh server so that its VmHWM covers this phase only."""
    bodies = [
        {"source": hls, "start": str(1 + 5 * i), "end": str(11 + 5 * i), "accuracy": "exact"}
        for i in range(CONCURRENT)
    ]
    commands = [direct_command(b, work / f"d{i}.mp4") for i, b in enumerate(bodies)]
    direct = [concurrent_direct(commands)]  # rounds: direct, service, service, direct
    server, token = start_server(work, 2)
    try:
        idle = proc_stats(server.pid).rss
        with RssSampler(server.pid) as sampler:
            service = [concurrent_service(server.url, token, bodies, work)]
            with MediaClient(server.url, token=token) as client:  # the next round: new jobs
                for job in client.jobs():
                    client.cancel(job.id)
            service.append(concurrent_service(server.url, token, bodies, work))
        hwm = proc_stats(server.pid).rss_peak
    finally:
        server.stop()
    direct.append(concurrent_direct(commands))
    log(f"concurrent: service {service} s, direct {direct} s")
    return {
        "jobs": CONCURRENT,
        "clip": "10 s exact each",
        "service_s": median(service),
        "direct_two_at_a_time_s": median(direct),
        "ratio": median(service) / median(direct),
        "all_s": {"service": service, "direct": direct},
        "server_rss_idle_mb": idle / MB,
        "server_rss_peak_sampled_mb": sampler.peak / MB,
        "server_vmhwm_mb": hwm / MB,
    }


def report(results: dict[str, Any]) -> bool:
    """Print a table of the cases that ran, where the service's time went, and the
    memory; whether every target is met."""
    rows = []
    for key, label, target in (
        ("exact_20s", "20 s exact, HLS", f"<= {TARGET_RATIO}x"),
        ("fast_4s", "4 s fast, HLS", "report"),
    ):
        if key in results:
            case = results[key]
            rows.append([label, f"{case['service_s']:.2f}", f"{case['direct_s']:.2f}",
                         f"{case['ratio']:.2f}x (per round {case['ratio_paired_median']:.2f}x)",
                         target])  # fmt: skip
    for name, case in results.get("proxy", {}).items():
        rows.append([f"{name}: ffmpeg with / without the proxy", f"{case['with_proxy_s']:.3f}",
                     f"{case['without_s']:.3f}",
                     f"{case['ratio']:.2f}x (per round {case['ratio_paired_median']:.2f}x)",
                     "report"])  # fmt: skip
    if "concurrent" in results:
        conc = results["concurrent"]
        rows.append([f"{conc['jobs']} x 10 s exact, 2 workers", f"{conc['service_s']:.2f}",
                     f"{conc['direct_two_at_a_time_s']:.2f}", f"{conc['ratio']:.2f}x",
                     "report"])  # fmt: skip
    if "smart_vs_exact_60s" in results:
        smart = results["smart_vs_exact_60s"]
        rows.append(["60 s smart vs exact (service)", f"{smart['smart_s']:.2f}",
                     f"{smart['exact_s']:.2f}", f"{smart['ratio']:.2f}x", "report"])  # fmt: skip
    print(fmt_table(["case", "service s", "direct s", "ratio", "target"], rows))
    for name in ("exact_20s", "fast_4s"):
        if name in results:
            parts = results[name]["service_parts_s"].items()
            print(f"{name} service time (median s): {', '.join(f'{k} {v:.3f}' for k, v in parts)}")
    if "concurrent" in results:
        conc = results["concurrent"]
        print(
            f"server RSS: idle {conc['server_rss_idle_mb']:.0f} MB, peak "
            f"{conc['server_vmhwm_mb']:.0f} MB (VmHWM; target <= {TARGET_RSS / MB:.0f} MB)"
        )
    print(f"load average at start: {results['load_average_at_start']:.2f}")
    return met(results)


def met(results: dict[str, Any]) -> bool:
    """Whether every target is met."""
    ratio: float = results.get("exact_20s", {}).get("ratio", 0.0)
    rss: float = results.get("concurrent", {}).get("server_vmhwm_mb", 0.0) * MB
    return ratio <= TARGET_RATIO and rss <= TARGET_RSS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--duration", type=int, default=90)
    parser.add_argument("--cases", default=",".join(CASES), help="Comma-separated subset.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wirelab-media-bench-") as tmp:
        results = run(args, Path(tmp))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0 if met(results) else 1
    return 0 if report(results) else 1


if __name__ == "__main__":
    threading.excepthook = lambda a: log(f"thread failed: {a.exc_value}")
    sys.exit(main())
