"""A client of the classic clip API that makes exactly the original service's documented
calls, in the requests style (URL + JSON body, query parameters), through httpx.

The original service's own client is not available; this one stands in for it: it knows
nothing of wirelab (no token, no ``/v1``), only a base URL, and it treats every answer
the way the original documentation describes it. ``body_style`` chooses how the
``schedule`` body travels, since the original accepted JSON whatever the Content-Type:
``json`` (``requests.post(url, json=...)``), ``data`` (``data=json.dumps(...)``, no
Content-Type), ``form`` (``application/x-www-form-urlencoded``, as ``requests`` labels a
``data=`` dict) or ``text`` (``text/plain``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["HopsterClient", "HopsterError"]

_CONTENT_TYPES = {
    "json": "application/json",
    "data": None,
    "form": "application/x-www-form-urlencoded",
    "text": "text/plain; charset=utf-8",
}


class HopsterError(Exception):
    """The service answered ``{"error": {"message", "code"}}`` (HTTP 400)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(f"{code}: {message}")
        self.message = message
        self.code = code


class HopsterClient:
    """``HopsterClient("http://host:port/hopster")``: welcome, schedule, progress, download."""

    def __init__(self, base_url: str, *, body_style: str = "json", **httpx_options: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.body_style = body_style
        self._http = httpx.Client(timeout=30, **httpx_options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HopsterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code == 400:
            error = response.json()["error"]
            raise HopsterError(error["message"], error["code"])
        response.raise_for_status()
        return response.json()

    def welcome(self) -> str:
        return str(self._answer(self._http.get(self.base_url + "/"))["message"])

    def schedule(self, video_id: str, start: str | None = None, stop: str | None = None) -> str:
        """``POST /schedule`` with ``{"video_id", "start"?, "stop"?}``; the file's name."""
        payload: dict[str, str] = {"video_id": video_id}
        if start is not None:
            payload["start"] = start
        if stop is not None:
            payload["stop"] = stop
        return self.schedule_raw(json.dumps(payload).encode())

    def schedule_raw(self, body: bytes) -> str:
        content_type = _CONTENT_TYPES[self.body_style]
        headers = {"Content-Type": content_type} if content_type else {}
        response = self._http.post(self.base_url + "/schedule", content=body, headers=headers)
        return str(self._answer(response)["video_file"])

    def is_finished(self, reference: str) -> bool:
        """``GET /progress?reference=NAME``."""
        response = self._http.get(self.base_url + "/progress", params={"reference": reference})
        finished = self._answer(response)["is_finished"]
        assert isinstance(finished, bool)
        return finished

    def wait(self, reference: str, *, interval: float = 0.1, timeout: float = 120) -> None:
        """Poll ``progress`` until the file is finished, as the original's users did."""
        deadline = time.monotonic() + timeout
        while not self.is_finished(reference):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{reference} not finished after {timeout} s")
            time.sleep(interval)

    def download(self, video_file: str, path: Path) -> Path:
        """``GET /download?video_file=NAME`` streamed into ``path``."""
        params = {"video_file": video_file}
        with self._http.stream("GET", self.base_url + "/download", params=params) as response:
            if response.status_code != 200:
                response.read()
                self._answer(response)
            assert response.headers["content-type"] == "video/mp4"
            with path.open("wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
        return path

    def get(self, path: str, **params: str) -> httpx.Response:
        """A raw ``GET`` (for the tests of missing arguments)."""
        return self._http.get(self.base_url + path, params=params)
