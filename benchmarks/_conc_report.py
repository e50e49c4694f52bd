"""Figures and output of ``concurrency.py``: percentiles, the per-second timeline, tables.

:func:`summarise` turns what one run measured (the workers' reports and the server's /proc
samples) into the run's JSON object; :func:`print_report` prints the runs as tables and
:func:`verdict` judges them against the target.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from _conc_client import Plan
from _conc_gc import GcEvent, max_pause_ms
from _util import MB, ProcStats, fmt_table

TARGET_STREAMS = 10_000
TARGET_FLOOR_RATIO = 1.5  # p99 lateness at 10,000 streams vs the floor's, same run
TARGET_RSS = 512 * MB  # bytes, decimal: the stricter reading of "512 MB"
BURST_STREAMS = 3_000  # opened over 2 s
BURST_HEAD_P99 = 0.050  # seconds from the request to the response head
BURST_P99 = 0.025  # seconds of file lateness, from the request
_RESETS = ("ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT")

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Report = dict[str, Any]  # what a worker sends back (see _conc_client._report)


@dataclass(frozen=True)
class Measured:
    """What the main process saw of one run."""

    loops: list[str]  # the workers' event loops
    results: list[Report]  # the workers' reports, in order of arrival
    base: ProcStats  # the server before the clients started
    at_go: ProcStats  # the server when the clients started
    final: ProcStats  # the server when the last worker had reported
    samples: list[tuple[float, ProcStats]]  # (time, the server) while the clients ran
    t_go: float
    t_end: float


@dataclass(frozen=True)
class Files:
    """Every file received in a run, from all workers: one entry each."""

    lateness: FloatArray
    scheduled: FloatArray
    stream: np.ndarray[Any, np.dtype[np.int_]]

    @classmethod
    def of(cls, results: list[Report]) -> Files:
        return cls(
            _joined(results, "lateness"),
            _joined(results, "scheduled"),
            np.concatenate([np.frombuffer(r["stream"], dtype=np.int_) for r in results]),
        )


def _joined(results: list[Report], key: str) -> FloatArray:
    return np.concatenate([np.frombuffer(r[key], dtype=np.float64) for r in results])


def _pct(values: FloatArray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def _max_ms(values: FloatArray) -> float | None:
    return _round_ms(float(values.max()) if values.size else None)


def _spread(values: FloatArray) -> dict[str, float | None]:
    """p50, p99 and max in ms."""
    return {
        "p50": _round_ms(_pct(values, 50)),
        "p99": _round_ms(_pct(values, 99)),
        "max": _max_ms(values),
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _fmt_spread(spread: dict[str, Any], sep: str) -> str:
    return sep.join(_fmt(spread[k]) for k in ("p50", "p99", "max"))


# --------------------------------------------------------------------------------------
# one run's figures


def summarise(
    label: str, plan: Plan, m: Measured, gc_events: list[GcEvent], gc: dict[str, Any]
) -> dict[str, Any]:
    """The JSON object of one run (``gc_events``: the collections during the run)."""
    files = Files.of(m.results)
    received = int(sum(r["files"] for r in m.results))
    return {
        **_counts(label, plan, m, received),
        **_lateness(files, m, plan),
        **_server(m, received),
        **_client(m.results),
        "gc": gc,
        "timeline": _timeline(files, m, gc_events),
    }


def _counts(label: str, plan: Plan, m: Measured, received: int) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    for r in m.results:
        errors.update(r["errors"])
    complete = int(sum(r["complete"] for r in m.results))
    return {
        "server": label,
        "streams": plan.streams,
        "files_per_stream": plan.count,
        "interval_s": plan.interval,
        "ramp_s": plan.ramp,
        "client_processes": plan.workers,
        "client_loops": m.loops,
        "files_expected": plan.streams * plan.count,
        "files_received": received,
        "streams_complete": complete,
        "streams_unfinished": plan.streams - complete,
        "resets": sum(n for k, n in errors.items() if any(e in k for e in _RESETS)),
        "errors": dict(errors),
    }


def _lateness(files: Files, m: Measured, plan: Plan) -> dict[str, Any]:
    lat = files.lateness
    streams = plan.streams
    connected = _joined(m.results, "connected")
    # Lateness (from the request) = a constant per-stream part (the stream's least late
    # file: how late the server answered and started its schedule) + jitter on top of it.
    stream_min = np.full(streams, np.inf)
    if lat.size:
        np.minimum.at(stream_min, files.stream, lat)
    jitter = lat - stream_min[files.stream] if lat.size else lat
    stream_min = stream_min[np.isfinite(stream_min)]
    all_connected = float(connected.max()) if connected.size else math.nan
    # "Steady" files are those scheduled after the ramp's planned end, the same instant for
    # every server: cutting at the last connection made instead let a server whose listen
    # queue overflowed (SYNs retried for seconds) be judged on its last few streams only.
    steady = lat[files.scheduled >= m.t_go + plan.ramp]
    return {
        "time_to_all_connected_s": round(all_connected - m.t_go, 3) if connected.size else None,
        "head_ms": _spread(_joined(m.results, "ttfb")),  # request sent -> response head
        "connect_ms": _spread(_joined(m.results, "connect")),  # connect() -> connected
        "lateness_all_ms": {"n": int(lat.size), **_spread(lat)},
        "stream_offset_ms": _spread(stream_min),  # per stream: its least late file
        "jitter_ms": _spread(jitter),  # per file: lateness minus its stream's offset
        "lateness_steady_ms": {"n": int(steady.size), **_spread(steady)},
    }


def _server(m: Measured, received: int) -> dict[str, Any]:
    wall = m.t_end - m.t_go
    cpu = m.final.cpu - m.at_go.cpu
    cpu_sys = m.final.cpu_sys - m.at_go.cpu_sys
    return {
        "server_rss_baseline_mb": round(m.base.rss / MB, 1),
        "server_rss_peak_mb": round(m.final.rss_peak / MB, 1),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_pct": round(cpu / wall * 100, 1) if wall > 0 else None,
        "server_cpu_sys_share": round(cpu_sys / cpu, 2) if cpu > 0 else None,
        "server_cpu_us_per_file": round(cpu / received * 1e6, 1) if received else None,
        "wall_s": round(wall, 2),
    }


def _client(results: list[Report]) -> dict[str, Any]:
    lag = np.array([x for r in results for x in r["lag"]], dtype=np.float64)
    return {
        "client_cpu_pct": [round(r["cpu"] / r["wall"] * 100, 1) for r in results],
        "client_loop_lag_ms": {"p99": _round_ms(_pct(lag, 99)), "max": _max_ms(lag)},
    }


def _timeline(files: Files, m: Measured, gc_events: list[GcEvent]) -> list[dict[str, Any]]:
    """Per second of the run: files scheduled then, their lateness, the server, its GC."""
    rows: list[dict[str, Any]] = []
    if not files.scheduled.size:
        return rows
    prev: tuple[float, ProcStats] | None = None
    for sec in range(math.ceil(m.t_end - m.t_go)):
        lo, hi = m.t_go + sec, m.t_go + sec + 1
        sel = files.lateness[(files.scheduled >= lo) & (files.scheduled < hi)]
        window = [s for s in m.samples if lo <= s[0] < hi]
        cpu_pct = None
        if window:
            first = prev or window[0]
            last = window[-1]
            if last[0] > first[0]:
                cpu_pct = (last[1].cpu - first[1].cpu) / (last[0] - first[0]) * 100
            prev = last
        gcs = [g for g in gc_events if lo <= g.start < hi]
        rows.append({
            "t": sec,
            "files": int(sel.size),
            "p99_ms": _round_ms(_pct(sel, 99)),
            "max_ms": _max_ms(sel),
            "server_cpu_pct": round(cpu_pct, 1) if cpu_pct is not None else None,
            "server_rss_mb": round(window[-1][1].rss / MB, 1) if window else None,
            "gc_gen2": sum(1 for g in gcs if g.generation == 2),
            "gc_max_ms": max_pause_ms(gcs),
        })  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------
# verdict and tables


def verdict(runs: list[dict[str, Any]]) -> tuple[str, str]:
    """The issue's targets for the runs that measure them: the burst (3,000 streams over
    2 s, wirelab) and 10,000 streams (wirelab, against the floor's run if there is one)."""
    results = [_burst_verdict(runs), _scale_verdict(runs)]
    judged = [(status, detail) for status, detail in results if status != "NOT RUN"]
    if not judged:
        return "NOT RUN", "; ".join(detail for _, detail in results)
    status = "FAIL" if any(s == "FAIL" for s, _ in judged) else "PASS"
    return status, "; ".join(f"{d} -> {s}" for s, d in judged)


def _find(runs: list[dict[str, Any]], streams: int, reference: bool) -> dict[str, Any] | None:
    return next(
        (r for r in runs
         if r["streams"] == streams and r["server"].startswith("reference") == reference),
        None,
    )  # fmt: skip


def _burst_verdict(runs: list[dict[str, Any]]) -> tuple[str, str]:
    run = _find(runs, BURST_STREAMS, reference=False)
    if run is None:
        return "NOT RUN", f"{BURST_STREAMS:,} streams were not part of this run"
    head, p99 = run["head_ms"]["p99"], run["lateness_all_ms"]["p99"]
    detail = (
        f"{BURST_STREAMS:,} streams: head p99 {head} ms (<= {BURST_HEAD_P99 * 1000:.0f}), "
        f"lateness p99 {p99} ms (<= {BURST_P99 * 1000:.0f}), errors {_error_count(run)}"
    )
    ok = (
        head is not None and head <= BURST_HEAD_P99 * 1000
        and p99 is not None and p99 <= BURST_P99 * 1000
        and not _error_count(run)
    )  # fmt: skip
    return ("PASS" if ok else "FAIL"), detail


def _error_count(run: dict[str, Any]) -> int:
    missing: int = run["files_expected"] - run["files_received"]
    return int(sum(run["errors"].values())) + missing


def _scale_verdict(runs: list[dict[str, Any]]) -> tuple[str, str]:
    run = _find(runs, TARGET_STREAMS, reference=False)
    if run is None:
        return "NOT RUN", f"{TARGET_STREAMS:,} streams were not part of this run"
    floor = _find(runs, TARGET_STREAMS, reference=True)
    p99 = run["lateness_steady_ms"]["p99"]
    rss = run["server_rss_peak_mb"] * MB
    problems = []
    if _error_count(run):
        problems.append(f"{run['files_received']}/{run['files_expected']} files, "
                        f"errors {run['errors']}")  # fmt: skip
    if floor is None:
        problems.append("no floor run to compare with (--compare-reference)")
    elif p99 is None or p99 > TARGET_FLOOR_RATIO * floor["lateness_steady_ms"]["p99"]:
        problems.append(f"p99 {p99} ms > {TARGET_FLOOR_RATIO} x the floor's "
                        f"{floor['lateness_steady_ms']['p99']} ms")  # fmt: skip
    if rss > TARGET_RSS:
        problems.append(f"RSS {rss / MB:.0f} MB > {TARGET_RSS / MB:.0f} MB")
    detail = f"{TARGET_STREAMS:,} streams: steady p99 {p99} ms, peak RSS {rss / MB:.0f} MB"
    if floor is not None and _error_count(floor):
        detail += f"; the floor itself: {_error_count(floor)} errors and missing files"
    return ("FAIL", detail + " (" + "; ".join(problems) + ")") if problems else ("PASS", detail)


def _row(r: dict[str, Any]) -> list[str]:
    return [
        "floor" if r["server"].startswith("reference") else "wirelab",
        f"{r['streams']:,}",
        f"{r['files_received']:,}/{r['files_expected']:,}",
        f"{sum(r['errors'].values())} ({r['resets']} resets, {r['streams_unfinished']} unfinished)",
        _fmt_spread(r["head_ms"], " / "),
        _fmt_spread(r["lateness_steady_ms"], " / "),
        _fmt_spread(r["lateness_all_ms"], " / "),
        f"{r['server_rss_baseline_mb']:.0f} -> {r['server_rss_peak_mb']:.0f}",
        f"{r['server_cpu_s']:.1f} s ({r['server_cpu_pct']:.0f}%, "
        f"{r['server_cpu_us_per_file']:.0f} us/file)",
        " + ".join(f"{c:.0f}%" for c in r["client_cpu_pct"])
        + f", lag p99 {_fmt(r['client_loop_lag_ms']['p99'])} ms",
    ]


def _notes(r: dict[str, Any]) -> None:
    if r["errors"]:
        print(f"{r['streams']:,} streams, errors: {r['errors']}")
    gc = r["gc"]
    if gc["traced"]:
        g0, g1, g2 = gc["max_pause_ms_by_gen"]
        print(f"{r['streams']:,} streams, server GC during the run: {gc['gen2_count']} full "
              f"collections; longest pause by generation 0/1/2: {g0}/{g1}/{g2} ms; "
              f"{gc['pauses_over_10ms']} pauses > 10 ms ({gc['summary']})")  # fmt: skip
    print(
        f"{r['streams']:,} streams: all connected {r['time_to_all_connected_s']} s "
        f"after the first; connect() took p50/p99/max {_fmt_spread(r['connect_ms'], '/')} ms"
    )
    print(
        f"{r['streams']:,} streams: lateness = per-stream constant offset (p50/p99/max "
        f"{_fmt_spread(r['stream_offset_ms'], '/')} ms) + per-file jitter "
        f"(p50/p99/max {_fmt_spread(r['jitter_ms'], '/')} ms)"
    )


def _print_timeline(r: dict[str, Any]) -> None:
    print(f"\ntimeline, {r['streams']:,} streams (per second of the run)")
    print(fmt_table(
        ["t", "files", "p99 ms", "max ms", "server CPU %", "RSS MB", "GC gen2", "GC max ms"],
        [[str(x["t"]), str(x["files"]), _fmt(x["p99_ms"]), _fmt(x["max_ms"]),
          _fmt(x["server_cpu_pct"]), _fmt(x["server_rss_mb"]), str(x["gc_gen2"]),
          _fmt(x["gc_max_ms"])] for x in r["timeline"]],
    ))  # fmt: skip


def print_report(runs: list[dict[str, Any]], timeline: bool) -> None:
    print(
        f"paced streams: 1-4 KiB files every {runs[0]['interval_s']} s, "
        f"{runs[0]['files_per_stream']} files per stream; times in ms from the moment the "
        "client sent its request (steady = files scheduled after the ramp's planned end)"
    )
    print(fmt_table(["server", "streams", "files", "errors", "head p50/p99/max",
                     "steady p50/p99/max",
                     "all p50/p99/max", "server RSS MB (idle -> peak)", "server CPU",
                     "client CPU"], [_row(r) for r in runs]))  # fmt: skip
    for r in runs:
        _notes(r)
    if timeline:
        for r in runs:
            _print_timeline(r)
    status, detail = verdict(runs)
    print(f"\ntargets: {status} ({detail})")
