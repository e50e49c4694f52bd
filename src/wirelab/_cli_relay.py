"""``wirelab login | logout | whoami | keygen | inbox``, and the options, client and
progress bar that ``send`` and ``receive`` (:mod:`wirelab._cli_transfer`) share.

Only option parsing and output live here; the work is :class:`wirelab.client.RelayClient`.
Output contract: :mod:`wirelab._cli_common` (results on stdout, one JSON object with
``--json``, errors too; progress bars, notes and errors on stderr; exit status by kind).

The token is never taken from the command line (``ps`` would show it to every user):
``--token-file FILE`` (``-`` for stdin), ``WIRELAB_TOKEN``, or the file of ``login``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import click

from ._cli_common import (
    DEFAULT_URL,
    check_url,
    emit,
    handle_errors,
    human_size,
    json_option,
    set_hint,
    tls_verify,
)
from ._cli_config import config_path, load_config, remove_config, save_config
from ._exceptions import UsageError

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from .client import InboxFile, RelayClient

__all__ = [
    "BarProgress",
    "client_settings",
    "connection_options",
    "key_file_option",
    "open_client",
    "register",
]

F = TypeVar("F", bound=Callable[..., Any])


class BarProgress:
    """A :class:`wirelab.client.Progress` drawn as a rich bar on stderr (terminal only)."""

    def __init__(self, *, enabled: bool) -> None:
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        if not (enabled and sys.stderr.isatty()):
            return  # rich is not even imported: it costs start-up time
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )

    def __enter__(self) -> Self:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def begin(self, label: str, total: int, done: int = 0) -> None:
        if self._bar is not None:
            self._task = self._bar.add_task(label, total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def end(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.remove_task(self._task)
            self._task = None


# --- connection options -----------------------------------------------------------------


def _read_token_file(path: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the token from {path}: {exc.strerror or exc}") from exc
    token = text.strip()
    if not token:
        raise UsageError(f"no token in {'standard input' if path == '-' else path}")
    return token


def connection_options(func: F) -> F:
    """The options every client command shares: server, token, TLS, timeout."""
    options = [
        click.option(
            "--url",
            envvar="WIRELAB_URL",
            show_envvar=True,
            help="Base URL of the wirelab server.  [default: login's, else " + DEFAULT_URL + "]",
        ),
        click.option(
            "--token-file",
            envvar="WIRELAB_TOKEN_FILE",
            show_envvar=True,
            help="Read the API token from this file ('-': stdin).  [default: $WIRELAB_TOKEN, "
            "else login's]",
        ),
        click.option(
            "--timeout",
            default=30.0,
            type=click.FloatRange(0, min_open=True),
            envvar="WIRELAB_TIMEOUT",
            show_envvar=True,
            help="Give up after this many seconds without progress.",
        ),
        click.option(
            "--cacert",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            envvar="WIRELAB_CACERT",
            show_envvar=True,
            help="For https: trust the CA certificates in this PEM file.",
        ),
        click.option("--insecure", is_flag=True, help="For https: skip the certificate check."),
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _token(opts: dict[str, Any], config: dict[str, Any]) -> tuple[str | None, str]:
    """The API token and where it came from (said when the server refuses it)."""
    if opts["token_file"]:
        path = str(opts["token_file"])
        source = "standard input" if path == "-" else path
        return _read_token_file(opts["token_file"]), f"--token-file {source}"
    if os.environ.get("WIRELAB_TOKEN"):
        return os.environ["WIRELAB_TOKEN"], "$WIRELAB_TOKEN"
    return config.get("token"), f"{config_path()}, saved by 'wirelab login'"


def client_settings(opts: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a user API client (``url``, ``token``, ``timeout``,
    ``verify``) from the shared options, the environment and the login file (see the
    module docstring). Also records where the token came from, for a refused token's
    message."""
    if opts["cacert"] is not None and opts["insecure"]:
        raise click.UsageError("--cacert and --insecure exclude each other")
    config = load_config()
    url = check_url(str(opts["url"] or config.get("url") or DEFAULT_URL))
    token, source = _token(opts, config)
    if not token:
        from .auth import MissingCredentials

        raise MissingCredentials(
            "no API token: run 'wirelab login', set WIRELAB_TOKEN, or pass --token-file"
        )
    set_hint(f"the token came from {source}; check it, or run 'wirelab login' again", on="auth")
    return {
        "url": url,
        "token": str(token),
        "timeout": opts["timeout"],
        "verify": tls_verify(opts["cacert"], opts["insecure"]),
    }


def open_client(opts: dict[str, Any]) -> RelayClient:
    """A :class:`RelayClient` from the shared options (see :func:`client_settings`)."""
    from .client import RelayClient

    settings = client_settings(opts)
    return RelayClient(settings.pop("url"), **settings, key_file=opts.get("key_file"))


def key_file_option(func: F) -> F:
    return click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="WIRELAB_KEY_FILE",
        show_envvar=True,
        help="Your private key for end-to-end encryption.  "
        "[default: $XDG_CONFIG_HOME/wirelab/x25519.key]",
    )(func)


def printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\n``, ``\\x1b``): what a peer
    wrote cannot start a new line or move the cursor in a listing."""
    escapes = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(
        c
        if c.isprintable()
        else escapes.get(c, f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
        for c in text
    )


# --- commands ---------------------------------------------------------------------------


@click.command()
@connection_options
@handle_errors
def login(**opts: Any) -> None:
    """Check a server URL and API token, then save them for the other commands.

    The token is read from --token-file, $WIRELAB_TOKEN, or asked for (hidden). The
    file is written with mode 0600 (see 'wirelab logout').

    \b
    Examples:
      wirelab login --url https://relay.example:8080
      wirelab login --token-file ~/token.txt
    """
    if not opts["token_file"] and not os.environ.get("WIRELAB_TOKEN"):
        if not sys.stdin.isatty():
            opts["token_file"] = "-"  # noqa: S105 - the path of stdin, not a password
        else:
            token = click.prompt("API token", hide_input=True).strip()
            os.environ["WIRELAB_TOKEN"] = token  # this process only: open_client reads it
    with open_client(opts) as client:
        me = client.whoami()  # proves the URL and the token
        token = client.token
        url = client.base_url.rstrip("/")
    path = save_config({"url": url, "token": token})
    if opts["as_json"]:
        emit({"url": url, "name": me["name"], "config": str(path)})
    else:
        click.echo(f"Logged in to {url} as {me['name']}; settings saved in {path}")


@click.command()
@json_option
@handle_errors
def logout(as_json: bool) -> None:
    """Forget the saved server URL and token."""
    removed = remove_config()
    if as_json:
        emit({"removed": removed, "config": str(config_path())})
    else:
        click.echo("Logged out." if removed else "Not logged in.")


@click.command()
@connection_options
@handle_errors
def whoami(**opts: Any) -> None:
    """Show which user the token belongs to, on which server, and its inbox quotas.

    \b
    Examples:
      wirelab whoami
      WIRELAB_TOKEN=... wirelab whoami --url http://127.0.0.1:8080 --json
    """
    with open_client(opts) as client:
        me = client.whoami()
        url = client.base_url.rstrip("/")
    if opts["as_json"]:
        emit({"url": url, **me})
        return
    click.echo(
        f"{me['name']} on {url} (inbox quota {human_size(int(me.get('quota_bytes') or 0))}, "
        f"{me.get('quota_files')} files)"
    )


def _inbox_line(f: InboxFile) -> str:
    note = f"  “{printable(f.note)}”" if f.note else ""
    return (
        f"{f.id}  {f.created_at[:19]}  {printable(f.sender):<12} {human_size(f.size):>9}"
        f"  {printable(f.name)}{note}"
    )


@click.command()
@connection_options
@handle_errors
def inbox(**opts: Any) -> None:
    """List the files waiting for you, oldest first (one line each: id, date, sender,
    size, name, note; control characters in notes are shown escaped)."""
    with open_client(opts) as client:
        files = client.inbox()
    if opts["as_json"]:
        emit({"files": [f.raw for f in files]})
    elif not files:
        click.echo("inbox empty")
    else:
        for f in files:
            click.echo(_inbox_line(f))


@click.command()
@click.option(
    "--force", is_flag=True, help="Replace an existing key (old files become unreadable)."
)
@key_file_option
@connection_options
@handle_errors
def keygen(force: bool, **opts: Any) -> None:
    """Create your key pair for end-to-end encryption and publish the public key.

    The private key stays in --key-file (mode 0600); senders then encrypt for you with
    'wirelab send --encrypt'. With an existing key, only publishes it again.
    """
    from .crypto import generate_keypair, save_private_key

    with open_client(opts) as client:
        path = client.key_file
        created = force or not path.exists()
        if created:
            private, _ = generate_keypair()
            save_private_key(path, private, overwrite=force)
        public = client.private_key().public_key
        client.publish_key(public)
    if opts["as_json"]:
        emit({"key_file": str(path), "created": created, "fingerprint": public.fingerprint})
    else:
        verb = "Created" if created else "Kept"
        click.echo(f"{verb} {path}; published public key {public.fingerprint}")


def register(group: click.Group) -> None:
    """Add the relay's user commands to the ``wirelab`` command group."""
    from ._cli_transfer import receive, send

    for command in (login, logout, whoami, keygen, send, inbox, receive):
        group.add_command(command)
