"""Functional tests of the sync and async clients through real HTTP against a live server."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, cast

import blake3
import numpy as np
import pytest

from wirelab import HTTPStatusError, NetworkError, TruncatedError, UsageError
from wirelab.client import AsyncClient, Client, StreamedFile
from wirelab.framing import FileData, FileEnded, FileStarted, StreamEnded, StreamStarted
from wirelab.testing._live import LiveServer, live_server

FAST: dict[str, Any] = {"min_interval": 0, "max_interval": 0}
SMALL: dict[str, Any] = {**FAST, "min_size": 100, "max_size": 5000}


def digests(files: list[StreamedFile]) -> list[tuple[str, int, str]]:
    return [(f.name, f.size, f.digest) for f in files]


def expected_ramp(dtype: str, n: int) -> np.ndarray[Any, Any]:
    i = np.arange(n, dtype=np.int64)
    if dtype == "float32":
        return (i % 2**24).astype(np.float32)
    bits = np.dtype(dtype).itemsize * 8
    wrapped: np.ndarray[Any, Any] = (i % 2**bits).astype(f"uint{bits}").view(dtype)
    return wrapped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestSyncClient:
    def test_files_arrive_complete_with_sizes_in_bounds(self, server: LiveServer) -> None:
        with Client(server.url) as client, client.stream(count=6, **SMALL) as reader:
            assert reader.count == 6 and reader.seed is not None  # known once started
            files = list(reader)
            assert reader.completed and reader.total_bytes == sum(f.size for f in files)
        assert [f.index for f in files] == list(range(6))
        for f in files:
            assert 100 <= f.size <= 5000 and f.size % 2 == 0 and len(f.data) == f.size
            assert f.name == f"{f.index:06d}.int16" and f.dtype == "int16"
            assert f.algorithm == "blake3"  # the default
            assert blake3.blake3(f.data).hexdigest() == f.digest

    def test_same_seed_gives_identical_files(self, server: LiveServer) -> None:
        with Client(server.url) as client:
            first = list(client.stream(count=4, seed=42, **SMALL))
            second = list(client.stream(count=4, seed=42, **SMALL))
            other = list(client.stream(count=4, seed=43, **SMALL))
        assert [f.data for f in first] == [f.data for f in second]
        assert digests(first) == digests(second) != digests(other)

    def test_reported_seed_reproduces_the_stream(self, server: LiveServer) -> None:
        with Client(server.url) as client:
            reader = client.stream(count=3, **SMALL)
            files = list(reader)
            assert reader.seed is not None and reader.params is not None
            assert reader.params["seed"] == reader.seed
            again = list(client.stream(count=3, seed=reader.seed, **SMALL))
        assert digests(files) == digests(again)

    def test_manifest_matches_streamed_files(self, server: LiveServer) -> None:
        with Client(server.url) as client:
            manifest = client.manifest(count=5, seed=9, **SMALL)
            files = list(client.stream(count=5, seed=9, **SMALL))
        assert manifest["seed"] == 9 and manifest["total_bytes"] == sum(f.size for f in files)
        listed = [(m["index"], m["name"], m["size"], m["blake3"]) for m in manifest["files"]]
        assert listed == [(f.index, f.name, f.size, f.digest) for f in files]

    @pytest.mark.parametrize(
        ("dtype", "byteorder"),
        [("int16", "little"), ("int16", "big"), ("int8", "little"), ("int32", "big"),
         ("float32", "little")],
    )  # fmt: skip
    def test_ramp_array_values(self, server: LiveServer, dtype: str, byteorder: str) -> None:
        with Client(server.url) as client:
            files = list(
                client.stream(count=2, dtype=dtype, byteorder=byteorder, content="ramp", **SMALL)
            )
        for f in files:
            array = f.array()
            assert array.dtype.byteorder in ("<" if byteorder == "little" else ">", "|")
            assert not array.flags.writeable and cast(object, array.base) is f.data  # no copy
            np.testing.assert_array_equal(array, expected_ramp(dtype, len(array)))

    def test_invalid_parameter_is_an_http_status_error(self, server: LiveServer) -> None:
        with Client(server.url) as client, pytest.raises(HTTPStatusError) as info:
            list(client.stream(count=10**6, **FAST))
        assert info.value.status_code == 422
        assert str(info.value).startswith("HTTP 422 from /v1/stream: count: ")
        assert "\n" not in str(info.value) and isinstance(info.value.detail, dict)

    def test_invalid_manifest_parameter(self, server: LiveServer) -> None:
        with Client(server.url) as client, pytest.raises(HTTPStatusError, match="max_size"):
            client.manifest(min_size=5000, max_size=100)

    def test_connection_refused_is_a_network_error(self) -> None:
        with Client(f"http://127.0.0.1:{free_port()}") as client:
            with pytest.raises(NetworkError, match="cannot connect"):
                list(client.stream(count=1))
            with pytest.raises(NetworkError):
                client.health()

    def test_health(self, server: LiveServer) -> None:
        with Client(server.url) as client:
            assert client.health()["status"] == "ok"

    def test_events_are_verified_and_ordered(self, server: LiveServer) -> None:
        with Client(server.url) as client, client.stream_events(count=3, **SMALL) as events:
            seen = list(events)
            assert events.completed
        assert isinstance(seen[0], StreamStarted) and isinstance(seen[-1], StreamEnded)
        sizes: dict[int, int] = {}
        for event in seen:
            if isinstance(event, FileStarted):
                sizes[event.index] = event.size
            elif isinstance(event, FileData):
                sizes[event.index] -= len(event.data)
            elif isinstance(event, FileEnded):
                assert sizes[event.index] == 0
        assert sorted(sizes) == [0, 1, 2]

    def test_leaving_early_closes_the_stream(self, server: LiveServer) -> None:
        with Client(server.url) as client:
            with client.stream(count=50, **SMALL) as reader:
                assert next(reader).index == 0
            with pytest.raises(UsageError, match="closed"):
                next(reader)
            assert client.health()["status"] == "ok"  # the client is still usable

    def test_server_shutdown_mid_stream_is_truncated(self) -> None:
        running = live_server()
        server = running.__enter__()
        stopper = threading.Thread(target=running.__exit__, args=(None, None, None))
        try:
            # The first file is due in 60 s: the stream is surely waiting at shutdown.
            with (
                Client(server.url) as client,
                client.stream(count=2, min_interval=60, max_interval=60) as reader,
            ):
                stopper.start()  # the server ends open streams with an X frame
                with pytest.raises(TruncatedError, match="server aborted the stream: shutdown"):
                    list(reader)
        finally:
            if stopper.ident is None:  # failed before the shutdown began
                running.__exit__(None, None, None)
            else:
                stopper.join(30)

    def test_closed_client_is_a_usage_error(self, server: LiveServer) -> None:
        client = Client(server.url)
        client.close()
        with pytest.raises(UsageError, match="closed"):
            client.stream(count=1)


class TestAsyncClient:
    @pytest.mark.asyncio
    async def test_files_arrive_complete(self, server: LiveServer) -> None:
        async with AsyncClient(server.url) as client:
            async with client.stream(count=5, **SMALL) as reader:
                assert reader.count == 5
                files = [f async for f in reader]
            assert reader.completed and reader.total_bytes == sum(f.size for f in files)
        assert [f.index for f in files] == list(range(5))
        assert all(100 <= f.size <= 5000 for f in files)

    @pytest.mark.asyncio
    async def test_concurrent_streams_with_the_same_seed_agree(self, server: LiveServer) -> None:
        async with AsyncClient(server.url) as client:

            async def fetch() -> list[StreamedFile]:
                return [f async for f in client.stream(count=4, seed=5, **SMALL)]

            first, second = await asyncio.gather(fetch(), fetch())
            manifest = await client.manifest(count=4, seed=5, **SMALL)
        assert digests(first) == digests(second)
        assert [m["blake3"] for m in manifest["files"]] == [f.digest for f in first]

    @pytest.mark.asyncio
    async def test_big_endian_ramp(self, server: LiveServer) -> None:
        async with AsyncClient(server.url) as client:
            files = [
                f async for f in client.stream(count=1, byteorder="big", content="ramp", **SMALL)
            ]
        np.testing.assert_array_equal(files[0].array(), expected_ramp("int16", files[0].size // 2))

    @pytest.mark.asyncio
    async def test_http_error_and_refused(self, server: LiveServer) -> None:
        async with AsyncClient(server.url) as client:
            with pytest.raises(HTTPStatusError, match="count") as info:
                async with client.stream(count=-1):
                    pass
            assert info.value.status_code == 422
        async with AsyncClient(f"http://127.0.0.1:{free_port()}") as client:
            with pytest.raises(NetworkError):
                await client.health()

    @pytest.mark.asyncio
    async def test_events_and_health(self, server: LiveServer) -> None:
        async with AsyncClient(server.url) as client:
            assert (await client.health())["status"] == "ok"
            events = [e async for e in client.stream_events(count=2, **SMALL)]
        assert sum(isinstance(e, FileEnded) for e in events) == 2
