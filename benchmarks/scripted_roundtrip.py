"""Round-trip latency through a scripted server, against a bare asyncio server.

Question: does a test pay in latency for talking to ``wirelab.testing``'s scripted servers
instead of a minimal hand-written asyncio server? Target: the scripted servers' median
round trip is at most twice the bare server's.

Method: one blocking-socket client (``TCP_NODELAY``) sends ``b"ping\\n"`` and reads
``b"pong\\n"`` ``--n`` times per connection, over ``--connections`` fresh connections per
server and round. Every server answers the same way: the bare server is ``asyncio``
streams (``readline``, ``write``, ``drain``); the scripted ones run the script
``[Expect(b"ping\\n"), Send(b"pong\\n")] * n``. All servers live in this process, as they
do in a test: ``ScriptedServer`` in its threads, the bare server and ``AsyncScriptedServer``
on one event loop in a background thread. Rounds interleave the servers, in an order
rotated each round. A round trip is timed with ``perf_counter_ns`` around ``sendall`` and
the reads of the answer; the first one of each connection is reported apart as the
connection's setup (connect, accept, the server's per-connection start, first answer).

Run: ``.venv/bin/python benchmarks/scripted_roundtrip.py [--rounds 5] [--n 200]
[--connections 20] [--json]``. Exit status 0 when every scripted server meets the target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from wirelab.testing import AsyncScriptedServer, Expect, ScriptedServer, Send, Step

PING: Final = b"ping\n"
PONG: Final = b"pong\n"
TARGET_RATIO: Final = 2.0
HOST: Final = "127.0.0.1"
BARE: Final = "bare asyncio (streams)"

_T = TypeVar("_T")


# -- servers -----------------------------------------------------------------------------------


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="bench-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        """Run ``coro`` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readline():
            writer.write(PONG)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def script(n: int) -> list[Step]:
    """``n`` exchanges, each request checked byte for byte."""
    return [step for _ in range(n) for step in (Expect(PING), Send(PONG))]


@contextmanager
def servers(n: int, loop: LoopThread) -> Iterator[dict[str, tuple[str, int]]]:
    """Start the three servers; yield ``{name: (host, port)}``; stop them (the scripted
    ones re-raise any script failure: every exchange went as scripted)."""

    async def start_bare() -> asyncio.Server:
        return await asyncio.start_server(_pong, HOST, 0)

    async def stop_bare(server: asyncio.Server) -> None:
        server.close()
        await server.wait_closed()

    async def start_async() -> AsyncScriptedServer:
        return await AsyncScriptedServer(script(n), host=HOST).start()

    bare = loop.run(start_bare())
    native = loop.run(start_async())
    try:
        with ScriptedServer(script(n), host=HOST) as threaded:
            yield {
                BARE: bare.sockets[0].getsockname()[:2],
                "ScriptedServer (threads)": threaded.address,
                "AsyncScriptedServer (loop thread)": native.address,
            }
    finally:
        loop.run(native.stop())
        loop.run(stop_bare(bare))


# -- the client --------------------------------------------------------------------------------


def _answer(sock: socket.socket, buf: bytearray) -> None:
    """Read exactly one ``PONG`` into ``buf``."""
    view = memoryview(buf)
    got = 0
    while got < len(PONG):
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError("the server closed the connection early")
        got += n
    if buf != PONG:
        raise ConnectionError(f"unexpected answer {bytes(buf)!r}")


def one_connection(address: tuple[str, int], n: int, rtts: list[int]) -> int:
    """Make ``n`` round trips on a fresh connection; append all but the first to ``rtts``
    (ns); return the setup time (connect through the first answer, ns)."""
    buf = bytearray(len(PONG))
    start = time.perf_counter_ns()
    with socket.create_connection(address, timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(PING)
        _answer(sock, buf)
        setup = time.perf_counter_ns() - start
        for _ in range(n - 1):
            t0 = time.perf_counter_ns()
            sock.sendall(PING)
            _answer(sock, buf)
            rtts.append(time.perf_counter_ns() - t0)
    return setup


# -- measurement -------------------------------------------------------------------------------


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)])


@dataclass
class Samples:
    rtts: list[int] = field(default_factory=list)
    setups: list[int] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)


def measure(rounds: int, n: int, connections: int) -> dict[str, Samples]:
    loop = LoopThread()
    try:
        with servers(n, loop) as addresses:
            names = list(addresses)
            samples = {name: Samples() for name in names}
            for name in names:  # warm-up: one connection each, not recorded
                one_connection(addresses[name], n, [])
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    rtts: list[int] = []
                    for _ in range(connections):
                        samples[name].setups.append(one_connection(addresses[name], n, rtts))
                    samples[name].rtts += rtts
                    samples[name].round_medians.append(statistics.median(rtts))
    finally:
        loop.close()
    return samples


def summarise(samples: dict[str, Samples]) -> dict[str, dict[str, Any]]:
    bare = statistics.median(samples[BARE].rtts)
    bare_setup = statistics.median(samples[BARE].setups)
    out: dict[str, dict[str, Any]] = {}
    for name, s in samples.items():
        rtt = statistics.median(s.rtts)
        setup = statistics.median(s.setups)
        out[name] = {
            "round_trips": len(s.rtts),
            "rtt_median_us": rtt / 1000,
            "rtt_p99_us": percentile(s.rtts, 99) / 1000,
            "rtt_round_medians_us": [m / 1000 for m in s.round_medians],
            "setup_median_us": setup / 1000,
            "setup_p99_us": percentile(s.setups, 99) / 1000,
            "rtt_ratio": rtt / bare,
            "setup_ratio": setup / bare_setup,
        }
        if name != BARE:
            out[name]["pass"] = rtt / bare <= TARGET_RATIO
    return out


def print_table(results: dict[str, dict[str, Any]], header: str) -> None:
    print(header)
    print()
    print("| server | RTT median us (round medians min-max) | RTT p99 us | vs bare "
          "| setup median us | setup p99 us | vs bare |")  # fmt: skip
    print("|--------|------------------|-----|-----|-----|-----|-----|")
    for name, r in results.items():
        lo, hi = min(r["rtt_round_medians_us"]), max(r["rtt_round_medians_us"])
        print(
            f"| {name} | {r['rtt_median_us']:.1f} ({lo:.1f}-{hi:.1f}) | {r['rtt_p99_us']:.1f} "
            f"| {r['rtt_ratio']:.2f} | {r['setup_median_us']:.0f} | {r['setup_p99_us']:.0f} "
            f"| {r['setup_ratio']:.2f} |"
        )
    print()
    for name, r in results.items():
        if "pass" in r:
            verdict = "PASS" if r["pass"] else "FAIL"
            print(f"- {name}: median RTT {r['rtt_ratio']:.2f}x the bare server's "
                  f"(target <= {TARGET_RATIO:g}x): {verdict}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--n", type=int, default=200, help="round trips per connection (200)")
    parser.add_argument(
        "--connections", type=int, default=20, help="connections per server and round (20)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.n < 2 or args.connections < 1:
        parser.error("--rounds and --connections must be >= 1, --n >= 2")
    load = os.getloadavg()
    samples = measure(args.rounds, args.n, args.connections)
    results = summarise(samples)
    ok = all(r.get("pass", True) for r in results.values())
    if args.json:
        report = {
            "rounds": args.rounds,
            "n": args.n,
            "connections": args.connections,
            "loadavg_at_start": load,
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "target_ratio": TARGET_RATIO,
            "results": results,
            "pass": ok,
        }
        print(json.dumps(report, indent=2))
    else:
        print_table(
            results,
            f"scripted_roundtrip: {args.rounds} rounds x {args.connections} connections x "
            f"{args.n} round trips per server; {os.cpu_count()} CPUs, load average "
            f"{load[0]:.2f} at start",
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
