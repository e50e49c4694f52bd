"""The engine's bytes do not depend on how it builds its messages: for fixed seeds, the
whole body (every frame, every byte) hashes to what the engine sent before its per-file
work was cut (shared timer, Z with the last file, large random files generated in place).

The digests were taken from the previous engine; a change that alters them changes what
a seed means, which needs a new stream format version (docs/protocol/stream.md). Version
2's are the engine's before version 3 (which draws the plan with BLAKE3): it still writes
them exactly with ``format_version=2``; version 3's were taken when it was introduced.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from wirelab.stream import StreamParams
from wirelab.stream._engine import run_framed_stream
from wirelab.stream._raw import run_raw_stream
from wirelab.stream._runtime import StreamRuntime

MIB = 1024 * 1024
FAST = {"min_interval": 0, "max_interval": 0}

# name: (StreamParams members, SHA-256 of the version 2 body with seed 7)
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "random-small": (
        {"count": 20, "min_size": 2, "max_size": 4096, "min_interval": 0, "max_interval": 0.002},
        "9d5c18abe7e15f35d4b55ff86b179c18e53a2f009939a35277f66f7e93a1851c",
    ),
    "random-large-float32": (
        {"count": 3, "min_size": 4, "max_size": 3 * MIB + 4, "dtype": "float32", **FAST},
        "2870d6c49f730377421827a71b212638df98ee24a89aa68cd9b64ec369b6a0df",
    ),
    "ramp-int32-sha256": (
        {"count": 5, "min_size": 4, "max_size": 200_000, "dtype": "int32", "content": "ramp",
         "digest": "sha256", **FAST},
        "c61ac347aac956fa6b84c04e7460a743acf32b7edc13f01486037525efee57c4",
    ),
    "sine-big-endian": (
        {"count": 5, "min_size": 2, "max_size": 2 * MIB, "content": "sine", "byteorder": "big",
         **FAST},
        "a08c378f722a4be21a4c4b0ad63e57ee660e2cdd1261fe690036c714a3a8ac8b",
    ),
    "random-large-int16": (
        {"count": 4, "min_size": 2, "max_size": 5 * MIB + 2, **FAST},
        "f8e282e9b8fa6a7e38d70f4307afd2788c2dfe54ef9136570b92c271e4b2116e",
    ),
    "random-large-sha256": (
        {"count": 2, "min_size": MIB, "max_size": 2 * MIB, "digest": "sha256", **FAST},
        "cf2ae9f4d3fe014a15b155ce840e03e6671dbd804e07188d4411aed6d2eeea5e",
    ),
    "empty": ({"count": 0}, "e19bd0d52c043d7b4795334f0332cd71ab629ee8bdf0d0f4946d218a31289c05"),
}  # fmt: skip


# name: SHA-256 of the version 3 body of the same stream.
CASES_V3: dict[str, str] = {
    "random-small": "6515f725c7bc2af511e72b2d748cf472210cccc623634487739377649b85e2f4",
    "random-large-float32": "6820fc48eef5aa562c727e0bf0d74a93dc07cf010b83e1fb8e326147df3fe804",
    "ramp-int32-sha256": "e0dedd44c9517ca91f0cdc78d6c1cd46eb074fd2d5d160e3fdc90e41f521a086",
    "sine-big-endian": "33d3a57525556c2d0475e08bb54e9014b9029b03038085386acb0b8153c4fd3d",
    "random-large-int16": "3ece8a17d51839e97672da34b39d96778c3b2664bef4f77f78e4f38bf30eb1ee",
    "random-large-sha256": "91531fca84ba9e0dde7bb570934b4aa2fd13801bfe0cd5b2f498356c503dfdda",
    "empty": "59c8016699dd91c53469e6ca64cb2810d42b8056fa2ba93076eb17c6c73a815c",
}


async def body_digest(
    params: StreamParams, *, raw: bool = False, version: int = 3, **runtime: Any
) -> str:
    body = hashlib.sha256()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.update(message["body"])

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    state = StreamRuntime(format_version=version, **runtime)
    if raw:
        await run_raw_stream(state, params, 7, 1024, [], receive, send)
    else:
        await run_framed_stream(state, params, 7, [], receive, send)
    return body.hexdigest()


@pytest.mark.asyncio
@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("name", list(CASES))
async def test_framed_body_is_unchanged(name: str, version: int) -> None:
    members, expected = CASES[name]
    if version == 3:
        expected = CASES_V3[name]
    assert await body_digest(StreamParams(seed=7, **members), version=version) == expected


class CountingExecutor(ThreadPoolExecutor):
    """A real one-thread pool that counts the jobs it was given."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.jobs = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


# Streams whose large random files are made a message ahead (zero waits, integer samples,
# files past 64 KiB), and streams that never are.
MADE_AHEAD = ["random-large-int16", "random-large-sha256"]
NOT_AHEAD = ["random-small", "random-large-float32", "sine-big-endian"]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", MADE_AHEAD + NOT_AHEAD)
async def test_a_keystream_thread_changes_no_byte(name: str) -> None:
    members, _ = CASES[name]
    with CountingExecutor() as keystream:
        digest = await body_digest(StreamParams(seed=7, **members), keystream_executor=keystream)
    assert digest == CASES_V3[name]
    assert (keystream.jobs > 0) == (name in MADE_AHEAD)


@pytest.mark.asyncio
async def test_large_files_between_small_ones_are_made_ahead_in_order() -> None:
    # Sizes from 2 bytes to 3 MiB: large files after small ones (made on the loop), runs
    # of large files (the next one's first message made during this one's last) and
    # messages of every length. The loop alone gives the reference bytes.
    params = StreamParams(
        seed=11, count=40, min_size=2, max_size=3 * MIB + 5, min_interval=0, max_interval=0
    )
    reference = await body_digest(params)
    with CountingExecutor() as keystream:
        assert await body_digest(params, keystream_executor=keystream) == reference
    assert keystream.jobs > 20


@pytest.mark.asyncio
async def test_classic_body_is_unchanged() -> None:
    params = StreamParams(
        seed=7, count=5, min_size=1024, max_size=8192, min_interval=0, max_interval=0
    )
    digest = await body_digest(params, raw=True)
    assert digest == "50dd569f395c034027f03a73f59f3244625fb5b2841abcecdd818431c921c10b"


@pytest.mark.parametrize("version", [1, 4])
def test_the_engine_writes_only_versions_2_and_3(version: int) -> None:
    # Version 1 had other random bytes (SFC64), which the engine no longer makes.
    with pytest.raises(ValueError, match="format_version must be 2 or 3"):
        StreamRuntime(format_version=version)
