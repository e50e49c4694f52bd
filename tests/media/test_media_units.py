"""The sans-IO cores of the media service, and the PyAV probing path."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from wirelab.media import (
    ClipRequest,
    InvalidRequest,
    LimitExceeded,
    MediaSettings,
    NetworkPolicy,
    SourceRefused,
    _ffmpeg,
    _probe,
    format_seconds,
    parse_networks,
    parse_request,
    parse_time,
)
from wirelab.media._commands import SourceInfo, StreamInfo, cut_plan, smart_parts
from wirelab.media._ffmpeg import classify_failure
from wirelab.media._probe import probe_keyframes, probe_output, probe_source
from wirelab.media._progress import ProgressParser
from wirelab.media._proxy import resolve_checked
from wirelab.media._tools import Tools, find_tools
from wirelab.media.testing import (
    KEYFRAME_INTERVAL,
    MediaServer,
    TestMedia,
    media_server,
    probe,
    stream_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:03", "3"), ("01:02:03.5", "3723.5"), ("1:02", "62"),
        ("59:59.999999", "3599.999999"), ("12", "12"), ("12.25", "12.25"), (7, "7"),
        (0.1, "0.1"), ("100:00:00", "360000"),
    ],
)  # fmt: skip
def test_parse_time(text: object, seconds: str) -> None:
    assert parse_time(text) == Decimal(seconds)


@pytest.mark.parametrize(
    "text",
    ["", " 1", "-1", "1e3", "nan", "inf", "1:60", "1:2:3:4", "00:60:00", "1.1234567", "1,5",
     "٣", True, None, [], float("nan"), -0.5],
)  # fmt: skip
def test_parse_time_is_strict(text: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_time(text)


def test_durations_are_exact() -> None:
    request = parse_request(
        {"source": "http://example.com/v.mp4", "start": "00:00:00.1", "end": "0.3"},
        template=None,
        limits=MediaSettings(),
    )
    assert request.duration == Decimal("0.2")  # 0.3 - 0.1 in floats is 0.19999999999999998
    assert format_seconds(Decimal("1.50")) == "1.5"
    assert format_seconds(Decimal("0")) == "0"


def test_request_digest_ignores_how_times_were_written() -> None:
    limits = MediaSettings()
    a = parse_request({"source": "http://e.com/v", "start": "1:00", "end": 70}, template=None,
                      limits=limits)  # fmt: skip
    b = parse_request({"source": "http://e.com/v", "start": "60.0", "end": "00:01:10"},
                      template=None, limits=limits)  # fmt: skip
    assert a.digest() == b.digest()
    assert ClipRequest.from_json(a.to_json()) == a
    c = parse_request({"source": "http://e.com/v", "start": "60", "end": "71"}, template=None,
                      limits=limits)  # fmt: skip
    assert c.digest() != a.digest()


def test_request_limits_and_template() -> None:
    with pytest.raises(LimitExceeded):
        parse_request({"source": "http://e.com/v", "end": "11"}, template=None,
                      limits=MediaSettings(max_clip_duration=10))  # fmt: skip
    request = parse_request({"video_id": "a-1.x"}, template="https://cdn/{video_id}.m3u8",
                            limits=MediaSettings())  # fmt: skip
    assert request.source == "https://cdn/a-1.x.m3u8"
    with pytest.raises(SourceRefused):
        parse_request({"source": "file:///etc/passwd"}, template=None, limits=MediaSettings())
    with pytest.raises(InvalidRequest, match="credentials"):
        parse_request({"source": "http://u:p@e.com/v"}, template=None, limits=MediaSettings())


def test_network_policy() -> None:
    default = NetworkPolicy()
    assert default.refusal("93.184.216.34") is None
    assert default.refusal("2606:2800:220:1::1") is None
    for address in ("127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1",
                    "fe80::1", "fc00::1", "::ffff:192.168.0.1", "0.0.0.0", "224.1.1.1",
                    "255.255.255.255", "100.64.0.1", "::"):  # fmt: skip
        assert default.refusal(address) is not None, address
    opened = NetworkPolicy(parse_networks("127.0.0.0/8, 10.0.0.0/24"))
    assert opened.refusal("127.5.5.5") is None
    assert opened.refusal("10.0.0.7") is None
    assert opened.refusal("10.0.1.7") is not None
    assert opened.refusal("::1") is not None
    with pytest.raises(ValueError, match="not-a-net"):
        parse_networks("10.0.0.0/8,not-a-net")


def test_smart_parts() -> None:
    frame = Decimal("0.04")
    keys = [Decimal(k) for k in range(0, 31, 2)]
    assert smart_parts(Decimal("3.1"), Decimal("12.9"), keys, frame) == [
        ("encode", Decimal("3.1"), Decimal(4)),
        ("copy", Decimal(4), Decimal(12)),
        ("encode", Decimal(12), Decimal("12.9")),
    ]
    # On keyframes (within half a frame): all copied.
    assert smart_parts(Decimal("4.01"), Decimal(8), keys, frame) == [
        ("copy", Decimal("4.01"), Decimal(8))
    ]
    assert smart_parts(Decimal("4.5"), Decimal("5.5"), keys, frame) == [
        ("encode", Decimal("4.5"), Decimal("5.5"))
    ]
    assert smart_parts(Decimal(1), Decimal(3), [], frame) == [("encode", Decimal(1), Decimal(3))]


def test_fast_cut_seeks_before_the_input() -> None:
    request = ClipRequest("http://e.com/v.m3u8", Decimal(10), Decimal(14), "fast", "mp4")
    info = SourceInfo(Decimal(30), StreamInfo("h264"), StreamInfo("aac"))
    [step] = cut_plan(request, info, url=request.source, proxy="http://127.0.0.1:1",
                      output="/w/clip.mp4", max_size=10)  # fmt: skip
    args = step.args
    assert args.index("-ss") < args.index("-to") < args.index("-i")
    assert args[args.index("-http_proxy") + 1] == "http://127.0.0.1:1"
    assert args[args.index("-c:v") + 1] == "copy"
    assert args[-1] == "/w/clip.mp4"


def test_exact_cut_trims_the_end_on_the_output() -> None:
    """An exact cut reads up to one frame past the end (input ``-to``) and trims to the
    requested length on the output (``-t``), which is frame exact."""
    request = ClipRequest("http://e.com/v.m3u8", Decimal(3), Decimal("7.5"), "exact", "mp4")
    video = StreamInfo("h264", frame_rate=Fraction(25))
    info = SourceInfo(Decimal(30), video, StreamInfo("aac"))
    [step] = cut_plan(request, info, url=request.source, proxy=None,
                      output="/w/clip.mp4", max_size=10)  # fmt: skip
    args = step.args
    assert args[args.index("-to") + 1] == "7.54"
    assert args.index("-to") < args.index("-i") < args.index("-t")
    assert args[args.index("-t") + 1] == "4.5"


def test_progress_parser_is_monotonic() -> None:
    parser = ProgressParser()
    assert parser.feed(b"frame=1\nout_time_us=N/A\nprogress=continue\n") is False
    assert parser.feed(b"out_time_us=1500000\nprog") is True
    assert parser.seconds == 1.5
    assert parser.feed(b"ress=continue\nout_time_us=-23000\nout_time_us=1000000\n") is False
    assert parser.seconds == 1.5
    parser.feed(b"out_time_us=2000000\nprogress=end\n")
    assert (parser.seconds, parser.ended) == (2.0, True)


@pytest.mark.parametrize(
    ("stderr", "refusals", "failures", "retryable", "words"),
    [
        ("", ["host x: 10.0.0.1 is private"], [], False, "source refused"),
        ("", [], ["cannot connect to 127.0.0.1:9"], True, "network error"),
        ("http://x: Server returned 404 Not Found\n", [], [], False, "does not exist"),
        ("http://x: Server returned 5XX Server Error reply\n", [], [], True, "HTTP 5XX"),
        ("x: Invalid data found when processing input\n", [], [], False, "not a media file"),
        ("x: Connection timed out\n", [], [], True, "network error"),
        ("Conversion failed!\n", [], [], False, "ffmpeg failed"),
    ],
)
def test_classify_failure(
    stderr: str, refusals: list[str], failures: list[str], retryable: bool, words: str
) -> None:
    error = classify_failure(1, stderr, refusals, failures)
    assert error.retryable is retryable
    assert words in error.message


def test_pyav_probes_like_ffprobe(test_media: TestMedia) -> None:
    """Without ffprobe (a pip-only machine), PyAV probes sources, keyframes and results."""
    tools = find_tools()
    pyav = Tools(ffmpeg=tools.ffmpeg, ffprobe=None)
    path = str(test_media.root / test_media.mp4)

    async def both() -> None:
        _, _, by_probe = await probe_source(tools, path, None, 1.0, in_process=False)
        _, _, by_av = await probe_source(pyav, path, None, 1.0)
        assert by_probe is not None and by_av is not None
        assert by_av.duration == pytest.approx(by_probe.duration, abs=Decimal("0.05"))
        assert by_av.video == by_probe.video
        assert by_av.audio is not None and by_av.audio.codec == "aac"
        window = [(Decimal(3), Decimal(9))]
        keys = await probe_keyframes(pyav, path, None, by_av, window, 1.0)
        assert [k for k in keys.positions if 3 <= k < 9] == [
            Decimal(k) for k in range(4, 9, KEYFRAME_INTERVAL)
        ]
        by_ffprobe = await probe_keyframes(tools, path, None, by_probe, window, 1.0)
        assert by_ffprobe == keys
        assert keys.reorder_delay == 2  # x264's default: 3 B-frames with pyramid
        out_av = await probe_output(pyav, path, 1.0)
        assert float(out_av.duration) == pytest.approx(stream_duration(Path(path)), abs=0.05)

    asyncio.run(both())


@pytest.mark.parametrize("copy", [True, False], ids=["fast-edit-list", "exact"])
def test_result_measured_in_process_as_ffprobe_does(
    test_media: TestMedia, tmp_path: Path, copy: bool
) -> None:
    """Results are measured with PyAV in-process (no ffprobe run) and the numbers are
    ffprobe's: the duration and the start offset a stream-copied MP4 cut hides with an
    edit list (negative) or an exact cut does not have (zero)."""
    tools = find_tools()
    clip = tmp_path / "clip.mp4"
    codecs = ["-c", "copy"] if copy else ["-c:v", "libx264", "-c:a", "aac"]
    source = str(test_media.root / test_media.mp4)
    subprocess.run(
        [tools.ffmpeg, "-v", "error", "-ss", "5", "-to", "9", "-i", source, *codecs, str(clip)],
        check=True,
    )
    runs: list[str] = []

    async def counting_ffprobe(*args: object) -> object:
        runs.append("ffprobe")
        raise AssertionError("ffprobe was run")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_probe, "_ffprobe_json", counting_ffprobe)
        measured = asyncio.run(probe_output(tools, str(clip), 1.0))
    assert runs == []
    doc = probe(clip)
    video = next(s for s in doc["streams"] if s["codec_type"] == "video")
    assert float(measured.duration) == pytest.approx(float(video["duration"]), abs=0.001)
    assert float(measured.start_offset) == pytest.approx(float(video["start_time"]), abs=0.001)


def test_source_probed_in_process_as_ffprobe_does(source: MediaServer) -> None:
    """Sources are probed with PyAV in-process (no ffprobe run) when it is installed,
    over HTTP (HLS and MP4), with ffprobe's numbers; a source PyAV cannot read is
    described by ffprobe (its error message is the job's)."""
    tools = find_tools()
    runs: list[object] = []
    real = _probe._ffprobe_json

    async def counting_ffprobe(*args: object) -> object:
        runs.append(args)
        return await real(*args)  # type: ignore[arg-type]

    async def probes(url: str) -> tuple[object, object]:
        _, _, fast = await probe_source(tools, url, None, 5.0)
        assert runs == []
        _, _, slow = await probe_source(tools, url, None, 5.0, in_process=False)
        assert len(runs) == 1
        runs.clear()
        return fast, slow

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_probe, "_ffprobe_json", counting_ffprobe)
        for path in ("hls/index.m3u8", "video.mp4"):
            fast, slow = asyncio.run(probes(source.url(path)))
            assert isinstance(fast, SourceInfo) and isinstance(slow, SourceInfo)
            assert fast.video == slow.video and fast.audio is not None and slow.audio is not None
            assert fast.audio.codec == slow.audio.codec == "aac"
            assert (fast.start_time, fast.format_name) == (slow.start_time, slow.format_name)
            assert fast.duration == pytest.approx(slow.duration, abs=Decimal("0.001"))
        status, stderr, info = asyncio.run(
            probe_source(tools, source.url("missing.mp4"), None, 5.0)
        )
    assert info is None and status != 0 and "404" in stderr
    assert len(runs) == 1  # PyAV failed: ffprobe said why


def test_result_falls_back_to_ffprobe_when_pyav_cannot_read(
    test_media: TestMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(path: str) -> object:
        raise ValueError("PyAV cannot read this")

    monkeypatch.setattr(_probe, "_av_output", unreadable)
    path = test_media.root / test_media.mp4
    measured = asyncio.run(probe_output(find_tools(), str(path), 1.0))
    assert float(measured.duration) == pytest.approx(stream_duration(path), abs=0.001)


def test_imageio_ffmpeg_is_the_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no system ffmpeg on this PATH
    find_tools.cache_clear()
    try:
        tools = find_tools()
        assert "imageio_ffmpeg" in tools.ffmpeg
        assert tools.ffprobe is None
    finally:
        find_tools.cache_clear()


def test_media_server_is_quiet_when_a_client_hangs_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ffmpeg closes connections early: the test media server prints no traceback for a
    broken pipe or a reset connection, and still does for other errors."""
    with media_server(tmp_path) as server:
        for error in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset")):
            try:
                raise error
            except OSError:
                server._server.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ""
        try:
            raise ValueError("a real bug")
        except ValueError:
            server._server.handle_error(None, ("127.0.0.1", 1))
        assert "ValueError: a real bug" in capsys.readouterr().err


def test_resolve_checked_takes_literals_as_they_are_and_resolves_names() -> None:
    """Address literals are checked without a resolver; names and shorthands such as
    ``127.1`` are resolved, then checked; none allowed is a refusal naming why."""
    open_loopback = NetworkPolicy(parse_networks("127.0.0.0/8"))

    async def run() -> None:
        assert await resolve_checked(open_loopback, "127.0.0.1", 80) == ["127.0.0.1"]
        assert await resolve_checked(open_loopback, "127.1", 80) == ["127.0.0.1"]
        assert "127.0.0.1" in await resolve_checked(open_loopback, "localhost", 80)
        for host in ("10.0.0.1", "::1", "fe80::1%1", "::ffff:192.168.0.1", "127.0.0.1"):
            with pytest.raises(SourceRefused, match="address"):
                await resolve_checked(NetworkPolicy(()), host, 80)

    asyncio.run(run())


def test_ffmpeg_gets_its_death_signal_from_setpriv_when_installed() -> None:
    """With util-linux's setpriv (Debian has it), ffmpeg is started through it, so the
    server spawns without fork + preexec_fn; without it, preexec_fn sets the signal."""
    launcher = _ffmpeg._find_launcher()
    if sys.platform == "linux" and shutil.which("setpriv"):
        assert launcher[1:] == ["--pdeathsig", "KILL", "--"]
    else:
        assert launcher == []
