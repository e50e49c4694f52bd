"""Users and API tokens: generation, stored form, name rules, ``Authorization`` parsing.

The store of users lives in :mod:`wirelab.db`; this package is pure and does no I/O.
"""

from __future__ import annotations

from ._errors import (
    AuthenticationError,
    InvalidCredentials,
    InvalidUserName,
    MissingCredentials,
    UserExistsError,
    UserNotFoundError,
)
from ._tokens import (
    TOKEN_PREFIX,
    USER_NAME_MAX,
    generate_token,
    hash_token,
    is_token_shaped,
    parse_bearer,
    token_matches,
    validate_user_name,
)

__all__ = [
    "TOKEN_PREFIX",
    "USER_NAME_MAX",
    "AuthenticationError",
    "InvalidCredentials",
    "InvalidUserName",
    "MissingCredentials",
    "UserExistsError",
    "UserNotFoundError",
    "generate_token",
    "hash_token",
    "is_token_shaped",
    "parse_bearer",
    "token_matches",
    "validate_user_name",
]
