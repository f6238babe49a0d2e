"""The reviewer app: the form behind a signed link, its POST, the JSON API, status and health.

Build it with ``create_app(store)`` (``hitl serve`` does, under uvicorn) or ``create_app()``
on Lambda, which reads ``HITL_STORE_URL`` once and fails at cold start if the store is
unreachable. Routes and status codes follow DESIGN.md:

    GET  /form/{request_id}?token=...   the form (never changes state: scanners prefetch)
    POST /submit                        the form's post; token in a hidden field
    POST /submit/json                   {"request_id", "token", "value", "data_type"?, ...}
    GET  /status/{request_id}?token=... the event's state as JSON
    GET  /health                        liveness

Every answer goes through ``hitl_sdk._answers.submit``; no path, key or bucket is ever taken
from a client. The store calls block, so each route hands its work to ``blocking``: a thread
pool of the app's own that outlives event loops. (FastAPI's pool for plain ``def`` routes
belongs to the loop's root task, which under Mangum is each invocation: a new thread per
request, about a millisecond each.)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hitl_sdk._errors import (
    AlreadyAnswered,
    ConfigError,
    EventCancelled,
    EventExpired,
    InvalidValue,
)
from hitl_sdk.answers import answer_path as _answers
from hitl_sdk.answers.quorum import Tally, tally
from hitl_sdk.answers.quorum import read as read_votes
from hitl_sdk.answers.types import FormFields, codec_of
from hitl_sdk.storage.people import same_person
from hitl_sdk.storage.records import LINK_HOLDER, DecisionRecord, EventRecord, Status, VoteRecord
from hitl_sdk.storage.store import Store

from . import http_errors, pages
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


class JsonAnswer(BaseModel):
    """The body of ``POST /submit/json``: the seed's fields plus the link token."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    value: Any
    token: str | None = None
    data_type: str | None = None
    comment: str | None = None
    # An approval's reason (approve/reject gates only).
    reason: str | None = None
    # Sent by clients of the seed API. Accepted and ignored: the app derives every path
    # from the event id, so a client can never choose where an answer is written.
    response_path: Any = None


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


def create_app(store: Store | None = None, *, oidc: OidcSettings | str | None = "env") -> FastAPI:
    """The reviewer app over ``store``; without one, over ``HITL_STORE_URL`` (checked now).
    ``oidc``: the sign-in settings that turn on the inbox; by default read from the
    environment (``HITL_OIDC_ISSUER`` and the rest, see ``hitl_lambda.auth``); ``None``: off.

    Raises ``ConfigError`` if ``HITL_STORE_URL`` (or a sign-in setting) is missing or malformed
    and a ``StorageError`` subclass (``StoreNotFound``, ``StoreAccessDenied``) if it is
    unreachable.
    """
    settings = OidcSettings.from_env() if oidc == "env" else oidc
    assert settings is None or isinstance(settings, OidcSettings)
    checked: Future[None] | None = None
    if store is None:
        store = store_from_env(check=False)
        # The store check waits on the network: let it overlap building the app.
        checked = Future()
        threading.Thread(target=_run_into, args=(store.check, checked), daemon=True).start()
    app = _build(store)
    if settings is not None:
        from . import inbox

        inbox.install(app, store, settings)
    pages.preload()
    if checked is not None:
        checked.result()  # the check's error, if any, is the cold start's
    return app


_WORKERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="hitl-app")
P = ParamSpec("P")
T = TypeVar("T")


async def blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the app's worker threads, in this request's context (its
    storage deadline included), off the event loop."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_WORKERS, call)


def _run_into(fn: Callable[[], None], future: Future[None]) -> None:
    try:
        fn()
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(None)


def _build(store: Store) -> FastAPI:
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

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/form/{request_id}", response_class=HTMLResponse)
    async def show_form(
        request: Request, request_id: str, token: str = Query(""), done: str = Query("")
    ) -> Response:
        return await blocking(form_page, request, request_id, token, done)

    def form_page(request: Request, request_id: str, token: str, done: str = "") -> Response:
        state = _answers.load(store, request_id)
        reviewer = _answers.authorize(store, state, token)
        d = state.decision
        if done and d is not None and d.status == "answered":
            # Where the form's POST redirects (303): the reviewer's own answer (or vote), thanked.
            mine = next((v for v in d.votes or () if same_person(v.reviewer, reviewer)), None)
            if mine is not None or (d.votes is None and same_person(d.answered_by, reviewer)):
                return pages.render(
                    request.scope,
                    "submitted.html",
                    200,
                    event=state.event,
                    decision=d,
                    my_vote=mine,
                )
        if state.status is Status.ANSWERED and state.decision is not None:
            return pages.render(request.scope, "answered.html", 200, **_decided(state))
        if state.status is not Status.PENDING:
            return _closed(request, state)
        return _form(
            request, state, token, reviewer, action="../submit", quorum=_tally(store, state)
        )

    @app.post("/submit", response_class=HTMLResponse)
    async def submit_form(request: Request) -> Response:
        form = await request.form()
        fields = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}
        return await blocking(form_answer, request, fields)

    def form_answer(request: Request, fields: dict[str, list[str]]) -> Response:
        request_id, token = fields.get("request_id", [""])[-1], fields.get("token", [""])[-1]
        raw, comment, reason = _raw_answer(fields)
        try:
            _answers.submit(
                store, request_id, raw, via="form", token=token, comment=comment, reason=reason
            )
        except InvalidValue as exc:
            # The token was checked before the value: show the form again with the error.
            state = _answers.load(store, request_id)
            reviewer = _answers.authorize(store, state, token)
            status, _ = http_errors.status_for(exc)
            return _form(
                request,
                state,
                token,
                reviewer,
                quorum=_tally(store, state),
                action="submit",
                error=str(exc),
                value=raw,
                comment=comment or "",
                reason=reason or "",
                status=status,
            )
        except AlreadyAnswered as exc:
            state = _answers.load(store, request_id)
            status, _ = http_errors.status_for(exc)
            return pages.render(request.scope, "answered.html", status, **_decided(state))
        except (EventExpired, EventCancelled):
            return _closed(request, _answers.load(store, request_id))
        # 303 to the result page: a refresh there shows the answer, it does not post again.
        # Relative, so a stage prefix (/prod/submit -> /prod/form/...) keeps working.
        query = urlencode({"token": token, "done": "1"})
        return RedirectResponse(f"form/{quote(request_id, safe='')}?{query}", status_code=303)

    @app.post("/submit/json")
    async def submit_json(answer: JsonAnswer) -> dict[str, Any]:
        return await blocking(json_answer, answer)

    def json_answer(answer: JsonAnswer) -> dict[str, Any]:
        done = _answers.submit(
            store,
            answer.request_id,
            answer.value,
            via="api",
            token=answer.token,
            comment=answer.comment,
            data_type=answer.data_type,
            reason=answer.reason,
        )
        # A client's retry of the answer it gave (its first reply was lost) is no conflict.
        status = "already recorded" if done.repeated else "submitted"
        if done.vote is not None:
            return {"status": status, **_vote_json(done)}
        assert done.record is not None  # only a quorum vote leaves a gate undecided
        return {"status": status, **_decision_json(done.record)}

    @app.get("/status/{request_id}")
    async def status(request_id: str, token: str = Query("")) -> dict[str, Any]:
        return await blocking(status_json, request_id, token)

    def status_json(request_id: str, token: str) -> dict[str, Any]:
        state = _answers.load(store, request_id)
        _answers.authorize(store, state, token)
        event = state.event
        return {
            "request_id": event.request_id,
            "name": event.name,
            "prompt": event.prompt,
            "data_type": event.data_type,
            "answer_schema": event.answer_schema,
            "status": state.status.value,
            "created_at": event.created_at.isoformat(),
            "deadline": event.deadline.isoformat(),
            "decision": _decision_json(state.decision) if state.decision else None,
            **(_quorum_json(event, counted) if (counted := _tally(store, state)) else {}),
        }

    return app


def _raw_answer(
    fields: dict[str, list[str]],
) -> tuple[str | list[str] | FormFields, str | None, str | None]:
    """A form post's answer (as the codec takes it), comment and reason."""
    comment, reason = fields.get("comment", [None])[-1], fields.get("reason", [None])[-1]
    values = fields.get("value", [])
    raw: str | list[str] | FormFields
    if fields.get("form", [""])[-1] == "model":  # a model gate's fields, one input each
        raw = FormFields({k[2:]: v for k, v in fields.items() if k.startswith("f.")})
    else:
        # One field is the answer's text; several a multi-select's picks; none is "",
        # which the codec judges (an empty multi-select is no picks).
        raw = values[0] if len(values) == 1 else (values or "")
    return raw, comment, reason


def _tally(store: Store, state: _answers.EventState) -> Tally | None:
    """An open quorum gate's votes so far (one LIST, then GETs of votes not read yet)."""
    if state.event.quorum is None or state.decision is not None:
        return None
    return tally(state.event, read_votes(store, state.keys))


def _form(
    request: Request,
    state: _answers.EventState,
    token: str,
    reviewer: str,
    *,
    action: str,
    error: str | None = None,
    value: str | list[str] | FormFields = "",
    comment: str = "",
    reason: str = "",
    status: int = 200,
    quorum: Tally | None = None,
    csrf: str = "",
    extra: dict[str, Any] | None = None,
) -> Response:
    # action is relative so a stage prefix (/prod/form/... -> /prod/submit) keeps working:
    # "../submit" from /form/<id>, "submit" from /submit itself.
    return pages.render(
        request.scope,
        "form.html",
        status,
        event=state.event,
        codec=codec_of(state.event.data_type, state.event.answer_schema),
        picked=[value] if isinstance(value, str) else value,
        sent=value if isinstance(value, FormFields) else None,
        reason=reason,
        token=token,
        reviewer=None if reviewer == LINK_HOLDER else reviewer,
        action=action,
        error=error,
        value=value if isinstance(value, str) else "",
        comment=comment,
        quorum=quorum,
        my_vote=quorum.vote_of(reviewer) if quorum is not None else None,
        csrf=csrf,
        **(extra or {}),
    )


def _closed(request: Request, state: _answers.EventState) -> Response:
    """The page of a gate that takes no more answers: timed out, expired or cancelled."""
    cancelled = state.status is Status.CANCELLED
    error = EventCancelled("") if cancelled else EventExpired("")
    status, _ = http_errors.status_for(error)
    return pages.render(
        request.scope, "closed.html", status, event=state.event, decision=state.decision
    )


def _decided(state: _answers.EventState) -> dict[str, Any]:
    return {"event": state.event, "decision": state.decision}


def _vote_json(done: _answers.Submission) -> dict[str, Any]:
    """A quorum vote's reply: the vote, the votes so far and what is still needed, and the
    decision once the votes made one."""
    assert done.vote is not None
    decided = _decision_json(done.record) if done.record is not None else {}
    return {
        "request_id": done.vote.request_id,
        "outcome": "pending",
        **decided,
        "vote": _votes_json([done.vote])[0],
        **(_quorum_json(done.event, done.tally) if done.tally is not None else {}),
    }


def _votes_json(votes: list[VoteRecord]) -> list[dict[str, Any]]:
    return [
        {
            "reviewer": v.reviewer,
            "approved": v.approved,
            "reason": v.reason,
            "cast_at": v.cast_at.isoformat(),
            "via": v.via,
        }
        for v in votes
    ]


def _quorum_json(event: EventRecord, counted: Tally) -> dict[str, Any]:
    rule = event.quorum
    return {
        "quorum": {
            "approvals": rule.approvals if rule else 1,
            "groups": dict(rule.groups) if rule else {},
            "requested_by": event.requested_by,
            "votes": _votes_json(list(counted.votes)),
            "needed": counted.needed,
        }
    }


def _decision_json(record: DecisionRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "value": record.value,
        "answered_by": record.answered_by,
        "answered_at": record.answered_at.isoformat(),
        "via": record.via,
        "comment": record.comment,
        # answered, timed_out (default_applied: the gate's default= stands) or cancelled
        "outcome": record.status,
        "default_applied": record.default_applied,
        "votes": _votes_json(record.votes) if record.votes is not None else None,
    }
