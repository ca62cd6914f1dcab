"""The OAuth 2.0 client-credentials token endpoint, as the Zerobus SDK calls it.

The SDK posts ``grant_type``, ``scope``, ``resource`` and ``authorization_details``
(a JSON list of ``unity_catalog_privileges`` entries) with HTTP Basic credentials;
the ``generate_proto`` tool sends only ``grant_type`` and ``scope``. A request for
a privilege the principal does not hold gets no token.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from chatlake.catalog import privileges as p
from chatlake.catalog.access import Access, check_full_name
from chatlake.catalog.errors import CatalogError, InvalidArgument
from chatlake.catalog.privileges import PrivilegeSet

logger = logging.getLogger(__name__)

DETAIL_TYPE = "unity_catalog_privileges"
# Privileges a token may carry: the grantable ones. Operations are not checked.
TOKEN_PRIVILEGES = {kind: set(names) for kind, names in p.GRANTABLE.items()}


class OAuthError(CatalogError):
    """An RFC 6749 error: rendered as ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description, status=status, error_code=error)

    def body(self) -> dict[str, object]:
        return {"error": self.error_code, "error_description": self.message}


def token_response(
    access: Access, exists, authorization: str | None, body: bytes, ttl_s: int
) -> dict[str, Any]:
    """Handle one token request; ``exists(kind, full_name)`` checks securables."""
    form = _form(body)
    client_id, secret = _client_credentials(authorization, form)
    if form.get("grant_type") != "client_credentials":
        raise OAuthError(
            400, "unsupported_grant_type", "grant_type must be client_credentials"
        )
    try:
        principal = access.check_client(client_id, secret)
    except CatalogError as error:
        raise OAuthError(401, "invalid_client", error.message) from None
    requested = _requested(form.get("authorization_details"), exists)
    try:
        token = access.issue_token(principal, requested)
    except CatalogError as error:
        raise OAuthError(403, "access_denied", error.message) from None
    logger.info("issued a token to %s", principal["name"])
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl_s,
        "scope": form.get("scope", "all-apis"),
    }


def _form(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError(
            400, "invalid_request", "the body is not form-encoded"
        ) from None
    repeated = [key for key, values in parsed.items() if len(values) > 1]
    if repeated:
        raise OAuthError(400, "invalid_request", f"parameter {repeated[0]!r} repeated")
    return {key: values[0] for key, values in parsed.items()}


def _client_credentials(authorization: str | None, form: dict[str, str]):
    if authorization and authorization.lower().startswith("basic "):
        return _basic(authorization)
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    raise OAuthError(
        401,
        "invalid_client",
        "send the client id and secret with HTTP Basic authentication",
    )


def _basic(authorization: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(401, "invalid_client", "malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError(401, "invalid_client", "Basic credentials lack a ':'")
    return client_id, secret


def parse_basic(authorization: str) -> tuple[str, str]:
    """Client id and secret from an ``Authorization: Basic`` header value."""
    return _basic(authorization)


def _requested(text: str | None, exists) -> list[PrivilegeSet] | None:
    if text is None or text == "":
        return None
    try:
        entries = json.loads(text)
    except ValueError:
        raise _invalid_details("authorization_details is not JSON") from None
    if not isinstance(entries, list) or not entries:
        raise _invalid_details("authorization_details must be a non-empty JSON list")
    return [_entry(index, entry, exists) for index, entry in enumerate(entries)]


def _entry(index: int, entry: Any, exists) -> PrivilegeSet:
    where = f"authorization_details[{index}]"
    if not isinstance(entry, dict) or entry.get("type") != DETAIL_TYPE:
        raise _invalid_details(f"{where} must be an object of type {DETAIL_TYPE!r}")
    kind = entry.get("object_type")
    if not isinstance(kind, str) or kind.upper() not in p.SECURABLE_TYPES:
        raise _invalid_details(f"{where}: object_type must be CATALOG, SCHEMA or TABLE")
    kind = kind.upper()
    path = entry.get("object_full_path")
    if not isinstance(path, str):
        raise _invalid_details(f"{where}: object_full_path must be a string")
    try:
        path = check_full_name(path, kind)
    except InvalidArgument as error:
        raise _invalid_details(f"{where}: {error.message}") from None
    names = _privilege_names(where, kind, entry.get("privileges"))
    if not exists(kind, path):
        raise OAuthError(
            403, "access_denied", f"{where}: {kind.lower()} {path} does not exist"
        )
    return PrivilegeSet(kind, path, frozenset(names))


def _privilege_names(where: str, kind: str, value: Any) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise _invalid_details(
            f"{where}: privileges must be a non-empty list of strings"
        )
    unknown = [v for v in value if v not in TOKEN_PRIVILEGES[kind]]
    if unknown:
        raise _invalid_details(
            f"{where}: {unknown[0]!r} is not a privilege on a {kind}; "
            f"use {', '.join(sorted(TOKEN_PRIVILEGES[kind]))}"
        )
    return value


def _invalid_details(message: str) -> OAuthError:
    return OAuthError(400, "invalid_authorization_details", message)
