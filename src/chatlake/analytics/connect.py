"""Building a SqlEngine from settings: catalog URL and whose credentials to use.

Credentials come from the arguments, else ``$CHATLAKE_SQL_CLIENT_ID`` and
``$CHATLAKE_SQL_CLIENT_SECRET``, else the catalog's local admin file
``<data_dir>/catalog/admin.json`` (tools on the catalog's own machine).
The catalog URL comes from the argument, else ``$CHATLAKE_CATALOG_URL``, else
the ``<data_dir>/app.env`` that ``chatlake up`` writes, else the local default.
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
from chatlake.catalog.bootstrap import read_env_file
from chatlake.catalog.client import CatalogClient
from chatlake.catalog.errors import CatalogError

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
        directory = config.data_dir(data_dir)
        if not client_id:
            client_id, client_secret = _local_admin(directory)
        url = catalog_url or os.environ.get(config.ENV_CATALOG_URL)
        url = url or _app_env_catalog_url(directory)
        return cls(config.catalog_url(url), client_id, client_secret)


def make_engine(
    settings: EngineSettings, *, verify: bool = False, timeout_s: float | None = None
) -> SqlEngine:
    """An engine querying as ``settings``' principal.

    With ``verify``, the credentials are checked at once (one token request), so
    that wrong ones fail even a query that reads no table.
    """
    client = CatalogClient(
        settings.catalog_url, settings.client_id, settings.client_secret
    )
    if verify:
        _verify(client, settings)
    return SqlEngine(CatalogResolver(client), owns_source=True, timeout_s=timeout_s)


def _verify(client: CatalogClient, settings: EngineSettings) -> None:
    try:
        client.token()
    except CatalogError as error:
        client.close()
        if getattr(error, "status", None) in (0, None) or error.status >= 500:
            raise AnalyticsError(
                f"cannot check the credentials of client id {settings.client_id!r}: "
                f"{error}"
            ) from None
        raise AnalyticsError(
            f"catalog {settings.catalog_url} refused client id "
            f"{settings.client_id!r}: {error}"
        ) from None


def _app_env_catalog_url(data_dir: Path) -> str | None:
    # `chatlake up` may serve the catalog on another port than the default.
    try:
        return read_env_file(data_dir / "app.env").get(config.ENV_CATALOG_URL)
    except (OSError, UnicodeDecodeError):
        return None


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
