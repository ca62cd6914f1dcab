"""Errors of the ingest server.

IngestError                 (a ChatlakeError)
├── StreamRefused           ends one RPC with a gRPC status; carries the code
│   (bad token, missing privilege, schema mismatch, undecodable record, ...)
└── (storage errors)        raised by the WAL, committer and Delta writes

A StreamRefused message names what was wrong and where (table, column, offset)
and never quotes record contents.
"""

from __future__ import annotations

import grpc

from chatlake.errors import ChatlakeError


class IngestError(ChatlakeError):
    """An expected failure of the ingest server."""


class StreamRefused(IngestError):
    """A stream or one of its messages is refused; the RPC ends with ``code``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> StreamRefused:
    """A terminal refusal for input that will never become valid by resending."""
    return StreamRefused(grpc.StatusCode.INVALID_ARGUMENT, message)
