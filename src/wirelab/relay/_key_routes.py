"""HTTP routes of users' public keys: ``/v1/relay/keys`` (tag ``relay``; ``docs/relay.md``).

The relay only stores and hands out the keys; encryption happens in the clients.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, field_validator

from ._responses import answers
from ._routes import Auth, RelayRuntime

__all__ = ["PublicKeyIn", "add_key_routes"]

#: Raw size of an X25519 public key.
X25519_KEY_BYTES = 32


class PublicKeyIn(BaseModel):
    """``PUT /v1/relay/keys/me``: the caller's public key."""

    algorithm: Literal["x25519"] = Field(description="Key algorithm (only `x25519`).")
    public_key: str = Field(description="Standard base64 of the 32-byte public key.")

    @field_validator("public_key")
    @classmethod
    def _decode(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be standard base64") from None
        if len(raw) != X25519_KEY_BYTES:
            raise ValueError(f"must encode {X25519_KEY_BYTES} bytes, not {len(raw)}")
        return base64.b64encode(raw).decode("ascii")  # canonical form


def _doc(name: str, algorithm: str, public_key: str) -> dict[str, Any]:
    return {"name": name, "algorithm": algorithm, "public_key": public_key}


def add_key_routes(router: APIRouter, runtime: RelayRuntime) -> None:
    """Add the public-key routes to the relay's ``router`` (prefix ``/v1/relay``)."""

    @router.put(
        "/keys/me",
        summary="Publish your public key",
        responses=answers(507),
    )
    async def put_key(user: Auth, body: PublicKeyIn) -> Any:
        """Store your public key (replacing the previous one); senders fetch it to encrypt
        files for you."""
        service = runtime.require()
        await service.db.relay.set_public_key(
            user.name, body.algorithm, body.public_key, service.clock()
        )
        return _doc(user.name, body.algorithm, body.public_key)

    @router.get(
        "/keys/{name}",
        summary="A user's public key",
        responses=answers(404, _404="No such user, or the user has published no key."),
    )
    async def get_key(user: Auth, name: str) -> Any:
        """`{"name", "algorithm", "public_key"}` of user `name`."""
        found = await runtime.require().db.relay.get_public_key(name)
        if found is None:
            raise HTTPException(404, f"no public key for user {name!r}")
        return _doc(name, *found)
