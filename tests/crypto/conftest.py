"""Fixtures of the crypto tests: the recipient's key pair."""

from __future__ import annotations

import pytest

from wirelab.crypto import PrivateKey, PublicKey, generate_keypair


@pytest.fixture(scope="session")
def keypair() -> tuple[PrivateKey, PublicKey]:
    """The recipient's key pair."""
    return generate_keypair()


@pytest.fixture(scope="session")
def private_key(keypair: tuple[PrivateKey, PublicKey]) -> PrivateKey:
    return keypair[0]


@pytest.fixture(scope="session")
def public_key(keypair: tuple[PrivateKey, PublicKey]) -> PublicKey:
    return keypair[1]
