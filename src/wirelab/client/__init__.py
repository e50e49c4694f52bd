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

from ._async import AsyncClient, AsyncEventStream, AsyncStreamReader
from ._files import StreamedFile
from ._options import StreamOptions
from ._request import DEFAULT_URL
from ._sync import Client, EventStream, StreamReader

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncStreamReader",
    "Client",
    "EventStream",
    "StreamOptions",
    "StreamReader",
    "StreamedFile",
]
