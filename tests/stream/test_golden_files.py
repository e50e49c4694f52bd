"""Golden files: for a fixed seed, the sizes and digests of a stream's files, the whole
body, and the plan (sizes, waits, offsets) are what the engine always sent.

These pin the bytes of the per-file paths (small files built in one message, the plan
drawn in blocks) for every content, both digest algorithms and several dtypes: a change
to how the engine builds a file must leave every value here as it is. A change that
alters them changes what a seed means, which needs a new stream format version
(docs/protocol/stream.md). Each value is pinned for both versions the engine writes:
version 2's were taken from the engine before small files were built in one piece (the
engine still writes them exactly, with ``format_version=2``); version 3's, which differ
only in the plan (drawn with BLAKE3, checked against the format's formula in
test_generator.py), from the engine when version 3 was introduced.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import MutableMapping
from typing import Any

import pytest

from wirelab.framing import FileEnded, FileStarted, StreamDecoder, StreamStarted
from wirelab.stream import StreamParams, iter_plan
from wirelab.stream._engine import run_framed_stream
from wirelab.stream._plan import PlanGenerator
from wirelab.stream._runtime import StreamRuntime

SEED = 11
# 40 files of 4..6000 bytes, waits of 0..1 ms: small files only (one message each).
SMALL: dict[str, Any] = {
    "count": 40,
    "min_size": 4,
    "max_size": 6000,
    "min_interval": 0,
    "max_interval": 0.001,
}

# name: (StreamParams members beside SMALL, the first three files' (size, digest prefix),
# SHA-256 of the whole body)
CASES: dict[str, tuple[dict[str, Any], list[tuple[int, str]], str]] = {
    "random-blake3": ({"content": "random", "digest": "blake3"},
        [(2512, "47a96458ef54a564"), (930, "12142ef1c9dfa817"), (1592, "a894be3f7673c8c2")],
        "28f1864e7965aa315ac80d04daa1c417545d3b58fe7628f9bf0130fa6f841c0d"),
    "random-sha256": ({"content": "random", "digest": "sha256"},
        [(2512, "7d0ec518ab230b3e"), (930, "652df5bf2d0d4624"), (1592, "085d9647b1ebe602")],
        "9be02d50c3c4e51dfab162b780e2018be71a65479307cdfe77b55ce61a2fcf87"),
    "ramp-blake3": ({"content": "ramp", "digest": "blake3"},
        [(2512, "5cb2075dafc5c79b"), (930, "5564b45781ec9389"), (1592, "e27cf3e4d2e5e33d")],
        "33b00338df902ccc378845b8e1040a968877a03bd0178a70e35061f8cbf7b1c8"),
    "ramp-sha256": ({"content": "ramp", "digest": "sha256"},
        [(2512, "4805cce79abb9788"), (930, "5887cb8b684ff55e"), (1592, "45dc4592140979a1")],
        "4f821008f75ff2edf6f0c3ef0c571b8c28f1a7c77aeebcfe8f65bc6917fa8273"),
    "sine-blake3": ({"content": "sine", "digest": "blake3"},
        [(2512, "adf0259d8fc0b91c"), (930, "d6f816c306e143ca"), (1592, "0a4dabe30c147c5c")],
        "925317cbdf6f5af2d2114ae156af4b0e07361851917768f119f9e3639348968c"),
    "sine-sha256": ({"content": "sine", "digest": "sha256"},
        [(2512, "6126ffdbaea5b920"), (930, "3b79792cd9d94e75"), (1592, "6654c95bdbe1056f")],
        "b62db314874be616443adfb6904e64dc3a258ada24a5f21edd7b796ce1d9429f"),
    "random-int8": ({"dtype": "int8"},
        [(5178, "fade354e9aac5711"), (4796, "cfdd0f27c1524872"), (5559, "9d25981c32232187")],
        "1c0ac9f7fa5abe178bc1e25e416af97ea1f2b62e9c96576c79e9d914b1d1b6e9"),
    "random-float32": ({"dtype": "float32"},
        [(3948, "8b091c82f40722d4"), (1508, "1241d57155b2448c"), (5880, "eb627d565a3122e4")],
        "20c46666c61e478b6b5b0e9aa0ea02a64f28e554c6a471bae7e934a38eb5fffe"),
    "random-int32-big": ({"dtype": "int32", "byteorder": "big"},
        [(3948, "f5cd8fe4f6f96d28"), (1508, "b55fe82c2641ccd1"), (5880, "db44a9653b2b326e")],
        "e4e2fabcbff0a8afa60a7bde7fd99c950ee7dc106c2a135fb7ad705207af55cc"),
}  # fmt: skip

# The same streams in version 3: name: (the first three files, SHA-256 of the whole body).
CASES_V3: dict[str, tuple[list[tuple[int, str]], str]] = {
    "random-blake3": (
        [(5216, "0a88feb35d3300de"), (5970, "6dbf00754af9e648"), (4894, "110ab9ac6acc545b")],
        "b23692a6b3ad39703cea816b7d3af6945a76799365a38088f353782c5e96ab83"),
    "random-sha256": (
        [(5216, "961a77ebce8d4be5"), (5970, "8dfd236fda86f2c9"), (4894, "0cf61975e2743fcc")],
        "a0311c0f840ccbd29ee7aadd9c17289de77ccd210b0698e4659d514f7f256230"),
    "ramp-blake3": (
        [(5216, "5bb635bda0b06e38"), (5970, "170bfecdb40df2ff"), (4894, "8a0815bd54145530")],
        "7de5e08f2a1aab1107e49396244959c7e2291adee45303b9bb625258d2dee4dc"),
    "ramp-sha256": (
        [(5216, "b0e797975bc8459a"), (5970, "d2d156ef68d856af"), (4894, "bf8f137bc7d8c7b4")],
        "bda34171f3c7d1ad1ebd5c591404c32f7b44b673f2dd2b1802d1e48b1e422e78"),
    "sine-blake3": (
        [(5216, "12c171fc48919704"), (5970, "9e6156a09a4503a6"), (4894, "224ce72a4b93fdba")],
        "cd827cb47deab447fe343a5e8f6995e701072c3ba2f463e9e7a6f1f69ea4c2c1"),
    "sine-sha256": (
        [(5216, "4601f4642decc6f7"), (5970, "b320dc104049e3b8"), (4894, "b00b1704f3f7f26b")],
        "5d1b0d914d94280e73c1f07e2cd4a4461faa31bdbb7353c13a52807cf7b80417"),
    "random-int8": (
        [(5041, "1400ee61771f16f3"), (1613, "e70d17241ab14b4c"), (2558, "c1eaa6725a513331")],
        "7cb144c7186088b9025d93abd3c3e956d3e21c1f26e137e8bfb92adf98e05438"),
    "random-float32": (
        [(3460, "3263a8040e9c70aa"), (2120, "9ded61626156c4e4"), (608, "41a0a1f1ee7cc551")],
        "6e079dec15f58e0e1da2404ad5e52ad1a84fb99514ed1ebc473ded2448ca546b"),
    "random-int32-big": (
        [(3460, "d71a1ffebb1e76c5"), (2120, "298f970a49bacfee"), (608, "2c5aaec866511cad")],
        "eabc53cfe5866d1e85eb30a0d02428091ddbe65f88e3144476be4ec61daa3691"),
}  # fmt: skip

# Files on both sides of the 64 KiB chunk: some built in one piece, some in place.
AROUND_CHUNK: tuple[dict[str, Any], list[tuple[int, str]], str] = (
    {"count": 7, "min_size": 60_000, "max_size": 70_000, "min_interval": 0, "max_interval": 0},
    [(64066, "eab0808aa1376f37"), (69500, "9b4ace7f0d62cd1e"), (65020, "6d39d1bc772f59d6")],
    "9118dfe254bb8defd1e783dfb0205f3ee70532e12946e57acf73b215fd86fc2f",
)
AROUND_CHUNK_V3: tuple[list[tuple[int, str]], str] = (
    [(66984, "39f9c3c8291738f7"), (61238, "5da28055b16c94dd"), (66458, "4661d5b0767fd58d")],
    "e8e7dbe752cb14e3152ea38a7a61deb65a48c1d3085a0feb8d1356eee1e7cb73",
)

# Files of several 1 MiB messages (generated in place, one keystream call a message, the
# keystream from AES-GCM): (StreamParams members, first files, SHA-256 of the whole body),
# taken from the engine before it generated a message in one call.
MULTI_MESSAGE: list[tuple[dict[str, Any], list[tuple[int, str]], str]] = [
    ({},
     [(1485560, "871afc6c94220835"), (1412142, "4bab0f09d99cbbe8"), (1054220, "c6fb8cfb528fced4")],
     "b76ddef7f1824e24ddf919be3979f1d97141c8ca328e71276e1c22df807d721e"),
    ({"digest": "sha256", "dtype": "int8"},
     [(1579689, "db068c419f181b07"), (2518230, "5618b6fae897b288"), (1469372, "e70e9a6ece571616")],
     "cf978e151b93efaff962e5f3ddf51934b947de4dbc3b7cd197814ced8c9c006c"),
]  # fmt: skip
MULTI_MESSAGE_V3: list[tuple[list[tuple[int, str]], str]] = [
    ([(2217640, "0d18138f790495da"), (2061372, "7951b5f75e34360d"), (2392098, "c75e81af96ee17e8")],
     "09a497ff934764d1ef3fdf464cacf5559320f04bb33d7127d9772e8050972c1e"),
    ([(1066304, "bd5982f7c2d43825"), (2092948, "69da5843ca9ff51f"), (1560071, "d9d13e28f0a932f3")],
     "3cbe4242134240d3491f86f43a8e6c9d21660fbc691a01a37819fa2f4a21aa26"),
]  # fmt: skip

# Empty files (no D frame), seed 3: (StreamParams members, SHA-256 of the whole body in
# version 2, in version 3).
EMPTY_FILES: list[tuple[dict[str, Any], str, str]] = [
    ({}, "f142be3c2fa6a9b9e262b7649586f863ba2440b0fcf2f0fcfe9cd5f8cef726b5",
     "f119d2bddd86a68a699fda3739e7e8922cc623bb399d377ca915cf296b587768"),
    ({"content": "ramp"}, "9862ff464515b8fd3dc0aeb942b5ba975e124f58f7f5e27aff33f3e4c8aa79b4",
     "058e7c10cd8c086cdab96e63f0b497796c475ff08d73f66015d82452447b0fde"),
    ({"dtype": "float32"}, "4c889d969e4d7d14cd8dd07ab8d6656b47641c7343f936161db1f42090a4b502",
     "d5e7f8693ecc15780fdfb7bb92f709ca0f7540377fb1b612a6f26116cda3f199"),
    ({"digest": "sha256"}, "621a26dcd88fcd3cb26b723c09fa85c3a592157deb83044af7171736ec05121f",
     "3e683ab3c6720ae6b048d1ce0e22924bf245e52ece93de9e2b0bfbc3134ef14f"),
]  # fmt: skip

# count: (speed, min_interval, max_interval, SHA-256 of "index name size wait offset" lines
# of the plan with seed 5, sizes 2..1 MiB, drawn with PCG64 (versions 1 and 2, the classic
# endpoints), then with BLAKE3 (version 3)): counts on both sides of the block sizes.
PLANS: dict[int, tuple[float, float, float, str, str]] = {
    1: (1.0, 0, 0.5, "5cc799ab57dad560bbce2fea270a9c62ef220a16ef222a4f42cda3a25bf43a3f",
        "14c7e089080f420639d82c3bbaa69b095199ee2aad6224848e103fd3fc2fe321"),
    15: (1.0, 0.1, 0.7, "0191a2a8012cd94895cd561f18cb0f4252e1042d295660328178bb3ff65ce15b",
         "1f7757c2917938d8798677c127c0fd9fa501d2cac83bfa6055c7ab5cf1433d19"),
    16: (3.0, 0, 2.5, "c0cf7d0b5540e95f507481e7f717b9dda91d4989e247cfcea967ed247fa64efa",
         "37aa496b7d759bfee8962e5d5bb1a46538e0c7d4bff218f998d387727acdb874"),
    40: (1.0, 0.5, 0.5, "c70225b436ddbfaca2b7094683133de7e9dd6f12332dcc596f44f5a0be2b7aec",
         "0a9813f7997ac0695576395096651099d9c588d7caa1abb2cdd4c537f04885d7"),
    600: (0.7, 0, 0.013, "ba27eba4e984acab8ec577b57a847d3857ad79f267306abb8b5956b5c37ad9e8",
          "98302f84606d07f7932904ed8809a09a0566f5628bd3446a2de9626451b78676"),
}  # fmt: skip


async def sent_files(
    params: StreamParams, seed: int = SEED, version: int = 3
) -> tuple[list[tuple[int, str]], str]:
    """Run the engine writing format ``version``; return each file's (size, digest prefix)
    as the decoder read them (it checks every digest against the bytes) and the SHA-256 of
    the whole body."""
    decoder = StreamDecoder()
    files: list[tuple[int, str]] = []
    versions: list[int] = []
    body = hashlib.sha256()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.update(message["body"])
            for event in decoder.feed(message["body"]):
                if isinstance(event, FileStarted):
                    files.append((event.size, ""))
                elif isinstance(event, FileEnded):
                    files[-1] = (files[-1][0], event.digest[:16])
                elif isinstance(event, StreamStarted):
                    versions.append(event.version)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    await run_framed_stream(StreamRuntime(format_version=version), params, seed, [], receive, send)
    assert versions == [version]
    decoder.close()  # raises if the body was cut short
    assert len(files) == params.count
    return files, body.hexdigest()


@pytest.mark.asyncio
@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("name", list(CASES))
async def test_small_files_are_unchanged(name: str, version: int) -> None:
    members, first_files, body = CASES[name]
    if version == 3:
        first_files, body = CASES_V3[name]
    params = StreamParams(seed=SEED, **SMALL, **members)
    files, digest = await sent_files(params, version=version)
    assert files[:3] == first_files
    assert digest == body


@pytest.mark.asyncio
@pytest.mark.parametrize("version", [2, 3])
async def test_files_around_one_chunk_are_unchanged(version: int) -> None:
    members, first_files, body = AROUND_CHUNK
    if version == 3:
        first_files, body = AROUND_CHUNK_V3
    files, digest = await sent_files(StreamParams(seed=SEED, **members), version=version)
    assert files[:3] == first_files
    assert digest == body


@pytest.mark.asyncio
@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("case", range(len(MULTI_MESSAGE)))
async def test_files_of_several_messages_are_unchanged(case: int, version: int) -> None:
    members, first_files, body = MULTI_MESSAGE[case]
    if version == 3:
        first_files, body = MULTI_MESSAGE_V3[case]
    params = StreamParams(seed=SEED, count=3, min_size=1_000_000, max_size=2_600_000,
                          min_interval=0, max_interval=0, **members)  # fmt: skip
    files, digest = await sent_files(params, version=version)
    assert files == first_files
    assert digest == body


@pytest.mark.asyncio
@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize(("members", "body_v2", "body_v3"), EMPTY_FILES)
async def test_empty_files_are_unchanged(
    members: dict[str, Any], body_v2: str, body_v3: str, version: int
) -> None:
    params = StreamParams(seed=3, count=3, min_size=0, max_size=0, min_interval=0,
                          max_interval=0, **members)  # fmt: skip
    files, digest = await sent_files(params, seed=3, version=version)
    assert [size for size, _ in files] == [0, 0, 0]
    assert digest == (body_v2 if version == 2 else body_v3)


@pytest.mark.parametrize("generator", ["pcg64", "blake3"])
@pytest.mark.parametrize("count", list(PLANS))
def test_plan_is_unchanged(count: int, generator: PlanGenerator) -> None:
    speed, lo, hi, pcg64, blake3 = PLANS[count]
    params = StreamParams(
        count=count, min_size=2, max_size=1 << 20, min_interval=lo, max_interval=hi, speed=speed
    )
    plan = iter_plan(params, 5, generator=generator)
    lines = [f"{f.index} {f.name} {f.size} {f.wait!r} {f.offset!r}" for f in plan]
    assert len(lines) == count
    expected = pcg64 if generator == "pcg64" else blake3
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == expected
