"""The durable state of an S3 upload, and the object key layout of :mod:`._s3`.

Everything needed to resume an upload lives in the bucket, so that a restarted process,
or another server process, continues it: a small JSON *state object* per upload names
the multipart upload, the parts already uploaded (number, ETag, size), the *staged
object* holding the tail that is still shorter than a part, and the durable offset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from .._exceptions import IntegrityError
from .._ids import token_hex

__all__ = ["Layout", "Part", "Pointer", "UploadState"]


@dataclass(frozen=True)
class Part:
    """One uploaded part of a multipart upload."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class UploadState:
    """What the state object of an upload says (see the module docstring).

    The durable offset is ``sum(part sizes) + staged_size``: bytes ``[0, parts_size)``
    are the parts, in order; ``[parts_size, offset)`` are the first ``staged_size``
    bytes of ``staged_key``. ``data_key`` is where the committed bytes will be; it is
    unique per upload, so that a reused upload id never overwrites an earlier blob.
    ``algorithm`` is the digest chosen at creation (state objects written before
    digests had names are SHA-256): any process resuming the upload hashes in it.
    """

    upload_id: str
    data_key: str
    created_at: float
    updated_at: float
    multipart_id: str | None = None
    parts: tuple[Part, ...] = field(default=())
    staged_key: str | None = None
    staged_size: int = 0
    algorithm: str = "sha256"

    @property
    def parts_size(self) -> int:
        return sum(part.size for part in self.parts)

    @property
    def offset(self) -> int:
        return self.parts_size + self.staged_size

    def evolve(self, **changes: Any) -> UploadState:
        return replace(self, **changes)

    def to_json(self) -> bytes:
        body = {
            "data_key": self.data_key,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "multipart_id": self.multipart_id,
            "parts": [[p.number, p.etag, p.size] for p in self.parts],
            "staged_key": self.staged_key,
            "staged_size": self.staged_size,
            "algorithm": self.algorithm,
        }
        return json.dumps(body).encode()

    @classmethod
    def from_json(cls, upload_id: str, raw: bytes) -> UploadState:
        try:
            body = json.loads(raw)
            parts = tuple(Part(int(n), str(etag), int(size)) for n, etag, size in body["parts"])
            return cls(
                upload_id=upload_id,
                data_key=str(body["data_key"]),
                created_at=float(body["created_at"]),
                updated_at=float(body["updated_at"]),
                multipart_id=body["multipart_id"],
                parts=parts,
                staged_key=body["staged_key"],
                staged_size=int(body["staged_size"]),
                algorithm=str(body.get("algorithm", "sha256")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"the S3 state of upload {upload_id!r} is damaged") from exc


@dataclass(frozen=True)
class Pointer:
    """A committed blob: the object holding its bytes, its size, and its digest in
    ``algorithm`` (the JSON keeps the digest under ``sha256``, as before digests had
    names; a pointer without ``algorithm`` is SHA-256)."""

    data_key: str
    size: int
    sha256: str
    algorithm: str = "sha256"

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "data": self.data_key,
                "size": self.size,
                "sha256": self.sha256,
                "algorithm": self.algorithm,
            }
        ).encode()

    @classmethod
    def from_json(cls, key: str, raw: bytes) -> Pointer:
        try:
            body = json.loads(raw)
            algorithm = str(body.get("algorithm", "sha256"))
            return cls(str(body["data"]), int(body["size"]), str(body["sha256"]), algorithm)
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"the S3 record of blob {key!r} is damaged") from exc


@dataclass(frozen=True)
class Layout:
    """Object keys under the store's prefix::

        uploads/<upload_id>/state.json     the upload's state (it exists iff the upload does)
        uploads/<upload_id>/staged-<rand>  a staged tail (a new name at each change)
        data/<upload_id>-<rand>            blob bytes (the multipart upload's target)
        blobs/<key>                        the blob's pointer: data key, size, digest
        files/<key>                        a blob in one object (a direct send of at
                                           most a part): bytes, digest in its metadata

    A blob exists iff its pointer or its file does; writing either is the commit point.
    """

    prefix: str

    def uploads(self) -> str:
        return f"{self.prefix}uploads/"

    def upload_dir(self, upload_id: str) -> str:
        return f"{self.prefix}uploads/{upload_id}/"

    def state(self, upload_id: str) -> str:
        return f"{self.upload_dir(upload_id)}state.json"

    def new_staged(self, upload_id: str) -> str:
        return f"{self.upload_dir(upload_id)}staged-{token_hex(8)}"

    def new_data(self, upload_id: str) -> str:
        return f"{self.prefix}data/{upload_id}-{token_hex(8)}"

    def pointer(self, key: str) -> str:
        return f"{self.prefix}blobs/{key}"

    def file(self, key: str) -> str:
        return f"{self.prefix}files/{key}"

    def upload_id_of_state(self, object_key: str) -> str | None:
        """The upload id if *object_key* is a state object, else ``None``."""
        rest = object_key[len(self.uploads()) :]
        upload_id, sep, name = rest.partition("/")
        return upload_id if sep and name == "state.json" else None
