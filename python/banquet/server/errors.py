"""Exceptions -> HTTP status codes and the one error body every endpoint uses:
``{"error": {"type": ..., "message": ...}}``.

Client mistakes are 4xx and name the problem; failures of the server's own dependencies are
503 (retry later), or 504 when a store or the request's deadline timed out; anything
unexpected is 500 with no internals leaked (the traceback goes to the server log).
"""

from __future__ import annotations

import logging

import orjson

from banquet import errors as be

log = logging.getLogger("banquet.server")


class HTTPError(Exception):
    """A request the server refuses before calling the feature store."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


def bad_request(message: str, type_: str = "InvalidRequest") -> HTTPError:
    return HTTPError(400, type_, message)


# Checked in order: the first class the exception is an instance of decides the status.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (be.NotFoundError, 404),
    (be.StoreTimeout, 504),  # a store gave up waiting (the server's deadline is 504 as well)
    (be.StoreUnavailable, 503),
    (be.RegistryError, 503),
    (be.StoreError, 500),
    # the server's own definitions or data at fault, whatever else they subclass
    (be.OnDemandOutputError, 500),
    (be.OnDemandFunctionError, 500),
    (be.DataSourceError, 500),
    (be.EntityDataError, 400),
    (be.InvalidTimestamp, 400),
    (be.SchemaMismatch, 400),
    (be.InvalidFeatureRef, 400),
    (be.FeatureNameCollisionError, 400),
    (be.DefinitionError, 400),
    (be.ConfigError, 500),
)


def classify(exc: BaseException) -> tuple[int, str, str]:
    """(status, type, message) for an exception raised while handling a request."""
    if isinstance(exc, HTTPError):
        return exc.status, exc.type, exc.message
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            if status == 500:
                log.error("request failed: %s: %s", type(exc).__name__, exc)
            return status, type(exc).__name__, str(exc)
    if isinstance(exc, be.BanquetError):
        # Remaining typed errors (on-demand function failures and the like) are about the
        # request's data or definitions; report them, but as the server's failure.
        log.error("request failed: %s: %s", type(exc).__name__, exc)
        return 500, type(exc).__name__, str(exc)
    log.exception("unexpected error while handling a request", exc_info=exc)
    return 500, "InternalError", "internal server error; see the server log for details"


def error_body(type_: str, message: str) -> bytes:
    return orjson.dumps({"error": {"type": type_, "message": message}})
