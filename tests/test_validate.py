"""The strict parser of untrusted numbers and JSON (pure; ``wirelab._validate``)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirelab._exceptions import UsageError
from wirelab._validate import (
    INT64_MAX,
    INT64_MIN,
    InvalidField,
    json_safe,
    loads_json,
    parse_int,
    parse_number,
)

LOC = ("header", "Upload-Length")
#: No wall-clock bound per example: the machine running the suite may be loaded.
UNTIMED = settings(deadline=None)


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("42", 42), (str(INT64_MAX), INT64_MAX)])
def test_parse_int_accepts_ascii_digits(raw: str, value: int) -> None:
    assert parse_int(raw, LOC) == value


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("", "int_parsing"),
        ("\u00b2", "int_parsing"),  # superscript two: isdigit() is True, int() raises
        ("\u0661\u0662", "int_parsing"),  # Arabic-Indic digits: int() would accept them
        ("1_000", "int_parsing"),
        (" 1", "int_parsing"),
        ("+1", "int_parsing"),
        ("1.0", "int_parsing"),
        ("-1", "value_error"),  # below the minimum
        (str(INT64_MAX + 1), "value_error"),
        ("9" * 5000, "value_error"),  # past Python's int-string limit: never converted
    ],
)
def test_parse_int_refuses(raw: str, kind: str) -> None:
    with pytest.raises(InvalidField) as info:
        parse_int(raw, LOC)
    assert info.value.loc == LOC
    assert info.value.kind == kind
    assert str(info.value).startswith("Upload-Length: ")
    assert len(json.dumps(info.value.as_error())) < 400  # the echo of the input is cut


def test_parse_int_bounds() -> None:
    assert parse_int("-5", minimum=INT64_MIN) == -5
    assert parse_int(str(INT64_MIN), minimum=INT64_MIN) == INT64_MIN
    with pytest.raises(InvalidField, match="between 1 and"):
        parse_int("0", minimum=1)
    with pytest.raises(InvalidField, match="between 0 and 10"):
        parse_int("11", maximum=10)


def test_invalid_field_is_a_usage_error_and_a_value_error() -> None:
    with pytest.raises(InvalidField) as info:
        parse_int("x")
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, ValueError)


@UNTIMED
@given(st.integers(INT64_MIN, INT64_MAX))
def test_parse_int_round_trips_every_64_bit_integer(value: int) -> None:
    assert parse_int(str(value), minimum=INT64_MIN) == value


@UNTIMED
@given(st.text(max_size=30))
def test_parse_int_returns_or_raises_invalid_field_only(raw: str) -> None:
    try:
        value = parse_int(raw, minimum=INT64_MIN)
    except InvalidField:
        return
    assert raw.isascii() and int(raw) == value


@pytest.mark.parametrize(
    ("raw", "value"), [("1", 1.0), ("-1.5", -1.5), ("2e3", 2000.0), (".5", 0.5), ("1.", 1.0)]
)
def test_parse_number_accepts_decimals(raw: str, value: float) -> None:
    assert parse_number(raw) == value


@pytest.mark.parametrize(
    "raw", ["nan", "NaN", "inf", "-Infinity", "1e999", "-1e400", "\u0661", "1_0", " 1", "", "0x1"]
)
def test_parse_number_refuses(raw: str) -> None:
    with pytest.raises(InvalidField) as info:
        parse_number(raw, ("query", "ttl"))
    assert info.value.loc == ("query", "ttl")


def test_parse_number_bounds_the_length() -> None:
    with pytest.raises(InvalidField, match="at most 64"):
        parse_number("1" + "0" * 64)


@UNTIMED
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_parse_number_round_trips_every_finite_float(value: float) -> None:
    assert parse_number(repr(value)) == value


@UNTIMED
@given(st.text(max_size=40))
def test_parse_number_returns_a_finite_float_or_raises_invalid_field(raw: str) -> None:
    try:
        value = parse_number(raw)
    except InvalidField:
        return
    assert math.isfinite(value)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(INT64_MIN, INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@UNTIMED
@given(_JSON)
def test_loads_json_accepts_every_strict_document(document: Any) -> None:
    assert loads_json(json.dumps(document)) == document


@UNTIMED
@given(st.binary(max_size=60) | st.text(max_size=60))
def test_loads_json_returns_or_raises_invalid_field_only(data: bytes | str) -> None:
    try:
        loads_json(data)
    except InvalidField as exc:
        loc = exc.loc
    else:
        loc = ("body",)
    assert loc[0] == "body"


@pytest.mark.parametrize(
    ("text", "loc", "raw"),
    [
        ('{"ttl": NaN}', ("body", "ttl"), "NaN"),
        ('{"ttl": Infinity}', ("body", "ttl"), "Infinity"),
        ('{"ttl": -Infinity}', ("body", "ttl"), "-Infinity"),
        ('{"ttl": 1e999}', ("body", "ttl"), "1e999"),
        ('{"files": [{"size": 1}, {"size": 18446744073709551616}]}',
         ("body", "files", 1, "size"), "18446744073709551616"),
        ("[" + "9" * 5000 + "]", ("body", 0), "9" * 5000),
    ],
)  # fmt: skip
def test_loads_json_names_the_refused_value(text: str, loc: tuple[Any, ...], raw: str) -> None:
    with pytest.raises(InvalidField) as info:
        loads_json(text)
    assert info.value.loc == loc
    assert info.value.value == raw


@pytest.mark.parametrize("data", [b"\xff", b'{"a": ', "[" * 100_000 + "]" * 100_000, b"", b"{} x"])
def test_loads_json_refuses_broken_documents(data: bytes | str) -> None:
    with pytest.raises(InvalidField) as info:
        loads_json(data)
    assert info.value.loc == ("body",)
    assert info.value.kind == "json_invalid"


def test_json_safe() -> None:
    assert json_safe(math.inf) == "inf"
    assert json_safe(math.nan) == "nan"
    assert json_safe(b"\xb2") == "\u00b2"
    assert str(json_safe("x" * 1000)).endswith("(1000 characters)")
    assert json_safe(3) == 3
    assert str(json_safe(object())).startswith("<object")
