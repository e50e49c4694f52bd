"""Unit tests of the stream query parser (pure; no HTTP)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirelab.stream import StreamLimits
from wirelab.stream._query import (
    QueryCache,
    QueryError,
    openapi_parameters,
    parse_stream_query,
    split_query,
)

LIMITS = StreamLimits()


def errors(pairs: list[tuple[str, str]], **options: object) -> dict[str, dict[str, object]]:
    with pytest.raises(QueryError) as info:
        parse_stream_query(pairs, LIMITS, **options)  # type: ignore[arg-type]
    return {str(e["loc"][-1]): e for e in info.value.errors}


def test_values_are_converted_and_defaults_kept() -> None:
    p = parse_stream_query([("count", "3"), ("speed", "2.5"), ("dtype", "int8")], LIMITS)
    assert (p.count, p.speed, p.dtype, p.max_size) == (3, 2.5, "int8", 1048576)


def test_the_last_of_repeated_parameters_wins() -> None:
    assert parse_stream_query([("count", "x"), ("count", "4")], LIMITS).count == 4
    assert "count" in errors([("count", "4"), ("count", "x")])


@pytest.mark.parametrize(
    ("pairs", "name", "kind", "fragment"),
    [
        ([("count", "1.5")], "count", "int_parsing", "valid integer"),
        ([("speed", "fast")], "speed", "float_parsing", "valid number"),
        ([("dtype", "int64")], "dtype", "literal_error", "'int16', 'int8', 'int32' or"),
        ([("bogus", "1")], "bogus", "extra_forbidden", "unknown parameter"),
        ([("seed", "-1")], "seed", "value_error", "between 0 and"),
        ([("min_size", "3")], "min_size", "value_error", "multiple of the sample width"),
        ([("count", "100001")], "count", "value_error", "server limit"),
    ],
)
def test_problems_keep_fastapis_shape(
    pairs: list[tuple[str, str]], name: str, kind: str, fragment: str
) -> None:
    e = errors(pairs)[name]
    assert e["type"] == kind and e["loc"] == ["query", name]
    assert fragment in str(e["msg"])


def test_type_errors_are_all_reported_before_rules() -> None:
    assert set(errors([("count", "x"), ("speed", "y"), ("nope", "1")])) == {
        "count", "speed", "nope"
    }  # fmt: skip


def test_non_finite_rule_input_is_json_safe() -> None:
    assert errors([("max_interval", "inf")])["max_interval"]["input"] == "inf"


def test_classic_options_fix_and_rename() -> None:
    fixed = {"count": 200_000}
    found = errors([], fixed=fixed, rename={"count": "n"})
    assert "n" in found and "count" not in found
    assert found["n"]["loc"] == ["path", "n"]
    assert "count" in errors([("count", "3")], allowed=frozenset({"seed"}))


def test_openapi_parameters_describe_every_parameter() -> None:
    params = {p["name"]: p for p in openapi_parameters()}
    assert set(params) == {"count", "min_size", "max_size", "min_interval", "max_interval",
                           "seed", "dtype", "byteorder", "content", "speed",
                           "digest"}  # fmt: skip
    assert params["dtype"]["schema"]["enum"] == ["int16", "int8", "int32", "float32"]
    assert params["digest"]["schema"] == {"type": "string", "default": "blake3",
                                          "enum": ["blake3", "sha256"]}  # fmt: skip
    assert params["count"]["schema"] == {"type": "integer", "default": 100}
    assert all(p["in"] == "query" for p in params.values())


def test_a_bad_seed_does_not_hide_other_rule_problems() -> None:
    found = errors([("seed", "-1"), ("min_size", "3")])
    assert set(found) == {"seed", "min_size"}
    assert "between 0 and" in str(found["seed"]["msg"])


_BASE = [("count", "3"), ("min_interval", "0"), ("max_interval", "0.5")]


@pytest.mark.parametrize(
    "seed_pairs",
    [[], [("seed", "7")], [("seed", "x"), ("seed", "9")], [("seed", str(2**63 - 1))]],
)
def test_query_cache_gives_what_the_full_parser_gives(seed_pairs: list[tuple[str, str]]) -> None:
    cache = QueryCache(LIMITS)
    for _ in range(2):  # a miss, then a hit
        parsed = cache.parse([*_BASE, *seed_pairs])
        assert parsed is not None
        params, seed = parsed
        full = parse_stream_query([*_BASE, *seed_pairs], LIMITS)
        assert seed == full.seed and params.seed is None
        assert params.as_dict() | {"seed": seed} == full.as_dict()


@pytest.mark.parametrize(
    "pairs",
    [
        [*_BASE, ("seed", "-1")],
        [*_BASE, ("seed", str(2**63))],
        [*_BASE, ("seed", "1.5")],
        [*_BASE, ("seed", "9"), ("seed", "x")],  # the last one decides
        [("count", "-1"), ("seed", "1")],
        [("bogus", "1")],
    ],
)
def test_query_cache_refuses_what_the_full_parser_refuses(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(QueryError):
        parse_stream_query(pairs, LIMITS)
    assert QueryCache(LIMITS).parse(pairs) is None


def test_query_cache_is_bounded_and_keyed_without_the_seed() -> None:
    cache = QueryCache(LIMITS, max_entries=2)
    for seed in range(5):  # one entry for every seed of one query
        cache.parse([*_BASE, ("seed", str(seed))])
    assert len(cache._entries) == 1
    for count in range(5):
        cache.parse([("count", str(count))])
    assert len(cache._entries) == 2
    parsed = cache.parse([("count", "4")])  # the newest is kept
    assert parsed is not None and parsed[0].count == 4


_VALID = "count=3&min_interval=0&max_interval=0.5"


@pytest.mark.parametrize(
    "query",
    [
        "", _VALID, f"{_VALID}&seed=7", f"seed=7&{_VALID}", "count=3&seed=12&max_interval=0.5",
        f"{_VALID}&seed=007", f"{_VALID}&seed={2**63 - 1}", f"{_VALID}&seed={2**63}",
        f"{_VALID}&seed={10**19}", f"{_VALID}&seed=", f"{_VALID}&seed", f"{_VALID}&seed=-1",
        f"{_VALID}&seed=1.5", f"{_VALID}&seed=x", f"{_VALID}&seed=1&seed=2",
        f"{_VALID}&seed=x&seed=2", f"{_VALID}&seed=2&seed=x", f"{_VALID}&xseed=1",
        f"{_VALID}&seedx=1", "content=seed&seed=1", "count=3seed=5", f"{_VALID}&s%65ed=5",
        f"{_VALID}&seed=+5",
        f"{_VALID}&seed=%35", f"&&{_VALID}&&seed=4&&", f"seed=4&&{_VALID}", "count=-1&seed=1",
        "bogus=1&seed=1", f"{_VALID}&seed=\u0663", f"{_VALID}&seed=\u00b2", "seed=5",
    ],
)  # fmt: skip
def test_query_text_lookup_gives_what_the_pairs_give(query: str) -> None:
    """The server's raw query bytes (here UTF-8), looked up by their text, give what
    their pairs give (decoded as Latin-1, as the fast path decodes them)."""
    raw = query.encode()
    expected = QueryCache(LIMITS).parse(split_query(raw.decode("latin-1")))
    cache = QueryCache(LIMITS)
    for _ in range(2):  # a miss, then a hit
        assert cache.parse_query(raw) == expected


@given(
    st.lists(
        st.sampled_from(
            ["count=3", "count=x", "max_interval=0.5", "seed=5", "seed=", "seed", "seed=99",
             f"seed={2**63}", "dtype=int8", "xseed=1", "", "=1", "seed=-2", "content=seed"]
        ),
        max_size=6,
    )
)  # fmt: skip
def test_query_text_lookup_agrees_on_any_mix(parts: list[str]) -> None:
    query = "&".join(parts)
    cache = QueryCache(LIMITS)
    cache.parse_query(b"count=3&seed=1")  # a shared entry for other keys to collide with
    assert cache.parse_query(query.encode()) == QueryCache(LIMITS).parse(split_query(query))


def test_query_text_entries_are_bounded_and_keyed_without_the_seed() -> None:
    cache = QueryCache(LIMITS, max_entries=2)
    for seed in range(5):
        cache.parse_query(f"{_VALID}&seed={seed}".encode())
    assert len(cache._texts) == 1
    for count in range(5):
        cache.parse_query(f"count={count}".encode())
    assert len(cache._texts) == 2
