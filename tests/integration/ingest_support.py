"""Helpers for the ingest integration tests: tables, principals, descriptors, SDK."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import deltalake
import duckdb
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from zerobus.sdk.sync import ZerobusSdk

from chatlake.ingest.config import IngestSettings
from chatlake.ingest.storage import StorageSettings
from chatlake.ingest.testing import RunningIngest, serve_in_thread
from chatlake.types import parse_columns

FDP = descriptor_pb2.FieldDescriptorProto
FAST_COMMITS = StorageSettings(commit_interval_s=0.1, maintenance_interval_s=0)


def ingest_settings(catalog, **overrides) -> IngestSettings:
    values = dict(
        data_dir=catalog.data_dir,
        catalog_url=catalog.url,
        port=0,
        metrics_port=None,
        stream_events=False,
    )
    values.update(overrides)
    return IngestSettings(**values)


@contextmanager
def ingest_server(
    catalog, storage=FAST_COMMITS, **overrides
) -> Iterator[RunningIngest]:
    with serve_in_thread(ingest_settings(catalog, **overrides), storage) as running:
        yield running


def create_table(catalog, full_name: str, columns: str, properties=None) -> dict:
    admin = catalog.admin_client
    cat, schema, _ = full_name.split(".")
    for step in (
        lambda: admin.create_catalog(cat),
        lambda: admin.create_schema(cat, schema),
    ):
        try:
            step()
        except Exception as error:  # already there from an earlier table
            if getattr(error, "status", None) != 409:
                raise
    return admin.create_table(full_name, parse_columns(columns), properties=properties)


def writer(catalog, name: str, *tables: str) -> tuple[str, str]:
    """A principal allowed to write the tables: (client_id, client_secret)."""
    admin = catalog.admin_client
    created = admin.create_principal(name)
    for full_name in tables:
        cat, schema, _ = full_name.split(".")
        admin.grant("USE CATALOG", "catalog", cat, name)
        admin.grant("USE SCHEMA", "schema", f"{cat}.{schema}", name)
        admin.grant("MODIFY", "table", full_name, name)
        admin.grant("SELECT", "table", full_name, name)
    return created["client_id"], created["client_secret"]


def sdk(running: RunningIngest, catalog) -> ZerobusSdk:
    return ZerobusSdk(running.endpoint, catalog.url)


_counter = iter(range(1_000_000))


def message_class(fields, nested=(), name="Chat", package="tests.chat"):
    """A protobuf class built at run time: fields are (name, type, label[, ref])."""
    file = descriptor_pb2.FileDescriptorProto(
        name=f"test_{next(_counter)}.proto", package=package, syntax="proto2"
    )
    message = file.message_type.add(name=name)
    _add_fields(message, fields)
    for nested_name, nested_fields, is_map in nested:
        inner = message.nested_type.add(name=nested_name)
        inner.options.map_entry = is_map
        _add_fields(inner, nested_fields)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{package}.{name}")
    )


def _add_fields(message, fields) -> None:
    for number, spec in enumerate(fields, start=1):
        field = message.field.add(
            name=spec[0], number=number, type=spec[1], label=spec[2]
        )
        if len(spec) > 3:
            field.type_name = spec[3]


def table_location(catalog, full_name: str) -> str:
    return catalog.admin_client.get_table(full_name)["storage_location"]


def read_rows(catalog, full_name: str, order_by: str) -> list[dict]:
    location = table_location(catalog, full_name)
    table = deltalake.DeltaTable(location).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda row: row[order_by])


def count_rows(catalog, full_name: str) -> int:
    location = table_location(catalog, full_name)
    try:
        return deltalake.DeltaTable(location).to_pyarrow_table().num_rows
    except deltalake.exceptions.TableNotFoundError:
        return 0


def sql(query: str, **tables: str):
    """Run DuckDB SQL over Delta tables given as name=location."""
    connection = duckdb.connect()
    for name, location in tables.items():
        arrow = deltalake.DeltaTable(location).to_pyarrow_table()
        connection.register(name, arrow)
    return connection.execute(query).fetchall()


def local_path(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def settle(running: RunningIngest) -> None:
    """Commit everything the server has acked, so the table shows it now."""
    assert running.call(running.server.storage.flush()) is True
