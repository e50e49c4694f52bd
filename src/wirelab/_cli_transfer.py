"""``wirelab send`` and ``wirelab receive``: moving files through the relay.

Option parsing and output only; the work is :class:`wirelab.client.RelayClient`. The
output contract is :mod:`wirelab._cli_common`'s. ``send`` also takes folders (every file
in them, recursively) and ``-`` (standard input, spooled to a private temporary file
first: tus needs the length up front, and a retry must be able to read the bytes again).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import click

from ._cli_common import ByteSize, emit, handle_errors, human_size, json_extra, set_hint
from ._cli_common import note as stderr_note
from ._cli_relay import BarProgress, connection_options, key_file_option, open_client, printable
from ._exceptions import UsageError

if TYPE_CHECKING:
    from .client import ReceivedFile, SentFile
    from .client._relay_receive import Exists

__all__ = ["receive", "send"]

_SPOOL_BLOCK: Final = 1024 * 1024


def _sent_doc(sent: SentFile) -> dict[str, Any]:
    return {
        "path": str(sent.path),
        "name": sent.name,
        "size": sent.size,
        "digest_algorithm": sent.algorithm,
        "digest": sent.digest,
        "sha256": sent.sha256,
        "file_url": sent.file_url,
        "resumed_from": sent.resumed_from,
    }


def _folder_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        raise UsageError(f"nothing to send: no files in the folder {folder}")
    return files


@contextlib.contextmanager
def _expanded(args: tuple[Path, ...], stdin_name: str) -> Iterator[tuple[list[Path], bool]]:
    """The files to send for ``args`` (folders expanded, ``-`` spooled), and whether
    standard input is among them (such a send cannot resume in a later run)."""
    paths: list[Path] = []
    spool: Path | None = None
    try:
        for arg in args:
            if str(arg) == "-":
                if spool is not None:
                    raise UsageError("'-' (standard input) can be given once")
                spool = Path(tempfile.mkdtemp(prefix="wirelab-stdin-"))
                paths.append(_spool_stdin(spool / stdin_name))
            elif arg.is_dir():
                paths.extend(_folder_files(arg))
            else:
                paths.append(arg)
        yield paths, spool is not None
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)


def _spool_stdin(target: Path) -> Path:
    with open(target, "xb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, _SPOOL_BLOCK)
    return target


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option("-t", "--to", "to", required=True, help="The recipient's user name.")
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
    "--again",
    is_flag=True,
    help="Send even if the recipient still has an identical copy from you in their inbox.",
)
@click.option(
    "--name",
    "stdin_name",
    default="stdin",
    help="File name for standard input ('-').",
)
@click.option(
    "--chunk-size",
    type=ByteSize(),
    default=None,
    envvar="WIRELAB_CHUNK_SIZE",
    show_envvar=True,
    help="Most bytes per upload request (e.g. 64M, for a proxy that caps request bodies); "
    "default: no limit, a file goes in two requests (the last 8 MiB, with the digest, in "
    "the second). The server makes what arrived durable every 8 MiB and when a request ends.",
)
@click.option(
    "--digest",
    type=click.Choice(["blake3", "sha256"]),
    default="blake3",
    envvar="WIRELAB_DIGEST",
    show_envvar=True,
    help="Digest the server verifies the files with (sha256: for generic tools).",
)
@connection_options
@handle_errors
def send(
    files: tuple[Path, ...],
    to: str,
    note: str | None,
    max_downloads: int | None,
    encrypt: bool,
    again: bool,
    stdin_name: str,
    chunk_size: int | None,
    digest: str,
    **opts: Any,
) -> None:
    """Send FILES (files, folders, or - for standard input) to user --to as one delivery.

    Each file is hashed (BLAKE3, or --digest sha256) while it is sent and verified by the
    server before the recipient can see it; several files arrive together, as one batch.
    If the send is interrupted, run the same command again: it resumes. A file the
    recipient still has from you, unchanged, is not sent twice (unless --again).

    \b
    Examples:
      wirelab send report.pdf -t bob --note "Q3"
      wirelab send photos/ -t bob                    # every file in the folder
      tar c logs | wirelab send - --name logs.tar -t bob
    """
    with _expanded(files, stdin_name) as (paths, from_stdin):
        if not from_stdin:
            set_hint("run the same command again to resume the upload")
        with open_client(opts) as client, BarProgress(enabled=not opts["as_json"]) as bar:
            try:
                sent = client.send(
                    paths,
                    to=to,
                    note=note,
                    max_downloads=max_downloads,
                    chunk_size=chunk_size,
                    encrypt=encrypt,
                    progress=bar,
                    resume=not from_stdin,
                    allow_duplicates=again,
                    digest=digest,
                )
            except UsageError as exc:
                queued = getattr(exc, "queued", None)
                if queued is not None:  # a DuplicateError: scripts learn which file it is
                    json_extra(queued=[f.raw for f in queued])
                raise
    if opts["as_json"]:
        emit({"to": to, "files": [_sent_doc(s) for s in sent]})
        return
    for s in sent:
        resumed = f", resumed at {human_size(s.resumed_from)}" if s.resumed_from else ""
        locked = ", encrypted" if encrypt else ""
        click.echo(f"sent {s.name} ({human_size(s.size)}{locked}{resumed}) to {to}")


def _received_doc(got: ReceivedFile) -> dict[str, Any]:
    return {
        "id": got.file.id,
        "name": got.file.name,
        "sender": got.file.sender,
        "path": str(got.path),
        "size": got.file.size,
        "digest_algorithm": got.file.algorithm,
        "digest": got.file.digest,
        "sha256": got.file.sha256,
        "note": got.file.note,
        "resumed_from": got.resumed_from,
        "live": got.live,
        "skipped": got.skipped,
        "acknowledged": got.acknowledged,
    }


def _received_line(got: ReceivedFile) -> str:
    f = got.file
    name, sender = printable(f.name), printable(f.sender)
    if got.skipped:
        return f"already had {name} ({human_size(f.size)}) from {sender} in {got.path}"
    how = f", resumed at {human_size(got.resumed_from)}" if got.resumed_from else ""
    how += ", live" if got.live else ""
    return f"received {name} ({human_size(f.size)}{how}) from {sender} -> {got.path}"


@click.command()
@click.option("-a", "--all", "all_files", is_flag=True, help="Receive every available file.")
@click.option(
    "-w",
    "--wait",
    default=0.0,
    type=click.FloatRange(0),
    help="Wait up to this many seconds for a file to arrive.",
)
@click.option(
    "-o",
    "--out",
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the files in (created if missing).",
)
@click.option(
    "--exists",
    type=click.Choice(["fail", "rename", "overwrite"]),
    default="fail",
    envvar="WIRELAB_EXISTS",
    show_envvar=True,
    help="When a different file has the name: stop, keep both ('NAME (1).EXT'), or replace "
    "it. An identical file is always recognized and not written again.",
)
@click.option("--overwrite", is_flag=True, help="Same as --exists overwrite.")
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
    exists: str,
    overwrite: bool,
    live: bool,
    lease: float | None,
    **opts: Any,
) -> None:
    """Download the oldest file (or --all), verify its SHA-256, write it, acknowledge it.

    A file is written under its (sanitized) name only once verified, atomically, and
    acknowledged (deleted on the server) only after that. A file that cannot be written
    (an existing name, a full disk, a missing key, Ctrl-C) is given back at once, and the
    next run resumes its download.

    \b
    Examples:
      wirelab receive -o ~/Downloads                 # the oldest file
      wirelab receive --all --exists rename -o inbox # everything, unattended
      wirelab receive --wait 60 -o inbox             # wait up to a minute for a file
    """
    as_json = opts["as_json"]
    got: list[ReceivedFile] = []
    set_hint(f"run the same command again to resume (what arrived is kept in {out})")

    def report(one: ReceivedFile) -> None:
        got.append(one)
        json_extra(files=[_received_doc(g) for g in got])
        if not as_json:
            click.echo(_received_line(one))

    json_extra(files=[])
    with open_client(opts) as client, BarProgress(enabled=not as_json) as bar:
        if wait and not as_json:
            stderr_note(f"waiting up to {wait:g} s for a file (Ctrl-C to stop)")
        client.receive(
            out,
            all_files=all_files,
            wait=wait,
            lease=lease,
            exists=cast("Exists", "overwrite" if overwrite else exists),
            progress=bar,
            on_file=report,
            live=live,
        )
        # "Nothing to receive" must not read as "nothing there" when files wait but are
        # not offered now (another receive holds them, or they are at their limit).
        unavailable = 0 if got else len(client.inbox())
    if as_json:
        emit({"files": [_received_doc(g) for g in got], "unavailable": unavailable})
    elif unavailable:
        click.echo(
            f"no file available now: {unavailable} in your inbox are being received "
            "elsewhere (leased) or at their download limit; a leased file comes back when "
            "that receive fails or its lease ends"
        )
    elif not got:
        click.echo("inbox empty" + (f" after waiting {wait:g} s" if wait else ""))
