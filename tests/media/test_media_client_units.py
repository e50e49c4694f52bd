"""Pieces of the media client and CLI that need no server: job parsing, polling, the bar."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from wirelab import ProtocolError, UsageError
from wirelab._cli_media import JobBar
from wirelab.client import MediaClient, MediaJob, MediaJobError
from wirelab.client._media import MAX_POLL_S, MIN_POLL_S, poll_interval
from wirelab.client._media_models import parse_job

SHA = "ab" * 32


def job(**fields: Any) -> MediaJob:
    return parse_job({"id": "j1", "state": "running", "progress": 0, **fields})


def test_a_succeeded_job_is_parsed() -> None:
    result = {"size": 10, "sha256": SHA, "duration": 4.0, "start": 3.0}
    got = job(state="succeeded", progress=100, result=result, phase="done",
              expires_at="2030-01-01T00:00:00Z", request={"container": "mkv"})  # fmt: skip
    assert got.finished and got.size == 10 and got.sha256 == SHA
    assert (got.duration, got.start, got.progress) == (4.0, 3.0, 100.0)
    assert got.file_name == "j1.mkv"
    named = job(state="succeeded", result={**result, "name": "../../etc/passwd"})
    assert "/" not in named.file_name  # sanitized again


def test_a_failed_job_says_why() -> None:
    failed = job(state="failed", error={"message": "source unreachable", "retryable": True})
    assert failed.error is not None and failed.error.retryable
    assert str(MediaJobError(failed)) == ("media job j1 failed: source unreachable (retryable)")


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"id": "../x", "state": "queued"},
        {"id": "j", "state": "paused"},
        {"id": "j", "state": "succeeded", "result": {"sha256": "nope"}},
        {"id": "j", "state": "succeeded", "result": {"size": -1}},
        {"id": "j", "state": "succeeded", "result": "yes"},
        {"id": "j", "state": "running", "progress": "half"},
        {"id": "j", "state": "failed", "error": 3},
    ],
)
def test_bad_job_documents_are_protocol_errors(doc: Any) -> None:
    with pytest.raises(ProtocolError):
        parse_job(doc)


def test_poll_interval_grows_then_follows_the_job_rate() -> None:
    waits = [MIN_POLL_S]
    for _ in range(20):  # queued, or probing: no progress yet
        waits.append(poll_interval(waits[-1], elapsed=1.0, gained=0, left=100))
    assert waits == sorted(waits) and waits[-1] == MAX_POLL_S
    # 40 % gained in 2 s, 20 % left: the job needs ~1 s more; look again after a quarter.
    assert poll_interval(MAX_POLL_S, elapsed=2.0, gained=40, left=20) == pytest.approx(0.25)
    assert poll_interval(MAX_POLL_S, elapsed=2.0, gained=60, left=12) == pytest.approx(0.1)
    assert poll_interval(MAX_POLL_S, elapsed=0.1, gained=90, left=1) == MIN_POLL_S


def test_ids_that_would_change_the_url_path_are_refused() -> None:
    with MediaClient("http://127.0.0.1:9", token="t") as client:
        for bad in ("", "../x", "a/b", "a?b", "x" * 65):
            with pytest.raises(UsageError):
                client.job(bad)
        with pytest.raises(UsageError, match="either a source URL or a video id"):
            client.submit()
        with pytest.raises(UsageError, match="accuracy"):
            client.submit("http://x", accuracy="perfect")


def test_the_bar_shows_state_phase_and_percent_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with JobBar(enabled=True, console=console) as bar:
        bar.update(job(state="queued"))
        bar.update(job(progress=42, phase="encoding"))
    text = out.getvalue()
    assert "job j1: running (encoding)" in text and "42%" in text


def test_elsewhere_the_bar_is_one_line_per_phase(capsys: pytest.CaptureFixture[str]) -> None:
    with JobBar(enabled=True) as bar:
        for progress in (10, 20, 30):
            bar.update(job(progress=progress, phase="encoding"))
        bar.update(job(state="succeeded", progress=100))
    assert capsys.readouterr().err.splitlines() == [
        "job j1: running (encoding) 10%",
        "job j1: succeeded 100%",
    ]
    with JobBar(enabled=False) as bar:  # --json: nothing at all
        bar.update(job())
    assert capsys.readouterr().err == ""
