"""The wirelab stream format, sans-IO: frame encoders, a grammar-checking encoder and a decoder.

Nothing here does I/O. :class:`StreamEncoder` turns calls into bytes for a sender to write;
:class:`StreamDecoder` turns received bytes, split anywhere, into :data:`Event` objects. The
format is specified in ``docs/protocol/stream.md``.
"""

from ._decoder import StreamDecoder
from ._encoder import StreamEncoder
from ._events import (
    Event,
    FileData,
    FileEnded,
    FileStarted,
    StreamAborted,
    StreamEnded,
    StreamStarted,
)
from ._frames import (
    MAX_DATA_PAYLOAD,
    MAX_JSON_PAYLOAD,
    PREAMBLE,
    FrameType,
    encode_frame,
    encode_frame_header,
    encode_json_frame,
)

__all__ = [
    "MAX_DATA_PAYLOAD",
    "MAX_JSON_PAYLOAD",
    "PREAMBLE",
    "Event",
    "FileData",
    "FileEnded",
    "FileStarted",
    "FrameType",
    "StreamAborted",
    "StreamDecoder",
    "StreamEncoder",
    "StreamEnded",
    "StreamStarted",
    "encode_frame",
    "encode_frame_header",
    "encode_json_frame",
]
