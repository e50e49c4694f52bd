"""``wirelab users ...``: server-side user management (helpers of the one CLI module).

Each command opens the metadata store, does one thing, and closes it. The API token is
printed once, by ``add`` and ``rotate-token``: only its hash is stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")


def database_url(url: str | None, data_dir: Path | None) -> str:
    """The store's URL: ``url`` if given, else SQLite in the data folder (created 0700)."""
    from ._fsio import private_dir
    from .db import sqlite_url
    from .server import default_data_dir

    if url:
        return url
    folder = data_dir or default_data_dir()
    private_dir(folder)
    return sqlite_url(folder / "wirelab.db")


def with_users(url: str | None, data_dir: Path | None, op: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``op(db.users)`` against the store (see :func:`database_url`); return its result."""
    from .db import connect

    async def run() -> T:
        async with await connect(database_url(url, data_dir)) as db:
            return await op(db.users)

    return asyncio.run(run())


def user_doc(user: Any) -> dict[str, Any]:
    """A user as JSON; a quota of ``null`` means the server's default."""
    return {
        "name": user.name,
        "created_at": user.created_at.isoformat(),
        "token_issued_at": user.token_issued_at.isoformat(),
        "quota_bytes": user.quota_bytes,
        "quota_files": user.quota_files,
    }


def parse_quota(value: str | None, option: str) -> Any:
    """``--bytes``/``--files``: ``None`` (option absent) is ``UNCHANGED``, ``default`` is
    ``None`` (the server's default), else a non-negative integer."""
    from .db import UNCHANGED

    if value is None:
        return UNCHANGED
    if value.strip().lower() == "default":
        return None
    if not value.strip().isdigit():
        raise click.BadParameter(
            f"{value!r} is not a non-negative integer or 'default'", param_hint=option
        )
    return int(value)


def set_quota(
    url: str | None,
    data_dir: Path | None,
    name: str,
    quota_bytes: str | None,
    quota_files: str | None,
) -> Any:
    """Apply ``wirelab users set-quota`` and return the updated user."""
    changes = {
        "quota_bytes": parse_quota(quota_bytes, "--bytes"),
        "quota_files": parse_quota(quota_files, "--files"),
    }
    return with_users(url, data_dir, lambda r: r.set_quota(name, **changes))


def _quota(value: int | None) -> str:
    return "default" if value is None else str(value)


def show_token(name: str, token: str, *, as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps({"name": name, "token": token}))
        return
    click.echo(f"{verb} user {name!r}. Its API token (shown only this once):")
    click.echo(token)


def show_users(users: list[Any], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([user_doc(u) for u in users]))
        return
    if not users:
        click.echo("no users")
        return
    width = max(len(u.name) for u in users)
    for u in users:
        click.echo(
            f"{u.name:<{width}}  created {u.created_at:%Y-%m-%d %H:%M:%S} UTC"
            f"  quota {_quota(u.quota_bytes)} bytes, {_quota(u.quota_files)} files"
        )
