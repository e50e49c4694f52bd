"""Server instructions per short stream, counted by callgrind (independent of the load).

The machine's load makes CPU times swing by 2x; instruction counts do not. Each server
(the floor ``_apps:paced_app`` under uvicorn with wirelab's settings, and wirelab, or any
``--wirelab-cmd``) runs under ``valgrind --tool=callgrind`` with instrumentation off; after
``--warmup`` streams it is switched on while ``--streams`` streams are served one after
another (a new connection each, ``min_interval=max_interval=0``, distinct seeds), then
the counts are dumped: every instruction of the process (event loop, HTTP parser, server,
app) divided by the streams.

Run: ``.venv/bin/python benchmarks/request_cost.py [--files 1 12] [--wirelab-cmd CMD]``
(needs valgrind; a few minutes; no bench lock needed: it measures no time).
"""

from __future__ import annotations

import argparse
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import BENCH_DIR, HOST, UVICORN_ARGS, fmt_table, free_port, python_argv

_QUERY = "count={files}&min_size=1024&max_size=4096&min_interval=0&max_interval=0&seed={seed}"


def _one_stream(port: int, files: int, seed: int) -> None:
    request = f"GET /v1/stream?{_QUERY.format(files=files, seed=seed)} HTTP/1.1\r\nHost: b\r\n\r\n"
    with socket.create_connection((HOST, port), timeout=300) as sock:
        sock.sendall(request.encode())
        data = b""
        while not data.endswith(b"0\r\n\r\n"):  # the chunked body's end
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {data[:200]!r}")


def _wait_up(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 600  # imports under valgrind take a while
    while True:
        try:
            _one_stream(port, 1, 0)
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(1)


def _control(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def measure(argv: list[str], files: int, args: argparse.Namespace, tmp: Path) -> float:
    """Instructions per stream of ``files`` files for the server started by ``argv``."""
    port = free_port()
    out, log = tmp / f"cg.{port}.out", tmp / f"cg.{port}.log"
    argv = [a.replace("{port}", str(port)) for a in argv]
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    with log.open("wb") as err:
        server = subprocess.Popen([*valgrind, *argv], cwd=BENCH_DIR, stdout=err, stderr=err)
    try:
        _wait_up(port, server, log)
        for seed in range(args.warmup):
            _one_stream(port, files, seed)
        _control(server.pid, "-i", "on")
        for seed in range(args.streams):
            _one_stream(port, files, 10_000 + seed)
        _control(server.pid, "-i", "off")
        _control(server.pid, "-d")  # dump the counts
    finally:
        server.terminate()
        server.wait(300)
    totals = [re.search(r"^totals: (\d+)", p.read_text(), re.M) for p in tmp.glob(f"{out.name}*")]
    streams: int = args.streams
    return max(int(m[1]) for m in totals if m) / streams


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1, 12], help="files per stream")
    parser.add_argument("--streams", type=int, default=200, help="streams counted (default 200)")
    parser.add_argument("--warmup", type=int, default=100, help="streams before counting")
    parser.add_argument(
        "--wirelab-cmd",
        action="append",
        metavar="CMD",
        help="a server command ({port} is replaced; --data-dir of a temporary folder is "
        "added when it has none); repeat for several (default: this environment's "
        "`wirelab serve`)",
    )
    args = parser.parse_args()
    floor = python_argv("-m", "uvicorn", "_apps:paced_app", "--host", HOST, "--port", "{port}")
    servers = {"floor": [*floor, *UVICORN_ARGS]}
    with tempfile.TemporaryDirectory(prefix="wirelab-cost-") as tmp:
        data = ["--log-level", "warning", "--data-dir", str(Path(tmp) / "data")]
        default = python_argv("-m", "wirelab", "serve", "--host", HOST, "--port", "{port}")
        for i, cmd in enumerate(args.wirelab_cmd or [shlex.join([*default, *data])]):
            argv = shlex.split(cmd)
            if not any(a == "--data-dir" or a.startswith("--data-dir=") for a in argv):
                # never the user's own data folder
                argv += ["--data-dir", str(Path(tmp) / f"data-{i + 1}")]
            servers[f"wirelab {i + 1}" if args.wirelab_cmd else "wirelab"] = argv
        rows = []
        for name, argv in servers.items():
            costs = [measure(argv, n, args, Path(tmp)) for n in args.files]
            rows.append([name, *(f"{c / 1000:,.0f} k" for c in costs)])
            print(f"{name}: done", file=sys.stderr)
    print(fmt_table(["server", *(f"{n} file(s) per stream" for n in args.files)], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
