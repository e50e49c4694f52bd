"""The engine's bytes do not depend on how it builds its messages: for fixed seeds, the
whole body (every frame, every byte) hashes to what the engine sent before its per-file
work was cut (shared timer, Z with the last file, large random files generated in place).

The digests were taken from the previous engine; a change that alters them changes what
a seed means, which needs a new stream format version (docs/protocol/stream.md).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import MutableMapping
from typing import Any

import pytest

from wirelab.stream import StreamParams
from wirelab.stream._engine import StreamRuntime, run_framed_stream
from wirelab.stream._raw import run_raw_stream

MIB = 1024 * 1024
FAST = {"min_interval": 0, "max_interval": 0}

# name: (StreamParams members, SHA-256 of the body with seed 7)
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


async def body_digest(params: StreamParams, *, raw: bool = False) -> str:
    body = hashlib.sha256()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.update(message["body"])

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    runtime = StreamRuntime()
    if raw:
        await run_raw_stream(runtime, params, 7, 1024, [], receive, send)
    else:
        await run_framed_stream(runtime, params, 7, [], receive, send)
    return body.hexdigest()


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(CASES))
async def test_framed_body_is_unchanged(name: str) -> None:
    members, expected = CASES[name]
    assert await body_digest(StreamParams(seed=7, **members)) == expected


@pytest.mark.asyncio
async def test_classic_body_is_unchanged() -> None:
    params = StreamParams(
        seed=7, count=5, min_size=1024, max_size=8192, min_interval=0, max_interval=0
    )
    digest = await body_digest(params, raw=True)
    assert digest == "50dd569f395c034027f03a73f59f3244625fb5b2841abcecdd818431c921c10b"
