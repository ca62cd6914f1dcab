"""First-run set-up through the REST API: the chat tables and the app's principal.

Each step is idempotent, so ``chatlake up`` runs them on every start.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from chatlake.catalog.client import CatalogClient
from chatlake.catalog.errors import AlreadyExists
from chatlake.chat_tables import CHAT_TABLES
from chatlake.types import parse_columns

logger = logging.getLogger(__name__)


def ensure_chat_tables(client: CatalogClient, catalog: str, schema: str) -> list[str]:
    """Create the catalog, schema and chat tables that are missing; their names."""
    created = []
    if _create(client.create_catalog, catalog):
        created.append(catalog)
    if _create(client.create_schema, catalog, schema):
        created.append(f"{catalog}.{schema}")
    for spec in CHAT_TABLES:
        full_name = f"{catalog}.{schema}.{spec.name}"
        columns = parse_columns(spec.columns)
        if _create(
            client.create_table, full_name, columns, spec.properties, spec.comment
        ):
            created.append(full_name)
    return created


def _create(create, *args) -> bool:
    try:
        create(*args)
    except AlreadyExists:
        return False
    return True


def ensure_principal(
    client: CatalogClient, name: str, catalog: str, schema: str, replace: bool
) -> dict[str, str] | None:
    """Create principal ``name`` with write access to the schema.

    If it exists and ``replace`` is true, it gets a new secret but keeps its
    client id and every grant made to it. Returns the new credentials, or None
    when the principal already existed and ``replace`` is false: its secret
    cannot be shown twice.
    """
    existing = {p["name"] for p in client.list_principals()}
    credentials = None
    if name in existing and replace:
        credentials = client.rotate_secret(name)
        logger.info("gave principal %s a new secret", name)
    elif name not in existing:
        credentials = client.create_principal(name)
        logger.info("created principal %s", name)
    grant_schema_write(client, name, catalog, schema)
    return credentials


def grant_schema_write(client: CatalogClient, name: str, catalog: str, schema: str):
    """USE CATALOG, and USE SCHEMA, SELECT, MODIFY on the schema (so its tables)."""
    client.grant("USE CATALOG", "catalog", catalog, name)
    for privilege in ("USE SCHEMA", "SELECT", "MODIFY"):
        client.grant(privilege, "schema", f"{catalog}.{schema}", name)


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """``KEY=value`` lines, readable by the owner only (it holds a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        for key, value in values.items():
            handle.write(f"{key}={value}\n")
    os.replace(temporary, path)


def read_env_file(path: Path) -> dict[str, str]:
    """The values of an env file written by ``write_env_file``; {} if absent."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    values = {}
    for line in lines:
        key, equals, value = line.partition("=")
        if equals and key.strip() and not key.startswith("#"):
            values[key.strip()] = value
    return values
