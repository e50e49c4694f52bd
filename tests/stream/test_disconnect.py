"""DisconnectWatch: a client's disconnect noticed by stepping ``receive()`` by hand.

Each ``receive`` here is a real coroutine on a real event loop, made to behave as a server's
would (answer at once, wait on an asyncio.Event, yield a bare turn, fail). The server-level
behaviour (a real socket closed mid-stream stops generation) is in test_http.py and
test_fairness.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from wirelab.stream._disconnect import DisconnectWatch, run_until_disconnect
from wirelab.stream._runtime import StreamRuntime

Message = dict[str, Any]


class Client:
    """A ``receive`` like uvicorn's: the request (empty body) at once, then waits until
    :meth:`leave`; records whether a pending call was closed."""

    def __init__(self, *, fail: bool = False, bare_yields: int = 0) -> None:
        self.gone = asyncio.Event()
        self.fail = fail
        self.bare_yields = bare_yields
        self.calls = 0
        self.closed_while_waiting = 0

    def leave(self) -> None:
        self.gone.set()

    async def receive(self) -> Message:
        self.calls += 1
        if self.calls == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        for _ in range(self.bare_yields):
            await asyncio.sleep(0)
        try:
            await self.gone.wait()
        except GeneratorExit:
            self.closed_while_waiting += 1
            raise
        if self.fail:
            raise ConnectionError("receive failed")
        return {"type": "http.disconnect"}


class Calls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.asyncio
@pytest.mark.parametrize("bare_yields", [0, 2])
async def test_disconnect_is_reported_once_from_a_callback(bare_yields: int) -> None:
    client, calls = Client(bare_yields=bare_yields), Calls()
    watch = DisconnectWatch(client.receive, calls)
    await turns()
    assert (watch.disconnected, calls.count) == (False, 0)  # waiting, after the request
    client.leave()
    await turns()
    assert watch.disconnected and watch.error is None and calls.count == 1
    watch.close()
    assert calls.count == 1 and client.calls == 2


@pytest.mark.asyncio
async def test_a_client_already_gone_is_known_at_once_without_the_callback() -> None:
    client, calls = Client(), Calls()
    client.leave()
    watch = DisconnectWatch(client.receive, calls)
    assert watch.disconnected and calls.count == 0
    watch.close()
    await turns()
    assert calls.count == 0


@pytest.mark.asyncio
async def test_close_ends_the_pending_receive_and_no_callback_follows() -> None:
    client, calls = Client(), Calls()
    watch = DisconnectWatch(client.receive, calls)
    await turns()
    watch.close()
    assert client.closed_while_waiting == 1
    assert not client.gone._waiters  # the Event forgot the closed call's future
    client.leave()
    await turns()
    assert calls.count == 0 and not watch.disconnected


@pytest.mark.asyncio
async def test_a_failing_receive_is_reported_with_its_error() -> None:
    client, calls = Client(fail=True), Calls()
    watch = DisconnectWatch(client.receive, calls)
    client.leave()
    await turns()
    assert watch.disconnected and isinstance(watch.error, ConnectionError)
    assert calls.count == 1


@pytest.mark.asyncio
async def test_a_receive_that_yields_something_else_is_an_error() -> None:
    class Odd:
        def __await__(self) -> Any:
            yield "not a future"

    async def receive() -> Message:
        await Odd()
        return {"type": "http.disconnect"}  # pragma: no cover - never resumed

    watch = DisconnectWatch(receive, Calls())
    assert watch.disconnected and isinstance(watch.error, RuntimeError)


# --- run_until_disconnect: the stream's body in the request's task -------------------------


async def body_until(release: asyncio.Event, progress: list[str]) -> None:
    progress.append("started")
    await release.wait()
    progress.append("finished")


async def run(runtime: StreamRuntime, client: Client, body: Awaitable[None]) -> asyncio.Task[None]:
    async def request() -> None:
        await run_until_disconnect(runtime, client.receive, body)  # type: ignore[arg-type]

    task = asyncio.create_task(request())
    await turns()
    return task


@pytest.mark.asyncio
async def test_the_body_is_cancelled_when_the_client_leaves() -> None:
    runtime, client = StreamRuntime(), Client()
    progress: list[str] = []
    task = await run(runtime, client, body_until(asyncio.Event(), progress))
    assert runtime.active == {task}
    client.leave()
    await task  # returns normally: the disconnect's cancellation was taken back
    assert progress == ["started"] and runtime.streams_disconnected == 1
    assert not runtime.active and task.cancelling() == 0


@pytest.mark.asyncio
async def test_a_body_that_ends_leaves_no_watch_behind() -> None:
    runtime, client = StreamRuntime(), Client()
    progress: list[str] = []
    release = asyncio.Event()
    task = await run(runtime, client, body_until(release, progress))
    release.set()
    await task
    assert progress == ["started", "finished"] and client.closed_while_waiting == 1
    client.leave()
    await turns()
    assert runtime.streams_disconnected == 0 and not runtime.active


@pytest.mark.asyncio
async def test_a_body_never_starts_for_a_client_already_gone() -> None:
    runtime, client = StreamRuntime(), Client()
    progress: list[str] = []
    client.leave()
    task = await run(runtime, client, body_until(asyncio.Event(), progress))
    await task
    assert progress == [] and runtime.streams_disconnected == 1


@pytest.mark.asyncio
async def test_a_receive_error_stops_the_body_and_is_raised() -> None:
    runtime, client = StreamRuntime(), Client(fail=True)
    progress: list[str] = []
    task = await run(runtime, client, body_until(asyncio.Event(), progress))
    client.leave()
    with pytest.raises(ConnectionError):
        await task
    assert progress == ["started"] and runtime.streams_disconnected == 1


@pytest.mark.asyncio
async def test_shutdown_cancellation_is_not_taken_for_a_disconnect() -> None:
    runtime, client = StreamRuntime(), Client()
    progress: list[str] = []
    task = await run(runtime, client, body_until(asyncio.Event(), progress))
    runtime.shutdown()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runtime.streams_disconnected == 0 and client.closed_while_waiting == 1
