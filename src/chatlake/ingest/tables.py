"""What the server knows about a table: columns, storage, stamped and dedupe columns.

Table info comes from the catalog (with the local admin credentials from the
data directory). Opening a stream always asks the catalog, so a dropped table
takes no new stream; the periodic checks of open streams go through a short
cache, as they run every few seconds per stream.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

from chatlake.catalog.errors import CatalogError
from chatlake.chat_tables import DEDUPE_KEY_PROPERTY, INGESTION_TIME_PROPERTY
from chatlake.errors import ChatlakeError
from chatlake.ingest.errors import StreamRefused
from chatlake.ingest.storage import TableTarget
from chatlake.types import Column, arrow_schema, column_from_uc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableInfo:
    """A table as a stream needs it."""

    full_name: str
    columns: tuple[Column, ...]
    stamped: frozenset[str]
    target: TableTarget
    table_id: str | None = None  # changes when the table is dropped and recreated


def table_info(info: dict[str, Any]) -> TableInfo:
    """Build TableInfo from the catalog's UC TableInfo JSON."""
    full_name = info.get("full_name") or ".".join(
        info[k] for k in ("catalog_name", "schema_name", "name")
    )
    ordered = sorted(info.get("columns") or [], key=lambda c: c.get("position", 0))
    columns = tuple(column_from_uc(c) for c in ordered)
    properties = info.get("properties") or {}
    names = {c.name for c in columns}
    stamped = frozenset(
        name for name in (properties.get(INGESTION_TIME_PROPERTY),) if name in names
    )
    dedupe_key = properties.get(DEDUPE_KEY_PROPERTY)
    target = TableTarget(
        full_name=full_name,
        location=info["storage_location"],
        schema=arrow_schema(list(columns)),
        dedupe_key=dedupe_key if dedupe_key in names else None,
    )
    return TableInfo(full_name, columns, stamped, target, info.get("table_id"))


class TableDirectory:
    """Looks tables up in the catalog, caching answers for ``ttl_s`` seconds."""

    def __init__(self, catalog_url: str, data_dir: Path, ttl_s: float) -> None:
        self.catalog_url = catalog_url
        self.data_dir = data_dir
        self.ttl_s = ttl_s
        self._client = None
        # Lookups run in worker threads; two streams opening at once must not
        # each build (and one of them leak) a client.
        self._client_lock = threading.Lock()
        self._cache: dict[str, tuple[float, TableInfo]] = {}

    def client(self):
        # Built on first use: admin.json appears when the catalog first starts.
        with self._client_lock:
            if self._client is None:
                from chatlake.catalog.client import CatalogClient

                self._client = CatalogClient.local_admin(
                    self.catalog_url, self.data_dir
                )
            return self._client

    async def get(self, full_name: str, max_age_s: float | None = None) -> TableInfo:
        """The table's info, from the cache if younger than the TTL or max_age_s."""
        ttl_s = self.ttl_s if max_age_s is None else min(self.ttl_s, max_age_s)
        cached = self._cache.get(full_name)
        if cached and time.monotonic() - cached[0] < ttl_s:
            return cached[1]
        return await self.lookup(full_name)

    async def lookup(self, full_name: str) -> TableInfo:
        """The table's info straight from the catalog; refreshes the cache."""
        try:
            info = await asyncio.to_thread(self._fetch, full_name)
        except StreamRefused as refused:
            if refused.code == grpc.StatusCode.NOT_FOUND:
                self.forget(full_name)
            raise
        self._cache[full_name] = (time.monotonic(), info)
        return info

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def forget(self, full_name: str) -> None:
        self._cache.pop(full_name, None)

    def _fetch(self, full_name: str) -> TableInfo:
        try:
            return table_info(self.client().get_table(full_name))
        except CatalogError as error:
            raise _refusal(full_name, error) from None
        except (httpx.HTTPError, OSError) as error:
            log.warning("catalog unreachable looking up %s: %s", full_name, error)
            raise StreamRefused(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot look up table {full_name}: the catalog is unreachable",
            ) from None
        except ChatlakeError as error:
            raise StreamRefused(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot look up table {full_name}: {error}",
            ) from None


def _refusal(full_name: str, error: CatalogError) -> StreamRefused:
    if error.status == 404:
        return StreamRefused(
            grpc.StatusCode.NOT_FOUND,
            f"table {full_name} does not exist in the catalog",
        )
    log.warning("catalog refused looking up %s: %s", full_name, error)
    return StreamRefused(
        grpc.StatusCode.UNAVAILABLE,
        f"cannot look up table {full_name}: the catalog answered {error.status}",
    )
