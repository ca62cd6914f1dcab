"""Who may do what: service principals, grants, tokens and request authentication."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatlake.catalog import credentials, privileges
from chatlake.catalog.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TokenError,
    Unauthenticated,
)
from chatlake.catalog.privileges import ADMIN, PrivilegeSet
from chatlake.catalog.store import (
    Store,
    catalogs,
    grants,
    now_ms,
    principals,
    schemas,
    tables,
)
from chatlake.catalog.tokens import TokenIssuer, TokenVerifier
from chatlake.errors import TableNameError
from chatlake.names import check_part, quoted

logger = logging.getLogger(__name__)

ADMIN_PRINCIPAL = "admin"


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of one request and the privileges it brought."""

    name: str
    privileges: tuple[PrivilegeSet, ...]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.privileges

    def holds(self, privilege: str, full_name: str) -> bool:
        return privileges.holds(self.privileges, privilege, full_name)


ADMIN_CALLER = Caller(ADMIN_PRINCIPAL, (ADMIN,))


def check_full_name(full_name: str, securable_type: str) -> str:
    """The lower-cased name if it has the right number of safe parts for its type."""
    parts = full_name.split(".")
    expected = privileges.PARTS[securable_type]
    if len(parts) != expected:
        raise InvalidArgument(
            f"invalid {securable_type.lower()} name {quoted(full_name)}: expected "
            f"{expected} dot-separated part(s), got {len(parts)}"
        )
    try:
        for part in parts:
            check_part(part, f"{securable_type.lower()} name part")
    except TableNameError as error:
        raise InvalidArgument(f"invalid name {quoted(full_name)}: {error}") from None
    return full_name.lower()


class Access:
    """Principals, grants and tokens over the store."""

    def __init__(self, store: Store, issuer: TokenIssuer, verifier: TokenVerifier):
        self.store = store
        self.issuer = issuer
        self.verifier = verifier
        self._lock = threading.Lock()
        self._verified = credentials.VerifiedSecrets()

    # -- principals --------------------------------------------------------------

    def create_principal(self, name: str) -> dict[str, Any]:
        """A new principal; the returned ``client_secret`` is never shown again."""
        name = _principal_name(name)
        if name == ADMIN_PRINCIPAL:
            raise InvalidArgument(f"the principal name {name!r} is reserved")
        client_id, secret = credentials.new_client_id(), credentials.new_secret()
        with self._lock, self.store.transaction() as connection:
            if self.store.one(principals, name=name):
                raise AlreadyExists(f"principal {name!r} already exists")
            self.store.insert(
                connection, principals, _principal_row(name, client_id, secret)
            )
        logger.info("created principal %s (client id %s)", name, client_id)
        return {"name": name, "client_id": client_id, "client_secret": secret}

    def rotate_secret(self, name: str) -> dict[str, Any]:
        """A new secret for principal ``name``; its client id and grants stay.

        The old secret stops working at once (its hash is gone). The returned
        ``client_secret`` is never shown again.
        """
        name = _principal_name(name)
        if name == ADMIN_PRINCIPAL:
            raise InvalidArgument(
                "the admin secret is rotated by deleting admin.json and restarting"
            )
        secret = credentials.new_secret()
        with self._lock, self.store.transaction() as connection:
            row = self.store.one(principals, name=name)
            if row is None:
                raise NotFound(f"principal {name!r} does not exist")
            values = {"secret_hash": credentials.hash_secret(secret)}
            self.store.update(connection, principals, values, name=name)
        logger.info("rotated the secret of principal %s", name)
        return {"name": name, "client_id": row["client_id"], "client_secret": secret}

    def list_principals(self) -> list[dict[str, Any]]:
        rows = sorted(self.store.many(principals), key=lambda row: row["name"])
        return [_principal_info(row) for row in rows]

    def delete_principal(self, name: str) -> None:
        name = _principal_name(name)
        if name == ADMIN_PRINCIPAL:
            raise InvalidArgument("the admin principal cannot be deleted")
        with self._lock, self.store.transaction() as connection:
            if not self.store.delete(connection, principals, name=name):
                raise NotFound(f"principal {name!r} does not exist")
            self.store.delete(connection, grants, principal=name)
        logger.info("deleted principal %s and its grants", name)

    def ensure_admin(self, admin_file: Path) -> None:
        """Make sure the admin principal exists and its credentials are in the file."""
        row = self.store.one(principals, name=ADMIN_PRINCIPAL)
        if row and _admin_file_matches(admin_file, row["client_id"]):
            return
        client_id, secret = credentials.new_client_id(), credentials.new_secret()
        with self._lock, self.store.transaction() as connection:
            self.store.delete(connection, principals, name=ADMIN_PRINCIPAL)
            values = _principal_row(ADMIN_PRINCIPAL, client_id, secret, is_admin=True)
            self.store.insert(connection, principals, values)
        _write_admin_file(admin_file, client_id, secret)
        logger.info("wrote new local admin credentials to %s", admin_file)

    # -- grants ------------------------------------------------------------------

    def principal_sets(self, name: str) -> tuple[PrivilegeSet, ...]:
        """Everything a principal holds, one set per securable."""
        row = self.store.one(principals, name=name)
        if row and row["is_admin"]:
            return (ADMIN,)
        # As in Unity Catalog, the owner holds every privilege on what it owns.
        held: dict[tuple[str, str], set[str]] = {}
        for grant in self.store.many(grants, principal=name):
            key = (grant["securable_type"], grant["full_name"])
            held.setdefault(key, set()).add(grant["privilege"])
        for key in self._owned(name):
            held.setdefault(key, set()).update(privileges.GRANTABLE[key[0]])
        return tuple(
            PrivilegeSet(kind, path, frozenset(names))
            for (kind, path), names in sorted(held.items())
        )

    def owned_sets(self, name: str) -> tuple[PrivilegeSet, ...]:
        """Every privilege on what ``name`` owns (the owner holds them all in UC)."""
        return tuple(
            PrivilegeSet(kind, path, frozenset(privileges.GRANTABLE[kind]))
            for kind, path in self._owned(name)
        )

    def _owned(self, name: str) -> list[tuple[str, str]]:
        """(securable type, full name) of every catalog, schema and table owned."""
        owned = [
            (privileges.CATALOG, r["name"])
            for r in self.store.many(catalogs, owner=name)
        ]
        owned += [
            (privileges.SCHEMA, f"{r['catalog_name']}.{r['name']}")
            for r in self.store.many(schemas, owner=name)
        ]
        owned += [
            (
                privileges.TABLE,
                f"{r['catalog_name']}.{r['schema_name']}.{r['name']}",
            )
            for r in self.store.many(tables, owner=name)
        ]
        return owned

    def permissions(
        self, securable_type: str, full_name: str, principal: str | None = None
    ) -> dict[str, Any]:
        """The UC PermissionsList of one securable (optionally of one principal)."""
        where = {"securable_type": securable_type, "full_name": full_name}
        if principal:
            where["principal"] = principal
        assigned: dict[str, list[str]] = {}
        for grant in self.store.many(grants, **where):
            assigned.setdefault(grant["principal"], []).append(grant["privilege"])
        return {
            "privilege_assignments": [
                {"principal": name, "privileges": sorted(names)}
                for name, names in sorted(assigned.items())
            ]
        }

    def update_permissions(
        self, securable_type: str, full_name: str, changes: list[dict[str, Any]]
    ) -> None:
        """Apply UC PermissionsChange objects: each adds and removes privileges."""
        planned = [self._plan_change(securable_type, change) for change in changes]
        with self._lock, self.store.transaction() as connection:
            for principal, add, remove in planned:
                for privilege in remove:
                    self.store.delete(
                        connection,
                        grants,
                        principal=principal,
                        securable_type=securable_type,
                        full_name=full_name,
                        privilege=privilege,
                    )
                for privilege in add:
                    self._add_grant(
                        connection, principal, securable_type, full_name, privilege
                    )

    def _plan_change(
        self, securable_type: str, change: Any
    ) -> tuple[str, list[str], list[str]]:
        if not isinstance(change, dict) or not isinstance(change.get("principal"), str):
            raise InvalidArgument(
                f"each change needs a 'principal' string, got {change!r}"
            )
        principal = _principal_name(change["principal"])
        if principal == ADMIN_PRINCIPAL:
            raise InvalidArgument("the admin principal holds every privilege already")
        if not self.store.one(principals, name=principal):
            raise NotFound(f"principal {principal!r} does not exist")
        add = _privilege_list(change.get("add"), "add", securable_type)
        remove = _privilege_list(change.get("remove"), "remove", securable_type)
        return principal, add, remove

    def _add_grant(self, connection, principal, securable_type, full_name, privilege):
        key = {
            "principal": principal,
            "securable_type": securable_type,
            "full_name": full_name,
            "privilege": privilege,
        }
        if not self.store.one(grants, **key):
            self.store.insert(connection, grants, key)

    def drop_grants_under(self, connection, full_name: str) -> None:
        """Forget grants on a securable being deleted and on everything inside it."""
        for grant in self.store.many(grants):
            if privileges.contains(full_name, grant["full_name"]):
                self.store.delete(connection, grants, **grant)

    # -- authentication ----------------------------------------------------------

    def check_client(self, client_id: str, secret: str) -> dict[str, Any]:
        """The principal row for these credentials, else Unauthenticated."""
        row = self.store.one(principals, client_id=client_id)
        if row is None or not self._verified.check(row["secret_hash"], secret):
            raise Unauthenticated("unknown client id or wrong client secret")
        return row

    def caller_from_token(self, token: str) -> Caller:
        claims = self.verifier.verify(token)
        row = self.store.one(principals, client_id=claims.subject)
        if row is None:
            raise TokenError("the token's principal no longer exists")
        # Ownership is live: a table created after the token was issued is
        # still its creator's to use.
        owned = self.owned_sets(row["name"])
        return Caller(row["name"], claims.privileges + owned)

    def caller_from_basic(self, client_id: str, secret: str) -> Caller:
        row = self.check_client(client_id, secret)
        if not row["is_admin"]:
            raise Unauthenticated(
                "only the local admin may use basic auth; send a token"
            )
        return ADMIN_CALLER

    def issue_token(self, principal_row: dict[str, Any], requested) -> str:
        """A token for exactly ``requested`` (all held privileges when None)."""
        held = self.principal_sets(principal_row["name"])
        if requested is None:
            return self.issuer.issue(principal_row["client_id"], held)
        lacking = [
            f"{name} on {entry.object_type} {entry.object_full_path}"
            for entry in requested
            for name in sorted(entry.privileges)
            if not privileges.holds(held, name, entry.object_full_path)
        ]
        if lacking:
            raise PermissionDenied(
                f"principal {principal_row['name']!r} does not hold: "
                f"{', '.join(lacking)}"
            )
        return self.issuer.issue(principal_row["client_id"], requested)


def _principal_name(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidArgument(f"a principal name must be a string, got {name!r}")
    try:
        return check_part(name, "principal name").lower()
    except TableNameError as error:
        raise InvalidArgument(str(error)) from None


def _privilege_list(value: Any, what: str, securable_type: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(
            f"'{what}' must be a list of privilege names, got {value!r}"
        )
    return [privileges.check_grantable(v, securable_type) for v in value]


def _principal_row(name: str, client_id: str, secret: str, is_admin: bool = False):
    return {
        "name": name,
        "client_id": client_id,
        "secret_hash": credentials.hash_secret(secret),
        "is_admin": is_admin,
        "created_at": now_ms(),
    }


def _principal_info(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "client_id": row["client_id"],
        "admin": bool(row["is_admin"]),
        "created_at": row["created_at"],
    }


def _admin_file_matches(admin_file: Path, client_id: str) -> bool:
    try:
        return json.loads(admin_file.read_text())["client_id"] == client_id
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_admin_file(admin_file: Path, client_id: str, secret: str) -> None:
    admin_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = admin_file.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"client_id": client_id, "client_secret": secret}, handle)
    os.replace(temporary, admin_file)
