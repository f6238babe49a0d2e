"""The signed link's pages: the form (``GET /form/{id}?token=``) and its post (``POST /submit``).

GET never changes state (mail scanners prefetch links); the post answers through the one
answer path and redirects (303) to the result page, so a refresh never posts again.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import FastAPI, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hitl_sdk import AlreadyAnswered, EventCancelled, EventExpired, InvalidValue, answers
from hitl_sdk.answers import AppKeys
from hitl_sdk.storage import Status, Store, same_person

from . import http_errors, pages
from .views import (
    answered_page,
    blocking,
    closed_page,
    form_fields,
    form_page,
    raw_answer,
    tally_of,
)


def install(app: FastAPI, store: Store, keys: AppKeys, *, inbox: bool) -> None:
    """Add these routes to ``app``."""

    @app.get("/form/{request_id}", response_class=HTMLResponse)
    async def show_form(
        request: Request, request_id: str, token: str = Query(""), done: str = Query("")
    ) -> Response:
        return await blocking(form, request, request_id, token, done)

    def form(request: Request, request_id: str, token: str, done: str = "") -> Response:
        state = answers.load(store, request_id, trust=keys)
        reviewer = answers.authorize(store, state, token)
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
            return answered_page(request, state)
        if state.status is not Status.PENDING:
            return closed_page(request, state)
        return form_page(
            request, state, token, reviewer, action="../submit", quorum=tally_of(store, state, keys)
        )

    @app.post("/submit", response_class=HTMLResponse)
    async def submit_form(request: Request) -> Response:
        return await blocking(answer, request, await form_fields(request))

    def answer(request: Request, fields: dict[str, list[str]]) -> Response:
        request_id, token = fields.get("request_id", [""])[-1], fields.get("token", [""])[-1]
        raw, comment, reason = raw_answer(fields)
        try:
            answers.submit(
                store,
                request_id,
                raw,
                via="form",
                token=token,
                comment=comment,
                reason=reason,
                seal=keys.seal(),
                inbox=inbox,
            )
        except InvalidValue as exc:
            # The token was checked before the value: show the form again with the error.
            state = answers.load(store, request_id, trust=keys)
            reviewer = answers.authorize(store, state, token)
            status, _ = http_errors.status_for(exc)
            return form_page(
                request,
                state,
                token,
                reviewer,
                quorum=tally_of(store, state, keys),
                action="submit",
                error=str(exc),
                value=raw,
                comment=comment or "",
                reason=reason or "",
                status=status,
            )
        except AlreadyAnswered as exc:
            status, _ = http_errors.status_for(exc)
            return answered_page(request, answers.load(store, request_id, trust=keys), status)
        except (EventExpired, EventCancelled):
            return closed_page(request, answers.load(store, request_id, trust=keys))
        # 303 to the result page: a refresh there shows the answer, it does not post again.
        # Relative, so a stage prefix (/prod/submit -> /prod/form/...) keeps working.
        query = urlencode({"token": token, "done": "1"})
        return RedirectResponse(f"form/{quote(request_id, safe='')}?{query}", status_code=303)
