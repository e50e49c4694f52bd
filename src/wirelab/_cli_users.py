"""``wirelab users ...``: server-side user management.

Each command opens the metadata store, does one thing, and closes it. The API token is
printed once, by ``add`` and ``rotate-token``: only its hash is stored. Needs only the base
install: nothing here imports the server or the web framework.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ._cli_common import ByteSize, emit, handle_errors, json_option

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["users"]


def database_url(url: str | None, data_dir: Path | None, *, create: bool = False) -> str:
    """The store's URL: ``url`` if given, else SQLite in the data folder (created 0700).

    Unless ``create``, a SQLite store that does not exist is an error that says so (a
    mistyped ``--data-dir`` must not create an empty store and list no users).
    """
    from ._fsio import private_dir
    from ._paths import default_data_dir
    from .db import sqlite_url
    from .db._api import split_url

    if url:
        scheme, rest = split_url(url)
        if scheme == "sqlite" and rest.startswith("/") and rest != "/:memory:":
            _require(Path(rest[1:]), create)
        return url
    folder = data_dir or default_data_dir()
    _require(folder / "wirelab.db", create)
    private_dir(folder)
    return sqlite_url(folder / "wirelab.db")


def _require(db_file: Path, create: bool) -> None:
    if not create and not db_file.exists():
        raise FileNotFoundError(
            errno.ENOENT,
            "no wirelab database here (wrong --data-dir? 'wirelab users add' or "
            "'wirelab serve' creates one)",
            str(db_file),
        )


def with_users(
    url: str | None,
    data_dir: Path | None,
    op: Callable[[Any], Awaitable[T]],
    *,
    create: bool = False,
) -> T:
    """Run ``op(db.users)`` against the store (see :func:`database_url`); return its result."""
    import asyncio  # here, not at the top: every command would pay ~20 ms to import it

    from .db import connect

    async def run() -> T:
        async with await connect(database_url(url, data_dir, create=create)) as db:
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
    ``None`` (the server's default), else a non-negative integer (``--bytes``: or a size
    with a unit, ``10G``)."""
    from .db import UNCHANGED

    if value is None:
        return UNCHANGED
    if value.strip().lower() == "default":
        return None
    if option == "--bytes":
        try:
            return ByteSize(minimum=0).convert(value, None, None)
        except click.BadParameter as exc:
            raise click.BadParameter(exc.message, param_hint=option) from None
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
        emit({"name": name, "token": token})
        return
    click.echo(f"{verb} user {name!r}. Its API token (shown only this once):")
    click.echo(token)


def show_users(users: list[Any], *, as_json: bool, one: bool = False) -> None:
    """The users as lines, or as ``{"users": [...]}`` (``{"user": {...}}`` with ``one``)."""
    if as_json:
        emit({"user": user_doc(users[0])} if one else {"users": [user_doc(u) for u in users]})
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


# --- the commands ------------------------------------------------------------------------


def _users_options(func: F) -> F:
    func = json_option(func)
    func = click.option(
        "--database-url",
        envvar="WIRELAB_DATABASE_URL",
        show_envvar=True,
        help="Metadata store.  [default: sqlite:///DATA_DIR/wirelab.db]",
    )(func)
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="WIRELAB_DATA_DIR",
        show_envvar=True,
        help="Server data folder.  [default: $XDG_DATA_HOME/wirelab]",
    )(func)


@click.group()
def users() -> None:
    """Manage the users of this server (run it where the server's data lives).

    Needs only the base install (not the server extra). Every command but `add` refuses a
    data folder without a database instead of creating an empty one.

    \b
    Examples:
      wirelab users add alice
      wirelab users list --data-dir /srv/wirelab
      wirelab users set-quota alice --bytes 10G --files 500
    """


@users.command("add")
@click.argument("name")
@_users_options
@handle_errors
def users_add(name: str, data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """Create user NAME and print its API token (shown only once)."""
    user, token = with_users(database_url, data_dir, lambda r: r.add_user(name), create=True)
    show_token(user.name, token, as_json=as_json, verb="Created")


@users.command("list")
@_users_options
@handle_errors
def users_list(data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """List the users (never their tokens)."""
    found = with_users(database_url, data_dir, lambda r: r.list_users())
    show_users(found, as_json=as_json)


@users.command("remove")
@click.argument("name")
@_users_options
@handle_errors
def users_remove(name: str, data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """Remove user NAME: its token stops working at once; its inbox, the uploads to it
    and the uploads it was sending are deleted (a new NAME starts empty)."""
    with_users(database_url, data_dir, lambda r: r.remove_user(name))
    if as_json:
        emit({"removed": name})
    else:
        click.echo(f"Removed user {name!r}.")


@users.command("rotate-token")
@click.argument("name")
@_users_options
@handle_errors
def users_rotate(name: str, data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """Give user NAME a new API token (printed once); the old one stops working."""
    token = with_users(database_url, data_dir, lambda r: r.rotate_token(name))
    show_token(name, token, as_json=as_json, verb="Rotated the token of")


@users.command("set-quota")
@click.argument("name")
@click.option(
    "--bytes", "quota_bytes", metavar="SIZE|default", help="Inbox quota (e.g. 10G, 500M)."
)
@click.option("--files", "quota_files", metavar="N|default", help="Inbox quota in files.")
@_users_options
@handle_errors
def users_set_quota(
    name: str,
    quota_bytes: str | None,
    quota_files: str | None,
    data_dir: Path | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Set user NAME's inbox quotas; `default` returns to the server's (an option left
    out is unchanged)."""
    user = set_quota(database_url, data_dir, name, quota_bytes, quota_files)
    show_users([user], as_json=as_json, one=True)
