"""The reviewer inbox behind single sign-on: every open gate a signed-in person may answer.

Routes (present only when ``HITL_OIDC_ISSUER`` is set; ``signin`` signs people in):

    GET  /inbox                 open gates (most urgent first) and a "recently closed" tab
    GET  /inbox.json            the same as JSON
    GET  /inbox/gate/{id}       a gate's form, answered as the signed-in person (no token)
    POST /inbox/gate/{id}       its answer: the session's CSRF token required, recorded with
                                ``via: inbox``; then back to the inbox and the next gate

The listing reads the inbox index (``hitl_sdk.answers.listing``): one LIST per audience (the person,
each of their groups, and gates naming no one if the deployment allows), not every record.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Query, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from hitl_sdk import (
    AlreadyAnswered,
    EventCancelled,
    EventExpired,
    InvalidValue,
    NotAllowed,
    answers,
)
from hitl_sdk.answers import (
    AppKeys,
    EventState,
    IndexEntry,
    index_text,
    listing,
    person_audiences,
    reviewer_for,
)
from hitl_sdk.storage import EventKeys, Status, Store

from . import http_errors, pages
from .auth import SESSION_COOKIE, OidcSettings, Person, csrf_ok, csrf_token, person
from .views import (
    answered_page,
    blocking,
    closed_page,
    form_fields,
    form_page,
    raw_answer,
    root_path,
    tally_of,
    to_login,
)

KINDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "yes / no",
    "choice": "one choice",
    "choices": "several choices",
    "approval": "approve / reject",
    "model": "a form",
}
URGENT_SECONDS = 3600
NOT_SIGNED_IN = {"error": "not_signed_in", "detail": "sign in first: GET /login", "status": 401}


def install(
    app: FastAPI, store: Store, keys: AppKeys, settings: OidcSettings, *, index: bool
) -> None:
    """Add these routes to ``app`` (``index``: whether answers here mark the inbox index)."""
    anyone = settings.unnamed

    def who(request: Request) -> Person | None:
        return person(settings, request.cookies.get(SESSION_COOKIE))

    def may_answer_unnamed(p: Person) -> bool:
        if anyone == "everyone":
            return True
        return anyone.startswith("group:") and anyone[6:] in p.groups

    def context(request: Request, p: Person) -> dict[str, Any]:
        return {"signed_in": p.email, "inbox_root": root_path(request)}

    def entries_for(p: Person, run: str, name: str) -> tuple[list[Any], list[Any]]:
        audiences = person_audiences(p.email, p.groups, may_answer_unnamed(p))
        now = datetime.now(timezone.utc)
        found = listing(store, audiences, now)
        if run:
            found = [e for e in found if run.lower() in e.run_id.lower()]
        if name:
            found = [e for e in found if name.lower() in (e.name + " " + e.title).lower()]
        open_ = [e for e in found if e.is_open(now)]
        closed = sorted(
            (e for e in found if not e.is_open(now)),
            key=lambda e: e.closed["at"] if e.closed else e.deadline,
            reverse=True,
        )
        return open_, closed

    def votes_of(entries: list[Any]) -> dict[str, int]:
        return {
            e.request_id: len(store.vote_names(EventKeys.parse(e.request_id)))
            for e in entries
            if e.quorum
        }

    @app.get("/inbox")
    async def inbox(
        request: Request,
        tab: str = Query("open"),
        run: str = Query(""),
        name: str = Query(""),
        answered: str = Query(""),
        format: str = Query(""),
    ) -> Response:
        accept = request.headers.get("accept", "")
        if format == "json" or ("application/json" in accept and "text/html" not in accept):
            return await inbox_json(request, run, name)  # the JSON twin, by content negotiation
        p = who(request)
        if p is None:
            return to_login(request)
        return await blocking(inbox_page, request, p, tab, run, name, answered)

    def inbox_page(
        request: Request, p: Person, tab: str, run: str, name: str, answered: str
    ) -> Response:
        open_, closed = entries_for(p, run[:100], name[:100])
        tab = "closed" if tab == "closed" else "open"
        shown = open_ if tab == "open" else closed
        done = next((e.title for e in closed if e.request_id == answered), "") if answered else ""
        now = datetime.now(timezone.utc)

        def query(**override: str) -> str:
            current = {"tab": tab, "run": run, "name": name}
            current.update(override)
            return urlencode({k: v for k, v in current.items() if v})

        return pages.render(
            request.scope,
            "inbox.html",
            200,
            **context(request, p),
            entries=shown,
            tab=tab,
            run=run,
            name=name,
            open_count=len(open_),
            closed_count=len(closed),
            answered=done or (answered and "your answer"),
            next_gate=open_[0] if open_ else None,
            votes=votes_of(shown) if tab == "open" else {},
            kinds=KINDS,
            query=query,
            urgent=lambda d: (d - now).total_seconds() < URGENT_SECONDS,
            closed_text=_closed_text,
        )

    @app.get("/inbox.json")
    async def inbox_json(request: Request, run: str = Query(""), name: str = Query("")) -> Response:
        p = who(request)
        if p is None:
            return JSONResponse(NOT_SIGNED_IN, status_code=401)

        def build() -> dict[str, Any]:
            open_, closed = entries_for(p, run[:100], name[:100])
            votes = votes_of(open_)
            return {
                "email": p.email,
                "groups": list(p.groups),
                "open": [_entry_json(e, votes.get(e.request_id)) for e in open_],
                "closed": [_entry_json(e, None) for e in closed],
            }

        return JSONResponse(await blocking(build))

    @app.get("/inbox/gate/{request_id}")
    async def gate(request: Request, request_id: str) -> Response:
        p = who(request)
        if p is None:
            return to_login(request)
        return await blocking(gate_page, request, p, request_id)

    def reviewer(state: EventState, p: Person) -> str:
        name = reviewer_for(state.event, p.email, p.groups, may_answer_unnamed(p))
        if name is None:
            raise NotAllowed(
                f"this gate does not name {p.email} (or a group of theirs) as a reviewer; "
                "use the link you were sent, if any"
            )
        return name

    def gate_page(request: Request, p: Person, request_id: str, **shown: Any) -> Response:
        state = answers.load(store, request_id, trust=keys)
        as_whom = reviewer(state, p)
        if state.status is Status.ANSWERED:
            return answered_page(request, state, **context(request, p))
        if state.status is not Status.PENDING:
            return closed_page(request, state)
        return form_page(
            request,
            state,
            "",
            as_whom,
            action=f"{root_path(request)}inbox/gate/{quote(state.keys.request_id, safe='')}",
            quorum=tally_of(store, state, keys),
            csrf=csrf_token(settings, p),
            extra=context(request, p),
            **shown,
        )

    @app.post("/inbox/gate/{request_id}")
    async def gate_answer(request: Request, request_id: str) -> Response:
        p = who(request)
        if p is None:
            return JSONResponse(NOT_SIGNED_IN, status_code=401)
        fields = await form_fields(request)
        if not csrf_ok(settings, p, (fields.get("csrf") or [""])[-1]):
            raise NotAllowed(
                "this form did not come from your inbox (its CSRF token is missing or stale); "
                "open the gate from the inbox and answer again"
            )
        return await blocking(gate_post, request, p, request_id, fields)

    def gate_post(
        request: Request, p: Person, request_id: str, fields: dict[str, list[str]]
    ) -> Response:
        state = answers.load(store, request_id, trust=keys)
        as_whom = reviewer(state, p)
        raw, comment, reason = raw_answer(fields)
        try:
            answers.submit(
                store,
                request_id,
                raw,
                via="inbox",
                operator=as_whom,
                comment=comment,
                reason=reason,
                seal=keys.seal(),
                inbox=index,
            )
        except InvalidValue as exc:
            status, _ = http_errors.status_for(exc)
            return gate_page(
                request,
                p,
                request_id,
                error=str(exc),
                value=raw,
                comment=comment or "",
                reason=reason or "",
                status=status,
            )
        except (AlreadyAnswered, EventExpired, EventCancelled):
            return gate_page(request, p, request_id)
        query = urlencode({"answered": state.keys.request_id})
        return RedirectResponse(f"{root_path(request)}inbox?{query}", status_code=303)


def _closed_text(e: IndexEntry) -> str:
    c = e.closed
    if c is None:
        return "expired: nobody answered by the deadline"
    return index_text(c["status"], c["by"], c["verdict"], c["default_applied"])


def _entry_json(e: IndexEntry, votes: int | None) -> dict[str, Any]:
    return {
        "request_id": e.request_id,
        "title": e.title,
        "run_id": e.run_id,
        "name": e.name,
        "data_type": e.data_type,
        "created_at": e.created.isoformat(),
        "deadline": e.deadline.isoformat(),
        "quorum": e.quorum or None,
        "votes": votes,
        "closed": (
            {**e.closed, "at": e.closed["at"].isoformat()} if e.closed is not None else None
        ),
        "form": f"inbox/gate/{e.request_id}",
    }
