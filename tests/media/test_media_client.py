"""MediaClient against a live server and the test media: submit, follow, download with
Range resume and SHA-256 verification, failures, listing, cancel, isolation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wirelab import HTTPStatusError, IntegrityError, UsageError
from wirelab.client import MediaClient, MediaJob, MediaJobError
from wirelab.media.testing import MediaServer, TestMedia, stream_duration

from .conftest import Media

FRAME = 1 / 25


def token_of(media: Media, user: str) -> str:
    return media.clients[user].headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def client(media: Media) -> Iterator[Callable[[str], MediaClient]]:
    made: list[MediaClient] = []

    def make(user: str = "alice") -> MediaClient:
        made.append(MediaClient(media.server.url, token=token_of(media, user)))
        return made[-1]

    yield make
    for c in made:
        c.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.distributed
def test_submit_follow_download_verified(
    client: Callable[[str], MediaClient], source: MediaServer, test_media: TestMedia,
    tmp_path: Path,
) -> None:  # fmt: skip
    alice = client("alice")
    seen: list[MediaJob] = []
    job = alice.submit(source.url(test_media.hls), start="00:00:03", end="7.48", accuracy="exact")
    assert job.state in ("queued", "running") and not job.finished
    got = alice.follow(job.id, out_dir=tmp_path, on_update=seen.append)
    assert got.path == tmp_path / got.job.file_name and got.resumed_from == 0
    assert got.job.state == "succeeded" and got.job.progress == 100
    assert sha256(got.path) == got.job.sha256 and got.path.stat().st_size == got.job.size
    assert got.job.duration == pytest.approx(4.48, abs=FRAME)  # measured by the server
    assert got.job.duration == pytest.approx(stream_duration(got.path), abs=0.001)
    progress = [j.progress for j in seen]
    assert progress == sorted(progress) and seen[-1].finished
    assert not list(tmp_path.glob(".*wirelab-part"))  # no partial file left behind


def test_the_same_request_returns_the_same_job(
    client: Callable[[str], MediaClient], source: MediaServer, test_media: TestMedia
) -> None:
    alice = client("alice")
    first = alice.submit(source.url(test_media.mp4), end="2", accuracy="fast")
    again = alice.submit(source.url(test_media.mp4), end="2", accuracy="fast")
    assert again.id == first.id
    keyed = alice.submit(source.url(test_media.mp4), end="3", idempotency_key="k-1")
    assert alice.submit(source.url(test_media.mp4), end="3", idempotency_key="k-1").id == keyed.id


def test_a_download_resumes_a_partial_file_and_checks_the_digest(
    client: Callable[[str], MediaClient], source: MediaServer, test_media: TestMedia,
    tmp_path: Path,
) -> None:  # fmt: skip
    alice = client("alice")
    job = alice.wait(alice.submit(source.url(test_media.mp4), end="4", accuracy="fast").id)
    whole = alice.download(job, tmp_path / "whole.mp4").path.read_bytes()
    assert job.size is not None and job.size > 1000

    # A partial file of the right bytes is continued with Range.
    part = tmp_path / f".{job.id}.wirelab-part"
    part.write_bytes(whole[:1000])
    got = alice.download(job, tmp_path / "resumed.mp4")
    assert got.resumed_from == 1000 and got.path.read_bytes() == whole

    # Wrong bytes in the partial file: the digest check refuses, nothing is written.
    part.write_bytes(b"x" * 1000)
    with pytest.raises(IntegrityError, match="do not match the SHA-256"):
        alice.download(job, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists() and not part.exists()

    # The identical file is there already: nothing is rewritten.
    before = (tmp_path / "whole.mp4").stat().st_mtime_ns
    assert alice.download(job, tmp_path / "whole.mp4").path == tmp_path / "whole.mp4"
    assert (tmp_path / "whole.mp4").stat().st_mtime_ns == before
    other = tmp_path / "other.mp4"
    other.write_bytes(b"other content")
    with pytest.raises(UsageError, match="exists"):  # never clobbers without overwrite
        alice.download(job, other)
    assert other.read_bytes() == b"other content"
    assert alice.download(job, other, overwrite=True).path.read_bytes() == whole


def test_a_failed_job_raises_with_the_servers_reason(
    client: Callable[[str], MediaClient], source: MediaServer, test_media: TestMedia,
    tmp_path: Path,
) -> None:  # fmt: skip
    alice = client("alice")
    job = alice.submit(source.url("missing.mp4"), end="2")
    with pytest.raises(MediaJobError) as caught:
        alice.follow(job.id, out_dir=tmp_path)
    assert caught.value.job.state == "failed" and caught.value.job.error is not None
    assert caught.value.job.error.message in str(caught.value)
    assert not list(tmp_path.iterdir())


def test_bad_requests_are_http_errors_with_the_servers_message(
    client: Callable[[str], MediaClient], source: MediaServer, test_media: TestMedia
) -> None:
    with pytest.raises(HTTPStatusError) as caught:
        client("alice").submit(source.url(test_media.mp4), start="9", end="3")
    assert caught.value.status_code == 422 and "before end" in str(caught.value)


def test_jobs_list_cancel_and_isolation(
    client: Callable[[str], MediaClient], source: MediaServer, test_media: TestMedia
) -> None:
    alice, bob = client("alice"), client("bob")
    first = alice.wait(alice.submit(source.url(test_media.mp4), end="1", accuracy="fast").id)
    second = alice.wait(alice.submit(source.url(test_media.mp4), end="2", accuracy="fast").id)
    assert [j.id for j in alice.jobs()] == [second.id, first.id]  # newest first
    assert [j.id for j in alice.jobs("succeeded")] == [second.id, first.id]
    assert alice.jobs("failed") == [] and bob.jobs() == []
    with pytest.raises(HTTPStatusError) as caught:
        bob.job(first.id)
    assert caught.value.status_code == 404
    with pytest.raises(HTTPStatusError):
        bob.cancel(first.id)

    assert alice.cancel(first.id) is None  # finished: deleted with its result
    assert [j.id for j in alice.jobs()] == [second.id]
    with pytest.raises(HTTPStatusError) as caught:
        alice.job(first.id)
    assert caught.value.status_code == 404


@pytest.mark.distributed
def test_cancel_a_running_job(
    client: Callable[[str], MediaClient], source: MediaServer, test_media: TestMedia
) -> None:
    alice = client("alice")
    job = alice.submit(source.url("slow/" + test_media.hls), start="2", end="20")
    canceled = alice.cancel(job.id)
    assert canceled is not None and canceled.id == job.id
    final = alice.wait(job.id)
    assert final.state == "canceled"
    with pytest.raises(MediaJobError, match="canceled"):
        alice.follow(job.id)
