"""Relay transfer: send then receive one large file through a real `wirelab serve`.

Question: how fast does a file go through the relay, each way, with the CLI (whole
commands, verification included), and how much memory does the server need for it?
Targets: each direction >= 0.8x piping-server's MB/s for the same bytes (curl sender to
curl receiver through a relay that stores and checks nothing); the server's peak RSS
<= 150 MB whatever the file size.

Method: a temporary data folder, users alice and bob (``wirelab users add``), one
``wirelab serve --port 0`` (its URL read from its log), one random file of ``--size``
bytes (default 1 GiB); then, untimed, 3x that size is written and deleted (a VM backs
guest memory on first touch, which would penalize the first legs). Each round runs these
steps, the wirelab pair first in even rounds and piping-server first in odd ones (a leg
reusing pages freed by the previous one is cheaper), each output deleted once checked.
The commands run with compiled bytecode in the work folder (``PYTHONPYCACHEPREFIX``; an
untimed ``wirelab inbox`` writes it first), as an installed package has it:

1. ``wirelab send FILE --to bob`` as alice, timed as a whole subprocess (BLAKE3, the
   CLI's default digest; ``--digest sha256`` in ``WIRELAB_DIGEST`` to compare);
2. ``wirelab receive --out DIR`` as bob, timed as a whole subprocess (download, digest
   check, fsync, atomic write, acknowledgement); the script then checks the received bytes'
   SHA-256 against the original's (untimed);
3. piping-server (``npm ci`` in benchmarks/piping): ``curl -T FILE`` and ``curl -o OUT``
   on the same path, started together, timed from the first start to the last exit; the
   output is checked the same way.

Before each timed step the script calls ``sync`` (untimed), so that no step pays for
writing back the previous step's dirty pages. MB/s = size / seconds (1 MB = 10^6 bytes);
medians over ``--rounds`` (default 3). The server's resident memory is sampled (VmRSS,
every 50 ms) during each step and its VmHWM is read after the last round.

``--client curl`` replaces the two wirelab commands by curl: ``POST /v1/relay/files``
with a precomputed ``Wirelab-Sha256`` and ``GET /v1/relay/files/{id}`` (then an untimed
``DELETE``): the server side alone, without the CLI's own work.

Run: ``.venv/bin/python benchmarks/relay_transfer.py [--size BYTES] [--rounds 3]
[--client cli|curl] [--chunk-size BYTES] [--json]``; exit status 0 when every target
is met.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from _relay_procs import (
    BenchError,
    RssSampler,
    Timed,
    WirelabServer,
    add_user,
    curl_base,
    piping_server,
    run_checked,
    timed,
    timed_pair,
)
from _util import MB, MIB, fmt_table, install_cleanup, loadavg, log, median, proc_stats, venv_script

TARGET_RATIO = 0.8
TARGET_RSS = 150 * MB
LEGS = ("send", "receive", "piping")
FILE_NAME = "relay-bench.bin"


@dataclass
class Leg:
    """The measurements of one kind of step over the rounds."""

    seconds: list[float] = field(default_factory=list)
    server_rss: list[int] = field(default_factory=list)  # sampled VmRSS peak, bytes
    server_cpu: list[float] = field(default_factory=list)  # CPU seconds of the server
    client_cpu: list[float] = field(default_factory=list)  # CPU seconds of the commands

    def mb_per_s(self, size: int) -> list[float]:
        return [size / s / MB for s in self.seconds]


def write_random_file(path: Path, size: int, seed: int) -> str:
    """Write *size* random bytes to *path* (8 MiB at a time); return their SHA-256."""
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = rng.bytes(min(left, 8 * MIB))
            out.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def only_file(directory: Path) -> Path:
    """The one file the receiver wrote into *directory*."""
    files = [p for p in directory.iterdir() if p.is_file()]
    if len(files) != 1:
        raise BenchError(f"expected one received file in {directory}, found {files}")
    return files[0]


class Relay:
    """The two wirelab steps, with the CLI or with curl (``--client``)."""

    def __init__(
        self,
        args: argparse.Namespace,
        work: Path,
        wirelab: list[str],
        url: str,
        digest: str,
        tokens: dict[str, str],
    ) -> None:
        self.args = args
        self.work = work
        self.wirelab = wirelab
        self.url = url
        self.digest = digest
        self.src = work / FILE_NAME
        self.timeout = 120 + args.size / (10 * MB)  # a generous floor of 10 MB/s
        self.tokens = tokens
        self._sent: list[str] = []  # file ids of --client curl sends, oldest first

    def env(self, user: str) -> dict[str, str]:
        env = dict(os.environ, WIRELAB_URL=self.url, WIRELAB_TOKEN=self.tokens[user])
        # The commands run with compiled bytecode, as an installed package has it: with
        # PYTHONDONTWRITEBYTECODE set and wirelab installed from its source folder, every
        # command would compile wirelab's modules again (~35 ms). Kept in the work folder.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.work / "pycache")
        # The send's resume state goes to the work folder too, not the user's.
        env["XDG_STATE_HOME"] = str(self.work / "state")
        return env

    def compile_bytecode(self) -> None:
        """One untimed command that imports what the timed ones do (writes the bytecode)."""
        if self.args.client == "cli":
            run_checked([*self.wirelab, "inbox", "--json"], env=self.env("bob"), timeout=60)

    def header_file(self, user: str) -> Path:
        path = self.work / f"{user}.headers"
        if not path.exists():  # readable by the owner only, from its creation on
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"Authorization: Bearer {self.tokens[user]}\n")
        return path

    def send(self) -> Timed:
        if self.args.client == "cli":
            argv = [*self.wirelab, "send", str(self.src), "--to", "bob", "--json"]
            if self.args.chunk_size:
                argv += ["--chunk-size", str(self.args.chunk_size)]
            return timed(argv, env=self.env("alice"), timeout=self.timeout)
        url = f"{self.url}/v1/relay/files?to=bob&name={quote(FILE_NAME)}"
        argv = curl_base(self.header_file("alice"))
        argv += ["-X", "POST", "-H", f"Wirelab-Sha256: {self.digest}", "-T", str(self.src), url]
        result = timed(argv, timeout=self.timeout)
        self._sent.append(json.loads(result.stdout)["id"])
        return result

    def receive(self, out_dir: Path) -> Timed:
        if self.args.client == "cli":
            argv = [*self.wirelab, "receive", "--out", str(out_dir), "--json"]
            return timed(argv, env=self.env("bob"), timeout=self.timeout)
        file_url = f"{self.url}/v1/relay/files/{self._sent.pop(0)}"
        argv = [*curl_base(self.header_file("bob")), "-o", str(out_dir / FILE_NAME), file_url]
        result = timed(argv, timeout=self.timeout)
        ack = [*curl_base(self.header_file("bob")), "-X", "DELETE", file_url]
        run_checked(ack, timeout=60)  # the CLI acknowledges too; untimed here
        return result


def measure(leg: Leg, sampler: RssSampler, step: Callable[[], Timed]) -> None:
    """Run one timed step after a ``sync``; record the CPU and RSS peak of the sampled
    server (the wirelab server, or piping-server for its own step)."""
    os.sync()
    before = proc_stats(sampler.pid)
    sampler.reset()
    result = step()
    leg.seconds.append(result.seconds)
    leg.client_cpu.append(result.cpu)
    leg.server_cpu.append(proc_stats(sampler.pid).cpu - before.cpu)
    leg.server_rss.append(sampler.peak)


def pipe(url: str, src: Path, out: Path, timeout: float) -> Timed:
    """piping-server's step: ``curl -T src URL`` and ``curl -o out URL`` together."""
    return timed_pair(
        [*curl_base(), "-T", str(src), url], [*curl_base(), "-o", str(out), url], timeout=timeout
    )


def check_copy(path: Path, digest: str, what: str) -> None:
    actual = file_sha256(path)
    if actual != digest:
        raise BenchError(f"{what}: received SHA-256 {actual}, sent {digest}")
    path.unlink()


def run_rounds(args: argparse.Namespace, work: Path, wirelab: list[str]) -> dict[str, Any]:
    data_dir = work / "data"
    log(f"writing {args.size} random bytes ...")
    digest = write_random_file(work / FILE_NAME, args.size, args.seed)
    tokens = {name: add_user(wirelab, name, data_dir) for name in ("alice", "bob")}
    legs = {name: Leg() for name in LEGS}
    with (
        WirelabServer(wirelab, data_dir, work / "wirelab.log") as server,
        piping_server(work) as piping,
        RssSampler(server.pid) as sampler,
        RssSampler(piping.pid) as piping_sampler,
    ):
        relay = Relay(args, work, wirelab, server.url, digest, tokens)
        idle_rss = proc_stats(server.pid).rss
        piping_url = f"http://127.0.0.1:{piping.port}"
        warm_up(work, args.size)
        relay.compile_bytecode()
        for i in range(args.rounds):

            def wirelab_legs(i: int = i) -> None:
                out = work / f"out-{i}"
                out.mkdir()
                measure(legs["send"], sampler, relay.send)
                measure(legs["receive"], sampler, functools.partial(relay.receive, out))
                check_copy(only_file(out), digest, f"round {i}: relay")

            def piping_leg(i: int = i) -> None:
                pipe_out = work / f"piping-{i}.bin"
                through = f"{piping_url}/relay-bench-{i}"
                step = functools.partial(pipe, through, relay.src, pipe_out, relay.timeout)
                measure(legs["piping"], piping_sampler, step)
                check_copy(pipe_out, digest, f"round {i}: piping-server")

            # Alternate which goes first: on a VM, writing to never-used memory costs more
            # than reusing pages just freed, which would favour whoever runs second.
            for leg in (wirelab_legs, piping_leg) if i % 2 == 0 else (piping_leg, wirelab_legs):
                leg()
            log(
                f"round {i + 1}/{args.rounds}: "
                + ", ".join(f"{n} {args.size / legs[n].seconds[-1] / MB:.0f} MB/s" for n in LEGS)
            )
        server_hwm = proc_stats(server.pid).rss_peak
        piping_hwm = proc_stats(piping.pid).rss_peak
    return summarize(args, legs, idle_rss, server_hwm, piping_hwm)


def warm_up(work: Path, size: int) -> None:
    """Write and delete ``3 * size`` bytes, untimed: later legs reuse backed memory.

    In a VM the first touch of guest memory (page cache included) can cost several times
    more than reusing freed pages; without this the first legs pay for it.
    """
    path = work / "warm-up.bin"
    block = b"\0" * (1 << 20)
    with path.open("wb") as f:
        for _ in range(3 * size // len(block) + 1):
            f.write(block)
    path.unlink()


def summarize(
    args: argparse.Namespace, legs: dict[str, Leg], idle_rss: int, hwm: int, piping_hwm: int
) -> dict[str, Any]:
    medians = {name: median(leg.mb_per_s(args.size)) for name, leg in legs.items()}
    ratios = {n: medians[n] / medians["piping"] for n in ("send", "receive")}
    passed = {
        "send_ratio": ratios["send"] >= TARGET_RATIO,
        "receive_ratio": ratios["receive"] >= TARGET_RATIO,
        "server_rss": hwm <= TARGET_RSS,
    }
    return {
        "client": args.client,
        "bytes": args.size,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "loadavg_start": args.loadavg_start,
        "legs": {
            name: {
                "mb_per_s": leg.mb_per_s(args.size),
                "median_mb_per_s": medians[name],
                "seconds": leg.seconds,
                "server_cpu_s": leg.server_cpu,
                "client_cpu_s": leg.client_cpu,
                "server_rss_sampled_peak": leg.server_rss,
            }
            for name, leg in legs.items()
        },
        "ratios": ratios,
        "server_idle_rss": idle_rss,
        "server_vmhwm": hwm,
        "piping_vmhwm": piping_hwm,
        "targets": {"ratio": TARGET_RATIO, "server_rss": TARGET_RSS},
        "passed": passed,
    }


def report(result: dict[str, Any]) -> str:
    size = result["bytes"]
    client = result["client"]
    names = {
        "send": f"wirelab send ({client})",
        "receive": f"wirelab receive ({client})",
        "piping": "piping-server (curl -> curl; its CPU, RSS)",
    }
    rows = []
    for name, leg in result["legs"].items():
        rates = leg["mb_per_s"]
        rows.append(
            [
                names[name],
                f"{leg['median_mb_per_s']:.0f}",
                f"{min(rates):.0f}-{max(rates):.0f}",
                f"{median(leg['server_cpu_s']):.2f}",
                f"{median(leg['client_cpu_s']):.2f}",
                f"{max(leg['server_rss_sampled_peak']) / MB:.0f}",
            ]
        )
    header = ["step", "MB/s median", "min-max", "server CPU s", "client CPU s", "server RSS MB"]
    ok = result["passed"]
    verdict = {True: "PASS", False: "FAIL"}
    lines = [
        f"{size} bytes ({size / MIB:.0f} MiB), {result['rounds']} rounds, client {client}, "
        f"{result['cpus']} CPUs, load average {result['loadavg_start']:.2f} at start",
        "",
        fmt_table(header, rows),
        "",
        f"- send / piping-server: {result['ratios']['send']:.2f}x "
        f"(target >= {TARGET_RATIO}x): {verdict[ok['send_ratio']]}",
        f"- receive / piping-server: {result['ratios']['receive']:.2f}x "
        f"(target >= {TARGET_RATIO}x): {verdict[ok['receive_ratio']]}",
        f"- server peak RSS (VmHWM): {result['server_vmhwm'] / MB:.0f} MB, idle "
        f"{result['server_idle_rss'] / MB:.0f} MB (target <= {TARGET_RSS / MB:.0f} MB): "
        f"{verdict[ok['server_rss']]}; piping-server's: {result['piping_vmhwm'] / MB:.0f} MB",
    ]
    return "\n".join(lines)


def wirelab_argv(override: str | None) -> list[str]:
    if override:
        return shlex.split(override)
    exe = venv_script("wirelab")
    if exe is None:
        raise SystemExit("wirelab is not installed in this environment (pip install -e .)")
    return [exe]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024 * MIB, help="file size in bytes")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--client", choices=["cli", "curl"], default="cli", help="who sends and receives"
    )
    parser.add_argument("--chunk-size", type=int, help="`wirelab send --chunk-size` (cli)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random file")
    parser.add_argument("--tmp-dir", type=Path, help="where the files go (default: system temp)")
    parser.add_argument("--wirelab", help="command that runs the CLI (default: installed)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.size < 1 or args.rounds < 1:
        parser.error("--size and --rounds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_cleanup()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed (apt-get install curl)")
    args.loadavg_start = loadavg()
    wirelab = wirelab_argv(args.wirelab)
    work = Path(tempfile.mkdtemp(prefix="wirelab-relay-bench-", dir=args.tmp_dir))
    try:
        result = run_rounds(args, work, wirelab)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(work)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0 if all(result["passed"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
