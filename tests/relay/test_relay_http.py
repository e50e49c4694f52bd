"""Unit tests of the pure relay helpers: file names, Content-Disposition, Range."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from wirelab.relay import (
    FALLBACK_NAME,
    FILENAME_MAX_BYTES,
    ByteRange,
    RangeNotSatisfiable,
    content_disposition,
    parse_range,
    sanitize_filename,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("..\\..\\boot.ini", "_.._boot.ini"),
        ("/abs/path.txt", "_abs_path.txt"),
        ("..", FALLBACK_NAME),
        (".", FALLBACK_NAME),
        ("", FALLBACK_NAME),
        (None, FALLBACK_NAME),
        ("   ", FALLBACK_NAME),
        ("a\x00b\nc\x1b[31md\x7f.txt", "abc[31md.txt"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("résumé.txt", "résumé.txt"),
        ("Cafe\u0301.txt", "Café.txt"),  # NFC
        ("日本語 ファイル.bin", "日本語 ファイル.bin"),
        ("family 👨\u200d👩\u200d👧.png", "family 👨\u200d👩\u200d👧.png"),
        ("CON.txt", "_CON.txt"),
        (".hidden", "hidden"),
        ("trailing. ", "trailing"),
    ],
)
def test_sanitize_filename(raw: str | None, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_filename_truncates_on_a_character_boundary() -> None:
    name = sanitize_filename("é" * 300)
    assert len(name.encode()) <= FILENAME_MAX_BYTES
    assert name == "é" * (FILENAME_MAX_BYTES // 2)


def test_content_disposition_has_ascii_fallback_and_exact_utf8() -> None:
    value = content_disposition('naïve "quote" 日本.txt')
    assert value.startswith('attachment; filename="naive _quote_ __.txt"; ')
    star = value.split("filename*=UTF-8''", 1)[1]
    assert unquote(star) == 'naïve "quote" 日本.txt'
    assert all(0x20 <= ord(c) < 0x7F for c in value)


def test_content_disposition_of_a_plain_name() -> None:
    assert content_disposition("a.txt") == "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-4", 10, ByteRange(0, 5, 10)),
        ("bytes=5-", 10, ByteRange(5, 10, 10)),
        ("bytes=-3", 10, ByteRange(7, 10, 10)),
        ("bytes=-30", 10, ByteRange(0, 10, 10)),
        ("bytes=8-100", 10, ByteRange(8, 10, 10)),
        ("bytes=9-9", 10, ByteRange(9, 10, 10)),
        ("bytes=0-1,4-5", 10, None),  # multiple ranges: ignored, whole file
        ("items=0-1", 10, None),
        ("bytes=5-2", 10, None),
        ("bytes=-", 10, None),
        ("garbage", 10, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=0-", 0), ("bytes=-5", 0)],
)
def test_parse_range_not_satisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, size)
    assert info.value.content_range == f"bytes */{size}"


def test_byte_range_content_range() -> None:
    selected = ByteRange(2, 5, 10)
    assert selected.length == 3
    assert selected.content_range == "bytes 2-4/10"
