"""The blocking relay client: :class:`RelayClient`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .._digests import DEFAULT_DIGEST
from .._exceptions import HTTPStatusError, ProtocolError, TruncatedError, UsageError
from ._relay_leases import LeaseMarker, stale_markers
from ._relay_models import (
    DuplicateError,
    InboxFile,
    NoProgress,
    Progress,
    ReceivedFile,
    SentFile,
    parse_file,
)
from ._relay_receive import FILES_PATH, Exists, PartialHash, download_file, stream_live
from ._relay_send import DEFAULT_CHUNK_SIZE, LocalFile, Sender, Source
from ._relay_state import SendState, default_state_dir, send_key
from ._request import DEFAULT_URL
from ._token import TokenClient

if TYPE_CHECKING:  # the crypto modules load only when a file is encrypted (start-up time)
    from ..crypto import PrivateKey, PublicKey

__all__ = ["RelayClient"]

INBOX_PATH = "/v1/relay/inbox"
NEXT_PATH = "/v1/relay/inbox/next"
KEYS_PATH = "/v1/relay/keys"
ME_PATH = "/v1/relay/me"
SENT_PATH = "/v1/relay/sent"
_LIVE_SETTLE_S = 0.1  # between looks for the stored file after a live stream
_RELEASE_TIMEOUT_S = 5.0  # giving a lease back must not hold up the error it follows


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

    def whoami(self) -> dict[str, Any]:
        """The user this client's token belongs to: ``{"name", "created_at",
        "quota_bytes", "quota_files"}`` (proves the URL and the token)."""
        doc = self._json("GET", ME_PATH)
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            raise ProtocolError("the server's answer to /me has no user name")
        return doc

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
        self, doc: dict[str, Any], out_dir: Path, progress: Progress
    ) -> tuple[InboxFile, PartialHash]:
        """Stream a live upload into its partial file, then wait for the stored file."""
        file_id, known = stream_live(self._bulk, doc, out_dir, progress=progress)
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
        exists: Exists = "fail",
        progress: Progress | None = None,
    ) -> ReceivedFile:
        """Download ``file`` into ``out_dir``: resumable, verified, atomic (no ack).

        ``exists`` (``"fail"``, ``"rename"``, ``"overwrite"``; ``overwrite=True`` is
        ``"overwrite"``) applies when the name is taken by a different file; an identical
        file there is recognized (``skipped``). See
        :func:`wirelab.client._relay_receive.download_file` for the guarantees.
        """
        mode: Exists = "overwrite" if overwrite else exists
        return self._download(file, out_dir, exists=mode, progress=progress)

    def _download(
        self,
        file: InboxFile,
        out_dir: Path,
        *,
        exists: Exists,
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
            exists=exists,
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

    def release(self, file_id: str, lease_id: str | None = None) -> bool:
        """Give a leased file back: the server offers it again at once (not when the lease
        ends). With ``lease_id``, only that lease is ended. ``False`` if the file is gone."""
        params = {"lease_id": lease_id} if lease_id else None
        try:
            self._json(
                "DELETE", f"{FILES_PATH}/{file_id}/lease", params=params, timeout=_RELEASE_TIMEOUT_S
            )
        except HTTPStatusError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def _give_back(self, marker: LeaseMarker) -> None:
        """Release ``marker``'s lease after a failure, best effort: if this fails too, the
        marker stays and the next run releases it (or the lease ends)."""
        if marker.lease_id is None:
            return
        try:
            self.release(marker.file_id, marker.lease_id)
        except Exception:  # the failure being reported matters more
            return
        marker.clear()

    def release_stale(self, out_dir: Path) -> int:
        """Release the leases that earlier, killed runs left markers for in ``out_dir``
        (see :mod:`wirelab.client._relay_leases`); return how many markers there were."""
        markers = stale_markers(out_dir)
        for marker in markers:
            with contextlib.suppress(HTTPStatusError):
                self.release(marker.file_id, marker.lease_id)
            marker.clear()
        return len(markers)

    def receive(
        self,
        out_dir: Path,
        *,
        all_files: bool = False,
        wait: float = 0.0,
        lease: float | None = None,
        overwrite: bool = False,
        exists: Exists = "fail",
        progress: Progress | None = None,
        on_file: Callable[[ReceivedFile], None] | None = None,
        live: bool = True,
    ) -> list[ReceivedFile]:
        """Take the oldest file (or, with ``all_files``, every available one) into ``out_dir``.

        Each file is leased, downloaded, verified, written atomically, and only then
        acknowledged. ``wait`` applies to the first file. ``on_file`` is called after
        each acknowledged file. ``exists`` is as for :meth:`download` (``overwrite=True``
        means ``"overwrite"``); an identical file already in ``out_dir`` (e.g. written by
        a run that crashed before acknowledging it) is acknowledged without writing.

        The first failure raises; files before it are kept and acknowledged. The failed
        file's lease is released at once (whatever the failure: network, disk, an
        existing name, a missing key, Ctrl-C), so it is offered again immediately; its
        partial file stays in ``out_dir`` and the next run resumes it. A run that was
        killed leaves a lease marker there, which the next run releases first.

        With ``live`` (the default) and a ``wait``, an upload that starts while waiting is
        received as it is sent (live pass-through); it is verified against the stored
        file's SHA-256 like any other before it is written and acknowledged.
        """
        mode: Exists = "overwrite" if overwrite else exists
        self.release_stale(out_dir)
        received: list[ReceivedFile] = []
        while True:
            first = not received
            doc = self._take(lease, wait if first else 0.0, live=live and first and wait > 0)
            if doc is None:
                break
            got = self._receive_one(doc, out_dir, mode, progress or NoProgress())
            received.append(got)
            if on_file is not None:
                on_file(got)
            if not all_files:
                break
        return received

    def _receive_one(
        self, doc: dict[str, Any], out_dir: Path, exists: Exists, progress: Progress
    ) -> ReceivedFile:
        """Receive the file ``next`` answered with; on any failure give its lease back."""
        is_live = doc.get("live") is True
        known = None
        if is_live:  # not leased: nothing to give back if the stream fails
            file, known = self._after_live(doc, out_dir, progress)
        else:
            file = parse_file(doc)
        marker = LeaseMarker.of(out_dir, file)
        try:
            marker.save()
            got = self._download(file, out_dir, exists=exists, progress=progress, known=known)
        except BaseException:
            self._give_back(marker)
            raise
        acknowledged = self.ack(file.id)
        marker.clear()
        return dataclasses.replace(got, acknowledged=acknowledged, live=is_live)

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

    def queued(self, to: str, digest: str, *, algorithm: str = "sha256") -> list[InboxFile]:
        """The files this user sent to ``to`` whose content has ``digest`` (hex, in
        ``algorithm``: ``sha256`` or ``blake3``) that are still in ``to``'s inbox (not yet
        acknowledged), oldest first."""
        doc = self._json("GET", SENT_PATH, params={"to": to, algorithm: digest})
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
            raise ProtocolError("the server's answer to /sent is not {'files': [...]}")
        return [parse_file(item) for item in doc["files"]]

    def _refuse_duplicate(self, to: str, file: Source, algorithm: str, digest: str) -> None:
        queued = self.queued(to, digest, algorithm=algorithm)
        if queued:
            first = queued[0]
            raise DuplicateError(
                f"{file.name}: {to} still has an identical copy from you in their inbox "
                f"({first.name!r}, sent {first.created_at[:19]}); nothing was delivered. "
                "To send another copy, run the same command with --again",
                queued,
            )

    def send(
        self,
        paths: Sequence[Path | str],
        *,
        to: str,
        note: str | None = None,
        max_downloads: int | None = None,
        chunk_size: int | None = DEFAULT_CHUNK_SIZE,
        encrypt: bool = False,
        progress: Progress | None = None,
        resume: bool = True,
        allow_duplicates: bool = False,
        digest: str = DEFAULT_DIGEST,
    ) -> list[SentFile]:
        """Send files to user ``to`` as one delivery (a batch when there are several).

        Resumable: with ``resume`` (the default), an interrupted send is remembered in
        the state folder and the same call later continues from the server's offsets.
        Every file is hashed while it is sent (``digest``: ``blake3``, the default, or
        ``sha256``) and verified by the server before the recipient can see it. A file
        goes in two upload requests, all but its last 8 MiB and then those with the digest;
        ``chunk_size`` caps each request (for a proxy that limits request bodies). Raises
        :class:`~wirelab.UsageError` for a missing or unreadable file or one that changed
        while it was sent.

        With ``encrypt``, the files are encrypted for ``to``'s published key (see
        :mod:`wirelab.crypto`); the server only sees ciphertext, and the results' ``size``
        and ``digest`` are those of the ciphertext.

        Unless ``allow_duplicates``, a file whose content ``to`` still has in their inbox
        from this user (same digest, not yet acknowledged) raises
        :class:`~wirelab.client.DuplicateError` before the upload completes: nothing is
        delivered, and the same call with ``allow_duplicates=True`` resumes and finishes.
        """
        self._check_open()
        if not paths:
            raise UsageError("nothing to send")
        files = [LocalFile.open(Path(p)) for p in paths]
        options: dict[str, Any] = {"note": note, "max_downloads": max_downloads}
        identity = [self.base_url, self._user, to, options, encrypt, [f.identity() for f in files]]
        if digest != "sha256":  # resume state saved before digests had names stays valid
            identity.append(digest)
        state = SendState(self._state_dir if resume else None, send_key(identity))
        check = None if allow_duplicates else functools.partial(self._refuse_duplicate, to)
        sender = Sender(
            self._http,
            self._bulk,
            progress or NoProgress(),
            chunk_size=chunk_size,
            before_final=check,
            digest=digest,
        )
        if not encrypt:
            return sender.send(files, to, options, state)
        from ._relay_crypto import encrypted_sources

        sources, reused = encrypted_sources(files, self.public_key(to), state.load().get("e2e"))
        if not reused:  # saved uploads (if any) hold other ciphertext: start afresh
            state.clear()
        extra = {"e2e": [s.encryptor.state() for s in sources]}
        return sender.send(sources, to, options, state, extra)
