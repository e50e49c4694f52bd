"""A file received from a stream, verified, with its bytes in memory."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .._exceptions import UsageError

__all__ = ["StreamedFile"]

_BYTEORDER_CHARS: Final[dict[str, Literal["<", ">"]]] = {"little": "<", "big": ">"}


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class StreamedFile:
    """One file of a stream, complete and verified (size and digest).

    ``name`` is the name the server sent; it was checked by the decoder for ``/``, ``\\``
    and NUL, but treat it as untrusted before using it as a path. ``offset`` is when the
    server scheduled the file, in seconds after it received the request.
    """

    index: int
    name: str
    size: int
    dtype: str
    byteorder: str
    offset: float
    digest: str
    data: bytes
    #: The algorithm of ``digest`` (the stream's: ``blake3`` or ``sha256``).
    algorithm: str = "sha256"

    @property
    def sha256(self) -> str:
        """The SHA-256 of :attr:`data`, for code written before streams carried BLAKE3.

        The stream's own verified digest is :attr:`digest` (of :attr:`algorithm`); when that
        is SHA-256 it is returned as is, otherwise the SHA-256 is computed from the data.
        """
        if self.algorithm == "sha256":
            return self.digest
        return hashlib.sha256(self.data).hexdigest()

    def __repr__(self) -> str:
        # ``data`` can be megabytes; keep reprs (and test failures) readable.
        return (
            f"StreamedFile(index={self.index}, name={self.name!r}, size={self.size}, "
            f"dtype={self.dtype!r}, byteorder={self.byteorder!r}, "
            f"{self.algorithm}={self.digest[:12]}…)"
        )

    def array(self) -> npt.NDArray[Any]:
        """The samples as a read-only numpy array sharing memory with :attr:`data`.

        The array's dtype carries the file's byte order (e.g. ``>i2`` for big-endian int16),
        so values read correctly on any machine; use ``.astype(native)`` for a native,
        writable copy. Raises :class:`~wirelab.UsageError` for an unknown dtype or byte order,
        or a size that is not a multiple of the sample width.
        """
        try:
            dtype = np.dtype(self.dtype).newbyteorder(_BYTEORDER_CHARS[self.byteorder])
        except (TypeError, KeyError) as exc:
            raise UsageError(
                f"cannot view {self.name!r} as {self.dtype!r} ({self.byteorder!r})"
            ) from exc
        if len(self.data) % dtype.itemsize:
            raise UsageError(
                f"{self.name!r}: {len(self.data)} bytes is not a multiple of {dtype.itemsize}"
            )
        return np.frombuffer(self.data, dtype=dtype)
