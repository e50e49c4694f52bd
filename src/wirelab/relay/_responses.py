"""What the relay's OpenAPI document says about answers: every status each route can
return, the bearer security scheme, and the tus, ``Range`` and ``If-Range`` headers.

Kept apart from the handlers so that the routes only name what they answer with
(``responses=answers(401, 404, ...)``) and the texts stay consistent. The test suite's
schema fuzzer checks that every status a route returns is listed here.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi.security import HTTPBearer

from .._validate import INT64_MAX

__all__ = [
    "BEARER",
    "RANGE_HEADERS",
    "TUS_CREATE_HEADERS",
    "TUS_PATCH_BODY",
    "TUS_PATCH_HEADERS",
    "TUS_RESUMABLE_HEADER",
    "answers",
]

#: The ``bearer`` security scheme (HTTP bearer): ``/docs`` can authorize with a token.
BEARER: Final = HTTPBearer(
    scheme_name="bearer",
    auto_error=False,  # the relay's own check answers 401 with the reason
    description="An API token made with `wirelab users add` or `wirelab users token`.",
)

_GENERIC: Final[dict[int, str]] = {
    400: "Malformed request: a header or metadata value breaks its rule (the JSON"
    " `detail` names it), or the body ended early.",
    401: "Missing or invalid bearer token (with `WWW-Authenticate`).",
    404: "No such item for you.",
    409: "Conflict with the item's state.",
    410: "Gone: expired, or its download limit is reached.",
    412: "`Tus-Resumable` is missing or not `1.0.0` (with `Tus-Version`).",
    413: "Larger than the server's maximum file size (or than the announced length).",
    415: "Wrong `Content-Type`.",
    416: "The `Range` selects no byte of the file, or a position is past 64 bits.",
    422: "Invalid parameter or body: the JSON `detail` names the field.",
    423: "Another request (through this or another server process) is writing the upload"
    " and did not finish in time: retry.",
    429: "The recipient's inbox is at its file-count quota.",
    460: "`Upload-Checksum` mismatch: the chunk was not stored.",
    501: "Not offered on this server's storage.",
    503: "The relay is starting or stopping, its storage is unavailable, or the coordination"
    " service of several server processes is unreachable (with `Retry-After`).",
    507: "Not enough storage: the recipient's byte quota, or the server's disk (any"
    " write can meet a full disk).",
}


def answers(*codes: int, **specific: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: the listed statuses plus 401 and 503, which every relay
    route can answer; ``specific`` overrides a text (``_404="No such file."``). FastAPI
    adds 422 (with its schema) to every route that has parameters."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 401, 503}):
        out[code] = {"description": specific.get(f"_{code}", _GENERIC[code])}
    return out


def _header(
    name: str, description: str, schema: dict[str, Any], *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema,
    }


_OFFSET: Final = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}

#: ``Tus-Resumable``, required by every tus request but ``OPTIONS``.
TUS_RESUMABLE_HEADER: Final = _header(
    "Tus-Resumable", "The tus protocol version.", {"type": "string", "enum": ["1.0.0"]},
    required=True,
)  # fmt: skip

#: The headers of a tus creation (``POST /v1/relay/uploads``).
TUS_CREATE_HEADERS: Final = [
    TUS_RESUMABLE_HEADER,
    _header("Upload-Length", "Size of the file in bytes (ASCII digits).", _OFFSET,
            required=True),
    _header(
        "Upload-Metadata",
        "Comma-separated `key base64(value)` pairs: `filename` and `to` (required),"
        " `sha256` or `blake3` (the file's digest, 64 hex digits), `digest_algorithm`"
        " (`blake3` or `sha256`: the algorithm of a digest sent on the completing PATCH;"
        " default `sha256`), `filetype`, `note`, `max_downloads` (a positive integer),"
        " `encryption`.",
        {"type": "string"},
    ),
    _header(
        "Upload-Defer-Length",
        "Not supported (the creation-defer-length extension is not offered): send"
        " `Upload-Length`.",
        {"type": "string", "enum": ["1"]},
    ),
]  # fmt: skip

#: The headers of a tus append (``PATCH /v1/relay/uploads/{id}``).
TUS_PATCH_HEADERS: Final = [
    TUS_RESUMABLE_HEADER,
    _header("Upload-Offset", "The offset the body starts at (the `HEAD`'s offset).",
            _OFFSET, required=True),
    _header("Upload-Checksum", "`sha1|sha256 BASE64DIGEST` of this chunk.",
            {"type": "string"}),
    _header("Wirelab-Digest", "`ALGORITHM=HEX`: the whole file's digest in the"
            " upload's algorithm (`blake3` or `sha256`), if its metadata has none;"
            " checked when the last byte arrives.", {"type": "string"}),
    _header("Wirelab-Sha256", "SHA-256 of the whole file (64 hex digits): the same as"
            " `Wirelab-Digest: sha256=HEX`.",
            {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}),
]  # fmt: skip

#: The body of a tus append: the bytes at ``Upload-Offset``.
TUS_PATCH_BODY: Final = {
    "required": True,
    "description": "The bytes from `Upload-Offset` on (streamed).",
    "content": {"application/offset+octet-stream": {"schema": {"type": "string",
                                                               "format": "binary"}}},
}  # fmt: skip

#: ``Range`` and ``If-Range`` of a download.
RANGE_HEADERS: Final = [
    _header("Range", "One byte range, `bytes=FIRST-[LAST]` or `bytes=-SUFFIX` (other"
            " forms are ignored: the whole file is sent).",
            {"type": "string", "pattern": "^bytes=([0-9]{1,19})?-([0-9]{1,19})?$"}),
    _header("If-Range", "The file's `ETag`: the range applies only if it still matches.",
            {"type": "string"}),
]  # fmt: skip
