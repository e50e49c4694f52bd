"""``wirelab worker``: run media jobs for servers started with ``--jobs-url``, and the
``--jobs-*`` options that ``wirelab serve`` shares with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ._cli_common import handle_errors, json_option

__all__ = [
    "data_dir_option",
    "database_pool_size_option",
    "database_url_option",
    "jobs_options",
    "log_level_option",
    "storage_url_option",
    "worker_command",
]

F = TypeVar("F", bound=Callable[..., Any])

# The options of the server's process that ``serve`` and ``worker`` share.
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="WIRELAB_DATA_DIR",
    show_envvar=True,
    help="Folder for server data.  [default: $XDG_DATA_HOME/wirelab]",
)
database_url_option = click.option(
    "--database-url",
    envvar="WIRELAB_DATABASE_URL",
    show_envvar=True,
    help="Metadata store of the relay.  [default: sqlite:///DATA_DIR/wirelab.db]",
)
database_pool_size_option = click.option(
    "--database-pool-size",
    default=8,
    type=click.IntRange(1, 1000),
    envvar="WIRELAB_DATABASE_POOL_SIZE",
    show_envvar=True,
    help="Most connections (and threads) this process opens to a PostgreSQL database.  "
    "[default: 8]",
)
storage_url_option = click.option(
    "--storage-url",
    envvar="WIRELAB_STORAGE_URL",
    show_envvar=True,
    help="Where relayed files and media results are kept: a folder, or s3://bucket/prefix "
    "(endpoint, region and credentials from the AWS_* settings; needs wirelab[s3]).  "
    "[default: DATA_DIR]",
)
log_level_option = click.option(
    "--log-level",
    default="info",
    envvar="WIRELAB_LOG_LEVEL",
    show_envvar=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"], case_sensitive=False),
)


def jobs_options(*, lease: bool) -> Callable[[F], F]:
    """``--jobs-url`` and ``--jobs-queue`` (and ``--jobs-lease`` when ``lease``)."""

    def decorate(func: F) -> F:
        if lease:
            func = click.option(
                "--jobs-lease",
                default=30.0,
                type=click.FloatRange(0.5),
                envvar="WIRELAB_JOBS_LEASE",
                show_envvar=True,
                help="A claimed job whose worker sent no heartbeat for this long (s) is "
                "requeued; workers heartbeat every 0.5 s.",
            )(func)
        func = click.option(
            "--jobs-queue",
            default="wirelab",
            envvar="WIRELAB_JOBS_QUEUE",
            show_envvar=True,
            help="Celery queue name, also the prefix of every Redis key and channel used.",
        )(func)
        return click.option(
            "--jobs-url",
            envvar="WIRELAB_JOBS_URL",
            show_envvar=True,
            metavar="redis://HOST[:PORT][/DB]",
            help="Run media jobs on Celery workers ('wirelab worker') through this Redis.  "
            "[default: none, jobs run inside the server]",
        )(func)

    return decorate


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def worker_command(media_options: Decorator) -> click.Command:
    """The ``wirelab worker`` command; ``media_options`` adds ``serve``'s ``--media-*``
    options (one definition for both commands)."""

    @click.command("worker")
    @data_dir_option
    @database_url_option
    @database_pool_size_option
    @storage_url_option
    @log_level_option
    @jobs_options(lease=True)
    @media_options
    @json_option
    @handle_errors
    def worker(
        data_dir: Path | None,
        database_url: str | None,
        database_pool_size: int,
        storage_url: str | None,
        log_level: str,
        jobs_url: str | None,
        jobs_queue: str,
        jobs_lease: float,
        as_json: bool,
        **options: Any,
    ) -> None:
        """Run media jobs queued by servers started with the same --jobs-url.

        Give it the server's settings (data folder or database URL, media options): it
        claims each job in the database, runs ffmpeg, stores the result where the server
        reads it. Run as many as you like, beside the server or on other hosts sharing
        its data folder. Stops on SIGINT/SIGTERM; jobs in progress go back to the queue.

        \b
        Examples:
          wirelab serve --jobs-url redis://127.0.0.1:6379/0 &
          wirelab worker --jobs-url redis://127.0.0.1:6379/0 --media-workers 4
        """
        if not jobs_url:
            raise click.UsageError("give --jobs-url (or WIRELAB_JOBS_URL): the Redis of the jobs")
        from ._cli_users import database_url as existing_store
        from ._paths import default_data_dir
        from .media import media_settings
        from .server import ServerConfig
        from .server._worker import run_worker

        existing_store(database_url, data_dir)  # a mistyped --data-dir: one line, exit 5
        media = {k.removeprefix("media_"): v for k, v in options.items()}
        config = ServerConfig(
            data_dir=data_dir or default_data_dir(),
            database_url=database_url,
            database_pool_size=database_pool_size,
            storage_url=storage_url,
            log_level=log_level.lower(),
            media=media_settings(media),
            jobs_url=jobs_url,
            jobs_queue=jobs_queue,
            jobs_lease=jobs_lease,
        )
        run_worker(config)

    return worker
