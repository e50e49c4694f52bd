"""Throughput of ``GET /v1/stream`` with zero waits, against the framework ceiling.

A wirelab server streams 256 files of exactly 1 MiB with no waits
(``count=256&min_size=max_size=1048576&min_interval=max_interval=0``), read by curl to
/dev/null, once with ``content=random`` and once with ``content=ramp``. In the same run and
interleaved with it, for reference:

* the ceiling: FastAPI on uvicorn (httptools + uvloop, the settings wirelab uses) streaming
  one constant 1 MiB buffer 256 times with a StreamingResponse (``_apps.py``); the same
  256 MiB in 64 KiB sends (wirelab's data frame size) is shown too, for information;
* nginx serving a 256 MiB static file with sendfile, when ``nginx`` is on PATH (and the
  same file with sendfile off and 1 MiB output buffers: on some virtual machines sendfile
  over loopback is the slower of the two).

Each round reads every target once, in a rotated order; medians over the rounds are
reported (1 MB = 10^6 bytes), then random/ceiling and ramp/ceiling against the targets
(random >= 50 %, ramp >= 80 %). ``--baseline-cmd CMD`` adds a second wirelab server (e.g.
an earlier version of the code) read in the same rounds, so that a change's cost is a
ratio within one run.

Run: ``.venv/bin/python benchmarks/throughput.py [--rounds 5] [--baseline-cmd CMD] [--json]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _util import (
    BENCH_DIR,
    HOST,
    MB,
    MIB,
    CurlError,
    Server,
    curl,
    fmt_table,
    free_port,
    have_curl,
    install_cleanup,
    loadavg,
    log,
    median,
    pin_tree,
    tree_stats,
    uvicorn_server,
    wirelab_command,
    wirelab_server,
)

FILES = 256
FILE_SIZE = MIB
TOTAL = FILES * FILE_SIZE
TARGETS = {"random": 0.50, "ramp": 0.80}


@dataclass
class Target:
    key: str
    label: str
    server: Server
    path: str
    mbps: list[float] = field(default_factory=list)
    cpu_per_gb: list[float] = field(default_factory=list)


def wirelab_path(content: str, seed: int) -> str:
    return (
        f"/v1/stream?count={FILES}&min_size={FILE_SIZE}&max_size={FILE_SIZE}"
        f"&min_interval=0&max_interval=0&seed={seed}&dtype=int16&content={content}"
    )


NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {host}:{port};
        root {tmp}/www;
        location /sendfile/ {{ alias {tmp}/www/; sendfile on; }}
        location /buffered/ {{ alias {tmp}/www/; sendfile off; output_buffers 2 1m; }}
    }}
}}
"""


def nginx_server(port: int, tmp: Path) -> Server | None:
    exe = shutil.which("nginx")
    if exe is None:
        return None
    www = tmp / "www"
    www.mkdir()
    with open(www / "blob", "wb") as fh:
        block = (bytes(range(256)) * 4096)[:MIB]
        for _ in range(FILES):
            fh.write(block)
    # nginx workers may run as an unprivileged user: let them read the files
    for path in (tmp, www):
        path.chmod(0o755)
    (www / "blob").chmod(0o644)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, host=HOST, port=port))
    argv = [exe, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
    return Server("nginx", argv, port, cwd=tmp, log_path=tmp / "nginx.out")


def component_speeds() -> dict[str, float]:
    """MB/s of the per-byte work of content=random (stream format version 2: BLAKE3 digest,
    AES-CTR keystream), on one core, in this process."""
    import blake3

    from wirelab.stream import ContentSource, StreamParams

    speeds: dict[str, float] = {}
    block = bytes(MIB)
    hasher = blake3.blake3()
    t0 = time.perf_counter()
    for _ in range(FILES):
        hasher.update(block)
    speeds["digest"] = TOTAL / (time.perf_counter() - t0) / MB
    source = ContentSource(StreamParams(), 1)
    t0 = time.perf_counter()
    for _ in source.file_chunks(TOTAL):
        pass
    speeds["bits"] = TOTAL / (time.perf_counter() - t0) / MB
    speeds["both"] = 1 / (1 / speeds["digest"] + 1 / speeds["bits"])
    return speeds


def one_core_bound(
    ceiling_mb_s: float, ceiling_s_per_gb: float, speeds: dict[str, float]
) -> dict[str, float]:
    """What ``content=random`` can reach, as a share of the ceiling, when its per-byte work
    (keystream and BLAKE3, ``speeds`` in MB/s on one core) runs on the core that writes:
    ceiling / (ceiling + that work), per GB. It bounds the ratio when the ceiling's server
    is itself busy the whole time (``ceiling_core_share`` near 100 %). ``loop_ratio`` is
    the same with only BLAKE3 on that core: the bound when the server's keystream thread
    makes the bytes on another core (``--keystream-thread``, the default)."""
    digest = 1000 / speeds["digest"]
    extra = digest + 1000 / speeds["bits"]
    return {
        "ceiling_s_per_gb": round(ceiling_s_per_gb, 3),
        "ceiling_core_share": round(ceiling_s_per_gb * ceiling_mb_s / 1000, 2),
        "random_extra_s_per_gb": round(extra, 3),
        "random_ratio": round(ceiling_s_per_gb / (ceiling_s_per_gb + extra), 3),
        "loop_ratio": round(ceiling_s_per_gb / (ceiling_s_per_gb + digest), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="stream seed (default 1)")
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx reference")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--wirelab-cmd", metavar="CMD",
        help="command that starts the server instead of `wirelab serve` "
        "(--host, --port, --log-level and --data-dir are appended)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-cmd", metavar="CMD",
        help="also start this wirelab server (same flags appended) and read its streams "
        "in the same rounds, for a before/after comparison",
    )  # fmt: skip
    parser.add_argument(
        "--pin", action="store_true",
        help="run every server on CPU 0 and curl on CPU 1 (the same for all targets): "
        "takes the scheduler's placement out of the figures",
    )  # fmt: skip
    args = parser.parse_args()
    if args.pin and (os.cpu_count() or 1) < 2:
        log("--pin needs at least 2 CPUs")
        return 2
    if not have_curl():
        log("curl is not installed")
        return 2
    install_cleanup()
    notes: list[str] = []
    load = loadavg()

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wirelab-bench-")))
        wl = stack.enter_context(
            wirelab_server(free_port(), tmp, wirelab_command(args.wirelab_cmd))
        )
        ceil_env = dict(os.environ, PYTHONPATH=str(BENCH_DIR))
        ceil = stack.enter_context(
            uvicorn_server("ceiling", "_apps:fastapi_app", free_port(), tmp, ceil_env)
        )
        targets = [
            Target("random", "wirelab content=random", wl, wirelab_path("random", args.seed)),
            Target("ramp", "wirelab content=ramp", wl, wirelab_path("ramp", args.seed)),
            Target("ceiling", "ceiling: FastAPI StreamingResponse, 256 x 1 MiB", ceil,
                   f"/?size={MIB}&count={FILES}"),
            Target("ceiling-64k", "same framework, 4096 x 64 KiB sends", ceil,
                   f"/?size={64 * 1024}&count={TOTAL // (64 * 1024)}"),
        ]  # fmt: skip
        if args.baseline_cmd:
            (tmp / "baseline").mkdir()
            base = stack.enter_context(
                wirelab_server(free_port(), tmp / "baseline", shlex.split(args.baseline_cmd))
            )
            for content in TARGETS:
                targets.append(Target(f"{content}-baseline", f"baseline content={content}",
                                      base, wirelab_path(content, args.seed)))  # fmt: skip
        if args.no_nginx:
            notes.append("nginx reference skipped (--no-nginx)")
        else:
            ngx_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nginx-")))
            ngx = nginx_server(free_port(), ngx_dir)
            if ngx is None:
                notes.append("nginx reference skipped: nginx is not on PATH")
            else:
                stack.enter_context(ngx)
                targets.append(
                    Target("nginx", "nginx static file, sendfile on", ngx, "/sendfile/blob")
                )
                targets.append(
                    Target("nginx-buffered", "nginx static file, sendfile off, 1 MiB buffers",
                           ngx, "/buffered/blob")
                )  # fmt: skip

        client_cpus = None
        if args.pin:
            for server in {t.server.pid for t in targets}:
                pin_tree(server, {0})
            client_cpus = {1}
            notes.append("--pin: servers on CPU 0, curl on CPU 1")

        def read(t: Target) -> tuple[float, float]:
            url = f"http://{HOST}:{t.server.port}{t.path}"
            before = tree_stats(t.server.pid)
            res = curl(url, timeout=120, cpus=client_cpus)
            spent = tree_stats(t.server.pid).cpu - before.cpu
            if res.size < TOTAL:  # at least the file data (wirelab adds its framing)
                raise CurlError(f"{t.key}: read {res.size} bytes, expected >= {TOTAL}")
            return res.mb_per_s, spent / (res.size / 1e9)

        for t in targets:  # warm-up: imports, caches, first-use allocations
            read(t)
        for rnd in range(args.rounds):
            shift = rnd % len(targets)
            for t in targets[shift:] + targets[:shift]:
                mbps, cpu = read(t)
                t.mbps.append(mbps)
                t.cpu_per_gb.append(cpu)
            log(f"round {rnd + 1}/{args.rounds}: "
                + ", ".join(f"{t.key} {t.mbps[-1]:.0f}" for t in targets))  # fmt: skip

    med = {t.key: median(t.mbps) for t in targets}
    by_key = {t.key: t for t in targets}
    speeds = component_speeds()
    checks: list[dict[str, Any]] = []
    for key, goal in TARGETS.items():
        ratio = med[key] / med["ceiling"]
        checks.append({"content": key, "ratio": round(ratio, 3), "target": goal,
                       "pass": ratio >= goal})  # fmt: skip
    results = [
        {
            "key": t.key,
            "label": t.label,
            "median_mb_s": round(med[t.key], 1),
            "min_mb_s": round(min(t.mbps), 1),
            "max_mb_s": round(max(t.mbps), 1),
            "server_cpu_s_per_gb": round(median(t.cpu_per_gb), 3),
            "runs_mb_s": [round(v, 1) for v in t.mbps],
        }
        for t in targets
    ]
    bound = one_core_bound(med["ceiling"], median(by_key["ceiling"].cpu_per_gb), speeds)
    if args.json:
        print(json.dumps({"rounds": args.rounds, "bytes": TOTAL, "cpus": os.cpu_count(),
                          "one_core_bound": bound, "loadavg_at_start": load,
                          "results": results, "checks": checks,
                          "one_core_mb_s": {k: round(v) for k, v in speeds.items()},
                          "notes": notes}, indent=2))  # fmt: skip
        return 0 if all(c["pass"] for c in checks) else 1

    print(f"{FILES} files x 1 MiB ({TOTAL / MB:.0f} MB of file data) read by curl to "
          f"/dev/null, {args.rounds} interleaved rounds, {os.cpu_count()} CPUs; "
          "MB/s = 10^6 bytes/s")  # fmt: skip
    rows = [
        [str(r["label"]), f"{r['median_mb_s']:.0f}", f"{r['min_mb_s']:.0f} - {r['max_mb_s']:.0f}",
         f"{r['server_cpu_s_per_gb']:.2f}"]
        for r in results
    ]  # fmt: skip
    print(fmt_table(["target", "median MB/s", "min - max", "server CPU s/GB"], rows))
    for c in checks:
        verdict = "PASS" if c["pass"] else "FAIL"
        print(f"{c['content']}/ceiling = {c['ratio']:.0%} "
              f"(target >= {c['target']:.0%}): {verdict}")  # fmt: skip
    print(
        f"one core, in-process: BLAKE3 {speeds['digest']:.0f} MB/s, AES-CTR random bytes "
        f"{speeds['bits']:.0f} MB/s, both in turn {speeds['both']:.0f} MB/s "
        f"(= {speeds['both'] / med['ceiling']:.0%} of the ceiling before any "
        "socket or framing work)"
    )
    print(
        f"one-core bound for random: the ceiling's server spent {bound['ceiling_s_per_gb']:.2f}"
        f" s/GB, {bound['ceiling_core_share']:.0%} of a core at its median; with the "
        f"keystream and BLAKE3 ({bound['random_extra_s_per_gb']:.2f} s/GB in-process) on the "
        f"same core, random reaches at most {bound['random_ratio']:.0%} of the ceiling; "
        f"with the keystream on another core (the server's keystream thread), at most "
        f"{bound['loop_ratio']:.0%}"
    )
    print(f"load average at start: {load:.2f} (other work on the machine skews the figures)")
    for key in TARGETS:
        if (ref := by_key.get(f"{key}-baseline")) is not None:
            paired = median([a / b for a, b in zip(by_key[key].mbps, ref.mbps, strict=True)])
            print(f"{key}: this build / baseline = {med[key] / med[ref.key]:.0%} of "
                  f"the medians, {paired:.0%} median of the per-round ratios")  # fmt: skip
    for note in notes:
        print(note)
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
