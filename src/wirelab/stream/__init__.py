"""The Stream service: sequences of synthetic binary files for testing stream consumers.

The generator (:class:`StreamParams`, :func:`iter_plan`, :class:`ContentSource`) is pure;
the HTTP side is :func:`build_router` plus the asyncio engine behind it.
"""

from ._content import CHUNK_SIZE, ContentSource
from ._params import (
    CONTENTS,
    DTYPES,
    SAMPLE_WIDTH,
    InvalidParams,
    ParamProblem,
    StreamLimits,
    StreamParams,
)
from ._plan import FileSpec, iter_plan, new_seed
from ._runtime import StreamRuntime

__all__ = [
    "CHUNK_SIZE",
    "CONTENTS",
    "DTYPES",
    "SAMPLE_WIDTH",
    "ContentSource",
    "FileSpec",
    "InvalidParams",
    "ParamProblem",
    "StreamLimits",
    "StreamParams",
    "StreamRuntime",
    "iter_plan",
    "new_seed",
]
