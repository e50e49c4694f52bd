"""Errors of :mod:`wirelab.auth` and of the user store, all inside the one exception tree."""

from __future__ import annotations

from .._exceptions import UsageError

__all__ = [
    "AuthenticationError",
    "InvalidCredentials",
    "InvalidUserName",
    "MissingCredentials",
    "UserExistsError",
    "UserNotFoundError",
]


class AuthenticationError(UsageError):
    """The request carries no usable credentials. An HTTP server answers it with 401.

    ``status_code`` is always 401; ``www_authenticate`` is the value of the
    ``WWW-Authenticate`` response header that RFC 6750 asks for.
    """

    status_code = 401
    www_authenticate = 'Bearer realm="wirelab"'


class MissingCredentials(AuthenticationError):
    """The request has no ``Authorization`` header (or an empty one)."""


class InvalidCredentials(AuthenticationError):
    """The ``Authorization`` header is malformed, not ``Bearer``, or the token is unknown."""

    www_authenticate = 'Bearer realm="wirelab", error="invalid_token"'


class InvalidUserName(UsageError):
    """A user name breaks the naming rule of :func:`wirelab.auth.validate_user_name`."""


class UserExistsError(UsageError):
    """A user with that name already exists."""


class UserNotFoundError(UsageError):
    """No user has that name."""
