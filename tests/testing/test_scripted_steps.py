"""Steps as data: validation, script shape, repr, and the mismatch report."""

from __future__ import annotations

import re

import pytest

from wirelab import UsageError
from wirelab.framing import DelimiterCodec
from wirelab.testing._scripted import (
    Close,
    Drip,
    Expect,
    ExpectFrame,
    HalfClose,
    Recv,
    RecvExactly,
    RecvUntil,
    Reset,
    ScriptedServer,
    Send,
    SendFrame,
    SendSegments,
    Sleep,
    Stall,
    StopReading,
)
from wirelab.testing._steps import validate_script
from wirelab.testing._transcript import describe_mismatch


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Send("text"), "data must be bytes"),  # type: ignore[arg-type]
        (lambda: SendSegments(b"x", sizes=[]), "sizes must not be empty"),
        (lambda: SendSegments(b"x", sizes=[1, 0]), "segment size must be an integer >= 1"),
        (lambda: SendSegments(b"x", gap=-1), "gap must be >= 0"),
        (lambda: Drip(b"x", bytes_per_second=0), "bytes_per_second must be > 0"),
        (lambda: Drip(b"x", bytes_per_second=1, chunk=0), "chunk must be"),
        (lambda: Sleep(float("nan")), "finite number"),
        (lambda: Recv(0), "max_bytes must be"),
        (lambda: RecvExactly(-1), "n must be"),
        (lambda: RecvUntil(b""), "delimiter must not be empty"),
        (lambda: RecvUntil(b"\r\n", max_bytes=1), "max_bytes must be"),
        (lambda: Recv(timeout=0), "timeout must be > 0"),
        (lambda: Expect(), "exactly one of"),
        (lambda: Expect(b"a", prefix=b"a"), "exactly one of"),
        (lambda: Expect(b"a", size=1), "size= and until= do not apply"),
        (lambda: Expect(prefix=b"a", size=1, until=b"\n"), "not both"),
        (lambda: Expect(prefix=b"a", until=b""), "until must not be empty"),
        (lambda: Expect(regex="text"), "bytes pattern"),  # type: ignore[arg-type]
        (lambda: Expect(regex=rb"("), "bad regex"),
        (lambda: Expect(predicate=42), "predicate must be callable"),  # type: ignore[arg-type]
        (lambda: SendFrame(b"a\nb", codec=DelimiterCodec()), "contains the delimiter"),
    ],
)
def test_bad_steps_are_usage_errors(make: object, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ([Close(), Send(b"x")], "step 1: Close() ends the connection: it must be last"),
        ([Reset(), Close()], "must be last"),
        ([Stall(), Send(b"x")], "must be last"),
        ([StopReading(), Send(b"ok"), Recv()], "step 3: Recv() reads after StopReading()"),
        ([HalfClose(), Recv(), Send(b"x")], "step 3: Send(b'x') sends after HalfClose()"),
        ([Send(b"x"), b"raw"], "step 2: expected a Step, got b'raw'"),
        (Send(b"x"), "got a single step"),
        (b"bytes", "got bytes"),
    ],
)
def test_script_shape_is_checked(script: object, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        validate_script(script)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either a script or scripts"),
        ({"script": [], "scripts": [[]]}, "either a script or scripts"),
        ({"scripts": []}, "non-empty list"),
        ({"scripts": [[], [Close(), Send(b"x")]]}, "script #2, step 1"),
        ({"script": [], "then": "explode"}, "then must be one of"),
        ({"scripts": [[], []], "one_shot": True}, "one_shot=True takes a single script"),
    ],
)
def test_bad_server_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        ScriptedServer(**kwargs)  # type: ignore[arg-type]


def test_steps_are_frozen_normalised_and_comparable() -> None:
    step = Send(bytearray(b"abc"))  # type: ignore[arg-type]
    assert step.data == b"abc" and isinstance(step.data, bytes)
    assert step == Send(b"abc")
    with pytest.raises(AttributeError):
        step.data = b"x"  # type: ignore[misc]
    assert SendSegments(b"abc", sizes=[2]).sizes == 2
    assert SendSegments(b"abcdef", sizes=[1, 2]).segments() == [b"a", b"bc", b"de", b"f"]
    assert SendSegments(b"", sizes=3).segments() == []


def test_repr_is_short_and_readable() -> None:
    assert (
        repr(Send(b"x" * 1000))
        == "Send(b'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'...(1000 bytes))"
    )
    assert repr(Expect(b"hi")) == "Expect(b'hi')"
    assert repr(Expect(prefix=b"GET ", until=b"\r\n")) == "Expect(prefix=b'GET ', until=b'\\r\\n')"
    assert (
        repr(Expect(predicate=bytes.isdigit, size=2)) == "Expect(predicate=bytes.isdigit, size=2)"
    )
    assert repr(RecvExactly(4, timeout=1)) == "RecvExactly(4, timeout=1)"
    assert repr(Close()) == "Close()"
    assert repr(ExpectFrame(b"x")) == "ExpectFrame(b'x')"
    assert "DelimiterCodec" in repr(SendFrame(b"x", codec=DelimiterCodec()))


def test_describe_mismatch() -> None:
    text = describe_mismatch(b"0123456789", b"0123X", base=100, partial=True)
    assert text.startswith(
        "first mismatching byte at offset 4 (stream offset 104): expected 0x34, got 0x58"
    )
    assert "actual   (5 bytes so far): b'0123X'" in text
    assert "00000000  30 31 32 33 34 35 36 37 38 39" in text
    assert describe_mismatch(b"ab", b"ab") == "no mismatch"
    assert describe_mismatch(b"abc", b"ab").startswith("the actual bytes end at offset 2")
    assert describe_mismatch(b"ab", b"abc").startswith("the actual bytes go on past")
    long = describe_mismatch(b"a" * 500, b"a" * 300 + b"b" * 200)
    assert "offset 300" in long
    assert "..." in long  # the repr is clipped around the mismatch
    assert "00000120  61 61 61 61 61 61 61 61 61 61 61 61 62 62" in long  # the rows around it
