"""End-to-end encryption in the relay client: encrypted sources and decrypting receives.

The sender encrypts for the recipient's published X25519 key (:mod:`wirelab.crypto`);
the server stores, hashes and verifies only ciphertext. The file's ``encryption``
descriptor (``wirelab-e2e-v1 recipient=SHA256:...``) tells the recipient's client to
decrypt it after the ciphertext's SHA-256 was verified. Names, sizes (approximately) and
notes stay visible to the server.

Resuming an encrypted send re-produces the exact ciphertext: the encryptor's state
(ephemeral key and salt) is saved with the send's state, which is therefore as private
as the plaintext (mode 0600, deleted when the send completes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .._exceptions import UsageError
from ..crypto import Encryptor, PublicKey
from ._bulk import BLOCK
from ._relay_models import InboxFile
from ._relay_send import Hasher, LocalFile

__all__ = [
    "E2E_PREFIX",
    "EncryptedFile",
    "default_key_path",
    "descriptor",
    "is_encrypted",
]

E2E_PREFIX: Final = "wirelab-e2e-v1"


def default_key_path() -> Path:
    """``$XDG_CONFIG_HOME/wirelab/x25519.key`` (``~/.config/wirelab/x25519.key``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wirelab" / "x25519.key"


def descriptor(recipient: PublicKey) -> str:
    """The file's ``encryption`` value for a file encrypted for ``recipient``."""
    return f"{E2E_PREFIX} recipient={recipient.fingerprint}"


def is_encrypted(file: InboxFile) -> bool:
    """Whether ``file`` was encrypted end to end by a wirelab client."""
    return (file.encryption or "").split(" ", 1)[0] == E2E_PREFIX


@dataclass(frozen=True, slots=True)
class EncryptedFile:
    """A :class:`LocalFile` as its ciphertext: what a sender uploads with ``--encrypt``."""

    plain: LocalFile
    encryptor: Encryptor

    @property
    def path(self) -> Path:
        return self.plain.path

    @property
    def name(self) -> str:
        return self.plain.name

    @property
    def media_type(self) -> str:
        return self.plain.media_type

    @property
    def size(self) -> int:
        """The ciphertext's size: what the server stores."""
        return self.encryptor.ciphertext_size

    def identity(self) -> list[Any]:
        return [*self.plain.identity(), E2E_PREFIX, self.encryptor.recipient.fingerprint]

    def metadata(self) -> dict[str, str]:
        return {"encryption": descriptor(self.encryptor.recipient)}

    def check_unchanged(self) -> None:
        self.plain.check_unchanged()

    def blocks(self, start: int, end: int) -> Iterator[memoryview]:
        """Ciphertext bytes ``start:end``, re-encrypted from the plaintext, ~1 MiB at a time."""
        with self.plain.path.open("rb") as f:

            def read_at(offset: int, length: int) -> bytes:
                f.seek(offset)
                data = f.read(length)
                if len(data) != length:
                    raise UsageError(f"{self.path} shrank while it was sent; send it again")
                return data

            pending = bytearray()
            position = start
            for piece in self.encryptor.iter_ciphertext(read_at, start):
                piece = piece[: end - position]
                position += len(piece)
                pending += piece
                if len(pending) >= BLOCK or position >= end:
                    yield memoryview(bytes(pending))
                    pending.clear()
                if position >= end:
                    return

    def hashed_blocks(self, start: int, end: int, hasher: Hasher) -> Iterator[memoryview]:
        for block in self.blocks(start, end):
            hasher.update(block)
            yield block


def encrypted_sources(
    files: list[LocalFile], recipient: PublicKey, saved: Any
) -> tuple[list[EncryptedFile], bool]:
    """The files as ciphertexts: with the saved encryptors when they match, else fresh.

    The flag says whether every saved encryptor was reused: if not (the recipient's key
    changed, say), the saved uploads hold other ciphertext and must not be resumed.
    """
    out: list[EncryptedFile] = []
    reused = 0
    states = saved if isinstance(saved, list) and len(saved) == len(files) else []
    for i, file in enumerate(files):
        encryptor = None
        if states:
            with contextlib.suppress(UsageError, KeyError, TypeError, ValueError):
                encryptor = Encryptor.from_state(states[i])
            if encryptor is not None and (
                encryptor.recipient != recipient or encryptor.plaintext_size != file.size
            ):
                encryptor = None
        reused += encryptor is not None
        out.append(EncryptedFile(file, encryptor or Encryptor(recipient, file.size)))
    return out, reused == len(files)
