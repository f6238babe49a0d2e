"""The one map from hitl's error tree to HTTP status codes, and the handlers that apply it.

API routes (``/submit/json``, ``/status/...``, ``/health``) answer errors as JSON
``{"error": kind, "detail": message, "status": code}``; every other route renders the error
page. Messages come from the SDK's errors, which say what was wrong and what to do.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from hitl_sdk import HitlError
from hitl_sdk.answers import STATUS_FOR as ANSWER_STATUSES

from . import pages
from .auth import SignInError

log = logging.getLogger("hitl.app")

# The answer path's table (``hitl_sdk.answers.STATUS_FOR``), with sign-in's own error first.
STATUS_FOR: tuple[tuple[type[HitlError], int, str], ...] = (
    (SignInError, 400, "sign_in_failed"),
    *ANSWER_STATUSES,
)
# What a 5xx tells the client; the details (bucket names, backend errors) go to the log.
SERVER_MESSAGES = {
    "storage_unavailable": "the reviewer app cannot reach its storage right now; try again shortly",
    "record_damaged": "a stored record of this request is damaged and cannot be read; the "
    "app's operator has to look at it (see logs)",
    "unexpected": "the reviewer app hit an unexpected error; try again, and tell its operator "
    "if it happens again",
    "error": "the reviewer app is misconfigured; its operator has to fix it (see logs)",
}
_HTTP_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def status_for(exc: HitlError) -> tuple[int, str]:
    """The HTTP status and short error kind for one of hitl's errors."""
    for cls, status, kind in STATUS_FOR:
        if isinstance(exc, cls):
            return status, kind
    return 500, "error"  # unreachable: HitlError is the last row


def is_api_path(path: str) -> bool:
    return path.endswith(("/submit/json", "/health", "/inbox.json")) or "/status/" in path


def error_response(scope: Scope, status: int, kind: str, message: str) -> Response:
    """The error as JSON for API routes, as the error page for the reviewer's pages."""
    if is_api_path(scope.get("path", "")):
        return JSONResponse({"error": kind, "detail": message, "status": status}, status)
    return pages.render(scope, "error.html", status, kind=kind, message=message)


async def _hitl_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HitlError)
    status, kind = status_for(exc)
    if status >= 500:
        # The details (bucket names, backend errors) go to the log, not to the client.
        log.error("hitl: %s on %s: %s", kind, request.url.path, exc, exc_info=exc)
        message = SERVER_MESSAGES.get(kind, SERVER_MESSAGES["error"])
        response = error_response(request.scope, status, kind, message)
        if status == 503:
            response.headers["retry-after"] = "5"
        return response
    return error_response(request.scope, status, kind, str(exc))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(request.scope, 400, "bad_request", describe_validation(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    kind = _HTTP_KINDS.get(exc.status_code, "error")
    message = {
        404: "there is nothing here: check that you opened the whole link you were sent",
        405: f"{request.method} is not allowed here",
    }.get(exc.status_code, str(exc.detail))
    response = error_response(request.scope, exc.status_code, kind, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def describe_validation(exc: RequestValidationError) -> str:
    """One readable sentence from FastAPI's validation errors (malformed JSON, missing field)."""
    parts: list[str] = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        field = ".".join(loc)
        if error.get("type") == "json_invalid":
            parts.append("the body is not valid JSON: send a JSON object")
        elif error.get("type") == "missing":
            parts.append(f"{field} is required" if field else "a JSON object body is required")
        elif not field:
            parts.append(f"the body must be a JSON object ({error.get('msg', 'invalid')})")
        else:
            parts.append(f"{field}: {error.get('msg', 'invalid')}")
    return "; ".join(dict.fromkeys(parts)) or "the request is malformed"


def install(app: FastAPI) -> None:
    """Register the handlers: hitl errors, request validation and routing errors."""
    app.add_exception_handler(HitlError, _hitl_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
