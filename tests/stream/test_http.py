"""Functional tests of the Stream service through real HTTP on 127.0.0.1 (port 0).

Timing assertions are lower bounds only (a wait can never be shorter than scheduled), or
upper bounds with generous margins, so they cannot flake on a loaded machine.
"""

from __future__ import annotations

import hashlib
import socket
import time
from typing import Any
from urllib.parse import urlencode

import blake3
import httpx
import numpy as np
import pytest

from wirelab.framing import (
    FileData,
    FileEnded,
    FileStarted,
    StreamDecoder,
    StreamEnded,
    StreamStarted,
)
from wirelab.stream import StreamLimits, StreamParams, iter_plan
from wirelab.stream._classic import slow_gap
from wirelab.stream._params import MAX_SEED
from wirelab.testing._live import LiveServer

FAST = {"min_interval": 0, "max_interval": 0}


def get(server: LiveServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(server.url + path, params=params, timeout=30)


def decode(body: bytes, block: int = 65536) -> list[dict[str, Any]]:
    """Split a framed body back into files, feeding it in blocks of ``block`` bytes."""
    decoder = StreamDecoder()
    files: list[dict[str, Any]] = []
    ended: list[StreamEnded] = []
    for i in range(0, len(body), block):
        for ev in decoder.feed(body[i : i + block]):
            if isinstance(ev, FileStarted):
                files.append({"meta": ev, "data": bytearray()})
            elif isinstance(ev, FileData):
                files[-1]["data"] += ev.data
            elif isinstance(ev, FileEnded):
                files[-1].update(digest=ev.digest, algorithm=ev.algorithm)
            elif isinstance(ev, StreamEnded):
                ended.append(ev)
    decoder.close()
    assert len(ended) == 1 and ended[0].count == len(files)
    return files


class TestStream:
    def test_defaults_headers_and_count(self, server: LiveServer) -> None:
        r = get(server, "/v1/stream", count=5, speed=1000)
        assert r.headers["content-type"] == "application/vnd.wirelab.stream; version=3"
        assert 0 <= int(r.headers["wirelab-seed"]) <= MAX_SEED and r.headers["wirelab-count"] == "5"
        files = decode(r.content)
        assert [f["meta"].index for f in files] == list(range(5))
        for f in files:
            assert 1024 <= len(f["data"]) <= 1048576 and len(f["data"]) % 2 == 0
            assert f["meta"].dtype == "int16" and f["meta"].byteorder == "little"
            assert blake3.blake3(f["data"]).hexdigest() == f["digest"]  # the default

    @pytest.mark.parametrize("count", [0, 1, 37])
    def test_count(self, server: LiveServer, count: int) -> None:
        files = decode(
            get(server, "/v1/stream", count=count, min_size=2, max_size=64, **FAST).content
        )
        assert len(files) == count

    def test_size_bounds_at_both_ends(self, server: LiveServer) -> None:
        files = decode(
            get(server, "/v1/stream", count=200, min_size=2, max_size=6, seed=1, **FAST).content
        )
        assert {len(f["data"]) for f in files} == {2, 4, 6}
        exact = decode(
            get(server, "/v1/stream", count=3, min_size=8192, max_size=8192, **FAST).content
        )
        assert [len(f["data"]) for f in exact] == [8192] * 3

    @pytest.mark.parametrize(("threads", "digest"), [(0, "blake3"), (2, "sha256")])
    @pytest.mark.parametrize("content", ["random", "sine"])
    def test_large_files_on_the_loop_and_in_worker_threads(
        self, server_factory: Any, threads: int, content: str, digest: str
    ) -> None:
        # Several 1 MiB messages per file, with and without the worker pool; for sine
        # files above the shared-body cache's entry limit.
        live = server_factory(worker_threads=threads)
        size = 3 * 1024 * 1024 + 6
        q = {"count": 2, "min_size": size, "max_size": size, "seed": 4, "content": content,
             "digest": digest}  # fmt: skip
        files = decode(get(live, "/v1/stream", **q, **FAST).content, block=1000)
        manifest = get(live, "/v1/stream/manifest", **q, **FAST).json()
        assert manifest["digest"] == digest and manifest["version"] == 3
        assert [f["digest"] for f in files] == [m[digest] for m in manifest["files"]]
        assert all(f["algorithm"] == digest for f in files)
        hash_ = blake3.blake3 if digest == "blake3" else hashlib.sha256
        assert [f["digest"] for f in files] == [hash_(f["data"]).hexdigest() for f in files]
        assert [len(f["data"]) for f in files] == [size, size]

    def test_periodic_files_share_one_cached_body(self, server: LiveServer) -> None:
        q = {"count": 3, "min_size": 300_000, "max_size": 300_000, "content": "ramp"}
        files = decode(get(server, "/v1/stream", **q, **FAST).content)
        assert files[0]["data"] == files[1]["data"] == files[2]["data"]
        assert len(server.stream_runtime.body_cache._entries) == 1

    def test_seed_reproduces_byte_identical_body(self, server: LiveServer) -> None:
        q = {"count": 6, "seed": 42, "speed": 1000}
        a, b = get(server, "/v1/stream", **q), get(server, "/v1/stream", **q)
        assert a.content == b.content and a.headers["wirelab-seed"] == "42"
        c = get(server, "/v1/stream", **{**q, "seed": 43})
        assert c.content != a.content

    def test_reported_seed_reproduces_an_unseeded_stream(self, server: LiveServer) -> None:
        first = get(server, "/v1/stream", count=3, speed=1000)
        again = get(server, "/v1/stream", count=3, speed=1000, seed=first.headers["wirelab-seed"])
        assert first.content == again.content

    @pytest.mark.parametrize("byteorder", ["little", "big"])
    @pytest.mark.parametrize(
        ("dtype", "code"), [("int8", "i1"), ("int16", "i2"), ("int32", "i4"), ("float32", "f4")]
    )
    def test_dtype_and_byteorder(
        self, server: LiveServer, dtype: str, code: str, byteorder: str
    ) -> None:
        files = decode(
            get(
                server,
                "/v1/stream",
                count=1,
                min_size=4096,
                max_size=4096,
                dtype=dtype,
                byteorder=byteorder,
                content="ramp",
                **FAST,
            ).content
        )
        meta = files[0]["meta"]
        assert (meta.dtype, meta.byteorder) == (dtype, byteorder)
        assert meta.name == f"000000.{dtype}"
        prefix = "<" if byteorder == "little" else ">"
        values = np.frombuffer(bytes(files[0]["data"]), prefix + code)
        assert list(values[:5]) == [0, 1, 2, 3, 4]

    def test_manifest_matches_stream(self, server: LiveServer) -> None:
        q = {"count": 8, "seed": 11, "min_interval": 0.5, "max_interval": 1.0, "speed": 1000}
        manifest = get(server, "/v1/stream/manifest", **q).json()
        files = decode(get(server, "/v1/stream", **q).content)
        assert manifest["seed"] == 11 and manifest["count"] == 8
        assert manifest["total_bytes"] == sum(len(f["data"]) for f in files)
        for m, f in zip(manifest["files"], files, strict=True):
            assert m["index"] == f["meta"].index and m["name"] == f["meta"].name
            assert m["size"] == len(f["data"]) and m["blake3"] == f["digest"]
            assert m["offset"] == pytest.approx(f["meta"].offset)
        offsets = [m["offset"] for m in manifest["files"]]
        gaps = np.diff([0.0, *offsets])
        assert all(0.5 / 1000 - 1e-6 <= g <= 1.0 / 1000 + 1e-6 for g in gaps)

    def test_waits_are_real_lower_bound(self, server: LiveServer) -> None:
        # 4 waits of exactly 100 s each, sped up 1000x: at least 0.4 s in total.
        q = {
            "count": 4,
            "min_size": 2,
            "max_size": 2,
            "min_interval": 100,
            "max_interval": 100,
            "speed": 1000,
        }
        arrivals = []
        t0 = time.monotonic()
        with httpx.stream("GET", server.url + "/v1/stream", params=q, timeout=30) as r:
            decoder = StreamDecoder()
            for block in r.iter_raw():
                for ev in decoder.feed(block):
                    if isinstance(ev, FileEnded):
                        arrivals.append(time.monotonic() - t0)
        assert len(arrivals) == 4
        for i, t in enumerate(arrivals):
            assert t >= 0.1 * (i + 1) - 0.005  # never early (5 ms clock slack)
        assert arrivals[-1] < 10  # generous upper bound

    def test_zero_waits_are_fast(self, server: LiveServer) -> None:
        t0 = time.monotonic()
        decode(get(server, "/v1/stream", count=50, max_size=1024, **FAST).content)
        assert time.monotonic() - t0 < 10

    @pytest.mark.parametrize(
        ("query", "param"),
        [
            ({"count": "abc"}, "count"),
            ({"count": -1}, "count"),
            ({"count": 100_001}, "count"),
            ({"min_size": 3}, "min_size"),
            ({"min_size": -2}, "min_size"),
            ({"max_size": 1025}, "max_size"),
            ({"min_size": 4096, "max_size": 2048}, "max_size"),
            ({"max_size": 32 * 1024 * 1024}, "max_size"),
            ({"count": 100_000, "max_size": 1024 * 1024}, "count"),
            ({"min_interval": -1}, "min_interval"),
            ({"max_interval": "inf"}, "max_interval"),
            ({"min_interval": 2, "max_interval": 1}, "max_interval"),
            ({"count": 100_000, "max_interval": 1, "max_size": 2}, "max_interval"),
            ({"seed": -5}, "seed"),
            ({"seed": "x"}, "seed"),
            ({"dtype": "int64"}, "dtype"),
            ({"byteorder": "middle"}, "byteorder"),
            ({"content": "noise"}, "content"),
            ({"speed": 0}, "speed"),
            ({"speed": "fast"}, "speed"),
            ({"cuont": 3}, "cuont"),
        ],
    )
    @pytest.mark.parametrize("path", ["/v1/stream", "/v1/stream/manifest"])
    def test_invalid_parameter_gets_422_naming_it(
        self, server: LiveServer, path: str, query: dict[str, Any], param: str
    ) -> None:
        r = get(server, path, **query)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        named = {d["loc"][-1]: d["msg"] for d in detail}
        assert named.get(param)

    def test_server_limits_are_configurable(self, server_factory: Any) -> None:
        small = server_factory(stream_limits=StreamLimits(max_count=3))
        assert get(small, "/v1/stream", count=3, min_size=2, max_size=2, **FAST).status_code == 200
        r = get(small, "/v1/stream", count=4, min_size=2, max_size=2, **FAST)
        assert r.status_code == 422 and "<= 3 (server limit)" in r.text


def read_chunks(url: str, path: str) -> tuple[dict[str, str], list[bytes]]:
    """A raw HTTP/1.1 client that returns each transfer chunk exactly as sent."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        f = sock.makefile("rb")
        status = f.readline()
        assert b" 200 " in status, status
        headers = {}
        while (line := f.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        chunks: list[bytes] = []
        while True:
            size = int(f.readline().split(b";")[0], 16)
            data = f.read(size)
            assert f.read(2) == b"\r\n"
            if size == 0:
                return headers, chunks
            chunks.append(data)


class TestClassic:
    @pytest.mark.parametrize("path", ["/stream/7?speed=1000", "/streamSLOW/7?speed=10000"])
    def test_one_chunk_per_file_whole_kib(self, server: LiveServer, path: str) -> None:
        headers, chunks = read_chunks(server.url, path)
        assert headers["content-type"] == "application/octet-stream"
        assert headers["transfer-encoding"] == "chunked"
        assert len(chunks) == 7
        for c in chunks:
            assert len(c) % 1024 == 0 and 1024 <= len(c) <= 1024 * 1024

    def test_default_is_100_files(self, server: LiveServer) -> None:
        _, chunks = read_chunks(server.url, "/stream?speed=100000")
        assert len(chunks) == 100

    def test_big_endian_int16_random_samples(self, server: LiveServer) -> None:
        _, chunks = read_chunks(server.url, "/stream/40?speed=100000&seed=3")
        values = np.frombuffer(b"".join(chunks), ">i2")
        assert values.min() == -32768 and values.max() == 32767
        assert abs(float(values.mean())) < 200  # uniform: centred on -0.5

    def test_same_files_as_v1_stream_with_seed(self, server: LiveServer) -> None:
        _, chunks = read_chunks(server.url, "/stream/5?speed=100000&seed=9")
        again = read_chunks(server.url, "/stream/5?speed=100000&seed=9")[1]
        assert chunks == again

    def test_slow_has_the_same_waits_and_slower_delivery(self, server: LiveServer) -> None:
        # Lower bound only: each gap is the file's wait plus its production time at
        # SLOW_RATE (here divided by speed), so the whole stream cannot come sooner.
        params = StreamParams(count=4, speed=50, seed=5)
        plan = list(iter_plan(params, 5, size_unit=1024))
        assert all(0.001 <= f.wait <= 1.0 for f in plan)  # the same waits as /stream
        expected = sum(slow_gap(f, 50) for f in plan)
        assert expected > sum(f.wait for f in plan) / 50  # and more than the waits
        t0 = time.monotonic()
        _, chunks = read_chunks(server.url, "/streamSLOW/4?seed=5&speed=50")
        assert time.monotonic() - t0 >= expected - 0.005
        assert chunks == read_chunks(server.url, "/stream/4?seed=5&speed=100000")[1]

    @pytest.mark.parametrize("seed", range(20))
    def test_slow_gaps_stay_under_3_s_and_100_files_take_minutes(self, seed: int) -> None:
        # The schedule SlowPacer delivers (pure): every gap < 3 s, as the original's
        # clients expect, and a default 100-file stream within a few minutes.
        params = StreamParams(count=100, seed=seed)
        gaps = [slow_gap(f, 1.0) for f in iter_plan(params, seed, size_unit=1024)]
        assert max(gaps) < 3.0
        assert 30.0 < sum(gaps) < 180.0

    @pytest.mark.parametrize("path", ["/stream/0", "/streamSLOW/0"])
    def test_zero_files_is_an_empty_200(self, server: LiveServer, path: str) -> None:
        r = httpx.get(server.url + path)
        assert r.status_code == 200
        assert r.content == b""

    @pytest.mark.parametrize(
        "path", ["/stream/1.5", "/stream/a", "/stream/-3", "/streamSLOW/abc", "/streamSLOW/-1"]
    )
    def test_bad_n_in_the_path_is_404_as_in_the_original(
        self, server: LiveServer, path: str
    ) -> None:
        r = httpx.get(server.url + path)
        assert r.status_code == 404
        assert "n in the path must be a whole number" in r.json()["detail"]

    @pytest.mark.parametrize(
        ("path", "param"),
        [
            ("/streamSLOW/100001", "n"),
            ("/stream/5?bogus=1", "bogus"),
            ("/stream?n=x", "n"),
            ("/v1/stream?count=-1", "count"),
            ("/v1/stream?count=1.5", "count"),
        ],
    )
    def test_limits_and_bad_query_get_clear_422(
        self, server: LiveServer, path: str, param: str
    ) -> None:
        r = httpx.get(server.url + path)
        assert r.status_code == 422
        problems = r.json()["detail"]
        assert problems[0]["loc"][-1] == param and all(p["msg"] for p in problems)


class TestLifecycle:
    def test_client_disconnect_stops_generation(self, server: LiveServer) -> None:
        runtime = server.stream_runtime
        query = urlencode(
            {
                "count": 100_000,
                "min_size": 2,
                "max_size": 64,
                "min_interval": 0.01,
                "max_interval": 0.01,
            }
        )
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(f"GET /v1/stream?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(4096)
            deadline = time.monotonic() + 10
            while runtime.files_sent < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(runtime.active) == 1
        deadline = time.monotonic() + 10
        while runtime.active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not runtime.active and runtime.streams_disconnected == 1
        sent = runtime.files_sent
        time.sleep(0.2)  # 20 waits' worth: no file may be generated after the disconnect
        assert runtime.files_sent == sent

    def test_shutdown_ends_streams_with_an_abort_frame(self, server_factory: Any) -> None:
        live = server_factory()
        decoder = StreamDecoder()
        events: list[Any] = []
        with httpx.stream(
            "GET",
            live.url + "/v1/stream",
            params={
                "count": 1000,
                "min_size": 2,
                "max_size": 64,
                "min_interval": 0.01,
                "max_interval": 0.01,
            },
            timeout=30,
        ) as r:
            for block in r.iter_raw():
                events += decoder.feed(block)
                if isinstance(events[-1], FileEnded) and events[-1].index == 2:
                    runtime = live.stream_runtime
                    live.app.state.loop.call_soon_threadsafe(runtime.shutdown)
        decoder.close()
        assert isinstance(events[0], StreamStarted)
        assert type(events[-1]).__name__ == "StreamAborted"
        assert events[-1].error == "shutdown"
