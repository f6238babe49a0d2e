"""``hitl list``, ``hitl show``, ``hitl respond`` and ``hitl cancel``: an operator's view of the
store and answers given with store access (checked and written once, like the app's)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
from typing import Any

from .. import _config
from .._errors import ConfigError, EventNotFound
from ..answers import (
    EventState,
    Seal,
    answer_codec,
    cancel,
    details_text,
    gate_json,
    gate_states,
    load,
    machine_signer,
    outcome_text,
    read_votes,
    result_text,
    submit,
    tally,
)
from ..storage import DecisionRecord, EventKeys, EventRecord, Status, Store
from ..storage.records import utcnow
from .common import complain, missing_folder, open_store, say
from .table import format_duration, format_time, render_table

_ID_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9-]*(\.[a-z0-9-]*)?")
_ID_PART_RE = re.compile(r"[a-z0-9.-]{6,}")


def resolve_id(store: Store, given: str) -> str:
    """The request id that ``given`` is, or the one id it is a unique prefix of (ids are 60+
    characters); ``EventNotFound`` naming the candidates when it is none or several."""
    text = given.strip()
    if not text:
        raise EventNotFound("no event id given: copy one from `hitl list`")
    with contextlib.suppress(EventNotFound):
        keys = EventKeys.parse(text)
        if store.get_event(keys) is not None:
            return keys.request_id
    matches: list[str] = []
    if _ID_PREFIX_RE.fullmatch(text):
        run_part, dot, _ = text.partition(".")
        runs = [run_part] if dot else [r for r in store.run_keys() if r.startswith(text)]
        matches = [i for run in runs for i in store.event_ids(run) if i.startswith(text)]
    if not matches and _ID_PART_RE.fullmatch(text):  # any unique part (hitl list's id ends)
        matches = [i for run in store.run_keys() for i in store.event_ids(run) if text in i]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        folder = missing_folder(store)
        where = f" (the folder {folder} does not exist)" if folder is not None else ""
        raise EventNotFound(f"no event with id {text[:80]!r} in {store.url}{where}")
    shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
    raise EventNotFound(
        f"{text!r} is the start of {len(matches)} event ids ({shown}): give more of the id"
    )


def _event_states(store: Store, everything: bool) -> list[EventState]:
    skipped: list[str] = []
    states = gate_states(store, everything=everything, now=utcnow(), skipped=skipped)
    if skipped:
        complain(
            f"hitl: passed over {len(skipped)} object(s) that hold no valid record (truncated "
            f"or not hitl's): {', '.join(skipped)}"
        )
    return states


def _value_text(decision: DecisionRecord | None) -> str:
    return "-" if decision is None else result_text(decision)


def _left_text(event: EventRecord, status: Status) -> str:
    if status is not Status.PENDING:
        return "-"
    return format_duration((event.deadline - utcnow()).total_seconds())


def _state_json(state: EventState) -> dict[str, Any]:
    return gate_json(state.event, state.status.value, state.decision)


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(args)
    states = _event_states(store, args.all)
    if args.json:
        say(json.dumps([_state_json(s) for s in states], indent=1, ensure_ascii=False))
        return 0
    if not states:
        folder = missing_folder(store)
        if folder is not None:
            print(
                f"no store at {store.url}: the folder {folder} does not exist (check --store or "
                "HITL_STORE_URL; a task creates it when it opens its first gate)",
                file=sys.stderr,
            )
            return 0
        what = "events" if args.all else "pending events (hitl list --all shows every state)"
        print(f"no {what} in {store.url}", file=sys.stderr)
        return 0
    headers = ["ID", "NAME", "TYPE", "STATE", "CREATED (UTC)", "LEFT", "PROMPT"]
    widths: list[int | None] = [None, 24, None, None, None, None, 48]
    if args.all:
        headers.insert(6, "ANSWER")
        widths.insert(6, 16)
    rows = []
    for s in states:
        row = [
            s.event.request_id,
            s.event.name,
            s.event.data_type,
            s.status.value,
            f"{s.event.created_at:%Y-%m-%d %H:%M}",
            _left_text(s.event, s.status),
            s.event.prompt,
        ]
        if args.all:
            row.insert(6, _value_text(s.decision))
        rows.append(row)
    room = _terminal_width()
    lines = render_table(headers, rows, widths)
    if room and max(len(line) for line in lines) > room:
        lines = _fitted(headers, rows, widths, room, [s.event.request_id for s in states])
    for line in lines:
        say(line)
    return 0


def _terminal_width() -> int:
    """The terminal's width when the table goes to one (or COLUMNS says), else 0: a pipe
    or a file gets whole rows."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else 0


def _fitted(
    headers: list[str],
    rows: list[list[str]],
    widths: list[int | None],
    room: int,
    ids: list[str],
) -> list[str]:
    """The table within ``room`` columns: ids shown by their last characters (unique among
    those listed; ``hitl show`` takes any unique part of an id), then the prompt narrowed
    (to 12), then the creation time, the type and the time left left out."""
    ends = unique_ends(ids)
    rows = [[ends[i], *row[1:]] for i, row in zip(ids, rows, strict=True)]
    headers = ["ID (end)", *headers[1:]]
    columns = list(range(len(headers)))
    prompt = headers.index("PROMPT")
    limit = widths[prompt] or 48
    while True:
        shown_widths = [limit if c == prompt else widths[c] for c in columns]
        lines = render_table(
            [headers[c] for c in columns], [[r[c] for c in columns] for r in rows], shown_widths
        )
        excess = max(len(line) for line in lines) - room
        if excess <= 0:
            return lines
        if limit - excess >= 12:
            limit -= excess
            continue
        droppable = [c for c in columns if headers[c] in ("CREATED (UTC)", "TYPE", "LEFT")]
        if droppable:
            columns.remove(droppable[0])
        elif limit > 12:
            limit = 12
        else:
            return lines  # as narrow as it gets


def unique_ends(ids: list[str], least: int = 10) -> dict[str, str]:
    """Each id's shortest end (``least`` characters at least) that no other id ends with.

    The longest end an id shares with any other is the one it shares with a neighbour once
    the reversed ids are sorted: O(n log n), for a store of thousands of gates."""
    backwards = sorted({rid[::-1] for rid in ids})
    ends = {}
    for i, back in enumerate(backwards):
        neighbours = backwards[max(0, i - 1) : i] + backwards[i + 1 : i + 2]
        # character by character, as meant: the shared end of two ids
        common = (len(os.path.commonprefix([back, n])) for n in neighbours)  # noqa: RUF071
        shared = max(common, default=0)
        rid = back[::-1]
        ends[rid] = rid[-min(len(rid), max(least, shared + 1)) :]
    return ends


def _links_text(event: EventRecord, status: Status) -> str:
    named = sorted(r for r in event.token_digests.values() if r)
    anonymous = len(event.token_digests) - len(named)
    parts = [f"{anonymous} anonymous"] if anonymous else []
    if named:
        parts.append("for " + ", ".join(named))
    issued = f"{len(event.token_digests)} issued ({'; '.join(parts)})."
    if status is not Status.PENDING:
        return f"{issued} The gate is closed: its links no longer take answers."
    return (
        f"{issued} Only their SHA-256 digests are stored, so links cannot be shown again: "
        "answer here with `hitl respond`, or reopen the gate from its task (the same name in "
        "the same run) to mint fresh links."
    )


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    state = load(store, resolve_id(store, args.id), trust=_config.trust())
    if args.json:
        say(json.dumps(_state_json(state), indent=1, ensure_ascii=False))
        return 0
    event, decision = state.event, state.decision
    status = state.status.value
    if state.status is Status.PENDING:
        status += f" ({_left_text(event, state.status)} left)"
    fields: list[tuple[str, str]] = [
        ("id", event.request_id),
        ("name", event.name),
        ("run", event.run_id),
        ("state", status),
        ("type", f"{event.data_type}: {answer_codec(event.data_type, event.answer_schema).hint}"),
        ("prompt", event.prompt),
    ]
    if event.details:
        fields.append(("details", details_text(event.details)))
    fields += [
        ("created", format_time(event.created_at)),
        ("deadline", f"{format_time(event.deadline)} (timeout {event.timeout_seconds:g}s)"),
        ("links", _links_text(event, state.status)),
    ]
    if decision is not None and decision.status == "answered":
        fields += [
            ("answer", _value_text(decision)),
            ("by", decision.answered_by),
            ("at", format_time(decision.answered_at)),
            ("via", decision.via),
        ]
        if decision.comment:
            fields.append(("comment", decision.comment))
    elif decision is not None and decision.default_applied:
        fields.append(("answer", f"{_value_text(decision)}: {outcome_text(decision)}"))
    elif decision is not None:
        fields.append(("answer", f"none: {outcome_text(decision)}"))
    elif state.status is Status.EXPIRED:
        fields.append(("answer", "none: the deadline passed with no answer"))
    else:
        fields.append(("answer", "none yet"))
    if event.quorum is not None:
        fields += _quorum_fields(store, state)
    width = max(len(label) for label, _ in fields) + 1
    for label, value in fields:
        say(f"{label + ':':<{width}} {value}")
    return 0


def _quorum_fields(store: Store, state: EventState) -> list[tuple[str, str]]:
    """A quorum gate's rule, votes (the decision's, or those cast so far) and what is needed."""
    event, decision = state.event, state.decision
    rule = event.quorum
    assert rule is not None
    groups = ", ".join(f"{n} from {g}" for g, n in rule.groups.items())
    needs = f"{rule.approvals} distinct approvals" + (f" ({groups})" if groups else "")
    if event.requested_by:
        needs += f"; {event.requested_by} asked and cannot approve"
    if decision is not None:
        votes, needed = list(decision.votes or []), ""
    else:
        counted = tally(event, read_votes(store, state.keys))
        votes, needed = list(counted.votes), counted.needed
    fields = [("quorum", needs)]
    for vote in votes:
        what = "approved" if vote.approved else "rejected"
        why = f": {vote.reason}" if vote.reason else ""
        fields.append(("vote", f"{vote.reviewer} {what}{why} ({format_time(vote.cast_at)})"))
    if needed:
        fields.append(("needed", needed))
    return fields


def _operator(name: str | None) -> str:
    if name is not None:
        if not name.strip():
            raise ConfigError("--as needs a name, such as --as alice")
        return name.strip()
    return _config.operator_name()


def cmd_respond(args: argparse.Namespace) -> int:
    store = open_store(args)
    done = submit(
        store,
        resolve_id(store, args.id),
        args.value,
        via="cli",
        operator=_operator(args.operator),
        comment=args.comment,
        reason=args.reason,
        # Signed with this machine's key: an operator's answer, which tasks trust when they
        # trust this key (local mode, HITL_VERIFY_KEYS, or the app's HITL_OPERATOR_KEYS).
        seal=Seal(lambda: machine_signer("operator"), _config.trust()),
        inbox=_config.inbox(),
    )
    record = done.record
    if done.vote is not None:
        vote = done.vote
        what = "approved" if vote.approved else "rejected"
        left = done.tally.needed if done.tally is not None else ""
        state = f"still needed: {left}" if record is None else f"decided: {_value_text(record)}"
        say(f"voted on {vote.request_id}: {what} (by {vote.reviewer} via cli); {state}")
        return 0
    assert record is not None  # only a quorum vote leaves a gate undecided
    what = "already recorded" if done.repeated else "answered"
    say(
        f"{what} {record.request_id}: {_value_text(record)} "
        f"(by {record.answered_by} via {record.via} at {format_time(record.answered_at)})"
    )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    store = open_store(args)
    record = cancel(
        store,
        resolve_id(store, args.id),
        by=_operator(args.operator),
        reason=args.reason,
        keys=_config.trust(),
        inbox=_config.inbox(),
    )
    why = f": {record.comment}" if record.comment else ""
    say(
        f"cancelled {record.request_id} (by {record.answered_by} at "
        f"{format_time(record.answered_at)}){why}"
    )
    return 0
