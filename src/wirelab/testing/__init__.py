"""Test doubles for network clients: scripted fake servers, faults, and a pytest plugin.

Importable without pytest. The pieces:

* Scripted servers (:class:`ScriptedServer` for sync tests, :class:`AsyncScriptedServer`
  for asyncio): a script of steps per connection, faults named by what the client observes
  (:data:`FAULTS`), TLS with throwaway or deliberately bad certificates (:class:`BadCert`).
* The classic command-list servers: :class:`CommandServer`, :class:`OneShotServer`,
  :class:`AsyncioCommandServer`, the bases :class:`GenericServer` and
  :class:`TestTCPServer`, and the classic :class:`TestingSocket`.
* :class:`FaultSocket` and :func:`install_fault_socket`: a real socket that records traffic
  and injects faults on the client side.
* :class:`ExpectServer`: the expectation-style server behind the ``tcpserver`` pytest
  fixtures (see :mod:`wirelab.testing.pytest_plugin`), and pytest-tcpclient's framing
  helpers :func:`write_frame` / :func:`read_frame`.
* :func:`live_server`: a real wirelab server on 127.0.0.1 port 0, in a thread.

Names are imported lazily: the pytest plugin lives in this package and is loaded in every
pytest run, so importing the package must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._command import (
        RECEIVE,
        Command,
        CommandServer,
        GenericServer,
        OneShotServer,
        TestTCPServer,
    )
    from ._command_async import AsyncioCommandServer
    from ._expect import ExpectedConnection, ExpectServer, ExpectServerFactory
    from ._expect_errors import ExpectationFailed
    from ._fault_install import install_fault_socket
    from ._fault_socket import FaultSocket
    from ._framing_helpers import read_frame, write_frame
    from ._live import LiveServer, live_server
    from ._scripted import (
        DEFAULT_TIMEOUT,
        FAULTS,
        AsyncScriptedServer,
        BadCert,
        Close,
        Drip,
        Expect,
        ExpectEOF,
        ExpectFrame,
        ExpectStream,
        Fault,
        FrameCodec,
        HalfClose,
        Recv,
        RecvExactly,
        RecvUntil,
        RecvUntilEOF,
        Reset,
        ScriptedServer,
        ScriptError,
        Send,
        SendFrame,
        SendSegments,
        Sleep,
        Stall,
        Step,
        StopReading,
        Then,
        refused_address,
    )
    from ._testing_socket import TestingSocket
    from ._transcript import Record, Transcript, hexdump

_SCRIPTED = [
    "DEFAULT_TIMEOUT", "FAULTS", "AsyncScriptedServer", "BadCert", "Close", "Drip", "Expect",
    "ExpectEOF", "ExpectFrame", "ExpectStream", "Fault", "FrameCodec", "HalfClose", "Recv",
    "RecvExactly", "RecvUntil", "RecvUntilEOF", "Reset", "ScriptError", "ScriptedServer",
    "Send", "SendFrame", "SendSegments", "Sleep", "Stall", "Step", "StopReading", "Then",
    "refused_address",
]  # fmt: skip

_WHERE: dict[str, str] = {
    **dict.fromkeys(_SCRIPTED, "._scripted"),
    **dict.fromkeys(
        ["RECEIVE", "Command", "CommandServer", "GenericServer", "OneShotServer", "TestTCPServer"],
        "._command",
    ),
    "AsyncioCommandServer": "._command_async",
    **dict.fromkeys(["ExpectServer", "ExpectServerFactory", "ExpectedConnection"], "._expect"),
    "ExpectationFailed": "._expect_errors",
    "FaultSocket": "._fault_socket",
    "TestingSocket": "._testing_socket",
    **dict.fromkeys(["read_frame", "write_frame"], "._framing_helpers"),
    "install_fault_socket": "._fault_install",
    **dict.fromkeys(["LiveServer", "live_server"], "._live"),
    **dict.fromkeys(["Record", "Transcript", "hexdump"], "._transcript"),
}

__all__ = [
    "DEFAULT_TIMEOUT",
    "FAULTS",
    "RECEIVE",
    "AsyncScriptedServer",
    "AsyncioCommandServer",
    "BadCert",
    "Close",
    "Command",
    "CommandServer",
    "Drip",
    "Expect",
    "ExpectEOF",
    "ExpectFrame",
    "ExpectServer",
    "ExpectServerFactory",
    "ExpectStream",
    "ExpectationFailed",
    "ExpectedConnection",
    "Fault",
    "FaultSocket",
    "FrameCodec",
    "GenericServer",
    "HalfClose",
    "LiveServer",
    "OneShotServer",
    "Record",
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
    "TestTCPServer",
    "TestingSocket",
    "Then",
    "Transcript",
    "hexdump",
    "install_fault_socket",
    "live_server",
    "read_frame",
    "refused_address",
    "write_frame",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)
