"""Signed access tokens: Ed25519 JWTs that list exactly the privileges granted.

The catalog signs with a private key kept in ``<data_dir>/catalog``; anything that
can read ``token_public.pem`` (the ingest server) verifies tokens offline:

>>> verifier = TokenVerifier(data_dir / "catalog" / "token_public.pem")
>>> claims = verifier.verify(token)
>>> claims.allows("MODIFY", "main.chatbot.chat_events")
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chatlake.catalog.errors import TokenError
from chatlake.catalog.privileges import PrivilegeSet, missing_for_table

ISSUER = "chatlake"
AUDIENCE = "chatlake"
ALGORITHM = "EdDSA"
PRIVATE_KEY_FILE = "token_private.pem"
PUBLIC_KEY_FILE = "token_public.pem"
# Clocks of processes on one machine agree; a few seconds covers rounding.
LEEWAY_S = 5


@dataclass(frozen=True)
class Claims:
    """What a verified token says: who (``subject``) and which privileges."""

    subject: str
    issued_at: int
    expires_at: int
    token_id: str
    privileges: tuple[PrivilegeSet, ...]

    def allows(self, privilege: str, table_full_name: str) -> bool:
        """True if the token may use ``privilege`` on the table (and reach it)."""
        return not self.missing(privilege, table_full_name)

    def missing(self, privilege: str, table_full_name: str) -> list[str]:
        """What the token lacks, e.g. ``['MODIFY on TABLE main.a.t']``."""
        return missing_for_table(self.privileges, privilege, table_full_name)


def ensure_keys(key_dir: Path) -> None:
    """Create the signing key pair on first start (private key mode 0600)."""
    private_path = key_dir / PRIVATE_KEY_FILE
    if private_path.exists():
        return
    key_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_private(private_path, private_pem)
    (key_dir / PUBLIC_KEY_FILE).write_bytes(public_pem)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class TokenIssuer:
    """Signs tokens with the catalog's private key."""

    def __init__(self, key_dir: Path, ttl_s: int) -> None:
        pem = (key_dir / PRIVATE_KEY_FILE).read_bytes()
        self._key = serialization.load_pem_private_key(pem, password=None)
        self.ttl_s = ttl_s

    def issue(self, subject: str, privileges: Sequence[PrivilegeSet]) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "privileges": [held.to_json() for held in privileges],
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)


class TokenVerifier:
    """Verifies tokens offline with the catalog's public key file."""

    def __init__(self, public_key_pem_path: str | os.PathLike[str]) -> None:
        path = Path(public_key_pem_path)
        try:
            self._key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as error:
            raise TokenError(f"cannot load the public key {path}: {error}") from error

    def verify(self, token: str) -> Claims:
        """The token's claims; TokenError if it is malformed, expired or not ours."""
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise TokenError("the token was not signed by this catalog") from None
        except jwt.PyJWTError as error:
            raise TokenError(str(error)) from None
        return _claims(payload)


def _claims(payload: dict) -> Claims:
    try:
        privileges = tuple(
            PrivilegeSet(
                entry["object_type"],
                entry["object_full_path"],
                frozenset(entry["privileges"]),
            )
            for entry in payload.get("privileges", [])
        )
    except (KeyError, TypeError) as error:
        raise TokenError(f"malformed privileges claim: {error}") from None
    return Claims(
        subject=str(payload["sub"]),
        issued_at=int(payload["iat"]),
        expires_at=int(payload["exp"]),
        token_id=str(payload["jti"]),
        privileges=privileges,
    )
