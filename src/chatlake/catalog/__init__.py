"""The catalog: catalogs, schemas, tables, service principals, grants and tokens.

It speaks the Unity Catalog REST subset under ``/api/2.1/unity-catalog/`` and the
OAuth client-credentials token endpoint at ``POST /oidc/v1/token``, stores its
metadata in SQLite, and creates each table's empty Delta table on disk.

Errors (all CatalogError, a ChatlakeError, carrying an HTTP status and a UC code):

CatalogError
├── InvalidArgument      400 INVALID_ARGUMENT
├── FailedPrecondition   400 FAILED_PRECONDITION
├── Unauthenticated      401 UNAUTHENTICATED
│   └── TokenError       a token is missing, malformed, expired or foreign-signed
├── PermissionDenied     403 PERMISSION_DENIED
├── NotFound             404 NOT_FOUND
└── AlreadyExists        409 ALREADY_EXISTS
"""
