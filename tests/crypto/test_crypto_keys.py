"""X25519 keys: text forms, strict parsing, known answers and private key files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from wirelab import UsageError
from wirelab.crypto import (
    Encryptor,
    KeyFileError,
    PrivateKey,
    PublicKey,
    generate_keypair,
    load_private_key,
    save_private_key,
)

# RFC 7748 section 6.1: Alice's and Bob's keys and their shared secret.
ALICE_PRIVATE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUBLIC = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB_PRIVATE = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUBLIC = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
ALICE_PUBLIC_B64 = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="


def test_rfc7748_known_answer() -> None:
    alice = PrivateKey(bytes.fromhex(ALICE_PRIVATE))
    bob = PrivateKey(bytes.fromhex(BOB_PRIVATE))
    assert alice.public_key.raw.hex() == ALICE_PUBLIC
    assert bob.public_key.raw.hex() == BOB_PUBLIC
    assert alice.exchange(bob.public_key).hex() == SHARED
    assert bob.exchange(alice.public_key).hex() == SHARED


def test_public_key_base64_round_trip() -> None:
    _, public = generate_keypair()
    text = public.to_base64()
    assert len(text) == 44
    assert base64.b64decode(text) == public.raw
    assert PublicKey.from_base64(text) == public
    assert hash(PublicKey.from_base64(text)) == hash(public)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64 at all!",
        base64.b64encode(bytes(31)).decode(),  # too short
        base64.b64encode(bytes(33)).decode(),  # too long
        ALICE_PUBLIC_B64.rstrip("="),  # padding missing
        ALICE_PUBLIC_B64[:42] + "p=",  # 'o' -> 'p': the two unused bits set (non-canonical)
        ALICE_PUBLIC_B64.replace("/", "_"),  # URL-safe alphabet
    ],
)
def test_public_key_strict_parsing(text: str) -> None:
    with pytest.raises(UsageError):
        PublicKey.from_base64(text)


def test_canonical_spelling_is_accepted() -> None:
    public = PublicKey(bytes.fromhex(ALICE_PUBLIC))
    assert public.to_base64() == ALICE_PUBLIC_B64
    assert PublicKey.from_base64(public.to_base64()) == public


def test_fingerprint_identifies_the_key() -> None:
    a, b = generate_keypair()[1], generate_keypair()[1]
    assert a.fingerprint.startswith("SHA256:")
    assert a.fingerprint == PublicKey(a.raw).fingerprint
    assert a.fingerprint != b.fingerprint


def test_private_key_text_round_trip_and_secret_not_in_repr() -> None:
    private, public = generate_keypair()
    text = private.to_text()
    assert text.startswith("wirelab-x25519-private-v1:")
    assert text.endswith("\n")
    loaded = PrivateKey.from_text(text)
    assert loaded == private
    assert loaded.public_key == public
    assert private.to_base64() not in repr(private)
    assert public.to_base64() in repr(private)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "wirelab-x25519-private-v2:" + "A" * 43 + "=",
        "wirelab-x25519-private-v1:",
        "wirelab-x25519-private-v1:" + "A" * 42 + "==",
    ],
)
def test_private_key_text_rejected(text: str) -> None:
    with pytest.raises(KeyFileError):
        PrivateKey.from_text(text)


def test_low_order_public_key_is_refused() -> None:
    private, _ = generate_keypair()
    zero = PublicKey(bytes(32))
    with pytest.raises(UsageError, match="low-order"):
        private.exchange(zero)
    with pytest.raises(UsageError, match="low-order"):
        Encryptor(zero, 10)


def test_wrong_raw_lengths() -> None:
    with pytest.raises(UsageError):
        PublicKey(bytes(31))
    with pytest.raises(UsageError):
        PrivateKey(bytes(33))


# -- key files ----------------------------------------------------------------------------


def test_save_writes_0600_whatever_the_umask(tmp_path: Path) -> None:
    private, _ = generate_keypair()
    path = tmp_path / "config" / "wirelab" / "key"
    old = os.umask(0)
    try:
        save_private_key(path, private)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == private.to_text()
    assert load_private_key(path) == private
    assert sorted(p.name for p in path.parent.iterdir()) == ["key"]  # no temporary left


def test_save_refuses_to_replace_a_key(tmp_path: Path) -> None:
    first, second = generate_keypair()[0], generate_keypair()[0]
    path = tmp_path / "key"
    save_private_key(path, first)
    with pytest.raises(KeyFileError, match="already exists"):
        save_private_key(path, second)
    assert load_private_key(path) == first
    save_private_key(path, second, overwrite=True)
    assert load_private_key(path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602])
def test_load_refuses_a_key_others_can_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key"
    save_private_key(path, generate_keypair()[0])
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600") as info:
        load_private_key(path)
    assert f"{mode:04o}" in str(info.value)


def test_load_accepts_0400(tmp_path: Path) -> None:
    private = generate_keypair()[0]
    path = tmp_path / "key"
    save_private_key(path, private)
    path.chmod(0o400)
    assert load_private_key(path) == private


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_load_refuses_a_key_owned_by_another_user(tmp_path: Path) -> None:
    path = tmp_path / "key"
    save_private_key(path, generate_keypair()[0])
    os.chown(path, 65534, 65534)
    with pytest.raises(KeyFileError, match="owned by another user"):
        load_private_key(path)


@pytest.mark.parametrize(
    "content", [b"", b"hello\n", b"\xff\xfe", b"wirelab-x25519-private-v1:" + b"A" * 5000]
)
def test_load_refuses_malformed_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=str(path)):
        load_private_key(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_private_key(tmp_path / "absent")
