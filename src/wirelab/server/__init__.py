"""The wirelab server: ASGI app assembly, configuration and the uvicorn runner."""

from ._app import create_app
from ._config import LOG_LEVELS, ConnectionLimits, ServerConfig, default_data_dir
from ._lock import DataDirLockedError

__all__ = [
    "LOG_LEVELS",
    "ConnectionLimits",
    "DataDirLockedError",
    "ServerConfig",
    "create_app",
    "default_data_dir",
]
