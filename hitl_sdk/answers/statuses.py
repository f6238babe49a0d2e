"""What each of hitl's errors means over HTTP, and back: one table for the reviewer app (error
to status) and for the clients of its JSON API (the CLI's demo: status to error)."""

from __future__ import annotations

from .._errors import (
    AlreadyAnswered,
    AlreadyVoted,
    ConfigError,
    CorruptRecord,
    EventCancelled,
    EventExpired,
    EventNotFound,
    HitlError,
    InvalidToken,
    InvalidValue,
    MissingToken,
    NotAllowed,
    StorageError,
    TransientStorageError,
)

# First match wins, so subclasses come before their bases.
STATUS_FOR: tuple[tuple[type[HitlError], int, str], ...] = (
    (InvalidValue, 400, "invalid_value"),
    (MissingToken, 401, "missing_token"),
    (InvalidToken, 403, "invalid_token"),
    (NotAllowed, 403, "not_allowed"),
    (EventNotFound, 404, "not_found"),
    (AlreadyVoted, 409, "already_voted"),
    (AlreadyAnswered, 409, "already_answered"),
    (EventExpired, 410, "expired"),
    (EventCancelled, 410, "cancelled"),
    (TransientStorageError, 503, "storage_unavailable"),
    (CorruptRecord, 500, "record_damaged"),
    (StorageError, 500, "storage_error"),
    (ConfigError, 500, "config_error"),
    (HitlError, 500, "error"),
)


def status_for(exc: HitlError) -> tuple[int, str]:
    """The HTTP status and short error kind for one of hitl's errors."""
    for cls, status, kind in STATUS_FOR:
        if isinstance(exc, cls):
            return status, kind
    return 500, "error"  # unreachable: HitlError is the last row


def error_for_status(status: int, kind: str = "") -> type[HitlError]:
    """The error a client raises for the app's answer ``status`` (and its ``error`` kind)."""
    for cls, code, name in STATUS_FOR:
        if code == status and (not kind or name == kind):
            return cls
    for cls, code, _ in STATUS_FOR:
        if code == status:
            return cls
    return HitlError
