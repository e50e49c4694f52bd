"""``wirelab login | logout | send | inbox | receive``: the relay's user commands.

Only option parsing and output live here; the work is :class:`wirelab.client.RelayClient`.
Output contract (as for ``wirelab stream``): results on stdout (one line per file, or one
JSON document with ``--json``), progress bars and errors on stderr, bars only on a
terminal. Exit status 0 on success, 1 on any failure, 2 on bad usage.

The token is never taken from the command line (``ps`` would show it to every user):
``--token-file FILE`` (``-`` for stdin), ``WIRELAB_TOKEN``, or the file of ``login``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import click

from ._cli_common import DEFAULT_URL, describe_error, handle_errors, human_size, tls_verify
from ._cli_config import config_path, load_config, remove_config, save_config
from ._exceptions import UsageError, WirelabError

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from .client import InboxFile, ReceivedFile, RelayClient, SentFile

__all__ = ["register"]

F = TypeVar("F", bound=Callable[..., Any])
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
_UNITS: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """A size in bytes: ``1048576``, ``64M``, ``64MiB``, ``1g`` (binary multiples)."""

    name = "bytes"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.fullmatch(str(value).strip())
        if not match or int(match.group(1)) == 0:
            self.fail(f"{value!r} is not a positive size like 1048576, 64M or 1G", param, ctx)
        return int(match.group(1)) * _UNITS[match.group(2).lower()]


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
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def client_settings(opts: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a user API client (``url``, ``token``, ``timeout``,
    ``verify``) from the shared options, the environment and the login file (see the
    module docstring)."""
    import os

    if opts["cacert"] is not None and opts["insecure"]:
        raise click.UsageError("--cacert and --insecure exclude each other")
    config = load_config()
    url = opts["url"] or config.get("url") or DEFAULT_URL
    if not str(url).lower().startswith(("http://", "https://")):
        raise click.BadParameter(f"{url!r} must start with http:// or https://", param_hint="--url")
    token: str | None
    if opts["token_file"]:
        token = _read_token_file(opts["token_file"])
    else:
        token = os.environ.get("WIRELAB_TOKEN") or config.get("token")
    if not token:
        raise UsageError(
            "no API token: run 'wirelab login', set WIRELAB_TOKEN, or pass --token-file"
        )
    return {
        "url": str(url),
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


def _emit(doc: Any) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False))


# --- commands ---------------------------------------------------------------------------


@click.command()
@connection_options
@handle_errors
def login(**opts: Any) -> None:
    """Check a server URL and API token, then save them for the other commands.

    The token is read from --token-file, $WIRELAB_TOKEN, or asked for (hidden). The
    file is written with mode 0600 (see 'wirelab logout').
    """
    import os

    if not opts["token_file"] and not os.environ.get("WIRELAB_TOKEN"):
        if not sys.stdin.isatty():
            opts["token_file"] = "-"  # noqa: S105 - the path of stdin, not a password
        else:
            token = click.prompt("API token", hide_input=True).strip()
            os.environ["WIRELAB_TOKEN"] = token  # this process only: open_client reads it
    with open_client(opts) as client:
        client.inbox()  # proves the URL and the token
        token = client.token
        url = client.base_url.rstrip("/")
    path = save_config({"url": url, "token": token})
    if opts["as_json"]:
        _emit({"url": url, "config": str(path)})
    else:
        click.echo(f"Logged in to {url}; settings saved in {path}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@handle_errors
def logout(as_json: bool) -> None:
    """Forget the saved server URL and token."""
    removed = remove_config()
    if as_json:
        _emit({"removed": removed, "config": str(config_path())})
    else:
        click.echo("Logged out." if removed else "Not logged in.")


def _sent_doc(sent: SentFile) -> dict[str, Any]:
    return {
        "path": str(sent.path),
        "name": sent.name,
        "size": sent.size,
        "sha256": sent.sha256,
        "file_url": sent.file_url,
        "resumed_from": sent.resumed_from,
    }


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "to", required=True, help="The recipient's user name.")
@click.option("--note", help="A message for the recipient (up to 4096 characters).")
@click.option(
    "--max-downloads",
    type=click.IntRange(1),
    help="The recipient may download the files at most this many times.",
)
@click.option(
    "--encrypt",
    is_flag=True,
    help="Encrypt end to end for the recipient's public key: the server sees only ciphertext.",
)
@click.option(
    "--chunk-size",
    type=ByteSize(),
    default="64M",
    envvar="WIRELAB_CHUNK_SIZE",
    show_envvar=True,
    help="Bytes per upload request (e.g. 8M); the server makes each one durable.",
)
@connection_options
@handle_errors
def send(
    files: tuple[Path, ...],
    to: str,
    note: str | None,
    max_downloads: int | None,
    encrypt: bool,
    chunk_size: int,
    **opts: Any,
) -> None:
    """Send FILES to user --to as one delivery; run it again to resume after a failure.

    Each file is hashed (SHA-256) while it is sent and verified by the server before the
    recipient can see it; several files arrive together, as one batch.
    """
    with open_client(opts) as client, BarProgress(enabled=not opts["as_json"]) as bar:
        sent = client.send(
            files,
            to=to,
            note=note,
            max_downloads=max_downloads,
            chunk_size=chunk_size,
            encrypt=encrypt,
            progress=bar,
        )
    if opts["as_json"]:
        _emit({"to": to, "files": [_sent_doc(s) for s in sent]})
        return
    for s in sent:
        resumed = f", resumed at {human_size(s.resumed_from)}" if s.resumed_from else ""
        locked = ", encrypted" if encrypt else ""
        click.echo(f"sent {s.name} ({human_size(s.size)}{locked}{resumed}) to {to}")


def _inbox_line(f: InboxFile) -> str:
    note = f"  “{f.note}”" if f.note else ""
    return f"{f.id}  {f.created_at[:19]}  {f.sender:<12} {human_size(f.size):>9}  {f.name}{note}"


@click.command()
@connection_options
@handle_errors
def inbox(**opts: Any) -> None:
    """List the files waiting for you, oldest first."""
    with open_client(opts) as client:
        files = client.inbox()
    if opts["as_json"]:
        _emit({"files": [f.raw for f in files]})
    elif not files:
        click.echo("inbox empty")
    else:
        for f in files:
            click.echo(_inbox_line(f))


def _received_doc(got: ReceivedFile) -> dict[str, Any]:
    return {
        "id": got.file.id,
        "name": got.file.name,
        "sender": got.file.sender,
        "path": str(got.path),
        "size": got.file.size,
        "sha256": got.file.sha256,
        "note": got.file.note,
        "resumed_from": got.resumed_from,
        "live": got.live,
        "acknowledged": got.acknowledged,
    }


@click.command()
@click.option("--all", "all_files", is_flag=True, help="Receive every available file.")
@click.option(
    "--wait",
    default=0.0,
    type=click.FloatRange(0),
    help="Wait up to this many seconds for a file to arrive.",
)
@click.option(
    "--out",
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the files in (created if missing).",
)
@click.option("--overwrite", is_flag=True, help="Replace files of the same name in --out.")
@click.option(
    "--live/--no-live",
    default=True,
    help="While waiting, receive an upload as it is sent (verified all the same).",
)
@click.option(
    "--lease",
    type=click.FloatRange(0, min_open=True),
    help="Seconds the file is reserved for you while it downloads.  [default: the server's]",
)
@key_file_option
@connection_options
@handle_errors
def receive(
    all_files: bool,
    wait: float,
    out: Path,
    overwrite: bool,
    live: bool,
    lease: float | None,
    **opts: Any,
) -> None:
    """Download the oldest file (or --all), verify its SHA-256, write it, acknowledge it.

    A file is written under its (sanitized) name only once verified, atomically, and
    acknowledged (deleted on the server) only after that. An existing file is never
    replaced unless --overwrite. An interrupted download resumes on the next run.
    """
    as_json = opts["as_json"]
    got: list[ReceivedFile] = []

    def report(one: ReceivedFile) -> None:
        got.append(one)
        if not as_json:
            click.echo(
                f"received {one.file.name} ({human_size(one.file.size)}) from {one.file.sender}"
                f" -> {one.path}"
            )

    try:
        with open_client(opts) as client, BarProgress(enabled=not as_json) as bar:
            client.receive(
                out,
                all_files=all_files,
                wait=wait,
                lease=lease,
                overwrite=overwrite,
                progress=bar,
                on_file=report,
                live=live,
            )
    except (WirelabError, OSError) as exc:
        if as_json:  # scripts still learn which files were received before the failure
            _emit({"ok": False, "error": describe_error(exc), "files": _docs(got)})
        raise
    if as_json:
        _emit({"ok": True, "files": _docs(got)})
    elif not got:
        click.echo("inbox empty" + (f" after waiting {wait:g} s" if wait else ""))


def _docs(got: list[ReceivedFile]) -> list[dict[str, Any]]:
    return [_received_doc(g) for g in got]


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
        _emit({"key_file": str(path), "created": created, "fingerprint": public.fingerprint})
    else:
        verb = "Created" if created else "Kept"
        click.echo(f"{verb} {path}; published public key {public.fingerprint}")


def register(group: click.Group) -> None:
    """Add the relay's user commands to the ``wirelab`` command group."""
    for command in (login, logout, keygen, send, inbox, receive):
        group.add_command(command)
