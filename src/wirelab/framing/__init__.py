"""The wirelab stream format, sans-IO: frame encoders, a grammar-checking encoder and a decoder.

Nothing here does I/O. :class:`StreamEncoder` turns calls into bytes for a sender to write;
:class:`StreamDecoder` turns received bytes, split anywhere, into :data:`Event` objects. The
format is specified in ``docs/protocol/stream.md``.

Two generic codecs, in the same sans-IO style, frame other protocols: :class:`LengthPrefixCodec`
(``length | payload``) and :class:`DelimiterCodec` (``payload | delimiter``, e.g. lines).
"""

from ._codec import FrameCodec
from ._decoder import StreamDecoder
from ._delimiter import DelimiterCodec, DelimiterDecoder
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
from ._length_prefix import LengthPrefixCodec, LengthPrefixDecoder

__all__ = [
    "MAX_DATA_PAYLOAD",
    "MAX_JSON_PAYLOAD",
    "PREAMBLE",
    "DelimiterCodec",
    "DelimiterDecoder",
    "Event",
    "FileData",
    "FileEnded",
    "FileStarted",
    "FrameCodec",
    "FrameType",
    "LengthPrefixCodec",
    "LengthPrefixDecoder",
    "StreamAborted",
    "StreamDecoder",
    "StreamEncoder",
    "StreamEnded",
    "StreamStarted",
    "encode_frame",
    "encode_frame_header",
    "encode_json_frame",
]
