"""``wirelab db ...``: the metadata store's schema.

``wirelab db upgrade`` applies the pending migrations. The embedded SQLite store also
migrates itself when the server starts (the quickstart needs no step); a PostgreSQL
database is only ever migrated by this command, and a server refuses to start on an older
schema, so the operator decides when a shared database changes. Needs only the base
install (plus the ``postgres`` extra for PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

import click

from ._cli_common import emit, handle_errors
from ._cli_users import _users_options
from ._cli_users import database_url as store_url

__all__ = ["db"]


@click.group()
def db() -> None:
    """Manage the metadata store (SQLite file or PostgreSQL database).

    \b
    Examples:
      wirelab db upgrade --data-dir /srv/wirelab
      wirelab db upgrade --database-url postgresql://wirelab@db.internal/wirelab
    """


@db.command("upgrade")
@_users_options
@handle_errors
def db_upgrade(data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """Apply the pending schema migrations (safe to re-run, and to run from two places)."""
    import asyncio  # not at the top: every command would pay to import it

    from .db import upgrade

    before, after = asyncio.run(upgrade(store_url(database_url, data_dir, create=True)))
    if as_json:
        emit({"from_version": before, "to_version": after, "upgraded": after != before})
    elif after == before:
        click.echo(f"Schema is current (version {after}); nothing to do.")
    else:
        click.echo(f"Upgraded the schema from version {before} to {after}.")
