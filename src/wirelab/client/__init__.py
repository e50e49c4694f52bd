"""Clients of a wirelab server, blocking and asyncio, in the style of httpx.

>>> from wirelab.client import Client
>>> with Client("http://127.0.0.1:8080") as client:          # doctest: +SKIP
...     with client.stream(count=3, seed=1, content="ramp") as files:
...         for f in files:
...             print(f.name, f.size, f.array()[:4])

:meth:`Client.stream` yields whole, verified files (:class:`StreamedFile`);
:meth:`Client.stream_events` yields the verified decoder events so that a consumer can
write data as it arrives without holding files in memory. Errors are the
:mod:`wirelab` exception tree only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._async import AsyncClient, AsyncEventStream, AsyncStreamReader
    from ._files import StreamedFile
    from ._media import MediaClient
    from ._media_models import DownloadedClip, JobError, MediaJob, MediaJobError
    from ._options import StreamOptions
    from ._relay import RelayClient
    from ._relay_models import InboxFile, Progress, ReceivedFile, SentFile
    from ._request import DEFAULT_URL
    from ._sync import Client, EventStream, StreamReader

# Lazy: a command that only sends files should not pay for numpy and the stream clients.
_WHERE = {
    "AsyncClient": "._async",
    "AsyncEventStream": "._async",
    "AsyncStreamReader": "._async",
    "StreamedFile": "._files",
    "StreamOptions": "._options",
    "MediaClient": "._media",
    "DownloadedClip": "._media_models",
    "JobError": "._media_models",
    "MediaJob": "._media_models",
    "MediaJobError": "._media_models",
    "RelayClient": "._relay",
    "InboxFile": "._relay_models",
    "Progress": "._relay_models",
    "ReceivedFile": "._relay_models",
    "SentFile": "._relay_models",
    "DEFAULT_URL": "._request",
    "Client": "._sync",
    "EventStream": "._sync",
    "StreamReader": "._sync",
}

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncStreamReader",
    "Client",
    "DownloadedClip",
    "EventStream",
    "InboxFile",
    "JobError",
    "MediaClient",
    "MediaJob",
    "MediaJobError",
    "Progress",
    "ReceivedFile",
    "RelayClient",
    "SentFile",
    "StreamOptions",
    "StreamReader",
    "StreamedFile",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)
