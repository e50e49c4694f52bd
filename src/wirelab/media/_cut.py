"""One attempt at a clip: probe the source, plan the cut, run ffmpeg, measure the result.

Everything the attempt fetches goes through its own :class:`CheckingProxy`. Files are
written in ``workdir``; the caller removes it whatever happens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from . import _sites as sites
from ._commands import SourceInfo, Step, cut_plan
from ._errors import JobFailed
from ._ffmpeg import classify_failure, run_ffmpeg
from ._probe import OutputInfo, probe_keyframes, probe_output, probe_source
from ._proxy import CheckingProxy
from ._request import ClipRequest
from ._settings import MediaSettings
from ._times import format_seconds
from ._tools import Tools

__all__ = ["CutResult", "cut"]

# Keyframes are looked for this far after the start and before the end of a smart cut
# (a longer GOP only means re-encoding more: any keyframe is a valid join).
_KEYFRAME_WINDOW = Decimal(10)
_TEXT_FORMATS = frozenset({"tty"})
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
_PROBE_SHARE = 2.0  # percent of the progress bar for probing


@dataclass(frozen=True, slots=True)
class CutResult:
    """The clip file and what was measured on it."""

    path: Path
    output: OutputInfo
    start: Decimal
    timings: dict[str, float]
    """Seconds spent probing the source, in ffmpeg and measuring the result."""


Report = Callable[[str, float], None]


async def cut(
    request: ClipRequest,
    *,
    settings: MediaSettings,
    tools: Tools,
    workdir: Path,
    report: Report,
    on_start: Callable[[int], None] | None = None,
) -> CutResult:
    """Cut ``request`` into a file in ``workdir``; :class:`JobFailed` on failure."""
    clock = time.monotonic
    began = clock()
    async with CheckingProxy(settings.policy) as proxy:
        report("probing", 0.0)
        url, info = await _probe(request.source, tools, proxy, settings)
        request = replace(request, source=url)
        _check_source(request, info, settings)
        keyframes = None
        if request.accuracy == "smart" and not request.audio_only and info.video is not None:
            report("finding keyframes", 1.0)
            found = await probe_keyframes(
                tools,
                request.source,
                proxy.url,
                info,
                _windows(request, info),
                settings.cancel_grace,
            )
            keyframes = found.positions
            # The source probe may only know whether there are B-frames; the smart cut's
            # joins need the exact delay, measured with the keyframes.
            info = replace(info, video=replace(info.video, reorder_delay=found.reorder_delay))
        output = str(workdir / f"clip.{request.container}")
        steps = cut_plan(
            request,
            info,
            url=request.source,
            proxy=proxy.url,
            output=output,
            max_size=settings.max_output_size,
            keyframes=keyframes,
        )
        probed = clock()
        await _run_steps(steps, tools, settings, proxy, report, on_start)
    cut_done = clock()
    report("measuring", 99.0)
    path = Path(output)
    size = (await asyncio.to_thread(path.stat)).st_size
    if size >= settings.max_output_size:
        raise JobFailed(
            f"the clip is larger than this server's limit of {settings.max_output_size} bytes"
        )
    measured = await probe_output(tools, output, settings.cancel_grace)
    start = (request.start or Decimal(0)) + measured.start_offset
    timings = {"probe": probed - began, "ffmpeg": cut_done - probed, "measure": clock() - cut_done}
    return CutResult(path=path, output=measured, start=start, timings=timings)


async def _probe(
    url: str, tools: Tools, proxy: CheckingProxy, settings: MediaSettings
) -> tuple[str, SourceInfo]:
    """Probe ``url``; a page that is not media is resolved through yt-dlp (when
    installed) and the media URL it names is probed instead. Returns the URL to cut."""
    status, stderr, info = await probe_source(tools, url, proxy.url, settings.cancel_grace)
    if proxy.refusals:
        raise classify_failure(status, stderr, proxy.refusals, proxy.failures)
    if info is not None and not _is_text(info):
        return url, info
    failure = classify_failure(status, stderr, [], proxy.failures)
    if failure.retryable or not sites.available():
        if info is not None:
            return url, info  # _check_source names it
        raise failure
    resolved = await sites.resolve_page(url, proxy.url)
    if proxy.refusals:
        raise classify_failure(1, "", proxy.refusals, [])
    if resolved is None:
        if info is not None:
            return url, info
        raise failure
    status, stderr, info = await probe_source(tools, resolved, proxy.url, settings.cancel_grace)
    if info is None or proxy.refusals:
        raise classify_failure(status, stderr, proxy.refusals, proxy.failures)
    return resolved, info


def _is_text(info: SourceInfo) -> bool:
    # ffmpeg "plays" any text file (an HTML page too) as ANSI art (format tty).
    video_codec = info.video.codec if info.video else None
    return info.format_name in _TEXT_FORMATS or video_codec in _TEXT_CODECS


def _check_source(request: ClipRequest, info: SourceInfo, settings: MediaSettings) -> None:
    """The range and limits against what the probe found."""
    if _is_text(info):
        raise JobFailed(
            f"the source is not a media file ffmpeg can read (it looks like text:"
            f" format {info.format_name})"
        )
    if request.audio_only and info.audio is None:
        raise JobFailed("the source has no audio stream")
    duration = info.duration
    if duration is None:
        if request.end is None:
            raise JobFailed("the source's length is unknown (a live stream?): give an end time")
        return
    if duration > Decimal(str(settings.max_source_duration)):
        raise JobFailed(
            f"the source is {format_seconds(duration)} s long; this server accepts sources of"
            f" at most {settings.max_source_duration:g} s"
        )
    start = request.start or Decimal(0)
    if start >= duration:
        raise JobFailed(
            f"start {format_seconds(start)} s is past the end of the source"
            f" ({format_seconds(duration)} s)"
        )
    if request.end is not None and request.end > duration + info.frame:
        raise JobFailed(
            f"end {format_seconds(request.end)} s is past the end of the source"
            f" ({format_seconds(duration)} s)"
        )
    if request.end is None and duration - start > Decimal(str(settings.max_clip_duration)):
        raise JobFailed(
            f"the clip would be {format_seconds(duration - start)} s long; this server allows"
            f" at most {settings.max_clip_duration:g} s"
        )


def _windows(request: ClipRequest, info: SourceInfo) -> list[tuple[Decimal, Decimal]]:
    start = request.start or Decimal(0)
    end = request.end if request.end is not None else info.duration or start
    first = (start, min(end, start + _KEYFRAME_WINDOW))
    last = (max(first[1], end - _KEYFRAME_WINDOW), end + info.frame)
    return [first, last] if last[0] < last[1] else [first]


async def _run_steps(
    steps: list[Step],
    tools: Tools,
    settings: MediaSettings,
    proxy: CheckingProxy,
    report: Report,
    on_start: Callable[[int], None] | None,
) -> None:
    total = sum(step.weight for step in steps) or 1.0
    done = 0.0
    span = 99.0 - _PROBE_SHARE
    for step in steps:

        def progress(seconds: float, step: Step = step, done: float = done) -> None:
            fraction = min(1.0, seconds / step.seconds) if step.seconds > 0 else 0.0
            report(step.phase, _PROBE_SHARE + span * (done + fraction * step.weight) / total)

        for path, text in step.writes.items():
            await asyncio.to_thread(Path(path).write_text, text)
        report(step.phase, _PROBE_SHARE + span * done / total)
        status, stderr = await run_ffmpeg(
            [tools.ffmpeg, *step.args],
            on_progress=progress,
            grace=settings.cancel_grace,
            on_start=on_start,
        )
        # A refused fetch fails the job even when ffmpeg carried on without it (an HLS
        # segment it skipped): a source that points at refused addresses is refused.
        if status != 0 or proxy.refusals:
            raise classify_failure(status, stderr, proxy.refusals, proxy.failures)
        done += step.weight
