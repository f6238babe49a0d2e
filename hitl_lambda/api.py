"""The JSON API: ``POST /submit/json`` (answer a gate with its link's token), ``GET
/status/{id}?token=`` (where it stands) and ``GET /health``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict

from hitl_sdk import answers
from hitl_sdk.answers import (
    WELL_KNOWN,
    AppKeys,
    Submission,
    decision_json,
    quorum_json,
    status_json,
    votes_json,
)
from hitl_sdk.storage import Store

from .views import blocking, tally_of


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


def install(app: FastAPI, store: Store, keys: AppKeys, *, inbox: bool) -> None:
    """Add these routes to ``app``."""

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(WELL_KNOWN)
    async def published_keys() -> dict[str, Any]:
        """The public keys whose signatures make a person's answer (``answers.seal``), and
        whether the deployment has an inbox (tasks then write its index)."""
        return {**(await blocking(keys.keyring)).document(), "inbox": inbox}

    @app.post("/submit/json")
    async def submit_json(answer: JsonAnswer) -> dict[str, Any]:
        return await blocking(json_answer, answer)

    def json_answer(answer: JsonAnswer) -> dict[str, Any]:
        done = answers.submit(
            store,
            answer.request_id,
            answer.value,
            via="api",
            token=answer.token,
            comment=answer.comment,
            data_type=answer.data_type,
            reason=answer.reason,
            seal=keys.seal(),
            inbox=inbox,
        )
        # A client's retry of the answer it gave (its first reply was lost) is no conflict.
        status = "already recorded" if done.repeated else "submitted"
        if done.vote is not None:
            return {"status": status, **_vote_json(done)}
        assert done.record is not None  # only a quorum vote leaves a gate undecided
        return {"status": status, **decision_json(done.record)}

    @app.get("/status/{request_id}")
    async def status(request_id: str, token: str = Query("")) -> dict[str, Any]:
        return await blocking(status_of_gate, request_id, token)

    def status_of_gate(request_id: str, token: str) -> dict[str, Any]:
        state = answers.load(store, request_id, trust=keys)
        answers.authorize(store, state, token)
        counted = tally_of(store, state, keys)
        return status_json(state.event, state.status.value, state.decision, counted)


def _vote_json(done: Submission) -> dict[str, Any]:
    """A quorum vote's reply: the vote, the votes so far and what is still needed, and the
    decision once the votes made one."""
    assert done.vote is not None
    decided = decision_json(done.record) if done.record is not None else {}
    return {
        "request_id": done.vote.request_id,
        "outcome": "pending",
        **decided,
        "vote": votes_json([done.vote])[0],
        **(quorum_json(done.event, done.tally) if done.tally is not None else {}),
    }
