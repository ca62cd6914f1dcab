"""Errors of the chatbot app.

AppError (a ChatlakeError)
├── ModelError        the model endpoint failed, timed out or refused the request
└── NotFound          a conversation or turn does not exist or is another browser's

Bad model or app settings raise chatlake.errors.ConfigError.
"""

from __future__ import annotations

from chatlake.errors import ChatlakeError


class AppError(ChatlakeError):
    """An expected failure inside the chatbot app."""


class ModelError(AppError):
    """The model endpoint failed; ``error_type`` is the short name telemetry records."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class NotFound(AppError):
    """A conversation or turn does not exist, or belongs to another browser."""
