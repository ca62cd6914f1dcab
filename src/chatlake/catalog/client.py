"""A small Python client for the catalog, used by the CLI, `chatlake up` and others.

>>> client = CatalogClient.local_admin("http://127.0.0.1:8080", ".chatlake")
>>> client.get_table("main.chatbot.chat_events")["storage_location"]
'file:///.../tables/main/chatbot/chat_events-<table id>'
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any
from urllib.parse import quote

import httpx

from chatlake import config
from chatlake.catalog.errors import CatalogError, from_response
from chatlake.names import parse_table_name
from chatlake.types import Column

UC = "/api/2.1/unity-catalog"
PRINCIPALS = "/api/2.1/chatlake/principals"
DEFAULT_TIMEOUT_S = 30.0
# Renew a cached token this long before it expires.
TOKEN_MARGIN_S = 60


class CatalogClient:
    """Talks to one catalog as one principal; tokens are fetched and cached."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    @classmethod
    def local_admin(cls, base_url: str | None, data_dir: str | os.PathLike[str] | None):
        """A client with the admin credentials the catalog wrote into ``data_dir``."""
        path = config.data_dir(data_dir) / "catalog" / "admin.json"
        try:
            credentials = json.loads(path.read_text())
            client_id, secret = credentials["client_id"], credentials["client_secret"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CatalogError(
                f"no local admin credentials in {path} ({error}); start the catalog "
                f"with this --data-dir first, or pass --client-id/--client-secret"
            ) from None
        return cls(config.catalog_url(base_url), client_id, secret)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CatalogClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- tokens --------------------------------------------------------------------

    def token(self, authorization_details: list[dict] | None = None) -> str:
        """A bearer token: all held privileges, or just ``authorization_details``."""
        if authorization_details is not None:
            return self._fetch_token(authorization_details)["access_token"]
        with self._lock:
            if self._token and time.monotonic() < self._token_expires - TOKEN_MARGIN_S:
                return self._token
            answer = self._fetch_token(None)
            self._token = answer["access_token"]
            self._token_expires = time.monotonic() + int(answer.get("expires_in", 0))
            return self._token

    def _fetch_token(self, details: list[dict] | None) -> dict[str, Any]:
        form = {"grant_type": "client_credentials", "scope": "all-apis"}
        if details is not None:
            form["authorization_details"] = json.dumps(details)
        response = self._send(
            "POST", "/oidc/v1/token", data=form, auth=(self.client_id, self._secret)
        )
        return response.json()

    # -- catalogs, schemas, tables ------------------------------------------------

    def create_catalog(
        self,
        name: str,
        comment: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = _without_none(name=name, comment=comment, properties=properties)
        return self._call("POST", f"{UC}/catalogs", json=body)

    def get_catalog(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"{UC}/catalogs/{quote(name)}")

    def list_catalogs(self) -> list[dict[str, Any]]:
        return self._all("catalogs", f"{UC}/catalogs", {})

    def delete_catalog(self, name: str, force: bool = False) -> None:
        self._call("DELETE", f"{UC}/catalogs/{quote(name)}", params=_force(force))

    def create_schema(
        self,
        catalog: str,
        name: str,
        comment: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = _without_none(
            catalog_name=catalog, name=name, comment=comment, properties=properties
        )
        return self._call("POST", f"{UC}/schemas", json=body)

    def get_schema(self, full_name: str) -> dict[str, Any]:
        return self._call("GET", f"{UC}/schemas/{quote(full_name)}")

    def list_schemas(self, catalog: str) -> list[dict[str, Any]]:
        return self._all("schemas", f"{UC}/schemas", {"catalog_name": catalog})

    def delete_schema(self, full_name: str, force: bool = False) -> None:
        self._call("DELETE", f"{UC}/schemas/{quote(full_name)}", params=_force(force))

    def create_table(
        self,
        full_name: str,
        columns: list[Column],
        properties: dict[str, str] | None = None,
        comment: str | None = None,
        storage_location: str | None = None,
    ) -> dict[str, Any]:
        """Create a table (MANAGED unless ``storage_location`` is given)."""
        catalog, schema, name = _split_table(full_name)
        body = _without_none(
            catalog_name=catalog,
            schema_name=schema,
            name=name,
            table_type="EXTERNAL" if storage_location else "MANAGED",
            data_source_format="DELTA",
            columns=[column.to_uc(i) for i, column in enumerate(columns)],
            storage_location=storage_location,
            properties=properties,
            comment=comment,
        )
        return self._call("POST", f"{UC}/tables", json=body)

    def get_table(self, full_name: str) -> dict[str, Any]:
        return self._call("GET", f"{UC}/tables/{quote(full_name)}")

    def list_tables(self, catalog: str, schema: str) -> list[dict[str, Any]]:
        params = {"catalog_name": catalog, "schema_name": schema}
        return self._all("tables", f"{UC}/tables", params)

    def delete_table(self, full_name: str) -> None:
        self._call("DELETE", f"{UC}/tables/{quote(full_name)}")

    # -- principals and grants -----------------------------------------------------

    def create_principal(self, name: str) -> dict[str, Any]:
        """A new principal: ``{"name", "client_id", "client_secret"}`` (shown once)."""
        return self._call("POST", PRINCIPALS, json={"name": name})

    def list_principals(self) -> list[dict[str, Any]]:
        return self._call("GET", PRINCIPALS)["principals"]

    def rotate_secret(self, name: str) -> dict[str, Any]:
        """A new secret for principal ``name`` (grants and client id kept)."""
        return self._call("POST", f"{PRINCIPALS}/{quote(name)}/rotate-secret")

    def delete_principal(self, name: str) -> None:
        self._call("DELETE", f"{PRINCIPALS}/{quote(name)}")

    def grant(
        self, privilege: str, securable_type: str, full_name: str, principal: str
    ) -> dict[str, Any]:
        change = {"principal": principal, "add": [privilege], "remove": []}
        return self._permissions("PATCH", securable_type, full_name, change)

    def revoke(
        self, privilege: str, securable_type: str, full_name: str, principal: str
    ) -> dict[str, Any]:
        change = {"principal": principal, "add": [], "remove": [privilege]}
        return self._permissions("PATCH", securable_type, full_name, change)

    def permissions(self, securable_type: str, full_name: str) -> dict[str, Any]:
        return self._permissions("GET", securable_type, full_name, None)

    def _permissions(self, method, securable_type, full_name, change):
        path = f"{UC}/permissions/{quote(securable_type.lower())}/{quote(full_name)}"
        body = {"changes": [change]} if change else None
        return self._call(method, path, json=body)

    # -- plumbing --------------------------------------------------------------------

    def _all(self, key: str, path: str, params: dict[str, str]) -> list[dict]:
        items: list[dict] = []
        token = None
        while True:
            page = self._call("GET", path, params={**params, **_page(token)})
            items.extend(page.get(key, []))
            token = page.get("next_page_token")
            if not token:
                return items

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return self._send(method, path, headers=headers, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise CatalogError(
                f"cannot reach the catalog at {self.base_url}: {error}",
                status=0,
                error_code="UNAVAILABLE",
            ) from error
        if response.is_error:
            raise _error(response)
        return response


def _error(response: httpx.Response) -> CatalogError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("error_code") or body.get("error")
    message = body.get("message") or body.get("error_description") or response.text
    return from_response(response.status_code, code, message)


def _split_table(full_name: str) -> tuple[str, str, str]:
    parsed = parse_table_name(full_name)
    return parsed.catalog, parsed.schema, parsed.table


def _without_none(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _force(force: bool) -> dict[str, str]:
    return {"force": "true"} if force else {}


def _page(token: str | None) -> dict[str, str]:
    return {"page_token": token} if token else {}
