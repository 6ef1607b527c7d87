"""The ATE exception tree.

Every error ATE raises is an ``AteError`` carrying ``.kind`` (a stable snake_case name such
as ``"not_found"``) and ``.retryable`` (whether the same call may succeed if retried with
backoff). Each kind has one subclass, which also derives from the builtin exception of the
same meaning where there is one, so ``except ValueError`` keeps working for bad input.
"""

from __future__ import annotations


class AteError(Exception):
    """Base class of every ATE error."""

    kind: str
    retryable: bool

    def __init__(self, message: str, kind: str = "internal", retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # keep pickling (multiprocessing) lossless
        return (type(self), (self.message, self.kind, self.retryable))


class NotFoundError(AteError, LookupError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class AlreadyExistsError(AteError):
    """A thing with the same unique key already exists."""


class InvalidInputError(AteError, ValueError):
    """An argument was malformed or out of range."""


class UnauthenticatedError(AteError):
    """The caller did not prove who it is."""


class PermissionDeniedError(AteError, PermissionError):
    """The caller may not do this."""


class QuotaExceededError(AteError):
    """A quota or size limit would be exceeded."""


class ConflictError(AteError):
    """The operation conflicts with the current state."""


class RateLimitedError(AteError):
    """Too many requests; retry later."""


class IntegrityError(AteError):
    """Stored or supplied data failed an integrity check."""


class UnavailableError(AteError, ConnectionError):
    """A backend could not be reached; retrying may succeed."""


class UnsupportedError(AteError, NotImplementedError):
    """Not supported by this build or configuration."""


class InternalError(AteError):
    """A bug inside ATE."""


__all__ = [
    "AteError",
    "NotFoundError",
    "AlreadyExistsError",
    "InvalidInputError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "ConflictError",
    "RateLimitedError",
    "IntegrityError",
    "UnavailableError",
    "UnsupportedError",
    "InternalError",
]
