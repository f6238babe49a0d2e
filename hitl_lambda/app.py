"""The reviewer app: routers by concern over one store, composed here.

Build it with ``create_app(store)`` (``hitl serve`` does, under uvicorn) or ``create_app()``
on Lambda, which reads ``HITL_STORE_URL`` once and fails at cold start if the store is
unreachable. Routes and status codes follow DESIGN.md:

    GET  /form/{request_id}?token=...   the form (never changes state: scanners prefetch)
    POST /submit                        the form's post; token in a hidden field
    POST /submit/json                   {"request_id", "token", "value", "data_type"?, ...}
    GET  /status/{request_id}?token=... the event's state as JSON
    GET  /health                        liveness
    /login, /auth/callback, /logout, /inbox, /inbox.json, /inbox/gate/{id}   with sign-in

The routers by concern (``forms``, ``api``, ``signin``, ``inbox``: each ``install``s its
routes on the app) share ``views`` and never import one another or this module. Every answer
goes through ``hitl_sdk.answers.submit``; no path, key or bucket is ever taken from a client.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from fastapi import FastAPI

from hitl_sdk import ConfigError
from hitl_sdk.answers import AppKeys, app_in_process, inbox_setting
from hitl_sdk.storage import Store

from . import api, forms, http_errors, pages
from .auth import OidcSettings
from .middleware import (
    MAX_BODY_BYTES,
    BodyLimit,
    CatchAll,
    SecurityHeaders,
    StagePrefix,
    StorageDeadline,
)

STORE_URL_VARIABLE = "HITL_STORE_URL"
LAMBDA_VARIABLE = "AWS_LAMBDA_FUNCTION_NAME"


def store_from_env(*, check: bool = True) -> Store:
    """The store named by ``HITL_STORE_URL``, checked reachable (unless ``check=False``);
    ``ConfigError`` or ``StorageError`` with one clear message otherwise."""
    url = os.environ.get(STORE_URL_VARIABLE, "").strip()
    if not url:
        raise ConfigError(
            f"{STORE_URL_VARIABLE} is not set: the reviewer app needs to know where events "
            "live. Set it to the store the tasks use, e.g. s3://my-hitl-bucket/hitl"
        )
    store = Store(url, for_requests=True)
    if check:
        store.check()
    return store


def _slack_from_env() -> Any:
    if not any(k in os.environ for k in ("HITL_SLACK_SIGNING_SECRET", "HITL_SLACK_SECRETS_ARN")):
        return None  # the cold start imports nothing of Slack's
    from .slack import SlackApp

    return SlackApp.from_env()


def create_app(
    store: Store | str | None = None,
    *,
    oidc: OidcSettings | str | None = "env",
    keys: AppKeys | None = None,
    slack: Any = "env",
) -> FastAPI:
    """The reviewer app over ``store`` (a ``Store``, or a store URL); without one, over
    ``HITL_STORE_URL`` (checked now). ``oidc``: the sign-in settings that turn on the inbox;
    by default read from the environment (``HITL_OIDC_ISSUER`` and the rest, see
    ``hitl_lambda.auth``); ``None``: off. ``keys``: what the app signs people's answers with;
    by default from the environment (``HITL_SIGNING_KEY``, ``HITL_SIGNING_SECRET_ARN``), else
    this machine's key, except on Lambda, where a missing key is a ``ConfigError`` at once.
    ``slack``: the Slack app's secrets (``hitl_lambda.slack.SlackApp``) that turn on
    ``POST /slack/interactivity``; by default from the environment; ``None``: off.

    Raises ``ConfigError`` if ``HITL_STORE_URL`` (or a sign-in setting) is missing or malformed
    and a ``StorageError`` subclass (``StoreNotFound``, ``StoreAccessDenied``) if it is
    unreachable.
    """
    settings = OidcSettings.from_env() if oidc == "env" else oidc
    assert settings is None or isinstance(settings, OidcSettings)
    if keys is None:  # loaded on first use: the cold start reads no secret
        keys = AppKeys(local=store is not None or LAMBDA_VARIABLE not in os.environ)
    # The inbox index: kept where an inbox is deployed (HITL_INBOX, else sign-in configured).
    chosen = inbox_setting(os.environ.get("HITL_INBOX"))  # ConfigError if malformed
    inbox = settings is not None if chosen is None else chosen
    app_in_process(inbox=inbox)
    checked: Future[None] | None = None
    if isinstance(store, str):
        store = Store(store, for_requests=True)
    if store is None:
        store = store_from_env(check=False)
        # The store check waits on the network: let it overlap building the app.
        checked = Future()
        threading.Thread(target=_run_into, args=(store.check, checked), daemon=True).start()
    app = FastAPI(
        title="hitl reviewer app",
        docs_url=None,  # the docs pages load scripts from a CDN; this app loads nothing
        redoc_url=None,
        openapi_url=None,
        # "/form/x/" is no route: a 404, not a redirect to a URL the client never asked for.
        redirect_slashes=False,
    )
    app.state.store = store
    http_errors.install(app)
    # The last added is the outermost: headers wrap everything, including the catch-all 500.
    app.add_middleware(StagePrefix)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(StorageDeadline)
    app.add_middleware(CatchAll)
    app.add_middleware(SecurityHeaders)
    app.state.keys = keys
    app.state.inbox = inbox
    api.install(app, store, keys, inbox=inbox)
    forms.install(app, store, keys, inbox=inbox)
    if settings is not None:
        from . import inbox as inbox_routes  # only where sign-in is deployed
        from . import signin

        signin.install(app, settings)
        inbox_routes.install(app, store, keys, settings, index=inbox)
    if slack == "env":
        slack = _slack_from_env()
    if slack is not None:
        from . import slack as slack_routes  # only where Slack is configured

        slack_routes.install(app, store, keys, slack, inbox=inbox)
    pages.preload()
    if checked is not None:
        checked.result()  # the check's error, if any, is the cold start's
    return app


def _run_into(fn: Callable[[], None], future: Future[None]) -> None:
    try:
        fn()
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(None)
