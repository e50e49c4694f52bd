"""Where ffmpeg and ffprobe are: the system's on ``PATH``, else the ``imageio-ffmpeg`` wheel.

The wheel ships ffmpeg but no ffprobe; probing then uses PyAV (:mod:`wirelab.media._probe`).
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass

from ._errors import ToolMissing

__all__ = ["Tools", "find_tools"]


@dataclass(frozen=True, slots=True)
class Tools:
    """``ffmpeg``: the executable to run; ``ffprobe``: ``None`` when only PyAV probes."""

    ffmpeg: str
    ffprobe: str | None


@functools.cache
def find_tools() -> Tools:
    """The tools to use (looked up once per process). :class:`ToolMissing` when there is
    no ffmpeg at all, naming both ways to get one."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is not None:
        return Tools(ffmpeg, shutil.which("ffprobe"))
    try:
        import imageio_ffmpeg

        return Tools(str(imageio_ffmpeg.get_ffmpeg_exe()), shutil.which("ffprobe"))
    except (ImportError, RuntimeError) as exc:
        raise ToolMissing(
            "media jobs need ffmpeg: install your system's ffmpeg package, or"
            f" pip install 'wirelab[media]' ({exc})"
        ) from exc
