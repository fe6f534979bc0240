"""Errors a user can cause. Each edge (CLI, UI) turns them into one clear line."""

from __future__ import annotations


class LikenessError(Exception):
    """Base for user-facing errors: the message names the file, row or setting."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(LikenessError):
    """A setting is missing or wrong."""


class NotFound(LikenessError):
    """A named row or file does not exist."""


class InvalidInput(LikenessError):
    """A file or value given by the user cannot be used."""


class ConsentViolation(LikenessError):
    """An action would use a frame without a valid release."""


class IntegrityProblem(LikenessError):
    """Stored data disagrees with itself (a row without its blob, say)."""


class ServiceUnavailable(LikenessError):
    """The database or another server cannot be reached."""
