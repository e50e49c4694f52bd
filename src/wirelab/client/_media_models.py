"""What the media client returns: jobs as the server describes them, downloaded clips."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .._exceptions import ProtocolError, WirelabError
from .._filenames import sanitize_filename

__all__ = [
    "FINAL_STATES",
    "JOB_ID",
    "JOB_STATES",
    "DownloadedClip",
    "JobError",
    "MediaJob",
    "MediaJobError",
    "parse_job",
]

JOB_STATES: Final = ("queued", "running", "succeeded", "failed", "canceled")
FINAL_STATES: Final = frozenset({"succeeded", "failed", "canceled"})
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
JOB_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job failed: the server's ``message``, and whether a retry may succeed."""

    message: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class MediaJob:
    """A clip job as the server describes it (``raw`` is the whole JSON object).

    ``state`` is one of :data:`JOB_STATES`; ``progress`` is 0-100; ``phase`` names what
    the job does now (the server's word). For a succeeded job, ``size`` and ``sha256``
    describe the result (the server's ``result`` object), ``duration`` and ``start`` are
    measured on the output file (seconds), and ``expires_at`` says until when it can be
    downloaded.
    """

    id: str
    state: str
    progress: float
    phase: str | None
    error: JobError | None
    size: int | None
    sha256: str | None
    duration: float | None
    start: float | None
    expires_at: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def finished(self) -> bool:
        """Whether the job reached a final state (succeeded, failed or canceled)."""
        return self.state in FINAL_STATES

    @property
    def file_name(self) -> str:
        """A safe local name for the result: the server's name for it (sanitized here
        again), else ``<id>.<container>``."""
        result = self.raw.get("result")
        name = result.get("name") if isinstance(result, dict) else None
        if isinstance(name, str) and name.strip():
            return sanitize_filename(name)
        request = self.raw.get("request")
        container = request.get("container") if isinstance(request, dict) else None
        ext = container if isinstance(container, str) and container.isalnum() else "mp4"
        return f"{self.id}.{ext}"


class MediaJobError(WirelabError):
    """A job ended without a result (``failed`` or ``canceled``); ``job`` says how."""

    def __init__(self, job: MediaJob) -> None:
        if job.state == "failed" and job.error is not None:
            why = job.error.message + (" (retryable)" if job.error.retryable else "")
        else:
            why = job.state
        super().__init__(f"media job {job.id} {job.state}: {why}")
        self.job = job


@dataclass(frozen=True, slots=True)
class DownloadedClip:
    """A job's result written to ``path`` and verified against the job's SHA-256.

    ``resumed_from`` is the size of the partial download this run continued (``0`` when
    it started from the beginning).
    """

    job: MediaJob
    path: Path
    resumed_from: int


def _number(doc: dict[str, Any], name: str) -> float | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"the server's job has an invalid {name!r}: {value!r}")
    return float(value)


def _error(doc: dict[str, Any]) -> JobError | None:
    error = doc.get("error")
    if error is None:
        return None
    if isinstance(error, str):
        return JobError(error, False)
    if not isinstance(error, dict):
        raise ProtocolError("the server's job has an invalid 'error'")
    return JobError(str(error.get("message") or "failed"), error.get("retryable") is True)


def parse_job(doc: Any) -> MediaJob:
    """A :class:`MediaJob` from the server's JSON; :class:`~wirelab.ProtocolError` if bad."""
    if not isinstance(doc, dict):
        raise ProtocolError("expected a job (a JSON object) from the server")
    job_id, state = doc.get("id"), doc.get("state")
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise ProtocolError(f"the server sent an invalid job id {job_id!r}")
    if state not in JOB_STATES:
        raise ProtocolError(f"the server sent an unknown job state {state!r}")
    result = doc.get("result") or {}
    if not isinstance(result, dict):
        raise ProtocolError("the server's job has an invalid 'result'")
    sha256 = result.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise ProtocolError(f"the server sent an invalid sha256 {sha256!r}")
    size = _number(result, "size")
    if size is not None and (size < 0 or size != int(size)):
        raise ProtocolError(f"the server sent an invalid size {size!r}")
    phase, expires = doc.get("phase"), doc.get("expires_at")
    return MediaJob(
        id=job_id,
        state=state,
        progress=min(100.0, max(0.0, _number(doc, "progress") or 0.0)),
        phase=phase if isinstance(phase, str) else None,
        error=_error(doc),
        size=None if size is None else int(size),
        sha256=sha256,
        duration=_number(result, "duration"),
        start=_number(result, "start"),
        expires_at=expires if isinstance(expires, str) else None,
        raw=doc,
    )
