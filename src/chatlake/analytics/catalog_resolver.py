"""Resolving tables through the catalog's REST API with the caller's credentials.

For each table the resolver asks the token endpoint for exactly USE CATALOG,
USE SCHEMA and SELECT on it; the catalog refuses when the caller does not hold
them, so the check is the catalog's own. The same narrow token then reads the
table's info (storage location and columns).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx

from chatlake.analytics.errors import TableAccessError
from chatlake.analytics.resolver import ResolvedTable
from chatlake.errors import TypeSpecError
from chatlake.types import arrow_schema, column_from_uc

log = logging.getLogger(__name__)

UC_API = "/api/2.1/unity-catalog"
TOKEN_PATH = "/oidc/v1/token"
DEFAULT_TIMEOUT_S = 10.0
# A token is reused until this long before it expires.
TOKEN_MARGIN_S = 30.0


class CatalogResolver:
    """Tables the principal ``client_id`` may SELECT from, found in the catalog."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._auth = (client_id, client_secret)
        self._http = httpx.Client(base_url=self._base_url, timeout=timeout_s)
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_client(cls, client: Any) -> CatalogResolver:
        """A resolver with the base URL and credentials of a CatalogClient."""
        try:
            return cls(client.base_url, client.client_id, client.client_secret)
        except AttributeError as missing:
            raise TypeError(
                f"SqlEngine needs a TableResolver or a catalog client with "
                f"base_url, client_id and client_secret: {missing}"
            ) from None

    def resolve(self, full_name: str) -> ResolvedTable:
        token = self._select_token(full_name)
        info = self._get(f"{UC_API}/tables/{full_name}", token, full_name)
        location = info.get("storage_location")
        if not location:
            raise TableAccessError(f"table {full_name} has no storage location")
        return ResolvedTable(full_name, location, _schema(info, full_name))

    def close(self) -> None:
        self._http.close()

    def _select_token(self, full_name: str) -> str:
        with self._lock:
            cached = self._tokens.get(full_name)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        token, lifetime_s = self._request_token(full_name)
        with self._lock:
            expires = time.monotonic() + max(lifetime_s - TOKEN_MARGIN_S, 0.0)
            self._tokens[full_name] = (token, expires)
        return token

    def _request_token(self, full_name: str) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "scope": "all-apis",
            "authorization_details": json.dumps(_select_details(full_name)),
        }
        response = self._send("POST", TOKEN_PATH, full_name, data=form, auth=self._auth)
        if response.status_code != 200:
            raise TableAccessError(
                f"no SELECT access to table {full_name}: {_reason(response)}"
            )
        body = response.json()
        return body["access_token"], float(body.get("expires_in", 0))

    def _get(self, path: str, token: str, full_name: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        response = self._send("GET", path, full_name, headers=headers)
        if response.status_code != 200:
            raise TableAccessError(f"table {full_name}: {_reason(response)}")
        return response.json()

    def _send(self, method: str, path: str, full_name: str, **kwargs) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise TableAccessError(
                f"cannot reach the catalog at {self._base_url} to resolve "
                f"{full_name}: {error}"
            ) from error


def _select_details(full_name: str) -> list[dict[str, Any]]:
    catalog, schema, _ = full_name.split(".")
    wanted = [
        ("CATALOG", catalog, "USE CATALOG"),
        ("SCHEMA", f"{catalog}.{schema}", "USE SCHEMA"),
        ("TABLE", full_name, "SELECT"),
    ]
    return [
        {
            "type": "unity_catalog_privileges",
            "object_type": kind,
            "object_full_path": path,
            "privileges": [privilege],
        }
        for kind, path, privilege in wanted
    ]


def _schema(info: dict[str, Any], full_name: str):
    try:
        return arrow_schema([column_from_uc(c) for c in info.get("columns") or []])
    except TypeSpecError as error:
        log.warning("table %s: cannot map its columns to Arrow: %s", full_name, error)
        return None


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    message = body.get("error_description") or body.get("message") or body.get("error")
    return f"{message} (HTTP {response.status_code})"
