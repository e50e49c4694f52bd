"""Probing sources and results: PyAV in-process when installed, and ffprobe.

Sources and results are read with PyAV (the ``media`` extra) in a worker thread when it
is installed: the same libavformat probe without starting a process (~10x faster, which
matters to short jobs). ffprobe is asked when PyAV is missing or fails (its error
message is the one jobs report), and for the keyframes of smart cuts. Sources are probed
through the job's checking proxy like every other fetch. Positions returned are relative
to the source's start (its ``start_time`` subtracted), as ffmpeg's ``-ss`` expects them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from ._commands import IO_TIMEOUT_US, PROTOCOLS, SourceInfo, StreamInfo, remote_input_options
from ._errors import JobFailed, ToolMissing
from ._ffmpeg import run_ffmpeg
from ._tools import Tools

__all__ = [
    "Keyframes",
    "OutputInfo",
    "parse_probe",
    "probe_keyframes",
    "probe_output",
    "probe_source",
]

_STREAM_FIELDS = (
    "codec_type,codec_name,profile,pix_fmt,width,height,avg_frame_rate,duration,start_time,"
    "has_b_frames"
)


@dataclass(frozen=True, slots=True)
class OutputInfo:
    """A result as measured: its ``duration`` and the offset of its first frame
    (``start_offset``: negative when a stream-copied cut kept a keyframe pre-roll)."""

    duration: Decimal
    start_offset: Decimal


def _decimal(value: Any) -> Decimal | None:
    if value in (None, "N/A", ""):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _rate(value: Any) -> Fraction | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return rate if rate > 0 else None


def _stream(doc: dict[str, Any]) -> StreamInfo:
    width, height = doc.get("width"), doc.get("height")
    return StreamInfo(
        codec=str(doc.get("codec_name") or ""),
        profile=doc.get("profile"),
        pix_fmt=doc.get("pix_fmt"),
        width=int(width) if width else None,
        height=int(height) if height else None,
        frame_rate=_rate(doc.get("avg_frame_rate")),
        reorder_delay=int(doc.get("has_b_frames") or 0),
    )


def parse_probe(doc: dict[str, Any]) -> SourceInfo:
    """A :class:`SourceInfo` from ffprobe's JSON (``-show_format -show_streams``)."""
    fmt = doc.get("format") or {}
    streams = doc.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    return SourceInfo(
        duration=_decimal(fmt.get("duration")),
        video=None if video is None else _stream(video),
        audio=None if audio is None else _stream(audio),
        start_time=_decimal(fmt.get("start_time")) or Decimal(0),
        format_name=str(fmt.get("format_name") or ""),
    )


def _proxy_args(proxy: str | None) -> list[str]:
    return [] if proxy is None else remote_input_options(proxy)


async def _ffprobe_json(tools: Tools, args: list[str], grace: float) -> tuple[int, str, Any]:
    """Run ffprobe with ``args``; return (status, stderr, parsed JSON or None)."""
    assert tools.ffprobe is not None
    out: list[bytes] = []
    # ffprobe writes JSON, not -progress; reuse the runner for its process handling.
    status, stderr = await run_ffmpeg(
        [tools.ffprobe, "-v", "error", "-of", "json", *args],
        on_progress=lambda _s: None,
        grace=grace,
        sink=out.append,
    )
    try:
        return status, stderr, json.loads(b"".join(out) or b"null")
    except ValueError:
        return status, stderr, None


@dataclass(frozen=True, slots=True)
class Keyframes:
    """What :func:`probe_keyframes` found: keyframe ``positions`` (relative to the
    source's start) and the video's measured ``reorder_delay`` (frames)."""

    positions: list[Decimal]
    reorder_delay: int


async def probe_source(
    tools: Tools, url: str, proxy: str | None, grace: float, *, in_process: bool = True
) -> tuple[int, str, SourceInfo | None]:
    """Probe ``url``: ``(status, stderr, info)``; ``info`` is ``None`` when it failed.

    In-process with PyAV when installed and ``in_process``; ffprobe otherwise, or when
    PyAV cannot read the source (so that a failure is described by ffprobe). PyAV only
    tells whether the video has B-frames: ``reorder_delay`` is then 2 (x264's default
    delay) or 0; smart cuts, the only ones whose result depends on it, measure it again
    with their keyframes (:func:`probe_keyframes`).
    """
    if tools.ffprobe is None:
        return await asyncio.to_thread(_av_probe, url, proxy)
    if in_process and _av_installed():
        with contextlib.suppress(Exception):  # anything PyAV cannot read: ask ffprobe
            found = await asyncio.to_thread(_av_probe, url, proxy)
            if found[2] is not None:
                return found
    args = [*_proxy_args(proxy), "-show_entries", f"format=duration,start_time,format_name:"
            f"stream={_STREAM_FIELDS}", url]  # fmt: skip
    status, stderr, doc = await _ffprobe_json(tools, args, grace)
    if status != 0 or not isinstance(doc, dict) or not doc.get("streams"):
        return status or 1, stderr or "Invalid data found when processing input", None
    return 0, stderr, parse_probe(doc)


async def probe_keyframes(
    tools: Tools,
    url: str,
    proxy: str | None,
    info: SourceInfo,
    windows: list[tuple[Decimal, Decimal]],
    grace: float,
) -> Keyframes:
    """The video keyframes found in ``windows`` (``[from, to)`` pairs, relative to the
    source's start) and the video's reorder delay; only those parts are fetched."""
    if tools.ffprobe is None:
        return await asyncio.to_thread(_av_keyframes, url, proxy, info, windows)
    base = info.start_time
    intervals = ",".join(f"{base + a}%{base + b}" for a, b in windows)
    args = [
        *_proxy_args(proxy), "-select_streams", "v:0", "-read_intervals", intervals,
        "-show_entries", "packet=pts_time,flags:stream=has_b_frames", url,
    ]  # fmt: skip
    status, stderr, doc = await _ffprobe_json(tools, args, grace)
    if status != 0 or not isinstance(doc, dict):
        raise JobFailed(f"cannot read the source's keyframes: {stderr.strip()[-500:]}")
    found = {
        pts - base
        for packet in doc.get("packets") or []
        if "K" in str(packet.get("flags", ""))
        and (pts := _decimal(packet.get("pts_time"))) is not None
    }
    streams = doc.get("streams") or [{}]
    return Keyframes(sorted(found), int(streams[0].get("has_b_frames") or 0))


async def probe_output(tools: Tools, path: str, grace: float) -> OutputInfo:
    """Measure a result file: duration of its video (else of the file) and start.

    PyAV reads the same container fields in-process when it is installed (it saves an
    ffprobe process, ~0.1 s per job); ffprobe is used without it, or when PyAV cannot
    read the file.
    """
    if tools.ffprobe is None:
        return await asyncio.to_thread(_av_output, path)
    if _av_installed():
        with contextlib.suppress(Exception):  # anything PyAV cannot read: ask ffprobe
            info = await asyncio.to_thread(_av_output, path)
            if info.duration > 0:
                return info
    args = ["-show_entries", f"format=duration,start_time:stream={_STREAM_FIELDS}", path]
    status, stderr, doc = await _ffprobe_json(tools, args, grace)
    if status != 0 or not isinstance(doc, dict):
        raise JobFailed(f"the result cannot be read back: {stderr.strip()[-500:]}")
    return _output_info(doc)


def _output_info(doc: dict[str, Any]) -> OutputInfo:
    fmt = doc.get("format") or {}
    streams = doc.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    duration = _decimal((video or {}).get("duration")) or _decimal(fmt.get("duration"))
    start = _decimal((video or {}).get("start_time")) or _decimal(fmt.get("start_time"))
    if duration is None:
        raise JobFailed("the result has no measurable duration")
    return OutputInfo(duration=duration, start_offset=start or Decimal(0))


# --- PyAV fallback (no ffprobe on the machine) -----------------------------------------


def _av_installed() -> bool:
    return importlib.util.find_spec("av") is not None


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise ToolMissing(
            "probing needs ffprobe or PyAV: install your system's ffmpeg package, or"
            " pip install 'wirelab[media]'"
        ) from exc
    return av


def _av_open(url: str, proxy: str | None) -> Any:
    options = {}
    if proxy is not None:
        options = {
            "http_proxy": proxy,
            "protocol_whitelist": PROTOCOLS,
            "rw_timeout": str(IO_TIMEOUT_US),
        }
    return _av().open(url, options=options)


def _seconds(value: Any, time_base: Any) -> Decimal | None:
    if value is None or time_base is None:
        return None
    return Decimal(value * time_base.numerator) / Decimal(time_base.denominator)


def _av_probe(url: str, proxy: str | None) -> tuple[int, str, SourceInfo | None]:
    av = _av()
    try:
        container = _av_open(url, proxy)
    except av.FFmpegError as exc:
        return 1, str(exc), None
    with container:

        def stream(s: Any) -> StreamInfo:
            ctx = s.codec_context
            return StreamInfo(
                codec=ctx.name,
                profile=getattr(ctx, "profile", None),
                pix_fmt=getattr(ctx, "pix_fmt", None),
                width=getattr(ctx, "width", None) or None,
                height=getattr(ctx, "height", None) or None,
                frame_rate=_rate(s.average_rate) if s.type == "video" else None,
                reorder_delay=2 if s.type == "video" and ctx.has_b_frames else 0,
            )

        video = next(iter(container.streams.video), None)
        audio = next(iter(container.streams.audio), None)
        if video is None and audio is None:
            return 1, "Invalid data found when processing input", None
        duration = None if container.duration is None else Decimal(container.duration) / 10**6
        start = Decimal(container.start_time or 0) / 10**6
        return (
            0,
            "",
            SourceInfo(
                duration=duration,
                video=None if video is None else stream(video),
                audio=None if audio is None else stream(audio),
                start_time=start,
                format_name=container.format.name,
            ),
        )


def reorder_delay(pts_in_decode_order: list[int]) -> int:
    """The decode delay in frames (ffprobe's ``has_b_frames``) that packets with these
    presentation times, in decode order, need: how many places the latest frame comes
    after its presentation rank."""
    ranks = {pts: rank for rank, pts in enumerate(sorted(pts_in_decode_order))}
    return max((i - ranks[pts] for i, pts in enumerate(pts_in_decode_order)), default=0)


def _av_keyframes(
    url: str, proxy: str | None, info: SourceInfo, windows: list[tuple[Decimal, Decimal]]
) -> Keyframes:
    found: set[Decimal] = set()
    delay = 0
    with _av_open(url, proxy) as container:
        stream = container.streams.video[0]
        for begin, finish in windows:
            container.seek(int((info.start_time + begin) * 10**6), any_frame=False)
            seen: list[int] = []  # presentation times in decode order
            for packet in container.demux(stream):
                pts = _seconds(packet.pts, packet.time_base)
                if pts is None:
                    continue
                if pts - info.start_time >= finish:
                    break
                seen.append(packet.pts)
                if packet.is_keyframe:
                    found.add(pts - info.start_time)
            delay = max(delay, reorder_delay(seen))
    return Keyframes(sorted(found), delay)


def _av_output(path: str) -> OutputInfo:
    with _av().open(path) as container:
        video = next(iter(container.streams.video), None)
        if video is not None and video.duration is not None:
            duration = _seconds(video.duration, video.time_base)
            start = _seconds(video.start_time, video.time_base)
        else:
            duration = Decimal(container.duration or 0) / 10**6
            start = Decimal(container.start_time or 0) / 10**6
        assert duration is not None
        return OutputInfo(duration=duration, start_offset=start or Decimal(0))
