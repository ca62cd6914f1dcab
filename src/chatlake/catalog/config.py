"""The catalog service's settings: one frozen object, validated when built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatlake import config
from chatlake.errors import ConfigError

DEFAULT_TOKEN_TTL_S = 3600
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10000


@dataclass(frozen=True)
class CatalogSettings:
    """Where the catalog keeps its files and how it listens."""

    data_dir: Path
    host: str = config.DEFAULT_HOST
    port: int = config.DEFAULT_CATALOG_PORT
    token_ttl_s: int = DEFAULT_TOKEN_TTL_S

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"catalog port {self.port} is not in 0..65535")
        if self.token_ttl_s < 60:
            raise ConfigError(f"token_ttl_s {self.token_ttl_s} is below 60 seconds")

    @property
    def catalog_dir(self) -> Path:
        """Metadata, keys and the admin credentials."""
        return self.data_dir / "catalog"

    @property
    def tables_dir(self) -> Path:
        """Where managed tables live: ``tables/<catalog>/<schema>/<table>-<id>``."""
        return self.data_dir / "tables"

    @property
    def database_path(self) -> Path:
        return self.catalog_dir / "catalog.sqlite"

    @property
    def admin_file(self) -> Path:
        return self.catalog_dir / "admin.json"

    @property
    def public_key_file(self) -> Path:
        return self.catalog_dir / "token_public.pem"

    @property
    def loopback(self) -> bool:
        return config.is_loopback(self.host)
