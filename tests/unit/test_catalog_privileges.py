"""Privilege inheritance and the secret hashing, without a server."""

from __future__ import annotations

import pytest

from chatlake.catalog import credentials
from chatlake.catalog.errors import InvalidArgument
from chatlake.catalog.privileges import (
    ADMIN,
    PrivilegeSet,
    check_grantable,
    holds,
    missing_for_table,
    normalize_securable_type,
)

TABLE = "main.chatbot.chat_events"


def sets(*entries):
    return [PrivilegeSet(kind, path, frozenset(names)) for kind, path, names in entries]


def test_privilege_on_catalog_covers_schemas_and_tables():
    held = sets(("CATALOG", "main", {"MODIFY"}))

    assert holds(held, "MODIFY", "main")
    assert holds(held, "MODIFY", "main.chatbot")
    assert holds(held, "MODIFY", TABLE)
    assert not holds(held, "MODIFY", "other.chatbot.chat_events")
    assert not holds(held, "SELECT", TABLE)


def test_privilege_on_table_does_not_cover_its_siblings_or_parents():
    held = sets(("TABLE", TABLE, {"MODIFY"}))

    assert holds(held, "MODIFY", TABLE)
    assert not holds(held, "MODIFY", "main.chatbot.feedback")
    assert not holds(held, "MODIFY", "main.chatbot")
    # A name that merely starts with the same letters is not inside.
    assert not holds(held, "MODIFY", "main.chatbot.chat_events_2")


def test_table_use_needs_use_catalog_and_use_schema():
    only_modify = sets(("TABLE", TABLE, {"MODIFY"}))
    sdk_style = sets(
        ("CATALOG", "main", {"USE CATALOG"}),
        ("SCHEMA", "main.chatbot", {"USE SCHEMA"}),
        ("TABLE", TABLE, {"SELECT", "MODIFY"}),
    )

    assert missing_for_table(only_modify, "MODIFY", TABLE) == [
        "USE CATALOG on CATALOG main",
        "USE SCHEMA on SCHEMA main.chatbot",
    ]
    assert missing_for_table(sdk_style, "MODIFY", TABLE) == []
    assert missing_for_table(sdk_style, "MODIFY", "main.chatbot.feedback") == [
        "MODIFY on TABLE main.chatbot.feedback"
    ]


def test_names_compare_case_insensitively():
    held = sets(("SCHEMA", "Main.ChatBot", {"SELECT"}))

    assert holds(held, "SELECT", "main.chatbot.T1")


def test_admin_holds_everything():
    assert holds([ADMIN], "MODIFY", "any.where.at_all")
    assert missing_for_table([ADMIN], "SELECT", TABLE) == []


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("use_catalog", "CATALOG", "USE CATALOG"),
        ("use  schema", "SCHEMA", "USE SCHEMA"),
        ("modify", "TABLE", "MODIFY"),
        ("CREATE TABLE", "SCHEMA", "CREATE TABLE"),
    ],
)
def test_grantable_privileges_are_canonicalised(text, kind, expected):
    assert check_grantable(text, kind) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("USE CATALOG", "TABLE"),
        ("USE SCHEMA", "TABLE"),
        ("DROP", "TABLE"),
        ("", "SCHEMA"),
    ],
)
def test_privileges_that_make_no_sense_on_a_securable_are_refused(text, kind):
    with pytest.raises(InvalidArgument, match=f"cannot be granted on a {kind}"):
        check_grantable(text, kind)


def test_unknown_securable_type_is_refused():
    assert normalize_securable_type("table") == "TABLE"
    with pytest.raises(InvalidArgument, match="unknown securable type 'volume'"):
        normalize_securable_type("volume")


def test_secret_hash_is_salted_and_verifies_only_the_secret():
    secret = credentials.new_secret()
    first, second = credentials.hash_secret(secret), credentials.hash_secret(secret)

    assert first != second
    assert secret not in first
    assert credentials.verify_secret(secret, first)
    assert credentials.verify_secret(secret, second)
    assert not credentials.verify_secret(secret + "x", first)
    assert not credentials.verify_secret(secret, "garbage")
    assert not credentials.verify_secret(secret, "md5$1$2$3$4$5")


def test_verified_secrets_cache_never_accepts_a_wrong_secret():
    secret = credentials.new_secret()
    stored = credentials.hash_secret(secret)
    cache = credentials.VerifiedSecrets()

    assert not cache.check(stored, "wrong")
    assert cache.check(stored, secret)
    assert cache.check(stored, secret)
    assert not cache.check(stored, secret + "x")
    # A new hash (a rotated secret) is checked afresh.
    assert not cache.check(credentials.hash_secret("other"), secret)
