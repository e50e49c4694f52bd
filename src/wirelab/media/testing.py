"""Test media and a local media server, for tests and benchmarks (no pytest needed).

:func:`make_test_media` renders a synthetic clip with ffmpeg's ``lavfi`` sources
(``testsrc2`` video, ``sine`` audio), H.264 with a fixed keyframe interval
(``KEYFRAME_INTERVAL`` seconds: ``-g 50 -keyint_min 50 -sc_threshold 0`` at 25 fps) and AAC,
as a progressive MP4, then packages the same packets (stream copy) as a VOD HLS playlist
with ``KEYFRAME_INTERVAL``-second MPEG-TS segments and as DASH (fragmented MP4). Because
these are remuxes of the MP4, their video packets are byte-identical up to the H.264
framing, which lets tests check
that a cut stream-copied them.

:class:`MediaServer` serves a folder over HTTP on ``127.0.0.1`` port 0 from a thread,
plus a few paths that tests need: ``/redirect?to=URL`` (302), ``/slow/PATH`` (``PATH``
after a delay per request, to keep jobs running long enough to cancel or kill) and a log
of the paths requested. It never connects anywhere itself.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FPS",
    "KEYFRAME_INTERVAL",
    "MediaServer",
    "TestMedia",
    "make_test_media",
    "media_server",
    "probe",
    "stream_duration",
]

FPS = 25
"""Frame rate of the test media (frames per second)."""

KEYFRAME_INTERVAL = 2
"""Seconds between keyframes of the test media (and the HLS segment length)."""


@dataclass(frozen=True)
class TestMedia:
    """The files :func:`make_test_media` wrote, relative to ``root``."""

    __test__ = False  # not a pytest test class

    root: Path
    duration: float
    mp4: str = "video.mp4"
    hls: str = "hls/index.m3u8"
    dash: str = "dash/manifest.mpd"
    text: str = "notmedia.txt"


def make_test_media(
    root: Path,
    *,
    duration: int = 30,
    size: str = "320x240",
    ffmpeg: str = "ffmpeg",
) -> TestMedia:
    """Render ``duration`` seconds of test media into ``root`` (created) and return it.

    Takes about a second for 30 s at 320x240. Raises ``subprocess.CalledProcessError``
    when ffmpeg fails (its stderr is in the exception).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "hls").mkdir(exist_ok=True)
    gop = FPS * KEYFRAME_INTERVAL
    media = TestMedia(root=root, duration=float(duration))
    _ffmpeg(
        ffmpeg,
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={duration}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "64k", "-shortest",
        "-movflags", "+faststart", str(root / media.mp4),
    )  # fmt: skip
    _ffmpeg(
        ffmpeg,
        "-i", str(root / media.mp4), "-c", "copy", "-f", "hls",
        "-hls_time", str(KEYFRAME_INTERVAL), "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(root / "hls" / "seg%03d.ts"),
        str(root / media.hls),
    )  # fmt: skip
    (root / "dash").mkdir(exist_ok=True)
    _ffmpeg(
        ffmpeg,
        "-i", str(root / media.mp4), "-c", "copy", "-f", "dash",
        "-seg_duration", str(KEYFRAME_INTERVAL), "-use_template", "1", "-use_timeline", "0",
        str(root / media.dash),
    )  # fmt: skip
    (root / media.text).write_text("this is not a video\n" * 50)
    return media


def _ffmpeg(ffmpeg: str, *args: str) -> None:
    exe = shutil.which(ffmpeg) or ffmpeg
    subprocess.run(  # noqa: S603 - our own arguments
        [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the server keeps its own log of paths (``requests``)."""

    def _route(self) -> bool:
        """Answer the special paths; ``False`` to serve a file."""
        parsed = urllib.parse.urlsplit(self.path)
        with self.server.lock:
            self.server.requests.append(parsed.path)
        if parsed.path == "/redirect":
            target = urllib.parse.parse_qs(parsed.query).get("to", [""])[0]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        if parsed.path.startswith("/slow/"):
            time.sleep(self.server.slow_delay)
            self.path = self.path[len("/slow") :]
        return False

    def do_GET(self) -> None:
        if not self._route():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._route():
            super().do_HEAD()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, directory: Path, slow_delay: float) -> None:
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.slow_delay = slow_delay

        def handler(*args: Any) -> _Handler:
            return _Handler(*args, directory=str(directory))

        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet when the client hung up early (ffmpeg closes a connection once it has
        read what it needs: not an error); other errors are printed as usual."""
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)


class MediaServer:
    """A running :class:`_Server`: ``url(path)`` builds URLs, ``requests`` lists paths."""

    def __init__(self, server: _Server, scheme: str = "http") -> None:
        self._server = server
        self.port: int = server.server_address[1]
        self.base = f"{scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The URL of ``path`` (relative to the served folder, or a special path)."""
        return f"{self.base}/{path.lstrip('/')}"

    @property
    def requests(self) -> list[str]:
        """The paths requested so far, in order (a copy)."""
        with self._server.lock:
            return list(self._server.requests)

    def clear_requests(self) -> None:
        with self._server.lock:
            self._server.requests.clear()

    @property
    def slow_delay(self) -> float:
        return self._server.slow_delay

    @slow_delay.setter
    def slow_delay(self, seconds: float) -> None:
        self._server.slow_delay = seconds


@contextlib.contextmanager
def media_server(
    directory: Path, *, slow_delay: float = 0.5, tls: ssl.SSLContext | None = None
) -> Iterator[MediaServer]:
    """Serve ``directory`` on ``127.0.0.1`` port 0 from a thread until the block ends
    (over HTTPS with the server context ``tls``)."""
    server = _Server(directory, slow_delay)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="media-server", daemon=True)
    thread.start()
    try:
        yield MediaServer(server, "https" if tls is not None else "http")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def probe(path: Path, ffprobe: str = "ffprobe") -> dict[str, Any]:
    """ffprobe's JSON about ``path``: ``format`` and ``streams`` (an independent
    measurement for tests)."""
    exe = shutil.which(ffprobe) or ffprobe
    out = subprocess.run(  # noqa: S603 - our own arguments
        [exe, "-v", "error", "-of", "json", "-show_format", "-show_streams", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def stream_duration(path: Path, kind: str = "video") -> float:
    """The duration of the first ``kind`` stream of ``path`` (else of the file), s."""
    doc = probe(path)
    stream: dict[str, Any] = next((s for s in doc["streams"] if s["codec_type"] == kind), {})
    return float(stream.get("duration") or doc["format"]["duration"])
