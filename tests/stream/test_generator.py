"""Unit tests of the pure generator: parameters, plan and content (no I/O)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import blake3
import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wirelab.stream import (
    CHUNK_SIZE,
    ContentSource,
    InvalidParams,
    StreamLimits,
    StreamParams,
    iter_plan,
)
from wirelab.stream._content import DIGESTS, FILL_MARGIN, RandomBits
from wirelab.stream._params import Digest
from wirelab.stream._plan import PlanGenerator

LIMITS = StreamLimits()


def problems(params: StreamParams, limits: StreamLimits = LIMITS) -> dict[str, str]:
    with pytest.raises(InvalidParams) as info:
        params.validate(limits)
    found: dict[str, str] = {}
    for p in info.value.problems:
        found[p.param] = found.get(p.param, "") + p.message + " | "
    return found


def file_bytes(source: ContentSource, size: int) -> bytes:
    return b"".join(bytes(c) for c in source.file_chunks(size))


class TestParams:
    def test_defaults_are_the_classic_requirement(self) -> None:
        p = StreamParams()
        assert (p.count, p.min_size, p.max_size) == (100, 1024, 1048576)
        assert (p.min_interval, p.max_interval, p.dtype) == (0.001, 1.0, "int16")
        p.validate(LIMITS)

    @pytest.mark.parametrize(
        ("params", "param", "fragment"),
        [
            (StreamParams(count=-1), "count", ">= 0"),
            (StreamParams(min_size=-2), "min_size", ">= 0"),
            (StreamParams(min_size=1025), "min_size", "multiple of the sample width (2 bytes"),
            (StreamParams(max_size=4098, dtype="int32"), "max_size", "(4 bytes for int32)"),
            (StreamParams(min_size=4096, max_size=2048), "max_size", ">= min_size"),
            (StreamParams(min_interval=-0.1), "min_interval", "finite number >= 0"),
            (StreamParams(max_interval=math.inf), "max_interval", "finite number >= 0"),
            (StreamParams(min_interval=0.5, max_interval=0.2), "max_interval", ">= min_interval"),
            (StreamParams(speed=0), "speed", "between"),
            (StreamParams(speed=math.nan), "speed", "between"),
            (StreamParams(seed=-1), "seed", "between 0 and"),
        ],
    )
    def test_each_rule_names_its_parameter(
        self, params: StreamParams, param: str, fragment: str
    ) -> None:
        assert fragment in problems(params)[param]

    def test_every_broken_rule_is_reported_at_once(self) -> None:
        found = problems(StreamParams(count=-1, min_size=3, speed=0))
        assert set(found) == {"count", "min_size", "speed"}

    @pytest.mark.parametrize(
        ("params", "param", "fragment"),
        [
            (StreamParams(count=11), "count", "<= 10 (server limit)"),
            (StreamParams(count=1, max_size=4096), "max_size", "<= 2048 (server limit)"),
            (StreamParams(count=10, max_size=2048), "count", "exceeds the server limit of 10000"),
            (
                StreamParams(count=10, min_size=0, max_size=2, max_interval=2.0),
                "max_interval",
                "20 s exceeds the server limit of 10 s",
            ),
        ],
    )
    def test_limits_refuse_never_cap(self, params: StreamParams, param: str, fragment: str) -> None:
        limits = StreamLimits(
            max_count=10, max_file_size=2048, max_total_bytes=10_000, max_duration=10.0
        )
        assert fragment in problems(params, limits)[param]

    def test_speed_counts_toward_duration(self) -> None:
        limits = StreamLimits(max_duration=10.0)
        StreamParams(count=100, max_interval=1.0, speed=10).validate(limits)
        assert "max_interval" in problems(StreamParams(count=100, max_interval=1.0), limits)


class TestPlan:
    def test_same_seed_same_plan_other_seed_other_plan(self) -> None:
        p = StreamParams(count=50)
        a, b, c = (list(iter_plan(p, s)) for s in (7, 7, 8))
        assert a == b
        assert [f.size for f in a] != [f.size for f in c]

    @given(
        lo=st.integers(0, 2000),
        span=st.integers(0, 2000),
        seed=st.integers(0, 2**63 - 1),
        dtype=st.sampled_from(["int8", "int16", "int32", "float32"]),
    )
    @settings(max_examples=60)
    def test_sizes_and_waits_stay_in_bounds(
        self, lo: int, span: int, seed: int, dtype: str
    ) -> None:
        p = StreamParams(count=40, dtype=dtype, min_interval=0.25, max_interval=0.75)  # type: ignore[arg-type]
        w = p.sample_width
        p = StreamParams(
            count=40,
            dtype=p.dtype,
            min_size=lo * w,
            max_size=(lo + span) * w,
            min_interval=0.25,
            max_interval=0.75,
            speed=2.0,
        )
        offset = 0.0
        for i, f in enumerate(iter_plan(p, seed)):
            assert f.index == i
            assert f.name == f"{i:06d}.{dtype}"
            assert p.min_size <= f.size <= p.max_size and f.size % w == 0
            assert 0.25 <= f.wait <= 0.75
            offset += f.wait / 2.0
            assert f.offset == pytest.approx(offset)

    def test_both_ends_of_the_size_range_are_reached(self) -> None:
        p = StreamParams(count=400, min_size=2, max_size=8)
        assert {f.size for f in iter_plan(p, 1)} == {2, 4, 6, 8}

    def test_size_unit_gives_whole_kib(self) -> None:
        p = StreamParams(count=300, min_size=1024, max_size=1024 * 1024)
        sizes = [f.size for f in iter_plan(p, 3, size_unit=1024)]
        assert all(s % 1024 == 0 for s in sizes)
        assert min(sizes) >= 1024 and max(sizes) <= 1024 * 1024

    @pytest.mark.parametrize("generator", ["blake3", "pcg64"])
    @given(
        seed=st.integers(0, 2**63 - 1),
        count=st.integers(1, 700),
        lo=st.floats(0, 5),
        span=st.floats(0, 60),
        speed=st.sampled_from([0.1, 0.7, 1.0, 3.0, 1000.0]),
    )
    @settings(max_examples=40)
    # The block boundaries: the first block (converted one file at a time), numpy's blocks
    # after it, and a short last block.
    @example(seed=1, count=32, lo=0.001, span=2.0, speed=1.0)
    @example(seed=2, count=33, lo=0.5, span=0.0, speed=1.0)
    @example(seed=3, count=32 + 512, lo=0.0, span=1.0, speed=3.0)
    @example(seed=4, count=32 + 512 + 31, lo=0.0, span=1.0, speed=0.7)
    @example(seed=5, count=32 + 512 + 32, lo=0.0, span=1.0, speed=0.1)
    def test_plan_is_the_formats_per_file_draw(
        self,
        generator: PlanGenerator,
        seed: int,
        count: int,
        lo: float,
        span: float,
        speed: float,
    ) -> None:
        # The per-file formula of the format (docs/protocol/stream.md), in plain Python, on
        # words made here as the format says: the engine's draws in blocks (first block
        # converted one file at a time, later ones with numpy) must give exactly the same
        # sizes, waits and offsets.
        p = StreamParams(
            count=count, min_size=2, max_size=2 * 10**6, min_interval=lo,
            max_interval=lo + span, speed=speed,
        )  # fmt: skip
        if generator == "blake3":  # version 3: BLAKE3's output, little-endian words
            xof = blake3.blake3(b"wirelab stream plan v3" + seed.to_bytes(8, "little"))
            data = xof.digest(16 * count)
            raw = [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]
        else:
            bits = np.random.PCG64(np.random.SeedSequence([seed, 0]))
            raw = bits.random_raw(2 * count).tolist()
        offset, expected = 0.0, []
        for i in range(count):
            wait = lo + (raw[2 * i + 1] >> 11) / float(2**53) * (p.max_interval - lo)
            offset += wait / speed
            expected.append((i, (1 + raw[2 * i] % 10**6) * 2, wait, offset))
        plan = iter_plan(p, seed, generator=generator)
        assert [(f.index, f.size, f.wait, f.offset) for f in plan] == expected

    def test_the_two_generators_give_different_plans(self) -> None:
        p = StreamParams(count=20)
        sizes = {g: [f.size for f in iter_plan(p, 7, generator=g)] for g in ("blake3", "pcg64")}
        assert sizes["blake3"] != sizes["pcg64"]

    def test_an_unknown_generator_is_refused(self) -> None:
        with pytest.raises(ValueError, match="plan generator must be one of"):
            list(iter_plan(StreamParams(count=1), 7, generator="mt19937"))  # type: ignore[arg-type]

    def test_plan_is_lazy(self) -> None:
        plan = iter_plan(StreamParams(count=10**9), 1)
        assert next(plan).index == 0


class TestContent:
    @pytest.mark.parametrize("random", ["aes-ctr", "sfc64"])
    @pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32"])
    def test_random_is_reproducible_and_independent_of_chunking(
        self, dtype: str, random: RandomBits
    ) -> None:
        p = StreamParams(dtype=dtype, content="random")  # type: ignore[arg-type]
        sizes = [4, CHUNK_SIZE + 12, 3 * CHUNK_SIZE, 0, 100]
        a, b = ContentSource(p, 5, random=random), ContentSource(p, 5, random=random)
        for size in sizes:
            chunks = list(a.file_chunks(size))
            assert all(len(c) <= CHUNK_SIZE for c in chunks)
            assert b"".join(bytes(c) for c in chunks) == file_bytes(b, size)
        assert file_bytes(ContentSource(p, 5), 64) != file_bytes(ContentSource(p, 6), 64)

    def test_random_is_the_aes_ctr_keystream_of_the_spec(self) -> None:
        """Version 2: AES-128-CTR, key = SHA-256(label + seed LE)[:16], counter from 0; each
        file takes the next ``size`` bytes (docs/protocol/stream.md, Content)."""
        key = hashlib.sha256(b"wirelab stream random v2" + (9).to_bytes(8, "little")).digest()
        cipher = Cipher(algorithms.AES(key[:16]), modes.CTR(bytes(16))).encryptor()
        expect = cipher.update(bytes(CHUNK_SIZE + 30))
        src = ContentSource(StreamParams(dtype="int16"), 9)
        first, second = file_bytes(src, 10), file_bytes(src, CHUNK_SIZE + 20)
        assert first + second == expect
        # Pinned: a change of these bytes is a change of the stream format.
        assert expect[:16].hex() == "672044359332655cd2c8a69ed70f5145"

    def test_classic_random_file_consumes_ceil_size_over_8_sfc64_draws(self) -> None:
        p = StreamParams(dtype="int16")
        src = ContentSource(p, 9, random="sfc64")
        first, second = file_bytes(src, 10), file_bytes(src, 8)
        raw = np.random.SFC64(np.random.SeedSequence([9, 1])).random_raw(3)
        expect = raw.astype("<u8").tobytes()
        assert first == expect[:10] and second == expect[16:24]

    def test_random_int16_covers_the_value_range(self) -> None:
        data = file_bytes(ContentSource(StreamParams(), 1), 1 << 20)
        values = np.frombuffer(data, "<i2")
        assert values.min() == -32768 and values.max() == 32767

    @pytest.mark.parametrize("byteorder", ["little", "big"])
    def test_random_float32_is_in_unit_interval(self, byteorder: str) -> None:
        p = StreamParams(dtype="float32", byteorder=byteorder)  # type: ignore[arg-type]
        code = "<f4" if byteorder == "little" else ">f4"
        values = np.frombuffer(file_bytes(ContentSource(p, 2), 40_000), code)
        assert values.min() >= -1.0 and values.max() < 1.0
        assert values.min() < -0.99 and values.max() > 0.99

    @pytest.mark.parametrize(
        ("dtype", "code", "wrap_at"),
        [
            ("int8", "i1", 256),
            ("int16", "i2", 65536),
            ("int32", "i4", None),
            ("float32", "f4", None),
        ],
    )
    @pytest.mark.parametrize("byteorder", ["little", "big"])
    def test_ramp_counts_and_wraps(
        self, dtype: str, code: str, wrap_at: int | None, byteorder: str
    ) -> None:
        p = StreamParams(dtype=dtype, byteorder=byteorder, content="ramp")  # type: ignore[arg-type]
        n = 70_000
        prefix = "<" if byteorder == "little" else ">"
        values = np.frombuffer(file_bytes(ContentSource(p, 0), n * p.sample_width), prefix + code)
        expected = np.arange(n, dtype=np.int64)
        if wrap_at is not None:
            half = wrap_at // 2
            expected = (expected + half) % wrap_at - half
        assert np.array_equal(values.astype(np.int64), expected)

    @pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32"])
    def test_sine_has_a_100_sample_period_at_half_scale(self, dtype: str) -> None:
        p = StreamParams(dtype=dtype, byteorder="big", content="sine")  # type: ignore[arg-type]
        code = {"int8": ">i1", "int16": ">i2", "int32": ">i4", "float32": ">f4"}[dtype]
        values = np.frombuffer(file_bytes(ContentSource(p, 0), 1000 * p.sample_width), code)
        assert np.array_equal(values[:100], values[100:200])
        full = {"int8": 127, "int16": 32767, "int32": 2147483647, "float32": 1.0}[dtype]
        assert values[25] == pytest.approx(full / 2, rel=0.01)
        assert values[0] == 0

    @pytest.mark.parametrize(
        ("digest", "hash_"), [("blake3", blake3.blake3), ("sha256", hashlib.sha256)]
    )
    def test_periodic_content_restarts_each_file_and_memoizes_digest(
        self, digest: Digest, hash_: Callable[[bytes], Any]
    ) -> None:
        p = StreamParams(content="ramp", digest=digest)
        src = ContentSource(p, 0)
        one, two = file_bytes(src, 300_000), file_bytes(src, 300_000)
        assert one == two
        assert src.known_digest(300_000) == hash_(one).hexdigest()
        hits = DIGESTS.hits
        assert src.known_digest(300_000) == hash_(two).hexdigest()
        assert DIGESTS.hits == hits + 1  # memoized, not hashed again
        assert src.memoized_digest(300_000) == hash_(one).hexdigest()
        assert src.memoized_digest(300_002) is None  # never computed on demand
        assert ContentSource(StreamParams(), 0).known_digest(10) is None


@given(sizes=st.lists(st.integers(0, 3 * 65536 // 2).map(lambda n: 2 * n), max_size=4))
@settings(max_examples=30, deadline=None)
def test_fill_in_place_gives_the_same_bytes_as_chunks(sizes: list[int]) -> None:
    params = StreamParams(count=len(sizes), min_size=0, max_size=max(sizes, default=0))
    chunked, filled = ContentSource(params, 11), ContentSource(params, 11)
    assert filled.fills_in_place
    for size in sizes:
        expected = b"".join(chunked.file_chunks(size))
        out = bytearray(b"\xaa" * (size + FILL_MARGIN))
        for start in range(0, size, CHUNK_SIZE):
            filled.fill(memoryview(out)[start:], min(CHUNK_SIZE, size - start))
        assert bytes(out[:size]) == expected
        assert out[size:] == b"\xaa" * FILL_MARGIN  # nothing past the bytes asked for


def test_float_samples_are_not_filled_in_place() -> None:
    assert not ContentSource(StreamParams(dtype="float32"), 1).fills_in_place
    assert not ContentSource(StreamParams(content="sine"), 1).fills_in_place
