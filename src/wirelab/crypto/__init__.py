"""End-to-end encryption of relay files: X25519 + HKDF-SHA256 + ChaCha20-Poly1305 STREAM.

A sender encrypts a file for the recipient's public key; the server stores only the
ciphertext. The format (docs/protocol/encryption.md) is chunked so that decryption is
incremental and releases only authenticated plaintext, and deterministic given
:meth:`Encryptor.state` so that an interrupted upload resumes at any byte offset.

Pure objects (bytes in, bytes out): :class:`Encryptor`, :class:`Decryptor`, the keys,
:func:`ciphertext_size`, :func:`encrypt_bytes` and :func:`decrypt_bytes`. File adapters
(the only I/O): :class:`EncryptingReader`, :class:`DecryptingWriter`, :func:`decrypt_file`,
:func:`source_stamp`, :func:`save_private_key` and :func:`load_private_key`.
"""

from ._decrypt import Decryptor, decrypt_bytes
from ._encrypt import Encryptor, encrypt_bytes
from ._errors import (
    CorruptedChunkError,
    DecryptionError,
    KeyFileError,
    NotEncryptedError,
    SourceChangedError,
    TrailingDataError,
    TruncatedCiphertextError,
    WrongKeyError,
)
from ._files import DecryptingWriter, EncryptingReader, decrypt_file, source_stamp
from ._format import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MAX_PLAINTEXT_SIZE,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    Header,
    ciphertext_size,
)
from ._keyfile import load_private_key, save_private_key
from ._keys import PrivateKey, PublicKey, generate_keypair

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HEADER_SIZE",
    "MAX_CHUNK_SIZE",
    "MAX_PLAINTEXT_SIZE",
    "MIN_CHUNK_SIZE",
    "TAG_SIZE",
    "CorruptedChunkError",
    "DecryptingWriter",
    "DecryptionError",
    "Decryptor",
    "EncryptingReader",
    "Encryptor",
    "Header",
    "KeyFileError",
    "NotEncryptedError",
    "PrivateKey",
    "PublicKey",
    "SourceChangedError",
    "TrailingDataError",
    "TruncatedCiphertextError",
    "WrongKeyError",
    "ciphertext_size",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "generate_keypair",
    "load_private_key",
    "save_private_key",
    "source_stamp",
]
