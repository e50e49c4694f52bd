"""Pages of video sites: resolved to a media URL by yt-dlp (the ``media-sites`` extra).

Only the resolving is yt-dlp's: the cut is still ours, so progress, cancel and the
limits apply as for any source. yt-dlp fetches through the job's checking proxy, so the
source-safety rules hold for its requests too. Without the extra, :func:`resolve_page`
returns ``None``.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

__all__ = ["available", "resolve_page"]

SOCKET_TIMEOUT = 20


def available() -> bool:
    """Whether yt-dlp is installed."""
    return importlib.util.find_spec("yt_dlp") is not None


async def resolve_page(url: str, proxy: str) -> str | None:
    """The media URL yt-dlp finds for the page ``url`` (``None``: none, or no yt-dlp).

    Runs in a thread (yt-dlp is synchronous); bounded by its socket timeout.
    """
    if not available():
        return None
    return await asyncio.to_thread(_extract, url, proxy)


def _extract(url: str, proxy: str) -> str | None:
    import yt_dlp

    options: dict[str, Any] = {
        "proxy": proxy,
        "quiet": True,
        "no_warnings": True,
        "skip_download": True,
        "noplaylist": True,
        "socket_timeout": SOCKET_TIMEOUT,
        # Progressive or HLS/DASH with audio and video together: one URL ffmpeg can cut.
        "format": "best[acodec!=none][vcodec!=none]/best",
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=False)
    except yt_dlp.utils.YoutubeDLError:
        return None
    if not isinstance(info, dict):
        return None
    found = info.get("url") or next(
        (f.get("url") for f in reversed(info.get("requested_formats") or []) if f.get("url")),
        None,
    )
    return str(found) if found and found != url else None
