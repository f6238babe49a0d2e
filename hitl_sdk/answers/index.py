"""The inbox index: which gates wait for whom, found with a few LISTs, never by reading every
record in the bucket.

When a gate opens, the task writes one empty marker per *audience* (each named reviewer, each
``group:<name>`` reviewer, or ``all`` for a gate that names no one)::

    inbox/<audience>/<deadline>/<request-id>/o.<summary>    the gate opened (write once)
    inbox/<audience>/<deadline>/<request-id>/x.<outcome>    the gate closed (write once)

The deadline (``20261126T203000Z``) sorts, so one ListObjectsV2 per audience starting after
"now minus the recent window" pages (1,000 keys a page) through exactly the gates whose deadline
is still ahead or recent: closed gates of the past are never touched, however many there are.
The summary (heading, type, run, created) and the outcome (how and by whom it closed) are
base64url JSON in the key itself, so the listing needs no GETs. Nothing is overwritten or
deleted: a closed gate simply has both markers.

Close markers are written by whoever closes the gate from the inbox, the CLI or a cancel, and by
the waiting task when it learns of any decision; a gate answered through its link shows as
open in the inbox until the task's next poll (opening it then says it was answered).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .._errors import ConfigError, HitlError, KeyExists, TransientStorageError
from ..storage.keys import _key
from ..storage.people import find_person, identity
from ..storage.records import DecisionRecord, EventRecord
from ..storage.store import Store
from .evidence import heading
from .words import verdict

log = logging.getLogger("hitl")

PREFIX = "inbox/"
ALL = "all"
GROUP_PREFIX = "group:"
RECENT = timedelta(days=7)
_STAMP = "%Y%m%dT%H%M%SZ"
# A marker's name is one file name on a local folder store: common filesystems allow 255 bytes.
# "o." and base64url of the summary (4 characters per 3 bytes) stay within 250 of them, so with
# the folder parts (audience 63, deadline 16, request id 123) a key stays far below S3's 1,024.
MAX_MARKER_NAME_BYTES = 250
MAX_SUMMARY_BYTES = (MAX_MARKER_NAME_BYTES - 2) * 3 // 4
MARK_ATTEMPTS = 4
# Answers through these mark the gate closed at once (a reviewer working through the inbox must
# not see it again), as does a cancel; the waiting task marks every other decision (link and
# API answers, timeouts) when it sees it, so those answers cost the app no extra request.
MARKED_BY_CLOSER: tuple[str, ...] = ("inbox", "cli")


def marked_by_closer(decision: DecisionRecord) -> bool:
    return decision.via in MARKED_BY_CLOSER or decision.status == "cancelled"


def audience_of_person(email: str) -> str:
    return f"u-{_key(identity(email))}"


def audience_of_group(group: str) -> str:
    return f"g-{_key(group.strip())}"


def audiences(event: EventRecord) -> list[str]:
    """Whose inboxes the gate shows in: each named reviewer (a ``group:legal`` reviewer is the
    group), or everyone the deployment allows for a gate that names no one."""
    out: list[str] = []
    for name in sorted({n for n in event.token_digests.values() if n}):
        if name.startswith(GROUP_PREFIX):
            out.append(audience_of_group(name[len(GROUP_PREFIX) :]))
        else:
            out.append(audience_of_person(name))
    return out or [ALL]


def _pack(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unpack(text: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _size(data: dict[str, Any]) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _fit(data: dict[str, Any], *fields: str) -> dict[str, Any]:
    """``data`` with its text ``fields`` shortened until its JSON takes at most
    ``MAX_SUMMARY_BYTES`` (UTF-8: a CJK character is 3 bytes, an emoji 4), so a marker's name
    fits a file name whatever the title, name or run id. The first field (the heading) is kept
    longest: the others are cut to a few characters before it is cut at all."""
    out = dict(data)
    first, *rest = fields
    for field, floor in [*((f, 12) for f in rest), (first, 8), *((f, 0) for f in fields)]:
        text = str(out.get(field) or "")
        while _size(out) > MAX_SUMMARY_BYTES and len(text) > floor:
            text = text[:-1]
            out[field] = text + "…" if text else ""
    return out


def _folder(audience: str, event: EventRecord) -> str:
    return (
        f"{PREFIX}{audience}/{event.deadline.astimezone(timezone.utc):{_STAMP}}/{event.request_id}"
    )


def open_markers(event: EventRecord) -> list[str]:
    head, _ = heading(event.name, event.prompt, event.title, event.prompt_format)
    summary = _fit(
        {
            "t": head[:120],
            "k": event.data_type,
            "c": int(event.created_at.timestamp()),
            "r": event.run_id[:60],
            "n": event.name[:60],
            "q": event.quorum.approvals if event.quorum else 0,
        },
        "t",
        "n",
        "r",
    )
    return [f"{_folder(a, event)}/o.{_pack(summary)}" for a in audiences(event)]


def close_markers(event: EventRecord, decision: DecisionRecord) -> list[str]:
    outcome = _fit(
        {
            "s": decision.status,
            "b": decision.answered_by[:80],
            "a": int(decision.answered_at.timestamp()),
            "d": decision.default_applied,
            "v": verdict(decision),
        },
        "b",
        "v",
    )
    return [f"{_folder(a, event)}/x.{_pack(outcome)}" for a in audiences(event)]


def mark(store: Store, keys: Iterable[str]) -> None:
    """Write markers, each write-once (one already there is fine). Trouble a retry may fix is
    retried a few times; what still fails is raised (a ``StorageError``): a marker that is not
    written hides a gate from the inbox, so the caller reports it rather than a warning."""
    for key in keys:
        for attempt in range(1, MARK_ATTEMPTS + 1):
            try:
                store.create_marker(key)
            except KeyExists:
                pass
            except TransientStorageError:
                if attempt == MARK_ATTEMPTS:
                    raise
                time.sleep(0.1 * 2**attempt)
                continue
            break


def mark_open(store: Store, event: EventRecord) -> None:
    """The gate's open markers; raises when one cannot be written (``new_event`` fails then,
    and calling it again writes what is missing)."""
    mark(store, open_markers(event))


def mark_closed(store: Store, event: EventRecord, decision: DecisionRecord) -> None:
    """The gate's close markers. The decision stands whatever happens here, so a marker that
    cannot be written is logged as an error (the gate shows as open in the inbox until one is)."""
    try:
        mark(store, close_markers(event, decision))
    except HitlError as exc:
        log.error(
            "hitl: gate %r (%s) is decided, but its inbox close marker could not be written "
            "(%s): the inbox lists it as open, and opening it there shows the decision",
            event.name,
            event.request_id,
            exc,
        )


@dataclass(frozen=True)
class IndexEntry:
    """One gate as the inbox lists it (from the index keys alone)."""

    request_id: str
    title: str
    data_type: str
    run_id: str
    name: str
    created: datetime
    deadline: datetime
    quorum: int
    closed: dict[str, Any] | None  # status, by, at, verdict, default_applied

    def is_open(self, now: datetime) -> bool:
        return self.closed is None and now < self.deadline


def listing(store: Store, wanted: Iterable[str], now: datetime) -> list[IndexEntry]:
    """The gates of these audiences whose deadline is ahead or within ``RECENT``: one LIST per
    audience (a page per 1,000 keys), no GETs. Sorted by deadline, most urgent first."""
    start = (now - RECENT).astimezone(timezone.utc)
    found: dict[str, dict[str, Any]] = {}
    for audience in dict.fromkeys(wanted):
        folder = f"{PREFIX}{audience}/"
        for rest in store.index_names(folder, start_after=f"{folder}{start:{_STAMP}}"):
            parts = rest.split("/")
            if len(parts) != 3 or len(parts[2]) < 2:
                continue
            stamp, request_id, marker = parts
            item = found.setdefault(request_id, {"deadline": stamp})
            if marker.startswith("o."):
                item["open"] = _unpack(marker[2:])
            elif marker.startswith("x."):
                item["closed"] = _unpack(marker[2:])
    entries: list[IndexEntry] = []
    for request_id, item in found.items():
        summary = item.get("open")
        if summary is None:
            continue
        try:
            deadline = datetime.strptime(item["deadline"], _STAMP).replace(tzinfo=timezone.utc)
            created = datetime.fromtimestamp(int(summary.get("c", 0)), timezone.utc)
        except (ValueError, OverflowError):
            continue
        closed = item.get("closed")
        if closed is not None:
            closed = {
                "status": str(closed.get("s", "answered")),
                "by": str(closed.get("b", "")),
                "at": datetime.fromtimestamp(int(closed.get("a", 0)), timezone.utc),
                "verdict": str(closed.get("v", "")),
                "default_applied": bool(closed.get("d", False)),
            }
        entries.append(
            IndexEntry(
                request_id=request_id,
                title=str(summary.get("t") or request_id),
                data_type=str(summary.get("k", "")),
                run_id=str(summary.get("r", "")),
                name=str(summary.get("n", "")),
                created=created,
                deadline=deadline,
                quorum=int(summary.get("q") or 0),
                closed=closed,
            )
        )
    entries.sort(key=lambda e: (e.deadline, e.request_id))
    return entries


def person_audiences(email: str, groups: Iterable[str], anyone: bool) -> list[str]:
    """The audiences a signed-in person reads: their own, their groups', and ``all`` when the
    deployment's rule lets them answer gates that name no one."""
    out = [audience_of_person(email), *(audience_of_group(g) for g in groups)]
    return [*out, ALL] if anyone else out


def reviewer_for(event: EventRecord, email: str, groups: Iterable[str], anyone: bool) -> str | None:
    """As whom a signed-in person answers this gate, or ``None`` if it does not name them: the
    reviewer name that is their email (any case), else their email when the gate names one of
    their groups (``group:legal``), or names no one and the deployment lets them answer."""
    named = {n for n in event.token_digests.values() if n}
    people = sorted(n for n in named if not n.startswith(GROUP_PREFIX))
    name = find_person(email, people)
    if name is not None:
        return name
    wanted = {f"{GROUP_PREFIX}{g}" for g in groups}
    if named & wanted:
        return email
    if not named and anyone:
        return email
    return None


INBOX_VARIABLE = "HITL_INBOX"


def inbox_setting(text: str | None) -> bool | None:
    """``HITL_INBOX`` (tasks and the app): whether gates write the inbox index; ``None``
    when unset (then what the deployment says). ``ConfigError`` for anything but on/off."""
    if text is None or not text.strip():
        return None
    word = text.strip().lower()
    if word in ("on", "true", "1", "yes"):
        return True
    if word in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{INBOX_VARIABLE} must be on or off, not {text!r}")
