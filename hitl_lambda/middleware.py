"""ASGI middleware: security headers on every response, the app's own 500 for anything
unexpected, a storage deadline per request, the request body limit and API Gateway stages.

All are plain ASGI (no BaseHTTPMiddleware), so they see every response, including errors
raised by routing, and add no task or thread of their own.
"""

from __future__ import annotations

import logging
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hitl_sdk.storage import deadline, redact_tokens

from .http_errors import SERVER_MESSAGES, error_response

log = logging.getLogger("hitl.app")

MAX_BODY_BYTES = 16 * 1024
# Storage time a request may use: under uvicorn this; on Lambda also the function's remaining
# time less a margin for rendering and the trip back through API Gateway.
STORAGE_BUDGET_SECONDS = 10.0
LAMBDA_MARGIN_SECONDS = 2.0


def content_security_policy(nonce: str) -> str:
    # Nothing from third parties, no scripts at all; the one inline <style> carries the nonce.
    # frame-ancestors 'none': an approve button inside someone else's frame is clickjackable.
    return (
        "default-src 'none'; "
        f"style-src 'nonce-{nonce}'; "
        "img-src 'self'; "
        "form-action 'self'; "
        "base-uri 'none'; "
        "frame-ancestors 'none'"
    )


class SecurityHeaders:
    """Adds no-store, no-referrer, nosniff and a per-response CSP nonce to every response.

    Pages show a link token in their URL and form, so nothing may cache them, send them on
    as a Referer, or frame them. Templates read the nonce from ``request.state.csp_nonce``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        extra = [
            (b"cache-control", b"no-store"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", content_security_policy(nonce).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {extra_name for extra_name, _ in extra}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CatchAll:
    """Anything unexpected becomes the app's own 500 (JSON or page), logged with the path but
    never the query (tokens). Inside ``SecurityHeaders``, so that 500 carries every header;
    Starlette's own last-resort handler sits outside all middleware and would not."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("hitl: unexpected error on %s", redact_tokens(scope["path"]), exc_info=exc)
            if started:
                raise
            response = error_response(scope, 500, "unexpected", SERVER_MESSAGES["unexpected"])
            await response(scope, receive, send)


class StorageDeadline:
    """Gives every request a storage deadline (``hitl_sdk.storage.deadline``): a store that
    throttles or hangs makes a 503 with Retry-After that arrives before Lambda stops the
    function, never API Gateway's bare 503 after it."""

    def __init__(self, app: ASGIApp, budget: float = STORAGE_BUDGET_SECONDS) -> None:
        self.app = app
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seconds = self.budget
        remaining = getattr(scope.get("aws.context"), "get_remaining_time_in_millis", None)
        if callable(remaining):
            seconds = min(seconds, remaining() / 1000 - LAMBDA_MARGIN_SECONDS)
        with deadline(max(seconds, 0.5)):
            await self.app(scope, receive, send)


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413, by Content-Length and by count.

    The declared length is checked first (nothing is read); the body is then read up to the
    limit and replayed to the app, so a missing or lying Content-Length cannot get past it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = error_response(
            scope,
            413,
            "too_large",
            f"the request body is larger than {self.max_bytes} bytes; send a smaller one",
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                bad = error_response(scope, 400, "bad_request", "malformed Content-Length")
                await bad(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class StagePrefix:
    """Routes requests that arrive under a named API Gateway stage (``/prod/form/...``).

    HTTP API puts a named stage (not ``$default``) in front of ``rawPath``; declaring it as
    ``root_path`` lets the routes match under any stage name. The pages link relatively, so
    they stay under the prefix too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            context = (scope.get("aws.event") or {}).get("requestContext") or {}
            stage = context.get("stage")
            path: str = scope["path"]
            if isinstance(stage, str) and stage and stage != "$default":
                prefix = f"/{stage}"
                if path == prefix or path.startswith(prefix + "/"):
                    scope = {**scope, "root_path": prefix}
        await self.app(scope, receive, send)
