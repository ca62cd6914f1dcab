"""Fixtures shared by every component's tests: real servers on loopback, port 0."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatlake.catalog.client import CatalogClient
from chatlake.catalog.config import CatalogSettings
from chatlake.catalog.server import serve_in_thread
from chatlake.catalog.service import CatalogService


@dataclass
class CatalogServer:
    """A real catalog serving in a thread: its URL, data directory and admin client."""

    url: str
    data_dir: Path
    admin_client: CatalogClient
    service: CatalogService  # the same process: for tests that look inside

    @property
    def public_key_file(self) -> Path:
        return self.data_dir / "catalog" / "token_public.pem"


@pytest.fixture
def catalog_server(tmp_path: Path) -> Iterator[CatalogServer]:
    """Start the catalog on 127.0.0.1:<free port> over ``tmp_path/data``."""
    settings = CatalogSettings(data_dir=tmp_path / "data", port=0)
    with serve_in_thread(settings) as running:
        client = CatalogClient.local_admin(running.url, running.data_dir)
        try:
            yield CatalogServer(running.url, running.data_dir, client, running.service)
        finally:
            client.close()
