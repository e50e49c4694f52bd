"""The blocking relay client: :class:`RelayClient`."""

from __future__ import annotations

import functools
import hashlib
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import HTTPStatusError, ProtocolError, TruncatedError, UsageError
from ._relay_models import InboxFile, NoProgress, Progress, ReceivedFile, SentFile, parse_file
from ._relay_receive import FILES_PATH, PartialHash, download_file, stream_live
from ._relay_send import DEFAULT_CHUNK_SIZE, LocalFile, Sender
from ._relay_state import SendState, default_state_dir, send_key
from ._request import DEFAULT_URL
from ._token import TokenClient

if TYPE_CHECKING:  # the crypto modules load only when a file is encrypted (start-up time)
    from ..crypto import PrivateKey, PublicKey

__all__ = ["RelayClient"]

INBOX_PATH = "/v1/relay/inbox"
NEXT_PATH = "/v1/relay/inbox/next"
KEYS_PATH = "/v1/relay/keys"
_LIVE_SETTLE_S = 0.1  # between looks for the stored file after a live stream


class RelayClient(TokenClient):
    """A user's client of the relay: send files, list the inbox, receive and acknowledge.

    ``token`` is the user's API token (``wirelab users add``). ``verify`` is the TLS
    setting (``True``: system CAs, ``False``, or an :class:`ssl.SSLContext`).
    ``state_dir`` is where interrupted sends remember their uploads (default
    ``$XDG_STATE_HOME/wirelab/sends``). ``key_file`` is this user's private key for
    end-to-end encrypted files (default ``$XDG_CONFIG_HOME/wirelab/x25519.key``, read
    only when an encrypted file arrives). ``transport`` replaces httpx's for the small JSON
    requests (tests); file bodies always use a real connection.

    Errors are the :mod:`wirelab` tree: :class:`~wirelab.HTTPStatusError` (with the
    server's message), :class:`~wirelab.NetworkError`, :class:`~wirelab.TimeoutError`,
    :class:`~wirelab.IntegrityError` (a digest mismatch), :class:`~wirelab.UsageError`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str,
        timeout: float | None = 30.0,
        verify: ssl.SSLContext | bool = True,
        state_dir: Path | None = None,
        key_file: Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token=token, timeout=timeout, verify=verify, transport=transport)
        self._user = hashlib.sha256(token.encode()).hexdigest()[:16]
        self._state_dir = state_dir or default_state_dir()
        self._key_file = key_file

    # --- recipient side -------------------------------------------------------------

    def inbox(self) -> list[InboxFile]:
        """The files waiting for this user, oldest first."""
        doc = self._json("GET", INBOX_PATH)
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
            raise ProtocolError("the server's inbox is not {'files': [...]}")
        return [parse_file(item) for item in doc["files"]]

    def next(self, *, lease: float | None = None, wait: float = 0.0) -> InboxFile | None:
        """Lease the oldest available file, waiting up to ``wait`` seconds for one.

        Returns ``None`` when none arrived in time. The file is hidden from other ``next``
        calls for ``lease`` seconds (the server's default if ``None``); acknowledge it
        with :meth:`ack` before then, or it is offered again.
        """
        doc = self._take(lease, wait, live=False)
        return None if doc is None else parse_file(doc)

    def _take(self, lease: float | None, wait: float, *, live: bool) -> dict[str, Any] | None:
        if wait < 0 or (lease is not None and lease <= 0):
            raise UsageError("wait must be >= 0 and lease > 0")
        params: dict[str, str] = {"wait": f"{wait:g}"}
        if lease is not None:
            params["lease"] = f"{lease:g}"
        if live:
            params["live"] = "true"
        timeout = None if self._timeout is None else self._timeout + wait
        doc = self._json("POST", NEXT_PATH, params=params, timeout=timeout)
        if doc is not None and not isinstance(doc, dict):
            raise ProtocolError("the server's next file is not a JSON object")
        return doc

    def _after_live(
        self, doc: dict[str, Any], out_dir: Path, **kw: Any
    ) -> tuple[InboxFile, PartialHash]:
        """Stream a live upload into its partial file, then wait for the stored file."""
        file_id, known = stream_live(self._bulk, doc, out_dir, **kw)
        deadline = time.monotonic() + (self._timeout or 30.0)
        while True:  # the file is listed once the upload's last PATCH committed it
            for file in self.inbox():
                if file.id == file_id:
                    return file, known
            if time.monotonic() > deadline:
                raise TruncatedError(
                    f"the live upload of {doc.get('name')!r} did not complete (cancelled, "
                    "or the sender is gone); the bytes received so far are kept"
                )
            time.sleep(_LIVE_SETTLE_S)

    def download(
        self,
        file: InboxFile,
        out_dir: Path,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> ReceivedFile:
        """Download ``file`` into ``out_dir``: resumable, verified, atomic (no ack).

        See :func:`wirelab.client._relay_receive.download_file` for the guarantees.
        """
        return self._download(file, out_dir, overwrite=overwrite, progress=progress)

    def _download(
        self,
        file: InboxFile,
        out_dir: Path,
        *,
        overwrite: bool,
        progress: Progress | None,
        known: PartialHash | None = None,
    ) -> ReceivedFile:
        self._check_open()
        decrypt = None
        if file.encryption is not None:
            from ..crypto import decrypt_file
            from ._relay_crypto import is_encrypted

            if not is_encrypted(file):
                raise UsageError(
                    f"{file.name} is encrypted in a way this client does not know "
                    f"({file.encryption[:60]!r})"
                )
            key = self.private_key()
            decrypt = functools.partial(decrypt_file, private_key=key)
        return download_file(
            self._bulk,
            file,
            out_dir,
            overwrite=overwrite,
            progress=progress or NoProgress(),
            decrypt=decrypt,
            known=known,
        )

    def ack(self, file_id: str) -> bool:
        """Acknowledge (delete) a received file; ``False`` if it was already gone."""
        try:
            self._json("DELETE", f"{FILES_PATH}/{file_id}")
        except HTTPStatusError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def receive(
        self,
        out_dir: Path,
        *,
        all_files: bool = False,
        wait: float = 0.0,
        lease: float | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
        on_file: Callable[[ReceivedFile], None] | None = None,
        live: bool = True,
    ) -> list[ReceivedFile]:
        """Take the oldest file (or, with ``all_files``, every available one) into ``out_dir``.

        Each file is leased, downloaded, verified, written atomically, and only then
        acknowledged. ``wait`` applies to the first file. ``on_file`` is called after
        each acknowledged file. The first failure raises (files before it are kept and
        acknowledged; the failed one stays in the inbox and is offered again when its
        lease ends).

        With ``live`` (the default) and a ``wait``, an upload that starts while waiting is
        received as it is sent (live pass-through); it is verified against the stored
        file's SHA-256 like any other before it is written and acknowledged.
        """
        received: list[ReceivedFile] = []
        while True:
            first = not received
            doc = self._take(lease, wait if first else 0.0, live=live and first and wait > 0)
            if doc is None:
                break
            known = None
            if doc.get("live") is True:
                file, known = self._after_live(
                    doc, out_dir, overwrite=overwrite, progress=progress or NoProgress()
                )
            else:
                file = parse_file(doc)
            got = self._download(file, out_dir, overwrite=overwrite, progress=progress, known=known)
            live_file = doc.get("live") is True
            got = ReceivedFile(got.file, got.path, got.resumed_from, self.ack(file.id), live_file)
            received.append(got)
            if on_file is not None:
                on_file(got)
            if not all_files:
                break
        return received

    # --- keys for end-to-end encryption ---------------------------------------------

    @property
    def key_file(self) -> Path:
        """Where this client's private key is (or will be) kept."""
        from ._relay_crypto import default_key_path

        return self._key_file or default_key_path()

    def private_key(self) -> PrivateKey:
        """This user's private key, from :attr:`key_file`."""
        from ..crypto import load_private_key

        try:
            return load_private_key(self.key_file)
        except FileNotFoundError:
            raise UsageError(
                f"no private key at {self.key_file} to decrypt end-to-end encrypted files "
                "(create one with 'wirelab keygen')"
            ) from None

    def publish_key(self, key: PublicKey) -> None:
        """Publish ``key`` as this user's public key (senders encrypt for it)."""
        self._json(
            "PUT", KEYS_PATH + "/me", json={"algorithm": "x25519", "public_key": key.to_base64()}
        )

    def public_key(self, user: str) -> PublicKey:
        """The public key ``user`` published; :class:`~wirelab.UsageError` if none."""
        from ..crypto import PublicKey

        try:
            doc = self._json("GET", f"{KEYS_PATH}/{user}")
        except HTTPStatusError as exc:
            if exc.status_code == 404:
                raise UsageError(
                    f"no public key for user {user!r} (no such user, or they never ran "
                    "'wirelab keygen'): cannot encrypt for them"
                ) from exc
            raise
        if not isinstance(doc, dict) or doc.get("algorithm") != "x25519":
            raise ProtocolError(f"the server's key of {user!r} is not an x25519 key")
        return PublicKey.from_base64(str(doc.get("public_key")))

    # --- sender side ----------------------------------------------------------------

    def send(
        self,
        paths: Sequence[Path | str],
        *,
        to: str,
        note: str | None = None,
        max_downloads: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        encrypt: bool = False,
        progress: Progress | None = None,
        resume: bool = True,
    ) -> list[SentFile]:
        """Send files to user ``to`` as one delivery (a batch when there are several).

        Resumable: with ``resume`` (the default), an interrupted send is remembered in
        the state folder and the same call later continues from the server's offsets.
        Every file is hashed while it is sent and verified by the server before the
        recipient can see it. Raises :class:`~wirelab.UsageError` for a missing or
        unreadable file or one that changed while it was sent.

        With ``encrypt``, the files are encrypted for ``to``'s published key (see
        :mod:`wirelab.crypto`); the server only sees ciphertext, and the results' ``size``
        and ``sha256`` are those of the ciphertext.
        """
        self._check_open()
        if not paths:
            raise UsageError("nothing to send")
        files = [LocalFile.open(Path(p)) for p in paths]
        options: dict[str, Any] = {"note": note, "max_downloads": max_downloads}
        identity = [self.base_url, self._user, to, options, encrypt, [f.identity() for f in files]]
        state = SendState(self._state_dir if resume else None, send_key(identity))
        sender = Sender(self._http, self._bulk, progress or NoProgress(), chunk_size=chunk_size)
        if not encrypt:
            return sender.send(files, to, options, state)
        from ._relay_crypto import encrypted_sources

        sources, reused = encrypted_sources(files, self.public_key(to), state.load().get("e2e"))
        if not reused:  # saved uploads (if any) hold other ciphertext: start afresh
            state.clear()
        extra = {"e2e": [s.encryptor.state() for s in sources]}
        return sender.send(sources, to, options, state, extra)
