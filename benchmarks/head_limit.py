"""What one huge request head costs the server: with the head limit, and without it.

Each variant runs in a fresh child process: a wirelab server on 127.0.0.1 port 0 in a
thread, one client connection sending ``GET /healthz`` with one header of ``--mib`` MiB.
Reported: the answer's status, the time until the server closed the connection, and the
growth of the child's peak RSS while it handled the request (the request bytes are built
before the baseline is taken). ``plain`` is uvicorn's httptools protocol as it was before
the limit (httptools joins a header value with ``+=`` until it ends).

    python benchmarks/head_limit.py --mib 64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, socket, sys, tempfile, time
from pathlib import Path
from wirelab.server import ServerConfig
from wirelab.server import _serve
from wirelab.testing._live import live_server

variant, mib = sys.argv[1], int(sys.argv[2])
if variant == "plain":
    _serve._http_protocol = lambda config: "httptools"
head = b"GET /healthz HTTP/1.1\r\nHost: b\r\nX-Big: " + b"a" * (mib << 20) + b"\r\n\r\n"
with tempfile.TemporaryDirectory() as tmp, live_server(ServerConfig(data_dir=Path(tmp))) as s:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with socket.create_connection((s.host, s.port), timeout=600) as sock:
        try:
            sock.sendall(head)
        except OSError:
            pass
        answer = b""
        try:
            while block := sock.recv(65536):
                answer += block
        except OSError:
            pass
    seconds = time.monotonic() - start
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps({"variant": variant, "status": answer[9:12].decode() or "none",
                  "seconds": round(seconds, 3), "peak_rss_growth_mib": round(grown / 1024, 1)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="size of the header, MiB")
    args = parser.parse_args()
    for variant in ("guarded", "plain"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, variant, str(args.mib)],
            capture_output=True, text=True, check=True, timeout=900,
        ).stdout  # fmt: skip
        result = json.loads(out.splitlines()[-1])
        grown = result["peak_rss_growth_mib"]
        print(f"{result['variant']:8} {args.mib} MiB header: status {result['status']}, "
              f"{result['seconds']:.2f} s, peak RSS +{grown} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
