"""Token signing and offline verification, as the ingest server uses them."""

from __future__ import annotations

import time

import jwt
import pytest

from chatlake.catalog.errors import TokenError
from chatlake.catalog.privileges import ADMIN, PrivilegeSet
from chatlake.catalog.tokens import (
    PUBLIC_KEY_FILE,
    TokenIssuer,
    TokenVerifier,
    ensure_keys,
)

TABLE = "main.chatbot.chat_events"
SDK_PRIVILEGES = [
    PrivilegeSet("CATALOG", "main", frozenset({"USE CATALOG"})),
    PrivilegeSet("SCHEMA", "main.chatbot", frozenset({"USE SCHEMA"})),
    PrivilegeSet("TABLE", TABLE, frozenset({"SELECT", "MODIFY"})),
]


@pytest.fixture
def keys(tmp_path):
    ensure_keys(tmp_path)
    return tmp_path


def test_issued_token_verifies_with_the_public_key_file(keys):
    token = TokenIssuer(keys, ttl_s=600).issue("client-1", SDK_PRIVILEGES)
    claims = TokenVerifier(keys / PUBLIC_KEY_FILE).verify(token)

    assert claims.subject == "client-1"
    assert claims.expires_at - claims.issued_at == 600
    assert claims.privileges == tuple(SDK_PRIVILEGES)
    assert claims.allows("MODIFY", TABLE)
    assert claims.allows("SELECT", TABLE)
    assert not claims.allows("MODIFY", "main.chatbot.feedback")
    assert claims.missing("MODIFY", "main.chatbot.feedback") == [
        "MODIFY on TABLE main.chatbot.feedback"
    ]


def test_token_claims_have_the_documented_shape(keys):
    token = TokenIssuer(keys, ttl_s=600).issue("client-1", SDK_PRIVILEGES)
    payload = jwt.decode(token, options={"verify_signature": False})

    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert payload["iss"] == "chatlake" and payload["aud"] == "chatlake"
    assert set(payload) == {"iss", "aud", "sub", "iat", "exp", "jti", "privileges"}
    assert payload["privileges"][2] == {
        "object_type": "TABLE",
        "object_full_path": TABLE,
        "privileges": ["MODIFY", "SELECT"],
    }


def test_admin_token_allows_every_table(keys):
    token = TokenIssuer(keys, ttl_s=600).issue("admin-id", [ADMIN])
    claims = TokenVerifier(keys / PUBLIC_KEY_FILE).verify(token)

    assert claims.allows("MODIFY", "any.schema.table")


def test_expired_token_is_refused(keys):
    private = (keys / "token_private.pem").read_bytes()
    now = int(time.time())
    payload = {
        "iss": "chatlake",
        "aud": "chatlake",
        "sub": "c",
        "iat": now - 120,
        "exp": now - 60,
        "jti": "x",
        "privileges": [],
    }
    token = jwt.encode(payload, private, algorithm="EdDSA")

    with pytest.raises(TokenError, match="expired") as caught:
        TokenVerifier(keys / PUBLIC_KEY_FILE).verify(token)
    assert caught.value.reason == "the token has expired"


def test_token_signed_by_another_key_is_refused(keys, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    ensure_keys(other)
    token = TokenIssuer(other, ttl_s=600).issue("client-1", SDK_PRIVILEGES)

    with pytest.raises(TokenError, match="not signed by this catalog"):
        TokenVerifier(keys / PUBLIC_KEY_FILE).verify(token)


def test_token_with_a_symmetric_algorithm_is_refused(keys):
    payload = {
        "iss": "chatlake",
        "aud": "chatlake",
        "sub": "c",
        "iat": 1,
        "exp": int(time.time()) + 60,
        "jti": "x",
        "privileges": [],
    }
    token = jwt.encode(
        payload, "a shared secret of thirty-two bytes!", algorithm="HS256"
    )

    with pytest.raises(TokenError, match="alg value is not allowed"):
        TokenVerifier(keys / PUBLIC_KEY_FILE).verify(token)


def test_token_for_another_audience_is_refused(keys):
    private = (keys / "token_private.pem").read_bytes()
    now = int(time.time())
    payload = {
        "iss": "chatlake",
        "aud": "someone-else",
        "sub": "c",
        "iat": now,
        "exp": now + 60,
        "jti": "x",
        "privileges": [],
    }
    token = jwt.encode(payload, private, algorithm="EdDSA")

    with pytest.raises(TokenError, match="Audience doesn.t match"):
        TokenVerifier(keys / PUBLIC_KEY_FILE).verify(token)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_garbage_is_refused(keys, token):
    with pytest.raises(TokenError):
        TokenVerifier(keys / PUBLIC_KEY_FILE).verify(token)


def test_keys_are_created_once_with_a_private_file_mode(keys):
    before = (keys / PUBLIC_KEY_FILE).read_bytes()
    ensure_keys(keys)

    assert (keys / PUBLIC_KEY_FILE).read_bytes() == before
    assert (keys / "token_private.pem").stat().st_mode & 0o777 == 0o600


def test_missing_public_key_file_is_a_clear_error(tmp_path):
    with pytest.raises(TokenError, match="cannot load the public key"):
        TokenVerifier(tmp_path / "absent.pem")
