"""The records hitl keeps in storage: one definition each, shared by the SDK and the app.

Records are immutable JSON documents. An event record is written once when a gate opens;
a decision record is written once (exclusive create) when the event reaches a terminal
state, whether a person answered or the deadline passed. A grant records an extra link
minted for an existing event (a restarted task needs a fresh link; the first token was
never stored). A vote is one reviewer's approve/reject on a quorum gate, written once; the
decision of a quorum gate lists the votes it was made from.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
LINK_HOLDER = "link holder"

Via = Literal["form", "api", "cli", "sdk", "timeout", "inbox", "slack"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Status(str, Enum):
    """Where an event stands. ``expired`` is pending past its deadline, not yet recorded."""

    PENDING = "pending"
    ANSWERED = "answered"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def new_write_id() -> str:
    return secrets.token_hex(8)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    # Who wrote this copy: a fresh id per write attempt. When an exclusive create is refused
    # because the object exists, reading it back and finding our own write_id means the first
    # attempt landed and only its reply was lost: that is success, not a conflict.
    write_id: str = Field(default_factory=new_write_id)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=1).encode()


class QuorumRule(BaseModel):
    """How many distinct approvals a quorum gate needs: ``approvals`` in all, and of them at
    least ``groups[g]`` from reviewers of group ``g`` (a person counts towards one group's
    count only). Any rejection decides the gate as rejected."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    approvals: int = 1
    groups: dict[str, int] = Field(default_factory=dict)


class EventRecord(_Record):
    """A gate: what is asked, of which type, until when, and which link tokens open it."""

    request_id: str
    run_id: str
    name: str
    scope: str = "run"
    data_type: str
    prompt: str
    created_at: datetime
    deadline: datetime
    timeout_seconds: float
    poll_interval_seconds: float
    # SHA-256 hex digest of each link token -> reviewer name ("" for an anonymous link).
    token_digests: dict[str, str] = Field(default_factory=dict)
    # Evidence: text, a mapping (two-column table) or a list of mappings (a table).
    details: str | dict[str, Any] | list[dict[str, Any]] | None = None
    # "markdown": the prompt and text details are rendered as CommonMark (raw HTML disabled).
    prompt_format: Literal["text", "markdown"] = "text"
    # Reminders every remind_every seconds while open; escalation to the backups after
    # escalate_after seconds (their links are minted then, as grants). Channels stay in the
    # waiting task's memory: only the schedule and the backups' names are stored.
    remind_every: float | None = None
    escalate_after: float | None = None
    backups: list[str] = Field(default_factory=list)
    # Named reviewers' (and backups') groups: name -> groups.
    reviewer_groups: dict[str, list[str]] = Field(default_factory=dict)
    # Approvals only: several distinct approvers, each a write-once vote (see QuorumRule), and
    # the person who asked, who may not approve their own request.
    quorum: QuorumRule | None = None
    requested_by: str | None = None
    # The page's heading (else the prompt's first line).
    title: str | None = None
    # The answer's JSON Schema for choices and approvals (None for the scalar types): the app
    # renders and validates from it and never imports task code.
    answer_schema: dict[str, Any] | None = None
    # default=: the answer (as stored) a timeout applies; has_default tells None from unset.
    has_default: bool = False
    default: Any = None
    # SHA-256 of what a reviewer sees (type, prompt, details): re-opening the gate with another
    # question is refused, so an answer is never returned for a question that was not asked.
    fingerprint: str = ""

    @field_validator("created_at", "deadline")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class VoteRecord(_Record):
    """One reviewer's approve or reject on a quorum gate: written once, never replaced."""

    request_id: str
    reviewer: str
    approved: bool
    reason: str | None = None
    cast_at: datetime = Field(default_factory=utcnow)
    via: Via
    # Signed by the reviewer app (``answers.seal``): the key's id and the signature.
    key_id: str | None = None
    signature: str | None = None


class DecisionRecord(_Record):
    """The terminal record of an event: the answer, the timeout or the cancellation. Written
    exactly once. A timeout that applied the gate's default says so (``default_applied``): it
    is never presented as a person's answer. A cancellation names who in ``answered_by`` and
    the reason in ``comment``."""

    request_id: str
    status: Literal["answered", "timed_out", "cancelled"]
    default_applied: bool = False
    value: Any = None
    answered_by: str = LINK_HOLDER
    answered_at: datetime = Field(default_factory=utcnow)
    via: Via
    comment: str | None = None
    # A quorum gate's decision: the votes it was made from (copies of the vote records).
    votes: list[VoteRecord] | None = None
    # A person's answer is signed by the reviewer app (or an operator's key): the key's id and
    # the signature over the record, the gate and the question (``answers.seal``). Timeouts
    # and cancels, which the waiting task writes, carry none.
    key_id: str | None = None
    signature: str | None = None


class NoticeRecord(_Record):
    """A reminder or an escalation that was sent: written once, so a restarted task (or a
    second waiter) never sends it again."""

    request_id: str
    name: str
    sent_at: datetime = Field(default_factory=utcnow)
    to: list[str] = Field(default_factory=list)  # names, never channel URLs


class GrantRecord(_Record):
    """An extra link token for an existing event, stored under its token's digest."""

    request_id: str
    reviewer: str = ""
    created_at: datetime = Field(default_factory=utcnow)
