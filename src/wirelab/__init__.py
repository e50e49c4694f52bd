"""wirelab: servers, clients and test doubles for programs that move files and byte streams.

The public names live here; every submodule whose name starts with ``_`` is private.
"""

from ._exceptions import (
    HTTPStatusError,
    IntegrityError,
    NetworkError,
    ProtocolError,
    TimeoutError,
    TransportError,
    TruncatedError,
    UsageError,
    WirelabError,
)
from ._version import __version__

__all__ = [
    "HTTPStatusError",
    "IntegrityError",
    "NetworkError",
    "ProtocolError",
    "TimeoutError",
    "TransportError",
    "TruncatedError",
    "UsageError",
    "WirelabError",
    "__version__",
]
