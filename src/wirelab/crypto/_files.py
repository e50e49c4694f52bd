"""File adapters: the only place where :mod:`wirelab.crypto` reads or writes files.

:class:`EncryptingReader` is a seekable binary file object over the ciphertext of a
plaintext file (what a resumable upload reads from); :class:`DecryptingWriter` writes
authenticated plaintext to a temporary file and renames it into place only once the whole
ciphertext has been verified. Memory stays bounded by one chunk in both.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from .._exceptions import UsageError
from .._fsio import write_all
from ._decrypt import Decryptor
from ._encrypt import Encryptor
from ._errors import SourceChangedError
from ._format import HEADER_SIZE
from ._keys import PrivateKey

_READ_BLOCK = 1024 * 1024  # ciphertext bytes per read in decrypt_file


def source_stamp(file: str | os.PathLike[str] | os.stat_result) -> dict[str, str]:
    """Identity of a plaintext file (a path or its stat): size, mtime (ns), inode, device.

    Persist it with :meth:`Encryptor.state` and pass it back as ``expect_stamp``: a file
    rewritten in place since then must not be resumed (see :class:`SourceChangedError`).
    A rewrite that keeps size and inode is caught through the modification time, as far
    as the file system's timestamp resolution allows.
    """
    st = file if isinstance(file, os.stat_result) else os.stat(file)
    return {
        "size": str(st.st_size),
        "mtime_ns": str(st.st_mtime_ns),
        "inode": str(st.st_ino),
        "device": str(st.st_dev),
    }


class EncryptingReader(io.RawIOBase):
    """Read-only, seekable view of the ciphertext of the plaintext file at *path*.

    ``read(n)`` returns exactly *n* bytes except at the end; ``seek`` to any ciphertext
    offset costs one chunk of re-encryption. The file's size must equal the encryptor's
    ``plaintext_size`` and, with *expect_stamp*, its :func:`source_stamp` must be unchanged;
    both are checked on open and the size again for every chunk read
    (:class:`SourceChangedError`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        encryptor: Encryptor,
        *,
        expect_stamp: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._enc = encryptor
        self._pos = 0
        self._segment = b""  # the header or one encrypted chunk
        self._segment_start = 0  # its ciphertext offset
        self._plain = bytearray()  # plaintext of the chunk being encrypted, reused
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        try:
            #: :func:`source_stamp` of the file as opened.
            self.stamp = source_stamp(os.fstat(self._file.fileno()))
            if expect_stamp is not None and dict(expect_stamp) != self.stamp:
                raise SourceChangedError(f"{path} changed since the upload began")
            self._check_size()
        except BaseException:
            self._file.close()
            raise

    @property
    def size(self) -> int:
        """Size of the whole ciphertext (what to announce as the upload length)."""
        return self._enc.ciphertext_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to a ciphertext offset (``whence`` as for any file); past the end reads b""."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise UsageError(f"invalid whence {whence}")
        if base + offset < 0:
            raise UsageError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill *buffer* with ciphertext from the current position; 0 at the end."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._pos < self.size:
            segment = self._segment_at(self._pos)
            start = self._pos - self._segment_start
            take = min(len(view) - filled, len(segment) - start)
            view[filled : filled + take] = segment[start : start + take]
            filled += take
            self._pos += take
        return filled

    def read(self, size: int | None = -1) -> bytes:
        """Up to *size* ciphertext bytes (all the rest when negative or None); b"" at the end."""
        remaining = max(0, self.size - self._pos)
        want = remaining if size is None or size < 0 else min(size, remaining)
        pieces: list[bytes] = []
        while want > 0:
            segment = self._segment_at(self._pos)
            start = self._pos - self._segment_start
            take = min(want, len(segment) - start)
            # A whole segment is returned as is; slicing would copy it.
            whole = start == 0 and take == len(segment)
            pieces.append(segment if whole else segment[start : start + take])
            self._pos += take
            want -= take
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def close(self) -> None:
        self._file.close()
        super().close()

    def _segment_at(self, pos: int) -> bytes:
        """The header or encrypted chunk holding *pos*, encrypting it if not cached."""
        end = self._segment_start + len(self._segment)
        if self._segment_start <= pos < end:
            return self._segment
        if pos < HEADER_SIZE:
            self._segment, self._segment_start = self._enc.header, 0
            return self._segment
        index, _ = self._enc.chunk_at(pos)
        offset, length = self._enc.chunk_plaintext_span(index)
        self._segment = self._enc.encrypt_chunk(index, self._read_plaintext(offset, length))
        self._segment_start = self._enc.chunk_ciphertext_offset(index)
        return self._segment

    def _read_plaintext(self, offset: int, length: int) -> memoryview:
        """Exactly *length* bytes at *offset*, in a buffer reused from chunk to chunk."""
        self._check_size()
        if len(self._plain) < length:
            self._plain = bytearray(length)
        view = memoryview(self._plain)[:length]
        self._file.seek(offset)
        filled = 0
        while filled < length:
            got = self._file.readinto(view[filled:])
            if not got:
                raise SourceChangedError("the file being encrypted became shorter")
            filled += got
        return view

    def _check_size(self) -> None:
        size = os.fstat(self._file.fileno()).st_size
        if size != self._enc.plaintext_size:
            raise SourceChangedError(
                f"the file is {size} bytes, the encryptor expects {self._enc.plaintext_size}"
            )


class DecryptingWriter:
    """Decrypts ciphertext written to it into the file *path*, atomically.

    Plaintext goes to a temporary file (mode 0600) in *path*'s folder; :meth:`commit`
    verifies the end of the stream, fsyncs and renames it over *path* (replacing any file
    there). On any error, or :meth:`abort`, the temporary file is removed and *path* is
    untouched. As a context manager it commits on a normal exit and aborts on an exception.
    Only a killed process leaves its ``.NAME.*.part`` temporary file behind.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        private_key: PrivateKey,
        *,
        expected_size: int | None = None,
    ) -> None:
        self._path = Path(path)
        self._decryptor = Decryptor(private_key, expected_size=expected_size)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self._path.name}.", suffix=".part", dir=self._path.parent
        )
        self._tmp = Path(tmp)
        self._out: io.FileIO | None = io.FileIO(fd, "wb")
        self.plaintext_written = 0

    @property
    def decryptor(self) -> Decryptor:
        """The underlying decryptor (its ``header`` tells the announced sizes)."""
        return self._decryptor

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Decrypt *data* and write the authenticated plaintext; returns ``len(data)``.

        A :class:`DecryptionError` aborts the writer before it propagates.
        """
        out = self._require_open()
        try:
            plaintext = self._decryptor.feed(data)
            write_all(out.fileno(), plaintext)
        except BaseException:
            self.abort()
            raise
        self.plaintext_written += len(plaintext)
        return len(data)

    def commit(self) -> int:
        """Verify the stream is complete, then move the plaintext into place; its size."""
        out = self._require_open()
        try:
            self._decryptor.close()
            out.flush()
            os.fsync(out.fileno())
            out.close()
            self._out = None
            os.replace(self._tmp, self._path)
        except BaseException:
            self.abort()
            raise
        return self.plaintext_written

    def abort(self) -> None:
        """Discard the temporary file; *path* is left as it was. Idempotent."""
        if self._out is not None:
            self._out.close()
            self._out = None
        self._tmp.unlink(missing_ok=True)

    def _require_open(self) -> io.FileIO:
        if self._out is None:
            raise UsageError("the writer is already committed or aborted")
        return self._out

    def __enter__(self) -> DecryptingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._out is not None:
            self.commit()


def decrypt_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], private_key: PrivateKey
) -> int:
    """Decrypt the file *src* into *dst* (atomically, see :class:`DecryptingWriter`).

    Returns the plaintext size. Raises a :class:`DecryptionError` (and leaves *dst*
    untouched) unless all of *src* authenticates under *private_key*.
    """
    with open(src, "rb", buffering=0) as f:
        expected = os.fstat(f.fileno()).st_size
        with DecryptingWriter(dst, private_key, expected_size=expected) as writer:
            while block := f.read(_READ_BLOCK):
                writer.write(block)
        return writer.plaintext_written
