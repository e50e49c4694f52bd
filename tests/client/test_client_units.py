"""Unit tests of the client's pure parts: files, names, query, messages, download folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from wirelab import IntegrityError, UsageError
from wirelab.client import DEFAULT_URL, StreamedFile
from wirelab.client._download import DownloadWriter, safe_name
from wirelab.client._errors import describe_detail
from wirelab.client._options import stream_query
from wirelab.client._relay_send import FINAL_RANGE, range_end
from wirelab.client._verify import verify_download
from wirelab.framing import (
    FileData,
    FileEnded,
    FileStarted,
    StreamEnded,
    StreamStarted,
)


def streamed(data: bytes, dtype: str = "int16", byteorder: str = "little") -> StreamedFile:
    return StreamedFile(
        index=0,
        name="000000.int16",
        size=len(data),
        dtype=dtype,
        byteorder=byteorder,
        offset=0.0,
        digest=hashlib.sha256(data).hexdigest(),
        data=data,
    )


class TestStreamedFile:
    def test_array_reads_either_byte_order(self) -> None:
        assert streamed(b"\x00\x01\x00\x02", byteorder="big").array().tolist() == [1, 2]
        assert streamed(b"\x01\x00\x02\x00").array().tolist() == [1, 2]

    def test_array_is_read_only(self) -> None:
        array = streamed(b"\x01\x00").array()
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 5

    @pytest.mark.parametrize(
        ("data", "dtype", "byteorder"),
        [(b"\x00", "int16", "little"), (b"\x00\x00", "int64x", "little"),
         (b"\x00\x00", "int16", "middle")],
    )  # fmt: skip
    def test_array_refuses_what_it_cannot_view(
        self, data: bytes, dtype: str, byteorder: str
    ) -> None:
        with pytest.raises(UsageError):
            streamed(data, dtype, byteorder).array()

    def test_repr_leaves_out_the_data(self) -> None:
        text = repr(streamed(bytes(10**6)))
        assert len(text) < 200 and "size=1000000" in text

    def test_array_of_empty_file(self) -> None:
        assert streamed(b"").array().shape == (0,)


class TestNamesAndQuery:
    @pytest.mark.parametrize(
        ("name", "index", "expected"),
        [
            ("000003.int16", 3, "000003.int16"),
            ("1234567.float32", 1234567, "1234567.float32"),
            ("000004.int16", 3, "000003.bin"),  # wrong number: could overwrite another file
            ("manifest.json", 0, "000000.bin"),
            ("..", 1, "000001.bin"),
            ("000002.int16.part", 2, "000002.bin"),
            ("000002.INT16", 2, "000002.bin"),
            ("00002.int16", 2, "000002.bin"),
            ("000002.int16\n", 2, "000002.bin"),
            (None, 5, "000005.bin"),
        ],
    )
    def test_safe_name(self, name: object, index: int, expected: str) -> None:
        assert safe_name(name, index) == expected

    def test_query_leaves_out_none_and_formats_numbers(self) -> None:
        query = stream_query({"count": 3, "seed": None, "speed": 0.5, "min_interval": 0})
        assert query == {"count": "3", "speed": "0.5", "min_interval": "0"}

    def test_default_urls_agree(self) -> None:
        from wirelab._cli_stream import DEFAULT_URL as CLI_DEFAULT

        assert CLI_DEFAULT == DEFAULT_URL


class TestDetail:
    def test_fastapi_list(self) -> None:
        detail = [
            {"loc": ["query", "count"], "msg": "too big"},
            {"loc": ["query", "max_size"], "msg": "too small"},
            {"msg": "no location"},
        ]
        assert describe_detail(detail) == "count: too big; max_size: too small; no location"

    def test_other_shapes(self) -> None:
        assert describe_detail("Not Found") == "Not Found"
        assert describe_detail({"a": 1}) == '{"a":1}'


def run_writer(out: Path, files: list[bytes], *, fail_in: int | None = None) -> DownloadWriter:
    """Feed ``files`` through a writer as verified events; stop inside file ``fail_in``."""
    writer = DownloadWriter(out, url="http://x", overwrite=True)
    writer.prepare()
    writer.handle(StreamStarted(version=1, seed=1, count=len(files), params={"seed": 1}))
    for i, data in enumerate(files):
        name = f"{i:06d}.int16"
        writer.handle(FileStarted(i, name, len(data), "int16", "little", 0.0))
        writer.handle(FileData(i, data[:1]))
        if i == fail_in:
            writer.finish(complete=False)
            return writer
        writer.handle(FileData(i, data[1:]))
        writer.handle(FileEnded(i, hashlib.sha256(data).hexdigest()))
    writer.handle(StreamEnded(len(files), sum(map(len, files))))
    writer.finish(complete=True)
    return writer


class TestDownloadFolder:
    FILES: ClassVar[list[bytes]] = [b"ab" * 10, b"cd" * 300, b"ef" * 5]

    def test_complete_download_verifies(self, tmp_path: Path) -> None:
        run_writer(tmp_path / "dl", self.FILES)
        report = verify_download(tmp_path / "dl")
        assert report.ok and report.good == 3 and report.complete
        manifest = json.loads((tmp_path / "dl" / "manifest.json").read_text())
        assert manifest["total_bytes"] == sum(map(len, self.FILES))

    def test_failure_keeps_verified_files_and_no_part(self, tmp_path: Path) -> None:
        out = tmp_path / "dl"
        run_writer(out, self.FILES, fail_in=2)
        assert sorted(p.name for p in out.iterdir()) == [
            "000000.int16",
            "000001.int16",
            "manifest.json",
        ]
        report = verify_download(out)
        assert [p.kind for p in report.problems] == ["incomplete"] and report.good == 2

    def test_every_kind_of_problem_is_reported(self, tmp_path: Path) -> None:
        out = tmp_path / "dl"
        run_writer(out, self.FILES)
        (out / "000000.int16").unlink()
        (out / "000001.int16").write_bytes(b"cd" * 299 + b"cx")
        (out / "000002.int16").write_bytes(b"short")
        (out / "notes.txt").write_text("hi")
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["files"].append({"index": 3, "name": "../escape", "size": 1, "sha256": "0"})
        (out / "manifest.json").write_text(json.dumps(manifest))
        problems = [str(p) for p in verify_download(out).problems]
        assert problems == [
            "missing: 000000.int16: listed in the manifest, not in the folder",
            "corrupt: 000001.int16: SHA-256 does not match the manifest",
            "corrupt: 000002.int16: 5 bytes, manifest says 10",
            "invalid: '../escape': not an acceptable file name",
            "extra: notes.txt: in the folder, not in the manifest",
            "invalid: manifest.json: lists 4 files, count is 3",
        ]

    def test_overwrite_removes_the_previous_download(self, tmp_path: Path) -> None:
        out = tmp_path / "dl"
        run_writer(out, self.FILES)
        (out / "keep.txt").write_text("mine")
        run_writer(out, self.FILES[:1])
        assert sorted(p.name for p in out.iterdir()) == [
            "000000.int16",
            "keep.txt",
            "manifest.json",
        ]

    def test_existing_download_is_refused_without_overwrite(self, tmp_path: Path) -> None:
        run_writer(tmp_path, self.FILES)
        with pytest.raises(UsageError, match="--overwrite"):
            DownloadWriter(tmp_path, url="http://x").prepare()

    def test_manifest_problems(self, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match=r"no manifest\.json"):
            verify_download(tmp_path)
        (tmp_path / "manifest.json").write_text("{")
        with pytest.raises(IntegrityError, match="not valid JSON"):
            verify_download(tmp_path)
        (tmp_path / "manifest.json").write_text("[]")
        with pytest.raises(IntegrityError, match="not a download manifest"):
            verify_download(tmp_path)

    def test_array_matches_saved_bytes(self, tmp_path: Path) -> None:
        run_writer(tmp_path / "dl", self.FILES)
        saved = np.fromfile(tmp_path / "dl" / "000000.int16", dtype="<i2")
        assert saved.tolist() == streamed(self.FILES[0]).array().tolist()


def _patch_ranges(size: int, chunk_size: int | None) -> list[tuple[int, int]]:
    ranges, offset = [], 0
    while offset < size:
        end = range_end(offset, size, chunk_size)
        ranges.append((offset, end))
        offset = end
    return ranges


def test_a_send_is_two_patches_the_last_of_final_range_bytes_unless_capped() -> None:
    mib, gib = 1 << 20, 1 << 30
    last = gib - FINAL_RANGE
    assert _patch_ranges(gib, None) == [(0, last), (last, gib)]
    assert _patch_ranges(FINAL_RANGE, None) == [(0, FINAL_RANGE)]
    assert _patch_ranges(FINAL_RANGE + 1, None) == [(0, 1), (1, FINAL_RANGE + 1)]
    assert _patch_ranges(5 * mib, None) == [(0, 5 * mib)]
    assert _patch_ranges(0, None) == []
    # A cap splits both parts; the final PATCH still covers the end of the file.
    size = 100 * mib
    assert _patch_ranges(size, 64 * mib) == [
        (0, 64 * mib),
        (64 * mib, size - FINAL_RANGE),
        (size - FINAL_RANGE, size),
    ]
    assert _patch_ranges(3 * mib, mib) == [(0, mib), (mib, 2 * mib), (2 * mib, 3 * mib)]
    # Resuming from inside the final range ends at the end.
    assert range_end(size - 5, size, None) == size
