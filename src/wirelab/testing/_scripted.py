"""Scripted servers: the public names of this part of :mod:`wirelab.testing`, in one place.

A scripted server runs a script (a list of steps) on each connection it accepts, records a
transcript per connection, and re-raises in the test what went wrong in the server. See
:class:`ScriptedServer` (threads, for sync tests) and :class:`AsyncScriptedServer`
(asyncio). Faults are named by what the client observes: see :data:`FAULTS`.
"""

from __future__ import annotations

from ._faults import FAULTS, Fault, refused_address
from ._runner import ScriptError
from ._server_async import AsyncScriptedServer
from ._server_base import Then
from ._server_thread import ScriptedServer
from ._steps import (
    DEFAULT_TIMEOUT,
    Close,
    Drip,
    FrameCodec,
    HalfClose,
    Reset,
    Send,
    SendFrame,
    SendSegments,
    Sleep,
    Stall,
    Step,
    StopReading,
)
from ._steps_recv import (
    Expect,
    ExpectEOF,
    ExpectFrame,
    ExpectStream,
    Recv,
    RecvExactly,
    RecvUntil,
    RecvUntilEOF,
)
from ._tls import BadCert

__all__ = [
    "DEFAULT_TIMEOUT",
    "FAULTS",
    "AsyncScriptedServer",
    "BadCert",
    "Close",
    "Drip",
    "Expect",
    "ExpectEOF",
    "ExpectFrame",
    "ExpectStream",
    "Fault",
    "FrameCodec",
    "HalfClose",
    "Recv",
    "RecvExactly",
    "RecvUntil",
    "RecvUntilEOF",
    "Reset",
    "ScriptError",
    "ScriptedServer",
    "Send",
    "SendFrame",
    "SendSegments",
    "Sleep",
    "Stall",
    "Step",
    "StopReading",
    "Then",
    "refused_address",
]
