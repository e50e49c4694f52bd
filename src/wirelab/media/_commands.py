"""ffmpeg command lines for clips, sans-IO: fast, exact and smart cuts into each container.

A cut is a list of :class:`Step`: one ffmpeg run each (arguments without the executable).
Every step reads its inputs through the job's checking proxy (``-http_proxy``), reports
progress on stdout (``-progress pipe:1``) and writes one file in the job's folder.

- **fast**: ``-ss``/``-to`` *before* ``-i`` and stream copy: ffmpeg seeks in the input,
  so only the needed HLS segments or byte ranges are fetched; the cut starts at the
  keyframe at or before ``start`` (MP4 hides the pre-roll with an edit list).
- **exact**: the same input seek, re-encoded (H.264 + AAC, or MP3), the end trimmed by
  the output's ``-t``: frame accurate.
- **smart**: frame accurate with little re-encoding. With the source's keyframes ``k1``
  (first at or after ``start``) and ``k2`` (last at or before ``end``): re-encode
  ``[start, k1)`` and ``[k2, end)`` with the source's codec parameters, stream-copy
  ``[k1, k2)`` (whole GOPs, nothing to fix), each into MPEG-TS (parameter sets travel in
  band, so parts from two encoders play in one stream), re-encode the audio of
  ``[start, end)`` in one piece (cheap, and no priming gaps at the joins), then join
  the video parts with the concat demuxer (each part's exact duration given) and mux.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from ._request import ClipRequest
from ._times import format_seconds

__all__ = [
    "SourceInfo",
    "Step",
    "StreamInfo",
    "concat_list",
    "cut_plan",
    "smart_parts",
]

IO_TIMEOUT_US = 20_000_000
"""ffmpeg's ``-rw_timeout``: a source silent this long fails the step (retryable)."""

PROTOCOLS = "http,https,tls,tcp,httpproxy,crypto,data"
"""What a remote input may open: no ``file`` (a playlist naming ``file:///...`` segments
would read the server's files), no ``udp``/``rtp``. ``tcp`` only ever reaches the proxy:
every http(s) connection goes through it."""


def remote_input_options(proxy: str) -> list[str]:
    """The input options of every remote read: the proxy, the protocol whitelist and
    the I/O timeout (ffmpeg and ffprobe take the same)."""
    return [
        "-http_proxy", proxy, "-protocol_whitelist", PROTOCOLS,
        "-rw_timeout", str(IO_TIMEOUT_US),
    ]  # fmt: skip


_FORMATS = {"mp4": "mp4", "mkv": "matroska", "m4a": "mp4", "mp3": "mp3"}
_X264_PROFILES = {
    "constrained baseline": "baseline",
    "baseline": "baseline",
    "main": "main",
    "high": "high",
    "high 10": "high10",
    "high 4:2:2": "high422",
    "high 4:4:4 predictive": "high444",
}
# Stream copy is mostly I/O; re-encoding costs about this many times more per second.
_COPY_WEIGHT = 0.1
_AUDIO_WEIGHT = 0.2


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream of the source, as probed."""

    codec: str
    profile: str | None = None
    pix_fmt: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: Fraction | None = None
    reorder_delay: int = 0
    """Frames of decode delay (ffprobe's ``has_b_frames``): B-frames make a packet's
    decode time this many frames earlier than its presentation time."""


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a probe learnt about the source: ``duration`` (``None``: unknown), the first
    video and audio streams, and the format's ``start_time`` (timestamps of MPEG-TS
    start at 1.4 s, say; positions given to ffmpeg are relative to it)."""

    duration: Decimal | None
    video: StreamInfo | None
    audio: StreamInfo | None
    start_time: Decimal = Decimal(0)
    format_name: str = ""

    @property
    def frame(self) -> Decimal:
        """One frame's duration (1/25 s when the rate is unknown)."""
        rate = self.video.frame_rate if self.video else None
        if not rate:
            return Decimal(1) / 25
        return Decimal(rate.denominator) / Decimal(rate.numerator)


@dataclass(frozen=True)
class Step:
    """One ffmpeg run: ``args`` (after the executable), the file it writes, a ``phase``
    name for the job, a ``weight`` (its share of the job's progress), the media
    ``seconds`` it outputs, and text files to ``writes`` (path: content) before it runs."""

    args: list[str]
    output: str
    phase: str
    weight: float
    seconds: float = 0.0
    writes: dict[str, str] = field(default_factory=dict)


def _head() -> list[str]:
    return [
        "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
        "-progress", "pipe:1", "-stats_period", "0.25", "-y",
    ]  # fmt: skip


def input_args(
    url: str, proxy: str | None, start: Decimal | None, end: Decimal | None
) -> list[str]:
    """Input options and ``-i``: the proxy, an I/O timeout, and the seek (before ``-i``)."""
    args: list[str] = []
    if proxy is not None:
        args += remote_input_options(proxy)
    if start:
        args += ["-ss", format_seconds(start)]
    if end is not None:
        args += ["-to", format_seconds(end)]
    return [*args, "-i", url]


def _audio_codec(request: ClipRequest, source: SourceInfo, copy: bool) -> list[str]:
    codec = source.audio.codec if source.audio else ""
    if request.container == "mp3":
        return ["-c:a", "copy"] if copy and codec == "mp3" else ["-c:a", "libmp3lame", "-q:a", "2"]
    if copy and (request.container != "m4a" or codec == "aac"):
        return ["-c:a", "copy"]
    return ["-c:a", "aac", "-b:a", "128k"]


def _video_encoder(source: SourceInfo) -> list[str]:
    """libx264 options matching the source's pixel format, H.264 profile and decode delay.

    The delay matters to a smart cut: at each join the decode times must keep
    increasing, which holds when the re-encoded parts have the copied part's delay.
    """
    video = source.video
    args = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"]
    delay = video.reorder_delay if video is not None else 2
    if delay < 2:  # x264's default (3 B-frames, pyramid) has a delay of 2
        args += ["-bf", str(delay), "-b_pyramid", "none"]
    if video is not None and video.pix_fmt:
        args += ["-pix_fmt", video.pix_fmt]
    profile = _X264_PROFILES.get((video.profile or "").lower()) if video else None
    if profile is not None:
        args += ["-profile:v", profile]
    return args


def _output(request: ClipRequest, path: str, max_size: int) -> list[str]:
    args = ["-fs", str(max_size), "-f", _FORMATS[request.container]]
    if request.container in ("mp4", "m4a"):
        args += ["-movflags", "+faststart"]
    return [*args, path]


def _maps(request: ClipRequest, source: SourceInfo) -> list[str]:
    if request.audio_only:
        return ["-map", "0:a:0", "-vn", "-sn", "-dn"]
    maps = ["-map", "0:v:0"] if source.video else []
    if source.audio:
        maps += ["-map", "0:a:0"]
    return [*maps, "-sn", "-dn"]


def cut_plan(
    request: ClipRequest,
    source: SourceInfo,
    *,
    url: str,
    proxy: str | None,
    output: str,
    max_size: int,
    keyframes: list[Decimal] | None = None,
) -> list[Step]:
    """The steps that cut ``request`` out of ``url`` into ``output``.

    ``keyframes`` (positions relative to the source's start) are needed for a smart cut
    of a video container; without them, or when the clip holds no whole GOP, a smart
    cut is an exact one. ``source.duration`` must be known when ``request.end`` is not.
    """
    end = request.end if request.end is not None else source.duration
    start = request.start or Decimal(0)
    seconds = float(end - start) if end is not None else 0.0
    copy = request.accuracy == "fast"
    h264 = source.video is not None and source.video.codec == "h264"
    if request.accuracy == "smart" and not request.audio_only and h264 and end is not None:
        parts = smart_parts(start, end, keyframes or [], source.frame)
        if any(kind == "copy" for kind, _, _ in parts):
            return _smart_plan(request, source, url, proxy, output, max_size, parts)
    video = [] if request.audio_only else (["-c:v", "copy"] if copy else _video_encoder(source))
    read_to, trim = request.end, []
    if not copy and request.end is not None:
        # The input's -to alone lets a frame too many through now and then (a frame on
        # the end bound, container timestamps rounded): it now only bounds what is read
        # (one frame late), and the output's -t trims frames and samples exactly, so the
        # clip lasts ceil(length / frame) frames: within one frame of the request.
        read_to, trim = request.end + source.frame, ["-t", format_seconds(request.end - start)]
    args = [
        *_head(),
        *input_args(url, proxy, request.start, read_to),
        *_maps(request, source),
        *video,
        *(_audio_codec(request, source, copy) if source.audio else []),
        *trim,
        *_output(request, output, max_size),
    ]
    phase = "copying" if copy else "encoding"
    return [Step(args, output, phase, weight=1.0, seconds=seconds)]


def smart_parts(
    start: Decimal, end: Decimal, keyframes: list[Decimal], frame: Decimal
) -> list[tuple[str, Decimal, Decimal]]:
    """``[(kind, from, to)]`` covering ``[start, end)``: ``"encode"`` up to the first
    keyframe at or after ``start``, ``"copy"`` whole GOPs up to the last keyframe at or
    before ``end``, ``"encode"`` the rest. A keyframe within half a frame of ``start`` or
    ``end`` counts as on it. No whole GOP inside: one ``"encode"`` part."""
    half = frame / 2
    k1 = next((k for k in sorted(keyframes) if k >= start - half), None)
    k2 = next((k for k in sorted(keyframes, reverse=True) if k <= end + half), None)
    if k1 is None or k2 is None or k2 - k1 < half:
        return [("encode", start, end)]
    parts: list[tuple[str, Decimal, Decimal]] = []
    if k1 - start >= half:
        parts.append(("encode", start, k1))
    else:
        k1 = start
    if end - k2 < half:
        k2 = end
    parts.append(("copy", k1, k2))
    if k2 < end:
        parts.append(("encode", k2, end))
    return parts


def _smart_plan(
    request: ClipRequest,
    source: SourceInfo,
    url: str,
    proxy: str | None,
    output: str,
    max_size: int,
    parts: list[tuple[str, Decimal, Decimal]],
) -> list[Step]:
    folder = output.rsplit("/", 1)[0]
    steps: list[Step] = []
    names: list[str] = []
    # A quarter frame of margin keeps the keyframe a copied part starts with inside it,
    # and the next one out, despite rounding.
    margin = source.frame / 4
    # Stream copy cuts by decode time: a part ending at keyframe k2 must stop the
    # source's decode delay earlier, or k2 itself (decoded before it shows) is copied.
    delay = source.frame * (source.video.reorder_delay if source.video else 0)
    for index, (kind, begin, finish) in enumerate(parts):
        name = f"{folder}/part{index}.ts"
        names.append(name)
        seconds = float(finish - begin)
        if kind == "copy":
            # Seek just before the keyframe; -copypriorss 0 drops what the demuxer hands
            # out before the seek point (an HLS seek lands a segment early).
            inp = input_args(url, proxy, begin - margin if begin else None, finish - delay - margin)
            codec = ["-copypriorss", "0", "-c:v", "copy"]
            weight = seconds * _COPY_WEIGHT
        else:
            inp = input_args(url, proxy, begin, finish - margin)
            codec = _video_encoder(source)
            weight = seconds
        args = [*_head(), *inp, "-map", "0:v:0", "-an", "-sn", "-dn", *codec, "-f", "mpegts", name]
        steps.append(
            Step(args, name, "encoding" if kind == "encode" else "copying", weight, seconds)
        )
    total = float(parts[-1][2] - parts[0][1])
    audio = f"{folder}/audio.mka"
    if source.audio is not None:
        args = [
            *_head(),
            *input_args(url, proxy, parts[0][1], parts[-1][2]),
            "-map", "0:a:0", "-vn", "-sn", "-dn",
            *_audio_codec(request, source, copy=False), "-f", "matroska", audio,
        ]  # fmt: skip
        steps.append(Step(args, audio, "encoding audio", total * _AUDIO_WEIGHT, total))
    listing = f"{folder}/parts.txt"
    mux_inputs = ["-f", "concat", "-safe", "0", "-i", listing]
    maps = ["-map", "0:v:0"]
    if source.audio is not None:
        mux_inputs += ["-i", audio]
        maps += ["-map", "1:a:0"]
    # MPEG-TS added an access unit delimiter to every packet: drop them, so the copied
    # packets are the source's own. Parameter sets stay in band (the parts differ).
    bsf = ["-bsf:v", "filter_units=remove_types=9"]
    args = [*_head(), *mux_inputs, *maps, "-c", "copy", *bsf, *_output(request, output, max_size)]
    steps.append(
        Step(
            args,
            output,
            "joining",
            total * _COPY_WEIGHT,
            total,
            writes={listing: concat_list(parts, names)},
        )
    )
    return steps


def concat_list(parts: list[tuple[str, Decimal, Decimal]], names: list[str]) -> str:
    """The concat demuxer's list: each part file with its exact duration."""
    lines = ["ffconcat version 1.0"]
    for (_, begin, finish), name in zip(parts, names, strict=True):
        lines.append(f"file '{name.rsplit('/', 1)[-1]}'")
        lines.append(f"duration {format_seconds(finish - begin)}")
    return "\n".join(lines) + "\n"
