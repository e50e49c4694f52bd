"""File adapters: EncryptingReader (upload side), DecryptingWriter and decrypt_file."""

from __future__ import annotations

import io
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from wirelab import UsageError
from wirelab.crypto import (
    HEADER_SIZE,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    CorruptedChunkError,
    DecryptingWriter,
    EncryptingReader,
    Encryptor,
    PrivateKey,
    PublicKey,
    SourceChangedError,
    TruncatedCiphertextError,
    WrongKeyError,
    decrypt_file,
    generate_keypair,
    source_stamp,
)

CHUNK = MIN_CHUNK_SIZE


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(6 * CHUNK + 17)
    path = tmp_path / "plain.bin"
    path.write_bytes(data)
    return path, data


def _expected(enc: Encryptor, data: bytes) -> bytes:
    return b"".join(enc.iter_ciphertext(lambda o, n: data[o : o + n]))


def _encrypt_to(path: Path, src: Path, enc: Encryptor) -> bytes:
    with EncryptingReader(src, enc) as reader:
        ct = reader.read()
    path.write_bytes(ct)
    return ct


# -- EncryptingReader -------------------------------------------------------------------------


@pytest.mark.parametrize("block", [1, 100, CHUNK + TAG_SIZE, 4096, 1 << 20])
def test_reader_yields_the_ciphertext(
    public_key: PublicKey, source: tuple[Path, bytes], block: int
) -> None:
    path, data = source
    enc = Encryptor(public_key, len(data), chunk_size=CHUNK)
    with EncryptingReader(path, enc) as reader:
        assert reader.size == enc.ciphertext_size
        pieces: list[bytes] = []
        while piece := reader.read(block):
            assert len(piece) == min(block, reader.size - sum(len(p) for p in pieces))
            pieces.append(piece)
        assert reader.tell() == reader.size
    assert b"".join(pieces) == _expected(enc, data)


def test_reader_seek_to_every_offset_class(
    public_key: PublicKey, source: tuple[Path, bytes]
) -> None:
    path, data = source
    enc = Encryptor(public_key, len(data), chunk_size=CHUNK)
    full = _expected(enc, data)
    offsets = {0, 5, HEADER_SIZE - 1, HEADER_SIZE, len(full) - 1, len(full), len(full) + 10}
    for index in range(enc.chunk_count):
        start = enc.chunk_ciphertext_offset(index)
        offsets |= {start - 1, start, start + 1, start + CHUNK}
    # A *new* reader from the saved state, as after a crash, and seeks in any order.
    with EncryptingReader(path, Encryptor.from_state(enc.state())) as reader:
        for offset in sorted(offsets, reverse=True):
            assert reader.seek(offset) == offset
            assert reader.read(3 * CHUNK) == full[offset : offset + 3 * CHUNK], offset


def test_reader_seek_whence_and_readinto(public_key: PublicKey, source: tuple[Path, bytes]) -> None:
    path, data = source
    enc = Encryptor(public_key, len(data), chunk_size=CHUNK)
    full = _expected(enc, data)
    with EncryptingReader(path, enc) as reader:
        assert reader.seekable() and reader.readable()
        assert reader.seek(0, io.SEEK_END) == len(full)
        assert reader.read(10) == b""
        assert reader.seek(-10, io.SEEK_END) == len(full) - 10
        assert reader.seek(4, io.SEEK_CUR) == len(full) - 6
        buffer = bytearray(100)
        assert reader.readinto(buffer) == 6
        assert bytes(buffer[:6]) == full[-6:]
        with pytest.raises(UsageError):
            reader.seek(-1)
        with pytest.raises(UsageError):
            reader.seek(0, 7)
    assert reader.closed


def test_reader_through_a_buffered_reader(
    public_key: PublicKey, source: tuple[Path, bytes]
) -> None:
    path, data = source
    enc = Encryptor(public_key, len(data), chunk_size=CHUNK)
    with io.BufferedReader(EncryptingReader(path, enc), buffer_size=777) as buffered:
        assert buffered.read() == _expected(enc, data)


def test_reader_memory_is_bounded_by_a_chunk(public_key: PublicKey, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    chunk = 64 * 1024
    path.write_bytes(os.urandom(8 * 1024 * 1024))
    enc = Encryptor(public_key, 8 * 1024 * 1024, chunk_size=chunk)
    with EncryptingReader(path, enc) as reader:
        tracemalloc.start()
        try:
            while reader.read(16 * 1024):
                pass
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 * chunk, peak  # one plaintext chunk + one ciphertext chunk + slack


def test_reader_refuses_a_file_of_another_size(
    public_key: PublicKey, source: tuple[Path, bytes]
) -> None:
    path, data = source
    with pytest.raises(SourceChangedError, match="expects"):
        EncryptingReader(path, Encryptor(public_key, len(data) + 1, chunk_size=CHUNK))


def test_reader_detects_a_file_changed_during_reading(
    public_key: PublicKey, source: tuple[Path, bytes]
) -> None:
    path, data = source
    enc = Encryptor(public_key, len(data), chunk_size=CHUNK)
    with EncryptingReader(path, enc) as reader:
        reader.read(HEADER_SIZE + 10)
        with path.open("ab") as f:
            f.write(b"more")
        with pytest.raises(SourceChangedError):
            reader.read(2 * CHUNK)


def test_reader_stamp_detects_a_rewritten_file(
    public_key: PublicKey, source: tuple[Path, bytes]
) -> None:
    path, data = source
    enc = Encryptor(public_key, len(data), chunk_size=CHUNK)
    with EncryptingReader(path, enc) as reader:
        stamp = reader.stamp
    assert stamp["size"] == str(len(data))
    with EncryptingReader(path, enc, expect_stamp=stamp):  # unchanged: fine
        pass
    # Same size, new content (written to a new file and renamed: a new inode).
    replacement = path.with_name("new.bin")
    replacement.write_bytes(os.urandom(len(data)))
    replacement.replace(path)
    with pytest.raises(SourceChangedError, match="changed since the upload began"):
        EncryptingReader(path, enc, expect_stamp=stamp)


def test_stamp_detects_an_in_place_rewrite(
    public_key: PublicKey, source: tuple[Path, bytes]
) -> None:
    path, data = source
    before = source_stamp(path)
    assert before == source_stamp(path.stat())
    with path.open("r+b") as f:  # same size, same inode, new bytes
        f.write(b"X")
    st = path.stat()
    # Make the new mtime distinct even on a file system with coarse timestamps.
    os.utime(path, ns=(st.st_atime_ns, int(before["mtime_ns"]) + 1_000_000_000))
    after = source_stamp(path)
    assert (after["size"], after["inode"]) == (before["size"], before["inode"])
    assert after != before
    with pytest.raises(SourceChangedError):
        EncryptingReader(path, Encryptor(public_key, len(data)), expect_stamp=before)


# -- decryption to files ----------------------------------------------------------------------


def test_decrypt_file_round_trip(
    private_key: PrivateKey, public_key: PublicKey, source: tuple[Path, bytes], tmp_path: Path
) -> None:
    src, data = source
    enc_path = _write_ciphertext(tmp_path, src, public_key, len(data))
    out = tmp_path / "out" / "result.bin"
    out.parent.mkdir()
    assert decrypt_file(enc_path, out, private_key) == len(data)
    assert out.read_bytes() == data
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["result.bin"]


def test_decrypt_empty_file(private_key: PrivateKey, public_key: PublicKey, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    enc_path = _write_ciphertext(tmp_path, empty, public_key, 0)
    assert enc_path.stat().st_size == HEADER_SIZE + TAG_SIZE
    assert decrypt_file(enc_path, tmp_path / "out", private_key) == 0
    assert (tmp_path / "out").read_bytes() == b""


def _write_ciphertext(folder: Path, src: Path, public_key: PublicKey, size: int) -> Path:
    enc_path = folder / "cipher.wle"
    _encrypt_to(enc_path, src, Encryptor(public_key, size, chunk_size=CHUNK))
    return enc_path


@pytest.mark.parametrize("damage", ["flip", "truncate", "wrong key"])
def test_decrypt_file_failure_leaves_destination_untouched(
    private_key: PrivateKey,
    public_key: PublicKey,
    source: tuple[Path, bytes],
    tmp_path: Path,
    damage: str,
) -> None:
    src, data = source
    enc_path = _write_ciphertext(tmp_path, src, public_key, len(data))
    ct = bytearray(enc_path.read_bytes())
    key = private_key
    expected_error: type[Exception] = CorruptedChunkError
    if damage == "flip":
        ct[-5] ^= 1
    elif damage == "truncate":
        del ct[-(CHUNK + TAG_SIZE) :]
        expected_error = TruncatedCiphertextError
    else:
        key = generate_keypair()[0]
        expected_error = WrongKeyError
    enc_path.write_bytes(ct)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "result.bin"
    dst.write_bytes(b"previous content")
    with pytest.raises(expected_error):
        decrypt_file(enc_path, dst, key)
    assert dst.read_bytes() == b"previous content"
    assert [p.name for p in out_dir.iterdir()] == ["result.bin"]  # temporary removed


def test_writer_streams_and_commits_only_at_the_end(
    private_key: PrivateKey, public_key: PublicKey, source: tuple[Path, bytes], tmp_path: Path
) -> None:
    src, data = source
    ct = _encrypt_to(tmp_path / "c", src, Encryptor(public_key, len(data), chunk_size=CHUNK))
    dst = tmp_path / "out.bin"
    with DecryptingWriter(dst, private_key, expected_size=len(ct)) as writer:
        for i in range(0, len(ct), 1000):
            assert writer.write(ct[i : i + 1000]) == len(ct[i : i + 1000])
            assert not dst.exists()  # nothing visible before the whole file is verified
        assert writer.decryptor.finished
    assert dst.read_bytes() == data
    assert writer.plaintext_written == len(data)
    with pytest.raises(UsageError, match="already committed"):
        writer.write(b"")


def test_writer_aborts_on_an_exception_and_on_truncation(
    private_key: PrivateKey, public_key: PublicKey, source: tuple[Path, bytes], tmp_path: Path
) -> None:
    src, data = source
    ct = _encrypt_to(tmp_path / "c", src, Encryptor(public_key, len(data), chunk_size=CHUNK))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt), DecryptingWriter(out / "a", private_key) as writer:
        writer.write(ct[:3000])
        raise KeyboardInterrupt
    with pytest.raises(TruncatedCiphertextError), DecryptingWriter(out / "b", private_key) as w:
        w.write(ct[:-1])
    assert list(out.iterdir()) == []
