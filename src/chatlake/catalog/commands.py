"""The catalog's commands: serve it, and manage what it holds over HTTP.

Every command but ``catalog`` talks to a running catalog (``--catalog-url``,
``$CHATLAKE_CATALOG_URL``) as the local admin whose credentials the catalog wrote
into ``--data-dir``, unless ``--client-id``/``--client-secret`` are given.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from pathlib import Path
from typing import Any

import click

from chatlake import config, logs
from chatlake.catalog.client import CatalogClient
from chatlake.catalog.config import DEFAULT_TOKEN_TTL_S, CatalogSettings
from chatlake.catalog.errors import CatalogError
from chatlake.catalog.privileges import normalize_securable_type
from chatlake.cli_options import (
    catalog_login_options,
    data_dir_option,
    json_option,
    listen_options,
)
from chatlake.names import parse_table_name
from chatlake.types import parse_columns

logger = logging.getLogger(__name__)


# -- shared options ------------------------------------------------------------------


def client_options(function):
    """Add the login options and pass a ready CatalogClient as ``client``."""

    @catalog_login_options
    @functools.wraps(function)
    def wrapper(catalog_url, data_dir, client_id, client_secret, **kwargs):
        client = _client(catalog_url, data_dir, client_id, client_secret)
        with client:
            return function(client=client, **kwargs)

    return wrapper


def _client(catalog_url, data_dir, client_id, client_secret) -> CatalogClient:
    if bool(client_id) != bool(client_secret):
        raise click.UsageError("give both --client-id and --client-secret, or neither")
    if client_id:
        return CatalogClient(config.catalog_url(catalog_url), client_id, client_secret)
    return CatalogClient.local_admin(catalog_url, data_dir)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _print_rows(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """Aligned columns with a header; empty output says so."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(row.get(key, "")) for key in keys] for row in rows]
    widths = [max(len(key), *(len(c[i]) for c in cells)) for i, key in enumerate(keys)]
    click.echo(
        "  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)).rstrip()
    )
    for line in cells:
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        )


def _properties(pairs: tuple[str, ...]) -> dict[str, str]:
    properties = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE", param_hint="--property"
            )
        properties[key.strip()] = value.strip()
    return properties


# -- serve ---------------------------------------------------------------------------


@click.command("catalog")
@data_dir_option
@listen_options(
    host_help="Listen address; anything but loopback needs --tls-cert/--tls-key.",
    port=config.DEFAULT_CATALOG_PORT,
    port_help="Listen port (0 picks a free one).",
)
@click.option(
    "--token-ttl-s",
    default=DEFAULT_TOKEN_TTL_S,
    show_default=True,
    type=int,
    help="Lifetime of issued tokens, in seconds.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM certificate for HTTPS.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM private key for HTTPS.",
)
def serve(data_dir, host, port, token_ttl_s, tls_cert, tls_key) -> None:
    """Serve the catalog: Unity Catalog REST API and OAuth tokens."""
    from chatlake.catalog import server

    logs.configure()
    settings = CatalogSettings(
        data_dir=config.data_dir(data_dir),
        host=host,
        port=port,
        token_ttl_s=token_ttl_s,
    )
    server.serve(settings, tls_cert, tls_key)


# -- catalogs ------------------------------------------------------------------------


@click.group()
def catalogs() -> None:
    """Create, list and drop catalogs."""


@catalogs.command("create")
@click.argument("name")
@click.option("--comment", default=None, help="A description.")
@client_options
@json_option()
def catalogs_create(client, name, comment, as_json) -> None:
    """Create catalog NAME."""
    info = client.create_catalog(name, comment=comment)
    _print_json(info) if as_json else click.echo(f"created catalog {info['name']}")


@catalogs.command("list")
@client_options
@json_option()
def catalogs_list(client, as_json) -> None:
    """List the catalogs."""
    rows = client.list_catalogs()
    _print_json(rows) if as_json else _print_rows(rows, ("name", "owner", "comment"))


@catalogs.command("drop")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also drop its schemas and tables.")
@client_options
def catalogs_drop(client, name, force) -> None:
    """Drop catalog NAME (it must be empty unless --force)."""
    with _force_flag_named():
        client.delete_catalog(name, force=force)
    click.echo(f"dropped catalog {name}")


@contextlib.contextmanager
def _force_flag_named():
    """The REST error speaks of the ``force=true`` parameter; here it is --force."""
    try:
        yield
    except CatalogError as error:
        if "force=true" not in error.message:
            raise
        message = error.message.replace("pass force=true", "pass --force")
        raise CatalogError(
            message, status=error.status, error_code=error.error_code
        ) from None


# -- schemas -------------------------------------------------------------------------


@click.group()
def schemas() -> None:
    """Create, list and drop schemas."""


def _split_schema(full_name: str) -> tuple[str, str]:
    parts = full_name.split(".")
    if len(parts) != 2:
        raise click.BadParameter(f"{full_name!r} is not CATALOG.SCHEMA")
    return parts[0], parts[1]


@schemas.command("create")
@click.argument("full_name", metavar="CATALOG.SCHEMA")
@click.option("--comment", default=None, help="A description.")
@client_options
@json_option()
def schemas_create(client, full_name, comment, as_json) -> None:
    """Create schema CATALOG.SCHEMA."""
    catalog, name = _split_schema(full_name)
    info = client.create_schema(catalog, name, comment=comment)
    _print_json(info) if as_json else click.echo(f"created schema {info['full_name']}")


@schemas.command("list")
@click.argument("catalog")
@client_options
@json_option()
def schemas_list(client, catalog, as_json) -> None:
    """List the schemas of CATALOG."""
    rows = client.list_schemas(catalog)
    _print_json(rows) if as_json else _print_rows(
        rows, ("full_name", "owner", "comment")
    )


@schemas.command("drop")
@click.argument("full_name", metavar="CATALOG.SCHEMA")
@click.option("--force", is_flag=True, help="Also drop its tables.")
@client_options
def schemas_drop(client, full_name, force) -> None:
    """Drop schema CATALOG.SCHEMA (it must be empty unless --force)."""
    _split_schema(full_name)
    with _force_flag_named():
        client.delete_schema(full_name, force=force)
    click.echo(f"dropped schema {full_name}")


# -- tables --------------------------------------------------------------------------


@click.group()
def tables() -> None:
    """Create, list, describe and drop tables."""


@tables.command("create")
@click.argument("name", metavar="CATALOG.SCHEMA.TABLE")
@click.option(
    "--columns",
    default=None,
    help="Column list: \"id STRING NOT NULL, n INT COMMENT 'count'\".",
)
@click.option(
    "--proto",
    "proto_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Take the columns from this .proto file (with --message).",
)
@click.option("--message", default=None, help="The message of --proto to use.")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="FIELD=TYPE",
    help="With --proto: a column type protobuf cannot express "
    "(event_time=TIMESTAMP, day=DATE, payload=VARIANT). Repeatable.",
)
@click.option(
    "--property",
    "props",
    multiple=True,
    metavar="KEY=VALUE",
    help="A table property, e.g. chatlake.ingestion_time=ingestion_time.",
)
@click.option("--comment", default=None, help="A description.")
@click.option(
    "--location",
    default=None,
    help="Create an EXTERNAL table at this file:// URI or absolute path.",
)
@client_options
@json_option()
def tables_create(
    client, name, columns, proto_file, message, types, props, comment, location, as_json
) -> None:
    """Create a table from a column list or from a .proto message."""
    parse_table_name(name)
    column_list = _table_columns(columns, proto_file, message, types)
    info = client.create_table(
        name,
        column_list,
        properties=_properties(props) or None,
        comment=comment,
        storage_location=location,
    )
    if as_json:
        _print_json(info)
        return
    click.echo(f"created table {info['full_name']} at {info['storage_location']}")


def _table_columns(columns, proto_file, message, types):
    if bool(columns) == bool(proto_file):
        raise click.UsageError("give either --columns or --proto (with --message)")
    if columns:
        if types or message:
            raise click.UsageError("--message and --type go with --proto")
        return parse_columns(columns)
    if not message:
        raise click.UsageError("--proto needs --message NAME")
    from chatlake.catalog.protofile import columns_from_proto

    overrides = _properties(types)
    return columns_from_proto(proto_file, message, overrides)


@tables.command("list")
@click.argument("full_name", metavar="CATALOG.SCHEMA")
@client_options
@json_option()
def tables_list(client, full_name, as_json) -> None:
    """List the tables of CATALOG.SCHEMA."""
    catalog, schema = _split_schema(full_name)
    rows = client.list_tables(catalog, schema)
    if as_json:
        _print_json(rows)
        return
    _print_rows(rows, ("full_name", "table_type", "storage_location"))


@tables.command("describe")
@click.argument("name", metavar="CATALOG.SCHEMA.TABLE")
@client_options
@json_option()
def tables_describe(client, name, as_json) -> None:
    """Show a table's columns, location and properties."""
    info = client.get_table(name)
    if as_json:
        _print_json(info)
        return
    click.echo(
        f"{info['full_name']} ({info['table_type']} {info['data_source_format']})"
    )
    click.echo(f"location: {info['storage_location']}")
    rows = [
        {**column, "null": "" if column.get("nullable", True) else "NOT NULL"}
        for column in info["columns"]
    ]
    _print_rows(rows, ("name", "type_text", "null", "comment"))
    for key, value in sorted(info.get("properties", {}).items()):
        click.echo(f"property {key} = {value}")


@tables.command("drop")
@click.argument("name", metavar="CATALOG.SCHEMA.TABLE")
@client_options
def tables_drop(client, name) -> None:
    """Drop a table (a MANAGED table's files are deleted too)."""
    parse_table_name(name)
    client.delete_table(name)
    click.echo(f"dropped table {name}")


@tables.command("bootstrap")
@click.option("--catalog", default=config.DEFAULT_CATALOG, show_default=True)
@click.option("--schema", default=config.DEFAULT_SCHEMA, show_default=True)
@client_options
@json_option()
def tables_bootstrap(client, catalog, schema, as_json) -> None:
    """Create the catalog, schema and chat tables if they do not exist."""
    from chatlake.catalog.bootstrap import ensure_chat_tables

    created = ensure_chat_tables(client, catalog, schema)
    if as_json:
        _print_json({"created": created})
        return
    for name in created:
        click.echo(f"created {name}")
    click.echo(f"{catalog}.{schema} has the chat tables")


# -- principals ----------------------------------------------------------------------


@click.group()
def principals() -> None:
    """Create, list and delete service principals."""


@principals.command("create")
@click.argument("name")
@client_options
@json_option()
def principals_create(client, name, as_json) -> None:
    """Create principal NAME; its secret is printed this once only."""
    info = client.create_principal(name)
    if as_json:
        _print_json(info)
        return
    click.echo(f"created principal {info['name']}")
    click.echo(f"client_id:     {info['client_id']}")
    click.echo(f"client_secret: {info['client_secret']}")
    click.echo("The secret is shown only now; keep it somewhere safe.")


@principals.command("list")
@client_options
@json_option()
def principals_list(client, as_json) -> None:
    """List the service principals."""
    rows = client.list_principals()
    _print_json(rows) if as_json else _print_rows(rows, ("name", "client_id", "admin"))


@principals.command("rotate-secret")
@click.argument("name")
@client_options
@json_option()
def principals_rotate_secret(client, name, as_json) -> None:
    """Give principal NAME a new secret; the old one stops working at once.

    Its client id and grants stay. The new secret is printed this once only.
    """
    info = client.rotate_secret(name)
    if as_json:
        _print_json(info)
        return
    click.echo(f"rotated the secret of principal {info['name']}")
    click.echo(f"client_id:     {info['client_id']}")
    click.echo(f"client_secret: {info['client_secret']}")
    click.echo("The secret is shown only now; keep it somewhere safe.")


@principals.command("delete")
@click.argument("name")
@client_options
def principals_delete(client, name) -> None:
    """Delete principal NAME and its grants."""
    client.delete_principal(name)
    click.echo(f"deleted principal {name}")


# -- grants --------------------------------------------------------------------------


@click.group()
def grants() -> None:
    """Grant, list and revoke privileges, in the words of SQL's GRANT."""


def _grant_words(words: tuple[str, ...], joiners: tuple[str, ...]):
    """``USE SCHEMA, SELECT ON SCHEMA main.chatbot TO app`` -> parts."""
    upper = [w.upper() for w in words]
    if "ON" not in upper:
        raise click.UsageError("expected PRIVILEGE[, ...] ON TYPE NAME TO PRINCIPAL")
    on = upper.index("ON")
    rest = words[on + 1 :]
    if len(rest) != 4 or rest[2].upper() not in joiners:
        raise click.UsageError(
            f"expected ... ON TYPE NAME {joiners[0]} PRINCIPAL, got {' '.join(rest)!r}"
        )
    privileges = [p.strip() for p in " ".join(words[:on]).split(",") if p.strip()]
    if not privileges:
        raise click.UsageError("name at least one privilege before ON")
    return privileges, normalize_securable_type(rest[0]), rest[1], rest[3]


@grants.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, required=True)
@client_options
def grants_add(client, words) -> None:
    """Grant: PRIVILEGE[, ...] ON CATALOG|SCHEMA|TABLE NAME TO PRINCIPAL.

    Example: chatlake grants add MODIFY ON TABLE main.chatbot.chat_events TO app
    """
    privileges, kind, name, principal = _grant_words(words, ("TO",))
    for privilege in privileges:
        client.grant(privilege, kind, name, principal)
        click.echo(
            f"granted {privilege.upper()} on {kind.upper()} {name} to {principal}"
        )


@grants.command("revoke", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, required=True)
@client_options
def grants_revoke(client, words) -> None:
    """Revoke: PRIVILEGE[, ...] ON CATALOG|SCHEMA|TABLE NAME FROM PRINCIPAL."""
    privileges, kind, name, principal = _grant_words(words, ("FROM", "TO"))
    for privilege in privileges:
        client.revoke(privilege, kind, name, principal)
        click.echo(
            f"revoked {privilege.upper()} on {kind.upper()} {name} from {principal}"
        )


@grants.command("list")
@click.argument("kind", metavar="CATALOG|SCHEMA|TABLE")
@click.argument("name")
@client_options
@json_option()
def grants_list(client, kind, name, as_json) -> None:
    """List the privileges granted directly on one securable."""
    kind = normalize_securable_type(kind)
    assignments = client.permissions(kind, name)["privilege_assignments"]
    if as_json:
        _print_json(assignments)
        return
    rows = [
        {"principal": a["principal"], "privileges": ", ".join(a["privileges"])}
        for a in assignments
    ]
    _print_rows(rows, ("principal", "privileges"))


# -- generate-proto --------------------------------------------------------------------


@click.command("generate-proto")
@click.option("--table", "table_name", required=True, metavar="CATALOG.SCHEMA.TABLE")
@click.option("--message", required=True, help="Name of the proto2 message.")
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the .proto file.",
)
@client_options
def generate_proto(client, table_name, message, output) -> None:
    """Write a proto2 file describing a table, for the Zerobus SDK."""
    from chatlake.catalog.protofile import proto_text
    from chatlake.names import check_part
    from chatlake.types import column_from_uc

    parse_table_name(table_name)
    check_part(message, "message name")
    info = client.get_table(table_name)
    columns = [column_from_uc(column) for column in info["columns"]]
    text = proto_text(message, columns)
    try:
        output.write_text(text)
    except OSError as error:
        raise CatalogError(f"cannot write {output}: {error}") from error
    click.echo(f"wrote message {message} for {table_name} to {output}")


__all__ = [
    "catalogs",
    "generate_proto",
    "grants",
    "principals",
    "schemas",
    "serve",
    "tables",
]

import chatlake.ingest.commands_tables  # noqa: E402,F401  registers "tables optimize"
