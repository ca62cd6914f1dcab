"""The HTTP face of the catalog: Unity Catalog REST, principals, tokens, health.

Request bodies are parsed by hand (not by pydantic models) so that every bad
input gets a Unity Catalog error body naming what was wrong, never a 422.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from chatlake.catalog import oauth
from chatlake.catalog.access import ADMIN_CALLER, Caller
from chatlake.catalog.errors import (
    CatalogError,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
)
from chatlake.catalog.service import CatalogService
from chatlake.names import printable, quoted

logger = logging.getLogger(__name__)

UC = "/api/2.1/unity-catalog"
PRINCIPALS = "/api/2.1/chatlake/principals"
MAX_BODY_BYTES = 16 * 1024 * 1024


def create_app(service: CatalogService) -> FastAPI:
    """The FastAPI application serving one CatalogService."""
    app = FastAPI(
        title="chatlake catalog", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.service = service
    _install_error_handlers(app)
    _add_catalog_routes(app)
    _add_schema_routes(app)
    _add_table_routes(app)
    _add_permission_routes(app)
    _add_principal_routes(app)
    _add_token_routes(app)
    return app


# -- plumbing ----------------------------------------------------------------------


def _service(request: Request) -> CatalogService:
    return request.app.state.service


def caller(request: Request) -> Caller:
    """The authenticated caller: a bearer token, or the admin's Basic credentials."""
    service = _service(request)
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return service.access.caller_from_token(value.strip())
    if scheme.lower() == "basic" and service.settings.loopback:
        try:
            client_id, secret = oauth.parse_basic(header)
        except oauth.OAuthError as error:
            raise Unauthenticated(error.message) from None
        service.access.caller_from_basic(client_id, secret)
        return ADMIN_CALLER
    raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>'")


async def json_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise InvalidArgument(f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidArgument(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidArgument(f"malformed JSON body: {error}") from None
    except RecursionError:
        raise InvalidArgument("malformed JSON body: nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the JSON body must be an object")
    _refuse_nul(body, "the body")
    return body


def _refuse_nul(value: Any, where: str) -> None:
    """No string of a request may hold a NUL: paths, SQLite text and logs choke."""
    if isinstance(value, str) and "\x00" in value:
        raise InvalidArgument(f"{where} {quoted(value)} holds a NUL character")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, f"the key in {where}")
            _refuse_nul(item, key if where == "the body" else f"{where}.{key}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{where}[{index}]")


def _error_response(error: CatalogError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CatalogError)
    async def catalog_error(request: Request, error: CatalogError) -> JSONResponse:
        logger.info(
            "%s %s -> %d %s",
            request.method,
            printable(request.url.path),
            error.status,
            error.error_code,
        )
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, error: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        return _error_response(InvalidArgument(f"invalid request: {problems}"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        code = "NOT_FOUND" if error.status_code == 404 else "INVALID_ARGUMENT"
        path = printable(request.url.path)
        message = f"{request.method} {path}: {error.detail}"
        return _error_response(
            CatalogError(message, status=error.status_code, error_code=code)
        )

    @app.middleware("http")
    async def bug(request: Request, call_next):
        # A bug is logged once here and answered with a 500; the server goes on.
        try:
            return await call_next(request)
        except Exception:
            logger.exception(
                "unexpected error in %s %s",
                request.method,
                printable(request.url.path),
            )
            return _error_response(
                CatalogError("internal error; see the catalog's log")
            )


# -- routes --------------------------------------------------------------------------


def _add_catalog_routes(app: FastAPI) -> None:
    @app.post(f"{UC}/catalogs")
    async def create_catalog(request: Request):
        body = await json_body(request)
        return await run_in_threadpool(
            _service(request).create_catalog, caller(request), body
        )

    @app.get(f"{UC}/catalogs")
    def list_catalogs(
        request: Request, max_results: int | None = None, page_token: str | None = None
    ):
        service = _service(request)
        return service.list_catalogs(caller(request), max_results, page_token)

    @app.get(f"{UC}/catalogs/{{name}}")
    def get_catalog(request: Request, name: str):
        return _service(request).get_catalog(caller(request), name)

    @app.delete(f"{UC}/catalogs/{{name}}")
    def delete_catalog(request: Request, name: str, force: bool = False):
        _service(request).delete_catalog(caller(request), name, force)
        return {}


def _add_schema_routes(app: FastAPI) -> None:
    @app.post(f"{UC}/schemas")
    async def create_schema(request: Request):
        body = await json_body(request)
        return await run_in_threadpool(
            _service(request).create_schema, caller(request), body
        )

    @app.get(f"{UC}/schemas")
    def list_schemas(
        request: Request,
        catalog_name: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ):
        service = _service(request)
        return service.list_schemas(
            caller(request), catalog_name, max_results, page_token
        )

    @app.get(f"{UC}/schemas/{{full_name}}")
    def get_schema(request: Request, full_name: str):
        return _service(request).get_schema(caller(request), full_name)

    @app.delete(f"{UC}/schemas/{{full_name}}")
    def delete_schema(request: Request, full_name: str, force: bool = False):
        _service(request).delete_schema(caller(request), full_name, force)
        return {}


def _add_table_routes(app: FastAPI) -> None:
    @app.post(f"{UC}/tables")
    async def create_table(request: Request):
        body = await json_body(request)
        who = caller(request)
        return await run_in_threadpool(_service(request).create_table, who, body)

    @app.get(f"{UC}/tables")
    def list_tables(
        request: Request,
        catalog_name: str,
        schema_name: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ):
        return _service(request).list_tables(
            caller(request), catalog_name, schema_name, max_results, page_token
        )

    @app.get(f"{UC}/tables/{{full_name}}")
    def get_table(request: Request, full_name: str):
        return _service(request).get_table(caller(request), full_name)

    @app.delete(f"{UC}/tables/{{full_name}}")
    def delete_table(request: Request, full_name: str):
        _service(request).delete_table(caller(request), full_name)
        return {}


def _add_permission_routes(app: FastAPI) -> None:
    path = f"{UC}/permissions/{{securable_type}}/{{full_name}}"

    @app.get(path)
    def get_permissions(
        request: Request,
        securable_type: str,
        full_name: str,
        principal: str | None = None,
    ):
        return _service(request).get_permissions(
            caller(request), securable_type, full_name, principal
        )

    @app.patch(path)
    async def update_permissions(request: Request, securable_type: str, full_name: str):
        body = await json_body(request)
        update = _service(request).update_permissions
        return await run_in_threadpool(
            update, caller(request), securable_type, full_name, body
        )


def _admin(request: Request) -> None:
    if not caller(request).is_admin:
        raise PermissionDenied("only the admin principal manages principals")


def _add_principal_routes(app: FastAPI) -> None:
    @app.post(PRINCIPALS)
    async def create_principal(request: Request):
        body = await json_body(request)
        _admin(request)
        create = _service(request).access.create_principal
        return await run_in_threadpool(create, body.get("name"))

    @app.get(PRINCIPALS)
    def list_principals(request: Request):
        _admin(request)
        return {"principals": _service(request).access.list_principals()}

    @app.post(f"{PRINCIPALS}/{{name}}/rotate-secret")
    def rotate_secret(request: Request, name: str):
        _admin(request)
        return _service(request).access.rotate_secret(name)

    @app.delete(f"{PRINCIPALS}/{{name}}")
    def delete_principal(request: Request, name: str):
        _admin(request)
        _service(request).access.delete_principal(name)
        return {}


def _add_token_routes(app: FastAPI) -> None:
    @app.post("/oidc/v1/token")
    async def token(request: Request):
        body = await request.body()
        service = _service(request)
        return await run_in_threadpool(
            oauth.token_response,
            service.access,
            service.exists,
            request.headers.get("authorization"),
            body,
            service.settings.token_ttl_s,
        )

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}
