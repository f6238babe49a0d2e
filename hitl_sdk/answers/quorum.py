"""Quorum approvals: the rule, the tally of the votes, and the decision they make.

The rules (README, "Quorum"):

- Each named reviewer (a backup too, once escalated to) votes once, approve or reject; the vote
  is its own write-once object, so a second vote by the same person is refused.
- The gate is approved when ``approvals`` distinct people approved and each group's count is
  met, a person counting towards one group's count only (``{"legal": 1, "finance": 1}`` needs
  two people, even if one of them is in both groups).
- Any rejection decides the gate as rejected, whatever the approvals so far: fail closed.
- The person who asked (``requested_by=``) may reject (withdraw) but never approve.

The terminal decision lists the votes it was made from. Whoever first sees the votes decide the
gate writes it (exclusive create): the reviewer app right after a vote, or the waiting task on its
next poll, so a vote is never lost when the app stops between the two writes.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from .._errors import ConfigError
from ..storage.keys import EventKeys
from ..storage.people import find_person, identity, same_person
from ..storage.records import DecisionRecord, EventRecord, QuorumRule, VoteRecord
from ..storage.store import Store

Outcome = Literal["pending", "approved", "rejected"]
QuorumSpec = int | Mapping[str, int]
MAX_GROUPS = 20
# A quorum gate's votes are read side by side (each is read once: records are remembered).
_READERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hitl-votes")


def make_rule(
    quorum: object,
    voters: Iterable[str],
    groups: Mapping[str, list[str]],
    requested_by: str | None,
) -> QuorumRule:
    """``quorum=`` checked against who may vote: a rule that can be met, else ``ConfigError``."""
    eligible = [v for v in voters if not same_person(v, requested_by)]
    if isinstance(quorum, bool) or not isinstance(quorum, (int, Mapping)):
        raise ConfigError(
            "quorum must be a number of distinct approvals (quorum=2) or approvals per group "
            f"(quorum={{'legal': 1, 'finance': 1}}), not {quorum!r}"
        )
    if isinstance(quorum, int):
        rule = QuorumRule(approvals=quorum)
        if quorum < 1:
            raise ConfigError(f"quorum must be at least 1, not {quorum}")
    else:
        counts = dict(quorum)
        bad = [
            g
            for g, n in counts.items()
            if not isinstance(g, str) or not g.strip() or isinstance(n, bool)
            or not isinstance(n, int) or n < 1
        ]  # fmt: skip
        if not counts or bad or len(counts) > MAX_GROUPS:
            raise ConfigError(
                "quorum per group maps group names to counts of at least 1, such as "
                f"{{'legal': 1, 'finance': 1}}; got {quorum!r}"
            )
        rule = QuorumRule(approvals=sum(counts.values()), groups=counts)
    if len(eligible) < rule.approvals or _matched(rule, eligible, groups) < sum(
        rule.groups.values()
    ):
        who = ", ".join(eligible) or "nobody"
        asker = f" ({requested_by} asked, so cannot approve)" if requested_by else ""
        raise ConfigError(
            f"quorum {quorum!r} cannot be met by the reviewers who may approve: {who}{asker}. "
            "Name more reviewers (with their groups: hitl.Reviewer(groups=[...])) or lower it"
        )
    return rule


def _matched(rule: QuorumRule, approvers: list[str], groups: Mapping[str, list[str]]) -> int:
    """How many of the rule's group seats distinct approvers can fill (one seat a person)."""
    seats = [g for g, n in rule.groups.items() for _ in range(n)]
    holder: dict[int, str] = {}

    def seat_for(person: str, tried: set[int]) -> bool:
        for i, group in enumerate(seats):
            if group in groups.get(person, ()) and i not in tried:
                tried.add(i)
                if i not in holder or seat_for(holder[i], tried):
                    holder[i] = person
                    return True
        return False

    return sum(seat_for(person, set()) for person in approvers)


@dataclass(frozen=True)
class Tally:
    """Where a quorum gate stands: its votes (oldest first), the outcome, and what is still
    needed, in words (``"1 more approval, from finance"``; empty once decided)."""

    outcome: Outcome
    votes: tuple[VoteRecord, ...]
    needed: str

    @property
    def approvers(self) -> list[str]:
        return [v.reviewer for v in self.votes if v.approved]

    def vote_of(self, reviewer: str) -> VoteRecord | None:
        return next((v for v in self.votes if same_person(v.reviewer, reviewer)), None)


def tally(event: EventRecord, votes: Iterable[VoteRecord]) -> Tally:
    """Count ``votes`` under the event's rule. Votes by anyone but a reviewer of the event, or
    an approval by its requester, are never counted (the app refuses them before writing)."""
    rule = event.quorum or QuorumRule()
    allowed = {identity(name): name for name in voters(event)}
    counted = sorted(
        (
            v
            for v in votes
            if v.request_id == event.request_id
            and identity(v.reviewer) in allowed
            and not (v.approved and same_person(v.reviewer, event.requested_by))
        ),
        key=lambda v: (v.cast_at, v.reviewer),
    )
    unique: dict[str, VoteRecord] = {}  # one vote a person, however their name was spelled
    for vote in counted:
        unique.setdefault(identity(vote.reviewer), vote)
    ordered = tuple(unique.values())
    if any(not v.approved for v in ordered):
        return Tally("rejected", ordered, "")
    # Groups are the gate's, under the gate's own spelling of each reviewer.
    approvers = [allowed[identity(v.reviewer)] for v in ordered]
    seats = sum(rule.groups.values())
    filled = _matched(rule, approvers, event.reviewer_groups)
    more = max(rule.approvals - len(approvers), seats - filled)
    if more <= 0:
        return Tally("approved", ordered, "")
    return Tally("pending", ordered, _needed(rule, approvers, event.reviewer_groups, more))


def _needed(
    rule: QuorumRule, approvers: list[str], groups: Mapping[str, list[str]], more: int
) -> str:
    plural = "s" if more != 1 else ""
    missing: list[str] = []
    for group, count in rule.groups.items():
        # The group's own shortfall, counting everyone who could sit in it.
        have = sum(1 for a in approvers if group in groups.get(a, ()))
        if have < count:
            missing.append(f"{count - have} from {group}")
    if not missing:
        return f"{more} more approval{plural}"
    return f"{more} more approval{plural}: " + " and ".join(missing)


def read(store: Store, keys: EventKeys, names: list[str] | None = None) -> list[VoteRecord]:
    """A quorum gate's votes: one LIST of its folder (unless ``names`` come from a run's
    listing), then a GET of each vote not read before, side by side."""
    if names is None:
        names = store.vote_names(keys)
    context = contextvars.copy_context()  # the request's storage deadline goes along

    def one(name: str) -> VoteRecord | None:
        return context.copy().run(store.get_vote, keys, name)

    found = list(_READERS.map(one, names)) if len(names) > 1 else [one(n) for n in names]
    return [v for v in found if v is not None]


def decision_for(event: EventRecord, counted: Tally) -> DecisionRecord:
    """The terminal record a decided tally makes: rejected by the first to reject (with their
    reason), or approved by the approvers, listing every vote counted."""
    votes = list(counted.votes)
    if counted.outcome == "rejected":
        first = next(v for v in votes if not v.approved)
        value = {"approved": False, "reason": first.reason}
        by, via = first.reviewer, first.via
    else:
        value = {"approved": True, "reason": None}
        by, via = ", ".join(counted.approvers), votes[-1].via
    return DecisionRecord(
        request_id=event.request_id,
        status="answered",
        value=value,
        answered_by=by,
        via=via,
        votes=votes,
    )


def voters(event: EventRecord) -> set[str]:
    """Who may vote on the gate: its named reviewers and backups (as the gate spells them)."""
    return (set(event.token_digests.values()) | set(event.backups)) - {""}


def voter(event: EventRecord, who: str) -> str | None:
    """The gate's own spelling of the reviewer ``who`` is (see ``_identity``), or None."""
    return find_person(who, sorted(voters(event)))
