"""What a decision was, in words and as JSON: the one place that says it.

Pages, the inbox, the CLI, notifications, log lines and the Flyte panel all describe a gate's
decision ("answered by alice at 2026-11-25 14:00:07 UTC", "cancelled by ops: budget frozen",
"timed out; the default applies: 100") and the reviewer app and the CLI show gates as JSON;
they take their words and their JSON from here, so a decision reads the same everywhere.
Pure functions, no I/O.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone
from typing import Any

from ..storage.records import DecisionRecord, EventRecord, VoteRecord
from .quorum import Tally

VIA_TEXT = {
    "form": "the web form",
    "api": "the JSON API",
    "cli": "the command line",
    "sdk": "the SDK",
    "inbox": "the inbox",
    "timeout": "the deadline",
}


def when(moment: datetime) -> str:
    """A moment to the second, in UTC: ``2026-11-25 14:03:07 UTC``."""
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def via_text(via: str) -> str:
    """How an answer arrived, as a reviewer reads it: ``the web form``."""
    return VIA_TEXT.get(via, via)


def value_json(value: Any) -> str:
    """A stored answer as compact JSON text (what the CLI and messages show)."""
    return json.dumps(value, ensure_ascii=False)


def answer_text(value: Any, data_type: str) -> str:
    """An answer as a reviewer reads it on a page: ``Approved``, ``Rejected: too risky``,
    ``eu-west-1, us-east-1``, ``title: x; count: 2``."""
    if data_type == "bool" and isinstance(value, bool):
        return "Approved" if value else "Rejected"
    if data_type == "approval" and isinstance(value, dict):
        verdict = "Approved" if value.get("approved") else "Rejected"
        return f"{verdict}: {value['reason']}" if value.get("reason") else verdict
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {answer_text(v, '')}" for k, v in value.items())
    return "" if value is None else str(value)


def result_text(decision: DecisionRecord) -> str:
    """What the task got, in short: ``approved`` / ``rejected`` for an approval (with the
    reason), else the value as JSON; ``-`` when it got none (cancelled, timed out)."""
    if decision.status == "cancelled" or (
        decision.status == "timed_out" and not decision.default_applied
    ):
        return "-"
    value = decision.value
    if isinstance(value, dict) and set(value) == {"approved", "reason"}:
        said = "approved" if value["approved"] else "rejected"
        text = f"{said} ({value['reason']})" if value.get("reason") else said
    else:
        text = value_json(value)
    return f"{text} (default, timed out)" if decision.status == "timed_out" else text


def verdict(decision: DecisionRecord) -> str:
    """The shortest word for an outcome (the inbox index keeps it): ``approved``,
    ``rejected``, or the value's first 40 characters."""
    value = decision.value
    if isinstance(value, dict) and "approved" in value:
        return "approved" if value["approved"] else "rejected"
    text = value if isinstance(value, str) else value_json(value)
    return text[:40]


def outcome_parts(decision: DecisionRecord) -> tuple[str, str]:
    """How a gate ended, as a label and the rest: ``("Answered", "by alice at ...")``,
    ``("Cancelled", "by ops at ...: why")``, ``("Timed out", "at ...; the default applies:
    100")``, ``("Timed out", "at ... with no answer")``."""
    at = when(decision.answered_at)
    if decision.status == "answered":
        return "Answered", f"by {decision.answered_by} at {at}"
    if decision.status == "cancelled":
        why = f": {decision.comment}" if decision.comment else ""
        return "Cancelled", f"by {decision.answered_by} at {at}{why}"
    if decision.default_applied:
        return "Timed out", f"at {at}; the default applies: {value_json(decision.value)}"
    return "Timed out", f"at {at} with no answer"


def outcome_text(decision: DecisionRecord) -> str:
    """How a gate ended, in a phrase: ``answered by alice at ...``, ``cancelled by ops at
    ...: why``, ``timed out at ...; the default applies: 100``."""
    label, rest = outcome_parts(decision)
    return f"{label.lower()} {rest}"


def closed_message(decision: DecisionRecord) -> str:
    """The body of the message that tells a gate's channels how it closed."""
    if decision.status == "answered":
        return f"Answered by {decision.answered_by}: {value_json(decision.value)}"
    if decision.status == "cancelled":
        why = f": {decision.comment}" if decision.comment else ""
        return f"Cancelled by {decision.answered_by}{why}"
    if decision.default_applied:
        return f"Timed out with no answer; the default applies: {value_json(decision.value)}"
    return "Timed out with no answer."


def index_text(status: str, by: str, verdict: str, default_applied: bool) -> str:
    """How a gate ended, from what the inbox index keeps of its decision (no record read)."""
    if status == "cancelled":
        return f"cancelled by {by}"
    if status == "timed_out":
        return "timed out" + (", default applied" if default_applied else "")
    return f"answered by {by}" + (f" ({verdict})" if verdict else "")


def vote_text(vote: VoteRecord) -> str:
    """``alice approved at 2026-11-25 14:03:07 UTC``."""
    said = "approved" if vote.approved else "rejected"
    return f"{vote.reviewer} {said} at {when(vote.cast_at)}"


def decided_text(decision: DecisionRecord | None) -> str:
    """A quorum gate's decision in a phrase (``approved by alice, bob at ...``)."""
    if decision is None:
        return "closed"
    if decision.status != "answered":
        return outcome_text(decision)
    value = decision.value
    said = "approved" if isinstance(value, dict) and value.get("approved") else "rejected"
    return f"{said} by {decision.answered_by} at {when(decision.answered_at)}"


# -- JSON views ---------------------------------------------------------------------------------


def votes_json(votes: list[VoteRecord]) -> list[dict[str, Any]]:
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


def decision_json(record: DecisionRecord) -> dict[str, Any]:
    """A decision as the reviewer app's JSON answers show it."""
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
        "votes": votes_json(record.votes) if record.votes is not None else None,
    }


def quorum_json(event: EventRecord, counted: Tally) -> dict[str, Any]:
    rule = event.quorum
    return {
        "quorum": {
            "approvals": rule.approvals if rule else 1,
            "groups": dict(rule.groups) if rule else {},
            "requested_by": event.requested_by,
            "votes": votes_json(list(counted.votes)),
            "needed": counted.needed,
        }
    }


def status_json(
    event: EventRecord, status: str, decision: DecisionRecord | None, counted: Tally | None
) -> dict[str, Any]:
    """A gate as ``GET /status/{id}`` shows it."""
    return {
        "request_id": event.request_id,
        "name": event.name,
        "prompt": event.prompt,
        "data_type": event.data_type,
        "answer_schema": event.answer_schema,
        "status": status,
        "created_at": event.created_at.isoformat(),
        "deadline": event.deadline.isoformat(),
        "decision": decision_json(decision) if decision else None,
        **(quorum_json(event, counted) if counted else {}),
    }


def gate_json(event: EventRecord, status: str, decision: DecisionRecord | None) -> dict[str, Any]:
    """A gate as ``hitl list --json`` and ``hitl show --json`` print it (the whole records)."""
    return {
        "request_id": event.request_id,
        "name": event.name,
        "run_id": event.run_id,
        "status": status,
        "data_type": event.data_type,
        "prompt": event.prompt,
        "details": event.details,
        "created_at": event.created_at.isoformat(),
        "deadline": event.deadline.isoformat(),
        "links_issued": len(event.token_digests),
        "decision": decision.model_dump(mode="json") if decision is not None else None,
    }


def answer_json(request_id: str, token: str, value: object, **extra: Any) -> str:
    """The JSON API body that answers a gate."""
    return json.dumps({"request_id": request_id, "token": token, "value": value, **extra})


def curl_line(
    api_url: str,
    request_id: str,
    token: str,
    value: object,
    data_type: str | None = None,
    *,
    silent: bool = False,
) -> str:
    """A ready ``curl`` line answering a gate through the JSON API (``silent``: ``-sS``)."""
    extra = {"data_type": data_type} if data_type else {}
    body = answer_json(request_id, token, value, **extra)
    flags = "-sS -X POST" if silent else "-X POST"
    return (
        f"curl {flags} {shlex.quote(api_url)} -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)}"
    )
