"""The failure raised by :class:`~wirelab.testing._expect.ExpectServer` (kept tiny on purpose).

This module imports nothing but the exception tree, so that the pytest plugin, which is
loaded in every pytest run, can refer to :class:`ExpectationFailed` without importing the
server engine (asyncio, threads) until a test actually asks for a ``tcpserver``.
"""

from __future__ import annotations

from .._exceptions import WirelabError

__all__ = ["ExpectationFailed"]


class ExpectationFailed(WirelabError, AssertionError):
    """An expectation of an :class:`ExpectServer` was not met, or the server itself failed.

    It is an :class:`AssertionError` (a test that does not catch it fails, as with a bare
    ``assert``) and a :class:`~wirelab.WirelabError`.

    ``str(exc)`` is one line, identical to pytest-tcpclient's message where that plugin has
    one (``Timed out waiting for b'Hello, world!'``), so that ``pytest.raises(...,
    match="^...$")`` patterns written for it keep working. Everything else is in
    attributes, never in the message or in ``__notes__`` (pytest matches those too):

    ``details``
        A multi-line report: the failing step, the expected and actual bytes as hexdumps,
        the first mismatching byte and the connection's transcript. The pytest plugin
        prints it as a section of the failure report.
    ``mismatch_offset``
        Offset of the first mismatching byte within the bytes that were compared (the
        read, or the frame's payload); ``None`` when the failure is not a byte mismatch or
        the matcher cannot point at a byte (regex, predicate).
    """

    def __init__(
        self, message: str, *, details: str = "", mismatch_offset: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.mismatch_offset = mismatch_offset
