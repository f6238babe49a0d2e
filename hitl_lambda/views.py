"""What the routers share: running store calls off the event loop, reading a form post, and
rendering a gate's pages (its form, its decision, its closed state).

Every router (forms, JSON API, inbox) renders a gate through these, so a gate looks the same
whichever way a reviewer came in.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from hitl_sdk import EventCancelled, EventExpired
from hitl_sdk.answers import EventState, FormFields, KeySource, Tally, answer_codec, counted_votes
from hitl_sdk.storage import LINK_HOLDER, Status, Store

from . import http_errors, pages

_WORKERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="hitl-app")
P = ParamSpec("P")
T = TypeVar("T")


async def blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the app's worker threads, in this request's context (its
    storage deadline included), off the event loop.

    A pool of the app's own: FastAPI's pool for plain ``def`` routes belongs to the loop's root
    task, which under Mangum is each invocation (a new thread per request, about 1 ms)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_WORKERS, call)


async def form_fields(request: Request) -> dict[str, list[str]]:
    """A form post's fields, each name with its values (text only)."""
    form = await request.form()
    return {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}


def raw_answer(
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


def tally_of(store: Store, state: EventState, keys: KeySource) -> Tally | None:
    """An open quorum gate's votes so far, those that count (one LIST, then GETs of votes not
    read yet)."""
    if state.event.quorum is None or state.decision is not None:
        return None
    return counted_votes(store, state.event, keys)


def form_page(
    request: Request,
    state: EventState,
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
    """A gate's form (again with ``error`` and what was sent, when an answer was refused).
    ``action`` is relative so a stage prefix (/prod/form/... -> /prod/submit) keeps working."""
    return pages.render(
        request.scope,
        "form.html",
        status,
        event=state.event,
        codec=answer_codec(state.event.data_type, state.event.answer_schema),
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


def closed_page(request: Request, state: EventState) -> Response:
    """The page of a gate that takes no more answers: timed out, expired or cancelled."""
    cancelled = state.status is Status.CANCELLED
    error = EventCancelled("") if cancelled else EventExpired("")
    status, _ = http_errors.status_for(error)
    return pages.render(
        request.scope, "closed.html", status, event=state.event, decision=state.decision
    )


def answered_page(request: Request, state: EventState, status: int = 200, **extra: Any) -> Response:
    """The page of a gate already answered: who, when, what (and the votes)."""
    return pages.render(
        request.scope,
        "answered.html",
        status,
        event=state.event,
        decision=state.decision,
        **extra,
    )


# -- signed-in pages (the inbox and sign-in routers) --------------------------------------------


def root_path(request: Request) -> str:
    """The app's root as a path (a stage prefix included), ending in "/"."""
    return f"{request.scope.get('root_path', '')}/"


def to_login(request: Request) -> Response:
    """Send a browser that is not signed in to sign in, and back here afterwards."""
    from starlette.responses import RedirectResponse

    target = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if request.url.query:
        target += f"?{request.url.query}"
    query = urlencode({"next": target})
    return RedirectResponse(f"{root_path(request)}login?{query}", status_code=303)
