"""Long polls on a job (``GET /v1/media/jobs/{id}?wait=S``) and the client that uses them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from wirelab.client import MediaClient
from wirelab.media._watch import JobChanges
from wirelab.media.testing import MediaServer, TestMedia

from .conftest import Media, wait_job


def _submit(media: Media, **body: Any) -> str:
    response = media.alice.post("/v1/media/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _look(media: Media, job_id: str, wait: float) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    response = media.alice.get(f"/v1/media/jobs/{job_id}", params={"wait": wait})
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc, time.monotonic() - began


@pytest.mark.parametrize("wait", ["-1", "60.5", "soon", "nan", "inf", ""])
def test_bad_wait_is_422_naming_the_parameter(media: Media, source: MediaServer, wait: str) -> None:
    job_id = _submit(media, source=source.url("video.mp4"), end="1", accuracy="fast")
    response = media.alice.get(f"/v1/media/jobs/{job_id}", params={"wait": wait})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "wait"]


@pytest.mark.distributed
def test_a_look_waits_for_a_change_and_answers_on_it(
    media_factory: Callable[..., Media], source: MediaServer, test_media: TestMedia
) -> None:
    """One worker busy with a slow job: a second job stays queued. A look with ``wait``
    holds while nothing changes, and answers as soon as the job is canceled."""
    source.slow_delay = 2.0
    media = media_factory(workers=1)
    busy = _submit(media, source=source.url("slow/" + test_media.hls), end="20")
    wait_job(media.alice, busy, states=("running",))
    queued = _submit(media, source=source.url("video.mp4"), end="2", accuracy="fast")
    doc, took = _look(media, queued, 0.4)
    assert doc["state"] == "queued" and took >= 0.4  # held: nothing changed
    answers: list[tuple[dict[str, Any], float]] = []
    looking = threading.Thread(target=lambda: answers.append(_look(media, queued, 30)))
    looking.start()
    time.sleep(0.3)  # let the look start waiting (it answers the same either way)
    assert media.alice.delete(f"/v1/media/jobs/{queued}").status_code in (200, 202)
    looking.join(60)
    [(doc, took)] = answers
    assert doc["state"] == "canceled" or doc["cancel_requested"]
    assert took < 25  # answered on the change, not at the end of the wait
    media.alice.delete(f"/v1/media/jobs/{busy}")


def test_a_final_job_is_answered_at_once(media: Media, source: MediaServer) -> None:
    job_id = _submit(media, source=source.url("video.mp4"), end="1", accuracy="fast")
    final, _ = wait_job(media.alice, job_id)
    doc, took = _look(media, job_id, 30)
    assert doc == final and took < 25


def test_the_client_follows_with_long_polls(
    media: Media, source: MediaServer, test_media: TestMedia
) -> None:
    """``MediaClient.wait`` never sleeps between looks on a server that holds them: each
    look returns when the job changed."""
    token = media.clients["alice"].headers["Authorization"].removeprefix("Bearer ")
    slept: list[float] = []
    with MediaClient(media.server.url, token=token) as alice:
        job = alice.submit(source.url(test_media.hls), start="1", end="5", accuracy="exact")
        looks: list[float] = []
        final = alice.wait(job.id, on_update=lambda j: looks.append(j.progress), sleep=slept.append)
    assert final.state == "succeeded" and looks[-1] == 100
    assert looks == sorted(looks)
    assert slept == []


def test_job_changes_wake_waiters_and_forget_them() -> None:
    async def run() -> None:
        changes = JobChanges()
        waiters = [asyncio.create_task(changes.wait("a", 30)) for _ in range(3)]
        await asyncio.sleep(0)
        changes.notify("b")  # another job: nobody wakes
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        changes.notify("a")
        await asyncio.wait_for(asyncio.gather(*waiters), 5)
        await changes.wait("a", 0.01)  # no notice: returns after the time
        assert changes._waiting == {}

    asyncio.run(run())
