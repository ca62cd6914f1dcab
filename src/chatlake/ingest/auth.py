"""Bearer tokens on a stream: signed by the catalog, unexpired, MODIFY on the table.

The token is checked offline with the catalog's public key. A missing or bad
token ends the RPC with UNAUTHENTICATED; a valid token without the privilege
with PERMISSION_DENIED naming the table and what is missing (C09). Neither
message ever contains the token.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from chatlake.catalog.errors import TokenError
from chatlake.catalog.tokens import Claims, TokenVerifier
from chatlake.ingest.errors import StreamRefused

log = logging.getLogger(__name__)

REQUIRED_PRIVILEGE = "MODIFY"


class Authorizer:
    """Verifies the stream's token; loads the public key once it exists."""

    def __init__(self, public_key_path: Path) -> None:
        self.public_key_path = public_key_path
        self._verifier: TokenVerifier | None = None

    def _load(self) -> TokenVerifier:
        # The catalog writes its key at first start, possibly after ours.
        if self._verifier is None:
            try:
                self._verifier = TokenVerifier(self.public_key_path)
            except TokenError as error:
                log.warning("cannot load the catalog's public key: %s", error.reason)
                raise StreamRefused(
                    grpc.StatusCode.UNAVAILABLE,
                    "the ingest server cannot verify tokens yet: the catalog's "
                    "public key is not available",
                ) from None
        return self._verifier

    def authorize(self, metadata: dict[str, str], table_name: str) -> Claims:
        """The claims of a token allowed to write ``table_name``, or a refusal."""
        token = bearer_token(metadata, table_name)
        verifier = self._load()
        try:
            claims = verifier.verify(token)
        except TokenError as error:
            raise StreamRefused(
                grpc.StatusCode.UNAUTHENTICATED,
                f"token rejected for table {table_name}: {error.reason}",
            ) from None
        missing = claims.missing(REQUIRED_PRIVILEGE, table_name)
        if missing:
            raise StreamRefused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"principal {claims.subject!r} may not write table {table_name}: "
                f"the token lacks {', '.join(missing)}",
            )
        return claims


def bearer_token(metadata: dict[str, str], table_name: str) -> str:
    header = metadata.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise StreamRefused(
            grpc.StatusCode.UNAUTHENTICATED,
            f"no bearer token for table {table_name}: send 'authorization: Bearer "
            f"<token>' with a token from the catalog's /oidc/v1/token",
        )
    return token.strip()
