"""Answering a gate: the one path every channel (form, JSON API, inbox, CLI, and the channels
to come) goes through.

``submit`` checks the link token (or takes the person a channel vouches for), the gate's state
and the value's type, then writes the decision record with exclusive create, so the first
answer wins and every later one is refused; on a quorum gate it writes the vote and, once the
votes decide, the decision (``quorum.settle``). ``cancel`` closes a gate; ``outcome`` maps a
decision record to the typed value or the typed error.
"""

from __future__ import annotations

import contextvars
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._errors import (
    AlreadyAnswered,
    AlreadyVoted,
    CorruptRecord,
    EventCancelled,
    EventExpired,
    EventNotFound,
    EventTimeout,
    InvalidToken,
    InvalidValue,
    KeyExists,
    MissingToken,
    NotAllowed,
)
from ..storage.keys import EventKeys, match_digest, token_digest
from ..storage.people import same_person
from ..storage.records import (
    LINK_HOLDER,
    DecisionRecord,
    EventRecord,
    Status,
    Via,
    VoteRecord,
    utcnow,
)
from ..storage.store import Store
from . import index as _inbox
from . import quorum as _quorum
from .codecs import Codec, check_text
from .keysource import LocalKeys, Seal
from .trust import KeySource, shown, trusted_votes, write_decision
from .types import TypeSpec, answer_codec
from .words import decided_text, outcome_text, vote_text, when

MAX_COMMENT_CHARS = 2000
# Reads that run beside another one (an event's decision while the event itself is read).
_READERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hitl-read")
# What a link token can look like (URL-safe base64); anything else is refused before hashing.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,200}")


@dataclass(frozen=True)
class Submission:
    """What ``submit`` did: the decision that stands, and whether this call wrote it or found
    the very same answer from the same person already recorded (a client's retry).

    On a quorum gate: the ``vote`` cast and the ``tally`` after it; ``record`` is ``None``
    while the gate still waits for more votes."""

    event: EventRecord
    record: DecisionRecord | None
    repeated: bool = False
    vote: VoteRecord | None = None
    tally: _quorum.Tally | None = None


@dataclass(frozen=True)
class EventState:
    """An event as it stands: its record, its decision if any, and its status now."""

    keys: EventKeys
    event: EventRecord
    decision: DecisionRecord | None
    status: Status


def status_of(event: EventRecord, decision: DecisionRecord | None, now: datetime) -> Status:
    if decision is not None:
        return {"answered": Status.ANSWERED, "cancelled": Status.CANCELLED}.get(
            decision.status, Status.TIMED_OUT
        )
    return Status.EXPIRED if now >= event.deadline else Status.PENDING


def load(
    store: Store,
    request_id: object,
    now: datetime | None = None,
    trust: KeySource | None = None,
) -> EventState:
    """Read an event and its decision, both at once (one round trip of time, two requests;
    one request when the store has read the event before); ``EventNotFound`` for an unknown
    or malformed id. The decision is the one that stands for a writer of answers
    (``trust.shown``, judged with ``trust``; this machine's keys by default): a record that does not
    count is set aside and the gate is open."""
    keys = EventKeys.parse(request_id)
    if store.knows_event(keys):  # the event from memory, the decision read here
        event, decision = store.get_event(keys), store.get_decision(keys)
    else:
        # The copied context carries the request's storage deadline into the reader thread.
        read = _READERS.submit(contextvars.copy_context().run, store.get_decision, keys)
        event = store.get_event(keys)  # should this raise, the other read ends on its own
        decision = read.result()
    if event is None:
        raise EventNotFound(f"no event with id {keys.request_id!r}")
    now = now or utcnow()
    decision = shown(store, event, decision, trust or LocalKeys(), now)
    return EventState(keys, event, decision, status_of(event, decision, now))


def gate_states(
    store: Store, *, everything: bool, now: datetime, skipped: list[str] | None = None
) -> list[EventState]:
    """The store's gates, newest first: the open ones, or ``everything``. One LIST of
    decisions per run, and a GET per decided gate; objects that hold no valid record are
    passed over (their keys appended to ``skipped``)."""
    passed: list[str] = [] if skipped is None else skipped
    decided: dict[str, set[str]] = {}
    states: list[EventState] = []
    for event in store.iter_events(passed):
        keys = EventKeys.parse(event.request_id)
        if keys.run_key not in decided:
            decided[keys.run_key] = store.decided_ids(keys.run_key)
        decision = None
        if event.request_id in decided[keys.run_key]:
            try:
                decision = store.get_decision(keys)
            except CorruptRecord as exc:
                passed.append(exc.key)
                continue
        state = EventState(keys, event, decision, status_of(event, decision, now))
        if everything or state.status is Status.PENDING:
            states.append(state)
    states.sort(key=lambda s: s.event.created_at, reverse=True)
    return states


def _load_event(store: Store, request_id: object) -> tuple[EventKeys, EventRecord]:
    keys = EventKeys.parse(request_id)
    event = store.get_event(keys)
    if event is None:
        raise EventNotFound(f"no event with id {keys.request_id!r}")
    return keys, event


def _state(keys: EventKeys, event: EventRecord, decision: DecisionRecord | None) -> EventState:
    return EventState(keys, event, decision, status_of(event, decision, utcnow()))


def counted_votes(store: Store, event: EventRecord, keys: KeySource) -> _quorum.Tally:
    """A quorum gate's tally from the votes that count (signed by a trusted key, for this gate
    and question); the others are passed over."""
    votes = _quorum.read(store, EventKeys.parse(event.request_id))
    keyring = keys.keyring(*(v.key_id for v in votes))
    return _quorum.tally(event, trusted_votes(event, votes, keyring))


def authorize(store: Store, state: EventState, token: object) -> str:
    """The name of who holds ``token`` for this event (or "link holder"); else InvalidToken."""
    if not isinstance(token, str) or not token:
        raise MissingToken("this link has no token: open the full link you were sent")
    if not TOKEN_RE.fullmatch(token):
        raise InvalidToken("the token is malformed: open the full link you were sent")
    reviewer = match_digest(token, state.event.token_digests)
    if reviewer is None:
        grant = store.get_grant(state.keys, token_digest(token))
        if grant is not None and grant.request_id == state.keys.request_id:
            reviewer = grant.reviewer
    if reviewer is None:
        raise InvalidToken("the token does not open this event: use the link you were sent")
    return reviewer or LINK_HOLDER


def submit(
    store: Store,
    request_id: object,
    raw_value: object,
    *,
    via: Via,
    token: object = None,
    operator: str | None = None,
    comment: str | None = None,
    data_type: str | None = None,
    reason: str | None = None,
    seal: Seal | None = None,
    inbox: bool = False,
) -> Submission:
    """Answer an event once. The token is checked and names who answered, unless ``operator``
    names a person a channel vouches for (a signed-in reviewer, the CLI's operator).

    The answer (or vote) is signed with ``seal``'s key (the reviewer app's; by default this
    machine's) over the record, the gate and the question, so ``wait()`` can tell it from
    anything the asking side could write itself.

    The same answer sent again by the same person (a retry after a lost reply) is not an
    error: it comes back as ``Submission(repeated=True)`` with the recorded decision.

    ``reason`` goes with an approval's approve/reject (``hitl.Approval`` gates only).
    ``inbox``: the deployment has an inbox, and an answer through it or the CLI marks the gate
    closed there at once (the waiting task marks the others).

    Raises EventNotFound, InvalidToken, AlreadyAnswered, EventExpired, EventCancelled or
    InvalidValue.
    """
    # Two round trips for an answer: the event (token, type, deadline; none when the store has
    # read it before, as after the form was shown), then the exclusive create. The decision is
    # read only when the create is refused or the deadline passed.
    keys, event = _load_event(store, request_id)
    pending = EventState(keys, event, None, status_of(event, None, utcnow()))
    who = operator if operator is not None else authorize(store, pending, token)
    codec = answer_codec(event.data_type, event.answer_schema)
    if data_type not in (None, "", codec.name):
        raise InvalidValue(f"this event takes {codec.name}, not {str(data_type)[:40]!r}")
    if reason is not None and str(reason).strip():
        if codec.name != "approval":
            raise InvalidValue("a reason goes with approve/reject; for this gate use a comment")
        if not isinstance(raw_value, dict):
            raw_value = {"approved": raw_value, "reason": reason}
    if comment is not None:
        check_text(comment, "the comment")
        if len(comment) > MAX_COMMENT_CHARS:
            raise InvalidValue(f"the comment is longer than {MAX_COMMENT_CHARS} characters")
    seal = seal or Seal.local()
    if event.quorum is not None:
        return _vote(store, keys, codec, who, raw_value, via, seal, inbox)
    if pending.status is not Status.PENDING:  # past the deadline: closed either way
        state = load(store, keys.request_id, trust=seal.keys)
        try:
            repeat = codec.to_json(codec.parse(raw_value))
        except InvalidValue:
            _refuse_closed(state)  # closed says more than "wrong type" to a late reviewer
            raise
        return _repeat_or_refuse(state, who, repeat)
    value = codec.to_json(codec.parse(raw_value))
    if codec.name == "approval" and value["approved"]:
        _refuse_own_request(event, who)
    record = DecisionRecord(
        request_id=keys.request_id,
        status="answered",
        value=value,
        answered_by=who,
        via=via,
        comment=comment or None,
    )
    record = seal.signer().sign_decision(record, event.fingerprint)
    stands = write_decision(store, event, record, seal.keys, second_slot=True)
    if stands is not record:  # closed meanwhile: what stands was read back
        return _repeat_or_refuse(_state(keys, event, stands), who, value)
    if inbox and via in _inbox.MARKED_BY_CLOSER:
        _inbox.mark_closed(store, event, record)
    return Submission(event, record)


def _refuse_own_request(event: EventRecord, who: str) -> None:
    if same_person(who, event.requested_by):
        raise NotAllowed(
            f"{who} asked for this approval and cannot approve it; another reviewer must "
            "(rejecting, to withdraw it, is allowed)"
        )


def _vote(
    store: Store,
    keys: EventKeys,
    codec: Codec[Any],
    who: str,
    raw_value: object,
    via: Via,
    seal: Seal,
    inbox: bool,
) -> Submission:
    """A vote on a quorum gate: written once, then counted with every other vote; the vote
    that decides the gate (or the first to see it decided) writes the terminal decision."""
    state = load(store, keys.request_id, trust=seal.keys)  # the event is known
    event = state.event
    if state.status is not Status.PENDING:
        d = state.decision
        mine = (
            next((v for v in (d.votes or []) if same_person(v.reviewer, who)), None) if d else None
        )
        if mine is not None:
            raise AlreadyVoted(f"{vote_text(mine)}; the gate was decided: {decided_text(d)}")
        _refuse_closed(state)
    named = _quorum.voter(event, who)
    if named is None:
        names = ", ".join(sorted(_quorum.voters(event)))
        raise NotAllowed(f"{who} is not a reviewer of this gate; its reviewers are {names}")
    who = named  # a vote is the reviewer's as the gate names them, and keyed by their identity
    value = codec.to_json(codec.parse(raw_value))
    if value["approved"]:
        _refuse_own_request(event, who)
    vote = VoteRecord(
        request_id=keys.request_id,
        reviewer=who,
        approved=value["approved"],
        reason=value.get("reason"),
        via=via,
    )
    vote = seal.signer().sign_vote(vote, event.fingerprint)
    try:
        store.create_vote(vote)
    except KeyExists as exc:
        prior = exc.existing if isinstance(exc.existing, VoteRecord) else None
        said = vote_text(prior) if prior else f"{who} voted already"
        raise AlreadyVoted(f"{said}; each reviewer votes once and the first vote stands") from None
    counted = counted_votes(store, event, seal.keys)
    if counted.outcome == "pending":
        return Submission(event, None, vote=vote, tally=counted)
    made = seal.signer().sign_decision(_quorum.decision_for(event, counted), event.fingerprint)
    decision = write_decision(store, event, made, seal.keys, second_slot=True)
    if all(v.write_id != vote.write_id for v in decision.votes or ()):
        # Decided meanwhile (by another vote, or the waiting task) without this one.
        raise AlreadyAnswered(
            f"the gate was decided before {who}'s vote could count: {decided_text(decision)}"
        )
    if inbox and via in _inbox.MARKED_BY_CLOSER:
        _inbox.mark_closed(store, event, decision)
    return Submission(event, decision, vote=vote, tally=counted)


def _repeat_or_refuse(state: EventState, who: str, value: Any) -> Submission:
    """A closed gate: the same answer by the same person is a repeat, else a refusal."""
    d = state.decision
    if (
        d is not None
        and d.status == "answered"
        and same_person(d.answered_by, who)
        and d.value == value
    ):
        return Submission(state.event, d, repeated=True)
    _refuse_closed(state)
    raise AssertionError("unreachable: a closed gate was refused above")


def _refuse_closed(state: EventState) -> None:
    if state.status is Status.ANSWERED and state.decision is not None:
        d = state.decision
        raise AlreadyAnswered(
            f"event {state.keys.request_id!r} was already {outcome_text(d)}; "
            "the first answer stands"
        )
    if state.status is Status.CANCELLED and state.decision is not None:
        raise EventCancelled(
            f"event {state.keys.request_id!r} was {outcome_text(state.decision)}; it no longer "
            "takes answers"
        )
    if state.status in (Status.TIMED_OUT, Status.EXPIRED):
        raise EventExpired(
            f"event {state.keys.request_id!r} expired at {when(state.event.deadline)} and no "
            "longer takes answers"
        )


def outcome(event: EventRecord, decision: DecisionRecord, spec: TypeSpec | None = None) -> Any:
    """The typed value of a decision (a timeout's default included); EventTimeout for a
    timeout with no default, EventCancelled for a cancelled gate. ``spec`` (the task's own
    type) makes the value the task's ``Enum`` member or model; without it, stored JSON
    types."""
    if decision.status == "cancelled":
        raise EventCancelled(
            f"event {event.name!r} ({event.request_id}) was {outcome_text(decision)}"
        )
    if decision.status == "timed_out" and not decision.default_applied:
        raise EventTimeout(
            f"no answer to event {event.name!r} ({event.request_id}) by its deadline "
            f"{when(event.deadline)} ({event.timeout_seconds:g}s)"
        )
    try:
        if spec is None:
            if event.answer_schema is None:
                return answer_codec(event.data_type, None).from_json(decision.value)
            return decision.value
        value = spec.value(decision.value)
    except InvalidValue as exc:
        # Records are write-once: an answer that does not fit will not heal. Say which record.
        key = EventKeys.parse(event.request_id).decision
        kind = spec.name if spec is not None else event.data_type
        raise CorruptRecord(
            key,
            f"the decision of gate {event.name!r} ({event.request_id}) holds "
            f"{_clip(decision.value)}, which is not a valid {kind} answer ({exc}); "
            f"the record is at {key}",
        ) from exc
    if event.data_type == "approval":
        by = "timeout (default applied)" if decision.default_applied else decision.answered_by
        votes = tuple(decision.votes or ())
        value = value.model_copy(
            update={"by": by, "at": decision.answered_at, "via": decision.via, "votes": votes}
        )
    return value


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def timeout_record(event: EventRecord, counted: _quorum.Tally | None = None) -> DecisionRecord:
    """The timeout's terminal record; with the gate's ``default=`` applied, marked as such.
    A quorum gate's lists the votes cast before the deadline."""
    return DecisionRecord(
        request_id=event.request_id,
        status="timed_out",
        answered_by="deadline",
        via="timeout",
        value=event.default if event.has_default else None,
        default_applied=event.has_default,
        votes=list(counted.votes) if counted is not None else None,
    )


def cancel(
    store: Store,
    request_id: object,
    *,
    by: str,
    reason: str | None = None,
    via: Via = "cli",
    keys: KeySource | None = None,
    inbox: bool = False,
) -> DecisionRecord:
    """Close a gate with a terminal ``cancelled`` record (write-once, like every decision; not
    signed: a cancel only ever stops). ``AlreadyAnswered`` / ``EventExpired`` /
    ``EventCancelled`` if it is closed already (judged with ``keys``)."""
    event_keys, event = _load_event(store, request_id)
    if reason is not None:
        check_text(reason, "the reason")
        if len(reason) > MAX_COMMENT_CHARS:
            raise InvalidValue(f"the reason is longer than {MAX_COMMENT_CHARS} characters")
    record = DecisionRecord(
        request_id=event_keys.request_id,
        status="cancelled",
        answered_by=by,
        via=via,
        comment=reason or None,
    )
    stands = write_decision(store, event, record, keys or LocalKeys(), second_slot=False)
    if stands is not record:
        if stands.status == "cancelled" and same_person(stands.answered_by, by):
            return stands  # a retry of this very cancel
        _refuse_closed(_state(event_keys, event, stands))
    if inbox:
        _inbox.mark_closed(store, event, record)
    return record
