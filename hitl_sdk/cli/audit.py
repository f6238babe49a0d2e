"""``hitl audit`` and ``hitl keys``: what a compliance reviewer runs, and an operator's key.

``hitl audit`` walks a store (or one run, or a time window) and lists every decision and vote:
gate, question, outcome, who, when, via, key id, and whether it counts (``answers.trust``:
signed by a trusted key for this gate and question, a quorum decision its votes make, a timeout
at its deadline). It exits 9 when any person's answer is unsigned, forged, signed by a key not
trusted, or bound to another question; the task's own records (timeouts, cancels) are listed
and checked too.

``hitl keys`` prints this machine's public key (the one ``hitl serve``, ``hitl demo`` and
``hitl respond`` sign with), to pin in ``HITL_VERIFY_KEYS`` or publish in the app's
``HITL_OPERATOR_KEYS``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from .. import _config
from .._errors import ConfigError, CorruptRecord
from ..answers import (
    Trust,
    check_decision,
    check_vote,
    machine_key_path,
    machine_signer,
    read_votes,
    when,
)
from ..storage import DecisionRecord, EventKeys, EventRecord, Store, VoteRecord, utcnow
from .common import AuditFailed, open_store, say
from .table import render_table


@dataclass(frozen=True)
class Line:
    """One record as the audit lists it."""

    request_id: str
    gate: str
    question: str
    record: str  # decision, second slot, vote
    outcome: str
    by: str
    at: str
    via: str
    key_id: str
    verdict: str  # "ok", or why it does not count
    persons: bool  # a person's answer (or vote): one that does not count fails the audit


def _outcome(decision: DecisionRecord) -> str:
    if decision.status != "answered":
        return decision.status + (" (default applied)" if decision.default_applied else "")
    value = decision.value
    if isinstance(value, dict) and "approved" in value:
        return "approved" if value["approved"] else "rejected"
    return json.dumps(value, ensure_ascii=False)[:40]


def _lines(store: Store, event: EventRecord, keys: Trust, now: datetime) -> Iterator[Line]:
    ids = EventKeys.parse(event.request_id)
    votes = read_votes(store, ids) if event.quorum is not None else []
    kids = [v.key_id for v in votes]
    for label, record in (
        ("decision", store.get_decision(ids)),
        ("second slot", store.get_signed_decision(ids)),
    ):
        if record is None:
            continue
        keyring = keys.keyring(record.key_id, *(v.key_id for v in record.votes or []), *kids)
        why = check_decision(event, record, keyring, now, votes if votes else None)
        persons = record.status == "answered"
        yield _line(event, label, record, _outcome(record), why, persons)
    for vote in votes:
        why = check_vote(event, vote, keys.keyring(vote.key_id))
        said = "approve" if vote.approved else "reject"
        yield _line(event, "vote", vote, said, why, True)


def _line(
    event: EventRecord,
    label: str,
    record: DecisionRecord | VoteRecord,
    outcome: str,
    why: object,
    persons: bool,
) -> Line:
    if isinstance(record, VoteRecord):
        by, at = record.reviewer, record.cast_at
    else:
        by, at = record.answered_by, record.answered_at
    return Line(
        request_id=event.request_id,
        gate=event.name,
        question=event.fingerprint[:12],
        record=label,
        outcome=outcome,
        by=by,
        at=when(at),
        via=record.via,
        key_id=record.key_id or "-",
        verdict="ok" if why is None else str(why),
        persons=persons,
    )


def _moment(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not a date: give 2026-12-01 or 2026-12-01T09:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def cmd_audit(args: argparse.Namespace) -> int:
    store = open_store(args)
    settings = _config.settings()
    keys = Trust(settings.app_url, args.keys or settings.verify_keys)
    since, until = _moment(args.since, "--since"), _moment(args.until, "--until")
    now = utcnow()
    lines: list[Line] = []
    skipped: list[str] = []
    runs = [EventKeys.for_name(args.run_id, "x").run_key] if args.run_id else store.run_keys()
    for run_key in runs:
        for request_id in store.event_ids(run_key):
            try:
                event = store.get_event(EventKeys.parse(request_id))
            except CorruptRecord as exc:
                skipped.append(exc.key)
                continue
            if event is None:
                continue
            if (since and event.created_at < since) or (until and event.created_at > until):
                continue
            try:
                lines.extend(_lines(store, event, keys, now))
            except CorruptRecord as exc:
                skipped.append(exc.key)
    failed = [line for line in lines if line.persons and line.verdict != "ok"]
    if args.json:
        say(json.dumps(
            {"records": [asdict(line) for line in lines], "failed": len(failed),
             "unreadable": skipped}, indent=1, ensure_ascii=False,
        ))  # fmt: skip
    else:
        headers = ["GATE", "QUESTION", "RECORD", "OUTCOME", "BY", "AT", "VIA", "KEY", "VERDICT"]
        rows = [
            [line.gate, line.question, line.record, line.outcome, line.by, line.at, line.via,
             line.key_id, line.verdict]
            for line in lines
        ]  # fmt: skip
        for text in render_table(headers, rows, [24, None, None, 16, 24, None, None, None, 60]):
            say(text)
        unreadable = f", {len(skipped)} unreadable: {', '.join(skipped)}" if skipped else ""
        counted = f"{len(lines)} record(s), {len(failed)} person's answer(s) that do not count"
        say(counted + unreadable)
    if failed:
        first = failed[0]
        raise AuditFailed(
            f"{len(failed)} person's answer(s) do not count; the first: gate {first.gate!r} "
            f"({first.request_id}), {first.record} by {first.by}: {first.verdict}"
        )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    signer = machine_signer()
    say(signer.public.text)
    say(
        f"key id {signer.key_id}: this machine's signing key ({machine_key_path()}). Tasks "
        "trust answers it signs when it is in HITL_VERIFY_KEYS, or in the app's "
        "HITL_OPERATOR_KEYS; local mode trusts it already."
    )
    return 0


def add_commands(command: Any) -> None:
    """Register ``audit`` and ``keys`` with the parser (``entry.build_parser``'s helper)."""
    audit = command(
        "audit",
        "Every decision and vote of a store, each verified (signature, gate, question); "
        "exit 9 if a person's answer does not count.",
        cmd_audit,
    )
    audit.add_argument(
        "--run", dest="run_id", metavar="RUN", help="only this run (its id, as gates name it)"
    )
    audit.add_argument("--since", metavar="DATE", help="only gates created at or after DATE")
    audit.add_argument("--until", metavar="DATE", help="only gates created at or before DATE")
    audit.add_argument(
        "--keys",
        metavar="KEY",
        nargs="+",
        help="the public keys to trust (ed25519:...), instead of HITL_VERIFY_KEYS or the app's",
    )
    audit.add_argument("--json", action="store_true", help="JSON instead of a table")
    command("keys", "Print this machine's public signing key (to pin or publish).", cmd_keys)
