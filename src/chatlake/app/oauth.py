"""OAuth client-credentials tokens for Databricks Model Serving inside Databricks Apps.

Databricks Apps give the app a service principal (DATABRICKS_CLIENT_ID and
DATABRICKS_CLIENT_SECRET) rather than a personal token; the app trades them at
``{host}/oidc/v1/token`` for a short-lived bearer token, refreshed before it
expires.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import httpx

from chatlake.app.errors import ModelError

logger = logging.getLogger(__name__)

REFRESH_MARGIN_S = 60.0
TOKEN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ClientCredentials:
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)


class TokenSource:
    """Fetches a token once and again shortly before it expires; thread-safe."""

    def __init__(self, credentials: ClientCredentials) -> None:
        self.credentials = credentials
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() > self._expires_at:
                self._token, lifetime_s = self._fetch()
                self._expires_at = time.monotonic() + max(
                    lifetime_s - REFRESH_MARGIN_S, 0
                )
            return self._token

    def _fetch(self) -> tuple[str, float]:
        creds = self.credentials
        try:
            response = httpx.post(
                creds.token_url,
                data={"grant_type": "client_credentials", "scope": "all-apis"},
                auth=(creds.client_id, creds.client_secret),
                timeout=TOKEN_TIMEOUT_S,
            )
        except httpx.HTTPError as error:
            raise ModelError(
                f"token endpoint unreachable: {error}", "auth_error"
            ) from None
        if response.status_code != 200:
            raise ModelError(
                f"token endpoint refused the app's credentials: HTTP "
                f"{response.status_code}",
                "auth_error",
            )
        body = response.json()
        logger.info("fetched a model-serving token for %s", creds.client_id)
        return body["access_token"], float(body.get("expires_in", 3600))
