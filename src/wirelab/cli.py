"""The ``wirelab`` command. It only assembles: parsing, then a call into the library.

Every option also reads a ``WIRELAB_*`` environment variable (shown in ``--help``). Errors
end the command with one readable line on stderr and an exit status that says which kind
of failure it was; ``--json`` prints one JSON object on stdout, errors too (the contract
is in :mod:`wirelab._cli_common`). Command groups register at the end of this module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import _cli_db, _cli_media, _cli_relay, _cli_stream, _cli_users, _cli_worker
from ._cli_common import (
    EXIT_DATA,
    ByteSize,
    WirelabGroup,
    fail,
    handle_errors,
    http_url,
    json_option,
    tls_verify,
)
from ._version import __version__

F = TypeVar("F", bound=Callable[..., Any])

_MIB = 1024 * 1024


@click.group(
    cls=WirelabGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(__version__, prog_name="wirelab")
def main() -> None:
    """wirelab: servers, clients and test doubles for programs that move files and streams.

    \b
    Examples:
      wirelab serve                                  # the server, on 127.0.0.1:8080
      wirelab users add alice                        # prints alice's API token once
      wirelab login                                  # save the server URL and token
      wirelab send report.pdf -t bob                 # send a file to bob
      wirelab receive --all -o ~/Downloads           # receive every waiting file
      wirelab stream --count 10 -o ./files           # save a verified test stream

    Exit status: 0 ok, 1 server error, 2 bad usage, 3 authentication, 4 network, 5 data
    (a file, the disk, a verification), 130 interrupted. Every command takes --json.
    """


# Relay limits: (field of RelayLimits, click type, help with its default). Defaults are
# RelayLimits' own (None here), so importing the CLI does not import the server.
_SECONDS = click.FloatRange(0, min_open=True)
_BYTES = ByteSize(minimum=0)
_RELAY_OPTIONS: list[tuple[str, click.ParamType[Any], str]] = [
    ("max_file_size", _BYTES, "Largest relay upload (e.g. 2G).  [default: 10 GiB]"),
    ("default_ttl", _SECONDS, "Expiry of a file the sender set none for, s.  [default: 7 days]"),
    ("max_ttl", _SECONDS, "Longest expiry a sender may set, s.  [default: 30 days]"),
    ("default_lease", _SECONDS, "Lease of a received file when none is asked, s.  [default: 300]"),
    ("max_lease", _SECONDS, "Longest lease a recipient may ask, s.  [default: 3600]"),
    ("max_wait", _SECONDS, "Longest long-poll wait, s.  [default: 60]"),
    ("sweep_interval", _SECONDS, "Period of the expiry sweep, s.  [default: 60]"),
    ("upload_expiry", _SECONDS, "Partial uploads idle this long are removed, s.  [default: 1 day]"),
    ("quota_bytes", _BYTES, "Default inbox quota (e.g. 50G).  [default: 50 GiB]"),
    ("quota_files", click.IntRange(0), "Default inbox quota, number of files.  [default: 10000]"),
    ("reservation_ttl", _SECONDS, "Quota held by an idle upload for, s.  [default: 300]"),
    ("sender_pending_bytes", _BYTES, "Bytes a sender's uploads hold (20G).  [default: 20 GiB]"),
    ("sender_pending_uploads", click.IntRange(0), "Uploads one sender has open.  [default: 100]"),
    ("disk_reserve", _BYTES, "Disk space kept for deletes (e.g. 4M).  [default: 4 MiB]"),
    ("lock_ttl", _SECONDS, "Leases of a dead process expire after, s.  [default: 15]"),
    ("inline_max", _BYTES, "Direct sends up to this size go in the db.  [default: 64 KiB]"),
]  # fmt: skip


# Stream limits of the server: (suffix of --stream-limit-*, default, click type, help).
_STREAM_LIMIT_OPTIONS: list[tuple[str, float, click.ParamType[Any], str]] = [
    ("count", 100_000, click.IntRange(0), "Most files one stream may ask for."),
    ("file_size", 16 * _MIB, _BYTES, "Largest max_size a stream may ask for (e.g. 16M)."),
    ("total_bytes", 4096 * _MIB, _BYTES, "Largest count * max_size of one stream (e.g. 4G)."),
    (
        "manifest_bytes",
        256 * _MIB,
        _BYTES,
        "Largest count * max_size of one /v1/stream/manifest (it hashes every file), e.g. 256M.",
    ),
    (
        "duration",
        3600.0,
        click.FloatRange(0),
        "Largest count * max_interval / speed of one stream, seconds.",
    ),
]


def _stream_limit_options(func: F) -> F:
    for name, default, kind, help_ in reversed(_STREAM_LIMIT_OPTIONS):
        func = click.option(
            f"--stream-limit-{name.replace('_', '-')}",
            f"stream_limit_{name}",
            default=default,
            type=kind,
            envvar=f"WIRELAB_STREAM_LIMIT_{name.upper()}",
            show_envvar=True,
            help=help_,
        )(func)
    return func


# Media settings: (field of MediaSettings, click type, help with its default). Defaults are
# MediaSettings' own (None here). --media-allow-network is parsed by the media package.
_MEDIA_OPTIONS: list[tuple[str, click.ParamType[Any], str]] = [
    ("workers", click.IntRange(1, 64), "Media jobs that run at once.  [default: 2]"),
    ("source_template", click.STRING, "URL with {video_id} for requests naming a video_id."),
    ("allow_network", click.STRING, "CIDR[,CIDR...] opened to media sources (private ranges "
     "are refused by default).  [default: none]"),
    ("result_ttl", _SECONDS, "Clips are deleted this long after their job ended, s.  "
     "[default: 1 day]"),
    ("job_timeout", _SECONDS, "Longest attempt of a media job, s.  [default: 3600]"),
    ("retries", click.IntRange(0, 100), "Extra attempts after a network failure.  [default: 2]"),
    ("retry_backoff", _SECONDS, "Wait before the first retry (doubles), s.  [default: 1]"),
    ("max_source_duration", _SECONDS, "Longest source accepted, s.  [default: 6 h]"),
    ("max_clip_duration", _SECONDS, "Longest clip, s.  [default: 3 h]"),
    ("max_output_size", ByteSize(), "Largest clip file (e.g. 4G).  [default: 4 GiB]"),
    ("max_active_jobs", click.IntRange(1), "Queued and running media jobs per user.  "
     "[default: 100]"),
]  # fmt: skip


def _media_options(func: F) -> F:
    for name, kind, help_ in reversed(_MEDIA_OPTIONS):
        func = click.option(
            f"--media-{name.replace('_', '-')}",
            f"media_{name}",
            type=kind,
            default=None,
            show_default=False,
            envvar=f"WIRELAB_MEDIA_{name.upper()}",
            show_envvar=True,
            help=help_,
        )(func)
    return func


def _relay_options(func: F) -> F:
    for name, kind, help_ in reversed(_RELAY_OPTIONS):
        func = click.option(
            f"--relay-{name.replace('_', '-')}",
            f"relay_{name}",
            type=kind,
            default=None,
            show_default=False,
            envvar=f"WIRELAB_RELAY_{name.upper()}",
            show_envvar=True,
            help=help_,
        )(func)
    return func


# HTTP connection limits: (option, click type, default, help). See ConnectionLimits.
_CONNECTION_OPTIONS: list[tuple[str, click.ParamType[Any], float | None, str]] = [
    ("max_header_bytes", click.IntRange(256), 64 * 1024,
     "Largest request head (request line + headers), bytes; larger ones get 431."),
    ("head_timeout", click.FloatRange(0), 10.0,
     "Seconds a request head may take to arrive (0: no limit); then 408 and close."),
    ("keepalive_timeout", _SECONDS, 5.0, "Idle keep-alive connections are closed after this, s."),
    ("max_connections", click.IntRange(1), None,
     "Open connections past this get 503 and are closed.  "
     "[default: 3/4 of the open-file limit]"),
    ("backlog", click.IntRange(1), 4096,
     "Listen backlog: connections waiting to be accepted (capped by net.core.somaxconn)."),
]  # fmt: skip


def _connection_options(func: F) -> F:
    for name, kind, default, help_ in reversed(_CONNECTION_OPTIONS):
        func = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=kind,
            default=default,
            show_default=default is not None,
            envvar=f"WIRELAB_{name.upper()}",
            show_envvar=True,
            help=help_,
        )(func)
    return func


def _tls_options(func: F) -> F:
    for name, what in reversed([("certfile", "certificate chain"), ("keyfile", "private key")]):
        func = click.option(
            f"--tls-{name}",
            f"tls_{name}",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            envvar=f"WIRELAB_TLS_{name.upper()}",
            show_envvar=True,
            help=f"Serve HTTPS with this PEM {what} (with --tls-"
            f"{'keyfile' if name == 'certfile' else 'certfile'}).",
        )(func)
    return func


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    envvar="WIRELAB_HOST",
    show_envvar=True,
    help="Address to bind. The default accepts local connections only.",
)
@click.option(
    "--port",
    default=8080,
    type=click.IntRange(0, 65535),
    envvar="WIRELAB_PORT",
    show_envvar=True,
    help="TCP port (0 picks a free one).",
)
@_cli_worker.data_dir_option
@_cli_worker.log_level_option
@_stream_limit_options
@click.option(
    "--worker-threads",
    default=0,
    type=click.IntRange(0, 64),
    envvar="WIRELAB_WORKER_THREADS",
    show_envvar=True,
    help="Threads that generate and hash large random files, shared by all streams "
    "(0: on the event loop, the faster choice on 2 cores; see docs/design.md).",
)
@click.option(
    "--keystream-thread/--no-keystream-thread",
    default=True,
    envvar="WIRELAB_KEYSTREAM_THREAD",
    show_envvar=True,
    help="Make the random bytes of streams without waits one message ahead on a thread "
    "of their own while the event loop hashes and writes (with 0 worker threads and more "
    "than one CPU).",
)
@_cli_worker.database_url_option
@_cli_worker.database_pool_size_option
@click.option(
    "--auth-cache-seconds",
    type=click.FloatRange(0, 300),  # ServerConfig's AUTH_CACHE_MAX
    envvar="WIRELAB_AUTH_CACHE_SECONDS",
    show_envvar=True,
    help="Remember a verified API token this long per server process; also the longest a "
    "user removed by another process keeps working.  [default: 1 on PostgreSQL, 0 on SQLite]",
)
@click.option(
    "--coordination-url",
    envvar="WIRELAB_COORDINATION_URL",
    show_envvar=True,
    metavar="URL",
    help="What several server processes share (wake-ups, upload leases, the sweeper): "
    "redis://HOST:PORT/DB[?prefix=P].  [default: none, one process]",
)
@click.option(
    "--workers",
    default=1,
    type=click.IntRange(1, 64),
    envvar="WIRELAB_WORKERS",
    show_envvar=True,
    help="Server processes on the one port (SO_REUSEPORT); more than 1 needs "
    "--coordination-url, unless --only stream.  [default: 1]",
)
@click.option(
    "--only",
    type=click.Choice(["stream"]),
    envvar="WIRELAB_ONLY",
    show_envvar=True,
    help="Serve this capability alone: 'stream' serves /v1/stream and the classic "
    "streams, with no database, storage, relay or media; its --workers share nothing "
    "and need no coordination.  [default: everything]",
)
@_cli_worker.storage_url_option
@_relay_options
@_connection_options
@_media_options
@click.option(
    "--media-classic-user",
    "classic_user",
    metavar="NAME",
    envvar="WIRELAB_MEDIA_CLASSIC_USER",
    show_envvar=True,
    help="Also serve the classic clip API under /hopster (no auth), its jobs owned by "
    "user NAME; needs --media-source-template.  [default: off]",
)
@_tls_options
@_cli_worker.jobs_options(lease=False)
@click.option(
    "--cors-origins",
    envvar="WIRELAB_CORS_ORIGINS",
    show_envvar=True,
    metavar="ORIGINS",
    help="Comma-separated origins (https://app.example) whose pages may call the API "
    "from a browser, or '*'.  [default: none, CORS off]",
)
@json_option
@handle_errors
def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    log_level: str,
    stream_limit_count: int,
    stream_limit_file_size: int,
    stream_limit_total_bytes: int,
    stream_limit_manifest_bytes: int,
    stream_limit_duration: float,
    worker_threads: int,
    keystream_thread: bool,
    database_url: str | None,
    auth_cache_seconds: float | None,
    database_pool_size: int,
    coordination_url: str | None,
    workers: int,
    only: str | None,
    storage_url: str | None,
    max_header_bytes: int,
    head_timeout: float,
    keepalive_timeout: float,
    max_connections: int | None,
    backlog: int,
    tls_certfile: Path | None,
    tls_keyfile: Path | None,
    classic_user: str | None,
    cors_origins: str | None,
    jobs_url: str | None,
    jobs_queue: str,
    as_json: bool,
    **limits: Any,
) -> None:
    """Run the wirelab server until SIGINT or SIGTERM.

    With --json, a failure to start is one JSON object on stdout (the log stays on stderr).

    \b
    Examples:
      wirelab serve                                  # 127.0.0.1:8080, data in $XDG_DATA_HOME
      wirelab serve --port 9000 --data-dir /srv/wirelab --relay-quota-bytes 100G
      wirelab serve --tls-certfile cert.pem --tls-keyfile key.pem   # HTTPS
      wirelab serve --workers 4 --coordination-url redis://127.0.0.1:6379/0
      wirelab serve --only stream --workers 2         # a stream test server on 2 cores
    """
    if (tls_certfile is None) != (tls_keyfile is None):
        raise click.UsageError(
            "--tls-certfile and --tls-keyfile go together: give both for HTTPS, or neither"
        )
    try:
        from .server import ConnectionLimits, ServerConfig, default_data_dir
        from .server._serve import run
    except ImportError as exc:  # the server extra is not installed
        fail(
            f"the server needs extra packages: pip install 'wirelab[server]' ({exc})",
            as_json=as_json,
        )
    from .media import media_settings
    from .relay import RelayLimits, parse_origins
    from .stream import StreamLimits

    relay = {k.removeprefix("relay_"): v for k, v in limits.items() if k.startswith("relay_")}
    relay_limits = RelayLimits(**{name: v for name, v in relay.items() if v is not None})
    media = {k.removeprefix("media_"): v for k, v in limits.items() if k.startswith("media_")}

    config = ServerConfig(
        host=host,
        port=port,
        data_dir=data_dir or default_data_dir(),
        log_level=log_level.lower(),
        stream_limits=StreamLimits(
            max_count=stream_limit_count,
            max_file_size=stream_limit_file_size,
            max_total_bytes=stream_limit_total_bytes,
            max_manifest_bytes=stream_limit_manifest_bytes,
            max_duration=stream_limit_duration,
        ),
        worker_threads=worker_threads,
        keystream_thread=keystream_thread,
        database_url=database_url,
        database_pool_size=database_pool_size,
        storage_url=storage_url,
        relay_limits=relay_limits,
        connection_limits=ConnectionLimits(
            max_header_bytes=max_header_bytes,
            head_timeout=head_timeout,
            keepalive_timeout=keepalive_timeout,
            max_connections=max_connections,
            backlog=backlog,
        ),
        media=media_settings(media),
        tls_certfile=tls_certfile,
        tls_keyfile=tls_keyfile,
        media_classic_user=classic_user,
        cors_origins=parse_origins(cors_origins),
        jobs_url=jobs_url or None,
        jobs_queue=jobs_queue,
        coordination_url=coordination_url or None,
        auth_cache_seconds=auth_cache_seconds,
        only=only,
    )
    if not config.stream_only:  # a stream-only server keeps nothing in the data folder
        _check_data_dir(config.data_dir, as_json)
    status = run(config, workers)
    if status:
        raise SystemExit(status)


def _check_data_dir(folder: Path, as_json: bool) -> None:
    """Fail with one line (not a traceback from inside the server) when the data folder
    cannot be created or written."""
    import os

    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        fail(
            f"cannot create the data folder {folder}: {exc.strerror or exc}",
            EXIT_DATA,
            as_json=as_json,
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(
            f"cannot write the data folder {folder} (choose another with --data-dir or "
            "WIRELAB_DATA_DIR)",
            EXIT_DATA,
            as_json=as_json,
        )


# --- stream (client side) -------------------------------------------------------------
# The `wirelab stream` command is defined below this line.

# Stream parameters: (name, click type, help). None of them is sent unless given, so the
# server's default applies.
_STREAM_OPTIONS: list[tuple[str, click.ParamType[Any], str]] = [
    ("count", click.IntRange(0), "Number of files."),
    ("min_size", _BYTES, "Smallest file (e.g. 1k)."),
    ("max_size", _BYTES, "Largest file (e.g. 1M)."),
    ("min_interval", click.FloatRange(0), "Shortest wait before a file, seconds."),
    ("max_interval", click.FloatRange(0), "Longest wait before a file, seconds."),
    ("seed", click.IntRange(0, 2**63 - 1), "Reproduce a stream exactly."),
    ("dtype", click.Choice(["int16", "int8", "int32", "float32"]), "Sample type."),
    ("byteorder", click.Choice(["little", "big"]), "Sample byte order."),
    ("content", click.Choice(["random", "sine", "ramp"]), "Sample values."),
    ("speed", click.FloatRange(0, min_open=True), "Divides every wait."),
    ("digest", click.Choice(["blake3", "sha256"]), "Digest algorithm of the files' checks."),
]


def _stream_options(func: F) -> F:
    for name, kind, help_ in reversed(_STREAM_OPTIONS):
        func = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=kind,
            default=None,
            envvar=f"WIRELAB_STREAM_{name.upper()}",
            show_envvar=True,
            help=help_ + "  [default: the server's]",
        )(func)
    return func


@main.command("stream")
@click.option(
    "--url",
    default=_cli_stream.DEFAULT_URL,
    callback=http_url,
    envvar="WIRELAB_URL",
    show_envvar=True,
    help="Base URL of the wirelab server.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to save the files and manifest.json in (created if missing).",
)
@click.option(
    "--verify",
    "verify_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Check a folder saved earlier against its manifest.json instead of streaming.",
)
@_stream_options
@click.option(
    "--timeout",
    default=30.0,
    type=click.FloatRange(0, min_open=True),
    envvar="WIRELAB_TIMEOUT",
    show_envvar=True,
    help="Give up after this many seconds without data.",
)
@click.option(
    "--cacert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="WIRELAB_CACERT",
    show_envvar=True,
    help="For https: trust the CA certificates in this PEM file (instead of the system's).",
)
@click.option("--insecure", is_flag=True, help="For https: do not check the server's certificate.")
@click.option("--overwrite", is_flag=True, help="Replace the download already in --out.")
@json_option
@click.pass_context
@handle_errors
def stream(
    ctx: click.Context,
    /,
    url: str,
    out: Path | None,
    verify_dir: Path | None,
    timeout: float,
    cacert: Path | None,
    insecure: bool,
    overwrite: bool,
    as_json: bool,
    **params: Any,
) -> None:
    """Save a stream's files into --out DIR, verified; or check DIR with --verify DIR.

    Each file is written as it arrives and renamed into place once its digest (BLAKE3
    unless --digest sha256) matched;
    DIR/manifest.json then lists the files (complete: false if the stream failed).

    \b
    Examples:
      wirelab stream --count 10 --speed 10 -o ./files
      wirelab stream --count 1000 --max-size 64k --seed 7 -o ./run7 --json
      wirelab stream --verify ./files
    """
    if verify_dir is not None:
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("out", "overwrite", "cacert", "insecure", *(o[0] for o in _STREAM_OPTIONS))
            if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(f"--verify cannot be combined with {', '.join(given)}")
        _cli_stream.run_verify(verify_dir, as_json=as_json)
        return
    if out is None:
        raise click.UsageError("give --out DIR to save a stream, or --verify DIR to check one")
    if cacert is not None and insecure:
        raise click.UsageError("--cacert and --insecure exclude each other")
    options = {name: value for name, value in params.items() if value is not None}
    _cli_stream.run_download(
        url=url,
        options=options,  # type: ignore[arg-type]  # click checked each value's type
        out=out,
        overwrite=overwrite,
        timeout=timeout,
        as_json=as_json,
        verify=tls_verify(cacert, insecure),
    )


# --- users (server side) ----------------------------------------------------------------
main.add_command(_cli_users.users)
main.add_command(_cli_db.db)

# --- relay (client side): login, logout, send, inbox, receive ------------------------
_cli_relay.register(main)

# --- media (client side): fetch, jobs, show, cancel -------------------------------------
_cli_media.register(main)

# --- worker (server side): runs media jobs queued on Celery ------------------------------
main.add_command(_cli_worker.worker_command(_media_options))
