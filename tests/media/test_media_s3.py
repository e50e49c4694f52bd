"""Media results on S3 storage (moto in server mode): stored in the bucket, and
``GET .../result?redirect=1`` answers a 307 to a presigned, expiring URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wirelab.media.testing import MediaServer
from wirelab.testing._s3server import S3Server, aws_env

from .conftest import Media, wait_job


@pytest.mark.distributed
def test_result_in_s3_and_redirect(
    media_factory: Callable[..., Media],
    source: MediaServer,
    moto_s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name, value in aws_env(moto_s3, tmp_path).items():
        monkeypatch.setenv(name, value) if value is not None else monkeypatch.delenv(
            name, raising=False
        )
    media = media_factory(storage_url=f"s3://{moto_s3.new_bucket()}/wirelab")
    submitted = media.alice.post(
        "/v1/media/jobs", json={"source": source.url("video.mp4"), "end": "2"}
    )
    assert submitted.status_code in (200, 202), submitted.text
    job, _ = wait_job(media.alice, str(submitted.json()["id"]))
    assert job["state"] == "succeeded", job
    url = job["result"]["url"]
    streamed = media.alice.get(url)
    assert streamed.status_code == 200
    assert len(streamed.content) == job["result"]["size"]
    moved = media.alice.get(url, params={"redirect": "1"})
    assert moved.status_code == 307
    assert moved.headers["location"].startswith(moto_s3.endpoint)
    direct = httpx.get(moved.headers["location"])
    assert direct.content == streamed.content
    assert direct.headers["content-type"] == streamed.headers["content-type"]
    assert media.bob.get(url, params={"redirect": "1"}).status_code == 404
