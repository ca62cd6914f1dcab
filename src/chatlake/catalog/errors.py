"""The catalog's errors: each knows its HTTP status and Unity Catalog error code."""

from __future__ import annotations

from chatlake.errors import ChatlakeError


class CatalogError(ChatlakeError):
    """A catalog request failed; ``status`` and ``error_code`` are what the API sent."""

    status = 500
    error_code = "INTERNAL"

    def __init__(
        self, message: str, *, status: int | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if error_code is not None:
            self.error_code = error_code

    def body(self) -> dict[str, object]:
        """The JSON error body, shaped like the open-source Unity Catalog server's."""
        return {"error_code": self.error_code, "message": self.message, "details": []}


class InvalidArgument(CatalogError):
    status = 400
    error_code = "INVALID_ARGUMENT"


class FailedPrecondition(CatalogError):
    status = 400
    error_code = "FAILED_PRECONDITION"


class Unauthenticated(CatalogError):
    status = 401
    error_code = "UNAUTHENTICATED"


class TokenError(Unauthenticated):
    """A bearer token cannot be trusted; ``reason`` says why, without the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token: {reason}")
        self.reason = reason


class PermissionDenied(CatalogError):
    status = 403
    error_code = "PERMISSION_DENIED"


class NotFound(CatalogError):
    status = 404
    error_code = "NOT_FOUND"


class AlreadyExists(CatalogError):
    status = 409
    error_code = "ALREADY_EXISTS"


_BY_STATUS = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        AlreadyExists,
    )
}


def from_response(status: int, error_code: str | None, message: str) -> CatalogError:
    """The error a client raises for an error response of the catalog."""
    cls = _BY_STATUS.get(status, CatalogError)
    return cls(message, status=status, error_code=error_code or cls.error_code)
