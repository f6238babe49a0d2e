"""What a record may mean, and who may have written it: the rules every reader applies before
believing a gate's decision (``wait()``, the reviewer app, ``hitl audit``).

- A person's answer (``answered``, no quorum) counts only when a trusted key signed it, bound to
  this gate and this question.
- A quorum gate's decision counts when the app signed it, or, written by the waiting task, when
  every vote it lists is signed, they recompute to the same outcome under the gate's rule, and
  no signed vote cast before its last one was left out.
- A vote counts when a trusted key signed it for this gate and question, by one of its voters.
- A timeout is the task's own record and may only say what a deadline says: at or after the
  stored deadline (``SKEW_SECONDS`` allowed between clocks, never claimed in the future), and
  only the gate's ``default=`` / ``on_timeout``.
- A cancel only ever stops a gate.

Each decision has one slot, written once (first answer wins). When the slot holds a record that
does not count (a forgery, an early timeout), the reviewer app writes a person's signed answer
to the gate's second slot (``signed/<gate>.json``; on AWS the task's role may read it, never
write it): a valid record there wins. ``check_decision`` says why a record does not count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .._errors import KeyExists, UnverifiedRecord
from ..storage import DecisionRecord, EventKeys, EventRecord, Store, VoteRecord, utcnow
from .quorum import decision_for, tally, voter
from .quorum import read as read_votes
from .seal import Keyring

log = logging.getLogger("hitl")


class KeySource(Protocol):
    """Where a reader's trusted keys come from (``keysource.Trust``, or the app's own)."""

    def keyring(self, *wanted: str | None) -> Keyring: ...

    def why_untrusted(self) -> str: ...


SKEW_SECONDS = 60.0


@dataclass(frozen=True)
class Refusal:
    """Why a record does not count. ``unknown_key``: it is signed by a key this reader does not
    know, which may be a forgery or a key it was never told of; only a writer that knows every
    key of the deployment may set such a record aside."""

    reason: str
    unknown_key: bool = False

    def __str__(self) -> str:
        return self.reason


def check_vote(event: EventRecord, vote: VoteRecord, keys: Keyring) -> Refusal | None:
    """Why ``vote`` does not count on ``event``; None when it does."""
    if vote.request_id != event.request_id:
        return Refusal(f"the vote is for another gate ({vote.request_id})")
    if voter(event, vote.reviewer) is None:
        return Refusal(f"{vote.reviewer} is not a reviewer of this gate")
    if not vote.signature:
        return Refusal("the vote is not signed")
    if vote.key_id not in keys:
        return Refusal(f"the vote is signed by a key that is not trusted ({vote.key_id})", True)
    if not keys.verify_vote(vote, event.fingerprint):
        return Refusal("the vote's signature does not match this gate's question")
    return None


def trusted_votes(
    event: EventRecord, votes: Iterable[VoteRecord], keys: Keyring
) -> list[VoteRecord]:
    """The votes that count; the others are passed over (never counted)."""
    return [v for v in votes if check_vote(event, v, keys) is None]


def check_decision(
    event: EventRecord,
    decision: DecisionRecord,
    keys: Keyring,
    now: datetime,
    stored_votes: Iterable[VoteRecord] | None = None,
) -> Refusal | None:
    """Why ``decision`` does not count as ``event``'s outcome; None when it does.

    ``stored_votes`` (a quorum gate's votes as the store holds them) lets an unsigned quorum
    decision be checked for votes it left out; without them that check is skipped."""
    if decision.request_id != event.request_id:
        return Refusal(f"the record is for another gate ({decision.request_id})")
    if decision.status == "cancelled":
        return None if decision.value is None else Refusal("a cancel carries no answer")
    if decision.status == "timed_out":
        why = _check_timeout(event, decision, now)
        return Refusal(why) if why else None
    signed = bool(decision.signature) and decision.key_id in keys
    if signed and keys.verify_decision(decision, event.fingerprint):
        return None
    if event.quorum is None or (decision.signature and decision.key_id not in keys):
        if not decision.signature:
            return Refusal("a person's answer that no trusted key signed")
        if decision.key_id not in keys:
            return Refusal(
                f"an answer signed by a key that is not trusted ({decision.key_id})", True
            )
        return Refusal("a signature that does not match this gate's question and answer")
    return _check_quorum(event, decision, keys, stored_votes)


def _check_timeout(event: EventRecord, decision: DecisionRecord, now: datetime) -> str | None:
    skew = timedelta(seconds=SKEW_SECONDS)
    if decision.answered_at < event.deadline:
        return f"a timeout recorded before the deadline ({event.deadline.isoformat()})"
    if decision.answered_at > now + skew or now + skew < event.deadline:
        return "a timeout whose deadline has not passed"
    wanted = event.default if event.has_default else None
    if decision.default_applied != event.has_default or decision.value != wanted:
        return "a timeout that does not apply the gate's default"
    return None


def _check_quorum(
    event: EventRecord,
    decision: DecisionRecord,
    keys: Keyring,
    stored_votes: Iterable[VoteRecord] | None,
) -> Refusal | None:
    listed = list(decision.votes or [])
    if not listed:
        return Refusal("a quorum decision that lists no votes")
    for vote in listed:
        why = check_vote(event, vote, keys)
        if why is not None:
            said = f"a quorum decision listing a vote that does not count: {why}"
            return Refusal(said, why.unknown_key)
    counted = tally(event, listed)
    if counted.outcome == "pending":
        return Refusal("a quorum decision whose votes do not meet the gate's rule")
    if decision.value != decision_for(event, counted).value:
        made = counted.outcome
        return Refusal(f"a quorum decision that its votes do not make (they make it {made})")
    if stored_votes is not None:
        last = max(v.cast_at for v in listed)
        mine = {v.signature for v in listed}
        # Only votes it does not list and cast before its last one can be left out.
        earlier = [v for v in stored_votes if v.signature not in mine and v.cast_at < last]
        for vote in trusted_votes(event, earlier, keys):
            return Refusal(f"a quorum decision that leaves out {vote.reviewer}'s earlier vote")
    return None


# -- the decision that stands -------------------------------------------------------------------


def _kids(record: DecisionRecord | None) -> list[str | None]:
    if record is None:
        return []
    return [record.key_id, *(v.key_id for v in record.votes or [])]


def _votes_if_needed(
    store: Store, event: EventRecord, record: DecisionRecord
) -> list[VoteRecord] | None:
    """The stored votes, when only they can tell whether an unsigned quorum decision left one
    out (the app signs the decisions it writes; the waiting task's need this check)."""
    if event.quorum is None or record.status != "answered" or record.signature:
        return None
    return read_votes(store, EventKeys.parse(event.request_id))


def counts(
    store: Store, event: EventRecord, record: DecisionRecord, keys: KeySource, now: datetime
) -> Refusal | None:
    """Why the stored ``record`` does not count as ``event``'s decision; None when it does."""
    keyring = keys.keyring(*_kids(record))
    return check_decision(event, record, keyring, now, _votes_if_needed(store, event, record))


def standing(
    store: Store,
    event: EventRecord,
    first: DecisionRecord | None,
    keys: KeySource,
    now: datetime,
) -> DecisionRecord | None:
    """The decision that stands for ``event``, given its first slot ``first`` as read: that
    record when it counts, else the second slot's when that counts; None while the gate is open.
    A record that does not count is refused with ``UnverifiedRecord`` naming it (and why), when
    nothing else stands: it is never returned."""
    if first is None:
        return None
    why = counts(store, event, first, keys, now)
    if why is None:
        return first
    keys_of = EventKeys.parse(event.request_id)
    second = store.get_signed_decision(keys_of)
    if second is not None and counts(store, event, second, keys, now) is None:
        return second
    raise UnverifiedRecord(
        keys_of.decision,
        f"the decision of gate {event.name!r} ({event.request_id}) at {store.url}/"
        f"{keys_of.decision} does not count: {why} ({_untrusted_hint(keys, first)}). It was "
        "not returned; the gate stays open for its reviewers, and `hitl audit` lists what the "
        "store holds",
    )


def shown(
    store: Store, event: EventRecord, first: DecisionRecord | None, keys: KeySource, now: datetime
) -> DecisionRecord | None:
    """The decision a writer of answers treats as standing (the reviewer app, the CLI): the
    first slot's record when it counts, or when a key this writer does not know signed it (it
    may be the deployment's: not this writer's to set aside); else the second slot's when that
    counts; None while the gate is open for its reviewers."""
    if first is None:
        return None
    why = counts(store, event, first, keys, now)
    if why is None or why.unknown_key:
        return first
    second = store.get_signed_decision(EventKeys.parse(event.request_id))
    if second is not None and counts(store, event, second, keys, now) is None:
        return second
    log.warning("hitl: gate %r (%s): %s; set aside", event.name, event.request_id, why)
    return None


def _untrusted_hint(keys: KeySource, record: DecisionRecord) -> str:
    if record.key_id and record.key_id not in keys.keyring():
        return f"key {record.key_id}: {keys.why_untrusted()}"
    return "never written by the reviewer app" if not record.signature else "signature checked"


def _create_or_read(
    create: Callable[[DecisionRecord], None],
    read: Callable[[EventKeys], DecisionRecord | None],
    record: DecisionRecord,
    keys_of: EventKeys,
) -> DecisionRecord | None:
    """``record`` when the exclusive create wrote it; else what the slot holds (None: unread)."""
    try:
        create(record)
    except KeyExists as exc:
        found = exc.existing if isinstance(exc.existing, DecisionRecord) else None
        return found or read(keys_of)
    return record


def write_decision(
    store: Store,
    event: EventRecord,
    record: DecisionRecord,
    keys: KeySource,
    *,
    second_slot: bool,
) -> DecisionRecord:
    """Write ``event``'s decision once: the decision that stands afterwards (``record``, or one
    written first that counts). When the first slot holds a record that does not count, a
    signed ``record`` goes to the second slot if ``second_slot`` (the reviewer app may write
    there; the waiting task may not), else ``UnverifiedRecord``."""
    now = utcnow()
    keys_of = EventKeys.parse(event.request_id)
    first = _create_or_read(store.create_decision, store.get_decision, record, keys_of)
    if first is record:
        return record
    if first is None:
        raise UnverifiedRecord(keys_of.decision, f"{keys_of.decision} exists but cannot be read")
    why = counts(store, event, first, keys, now)
    if why is None:
        return first
    if not second_slot or why.unknown_key:
        # Not this writer's to set aside: the waiting task may not write the second slot, and
        # a key this writer does not know may be one of the deployment's.
        return standing(store, event, first, keys, now) or first
    log.warning(
        "hitl: gate %r (%s): its decision slot holds a record that does not count (%s); the "
        "answer goes to the second slot",
        event.name,
        event.request_id,
        why,
    )
    second = _create_or_read(
        store.create_signed_decision, store.get_signed_decision, record, keys_of
    )
    if second is record:
        return record
    if second is not None and counts(store, event, second, keys, now) is None:
        return second
    raise UnverifiedRecord(
        keys_of.signed_decision,
        f"both decision slots of gate {event.name!r} ({event.request_id}) hold records that do "
        "not count; an operator has to look (`hitl audit`)",
    )
