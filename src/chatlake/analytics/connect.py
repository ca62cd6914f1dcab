"""Building a SqlEngine from settings: catalog URL and whose credentials to use.

Credentials come from the arguments, else ``$CHATLAKE_SQL_CLIENT_ID`` and
``$CHATLAKE_SQL_CLIENT_SECRET``, else the catalog's local admin file
``<data_dir>/catalog/admin.json`` (tools on the catalog's own machine).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from chatlake import config
from chatlake.analytics.catalog_resolver import CatalogResolver
from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import AnalyticsError
from chatlake.catalog.client import CatalogClient

ENV_CLIENT_ID = "CHATLAKE_SQL_CLIENT_ID"
ENV_CLIENT_SECRET = "CHATLAKE_SQL_CLIENT_SECRET"


@dataclass(frozen=True)
class EngineSettings:
    catalog_url: str
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def resolve(
        cls,
        catalog_url: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> EngineSettings:
        """Argument, then environment, then the local admin file."""
        client_id = client_id or os.environ.get(ENV_CLIENT_ID)
        client_secret = client_secret or os.environ.get(ENV_CLIENT_SECRET)
        if bool(client_id) != bool(client_secret):
            raise AnalyticsError(
                "give both a client id and a client secret, or neither "
                f"(options or ${ENV_CLIENT_ID} and ${ENV_CLIENT_SECRET})"
            )
        if not client_id:
            client_id, client_secret = _local_admin(config.data_dir(data_dir))
        return cls(config.catalog_url(catalog_url), client_id, client_secret)


def make_engine(settings: EngineSettings) -> SqlEngine:
    client = CatalogClient(
        settings.catalog_url, settings.client_id, settings.client_secret
    )
    return SqlEngine(CatalogResolver(client), owns_source=True)


def _local_admin(data_dir: Path) -> tuple[str, str]:
    path = data_dir / "catalog" / "admin.json"
    try:
        found = json.loads(path.read_text("utf-8"))
        return found["client_id"], found["client_secret"]
    except FileNotFoundError:
        raise AnalyticsError(
            f"no credentials: pass --client-id and --client-secret, or start the "
            f"catalog once so that {path} exists"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AnalyticsError(
            f"cannot read admin credentials from {path}: {error}"
        ) from None
