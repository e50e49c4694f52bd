"""File names from a peer, made safe to store and to use as a local path (pure).

Shared by the server (names it stores) and the client (names it writes to disk): a client
never trusts the server's name either.
"""

from __future__ import annotations

import unicodedata

__all__ = ["FALLBACK_NAME", "FILENAME_MAX_BYTES", "sanitize_filename"]

#: Longest stored file name, in UTF-8 bytes (the common file-system limit).
FILENAME_MAX_BYTES = 255

#: The name used when nothing usable is left after sanitizing.
FALLBACK_NAME = "unnamed"

# Bidirectional overrides and isolates can make "evil\u202etxt.exe" read as "evilexe.txt".
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def _is_control(char: str) -> bool:
    if char in _BIDI_CONTROLS:
        return True
    return unicodedata.category(char).startswith("C") and char not in "\u200c\u200d"


def sanitize_filename(name: str | None) -> str:
    """Return a safe, non-empty base name for ``name`` (unicode is kept, NFC-normalized).

    Path separators (``/`` and ``\\``) become ``_`` so no directory part survives; control
    characters (Unicode category ``C*`` except the zero-width joiners used by emoji) and
    bidirectional overrides are removed; leading and trailing spaces and dots are stripped
    (so ``.`` and ``..`` cannot remain); Windows device names get a ``_`` prefix; the result
    is cut to :data:`FILENAME_MAX_BYTES` UTF-8 bytes. Nothing left: :data:`FALLBACK_NAME`.
    """
    text = unicodedata.normalize("NFC", name or "")
    kept: list[str] = []
    for char in text:
        if char in "/\\":
            kept.append("_")
        elif not _is_control(char):
            kept.append(char)
    cleaned = "".join(kept).strip(" .\t")
    if not cleaned:
        return FALLBACK_NAME
    if cleaned.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        cleaned = "_" + cleaned
    encoded = cleaned.encode("utf-8")
    if len(encoded) > FILENAME_MAX_BYTES:
        cleaned = encoded[:FILENAME_MAX_BYTES].decode("utf-8", errors="ignore").rstrip(" .")
    return cleaned or FALLBACK_NAME
