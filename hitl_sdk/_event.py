"""``new_event`` and ``Event.wait``: open a gate, then wait durably for its typed answer.

Both have a sync form and an ``.aio`` form for a running event loop (Flyte tasks run in one).
The decisions (ids, deadlines, validation, what a record means) are pure functions shared by
both; only the waiting and the storage calls differ (``asyncio.to_thread`` in ``.aio``).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar, overload
from urllib.parse import quote

from . import _config, _notify
from . import _console as _announce
from ._errors import (
    ConfigError,
    InvalidValue,
    KeyExists,
    QuestionChanged,
    StorageError,
    TransientStorageError,
)
from ._notify import channels
from ._poller import backoff_seconds, poller
from ._reviewers import Reviewers, reviewer_channels, reviewer_groups, tokens_for
from .answers import answer_path as _answers
from .answers import index as _inbox
from .answers.answer_path import outcome
from .answers.codecs import check_text, codec_for
from .answers.evidence import (
    DEFAULT_PROMPT,
    PROMPT_FORMATS,
    Details,
    PromptFormat,
    check_details,
    details_text,
)
from .answers.quorum import QuorumSpec, make_rule
from .answers.types import UNSET, RequireReason, TypeSpec, spec_for
from .flyte import report as _flyte
from .storage.keys import EventKeys, token_digest
from .storage.people import find_person
from .storage.records import DecisionRecord, EventRecord, GrantRecord, utcnow
from .storage.store import Store

log = logging.getLogger("hitl")

T = TypeVar("T")
MAX_TITLE_CHARS = 200
IfChanged = Literal["error", "new"]
IF_CHANGED: tuple[str, ...] = ("error", "new")
# Bounds on what a gate may carry: the reviewer's page must fit Lambda's 6 MB response even
# with every character escaped, and a deadline must be a date.
MAX_NAME_CHARS = 200
MAX_PROMPT_CHARS = 10_000
MAX_DETAILS_CHARS = 200_000
MAX_TIMEOUT_SECONDS = 366 * 86400
MAX_POLL_SECONDS = 86400
# How long opening a gate keeps retrying a store that throttles or drops connections.
OPEN_RETRY_SECONDS = 60.0


# -- opening a gate ---------------------------------------------------------------------------


def _check_text(label: str, text: object, limit: int, *, optional: bool = False) -> None:
    if optional and text is None:
        return
    if not isinstance(text, str):
        raise ConfigError(f"{label} must be a string, got {type(text).__name__}")
    if len(text) > limit:
        raise ConfigError(
            f"{label} is {len(text):,} characters; at most {limit:,} fit a reviewer's page "
            "(Lambda answers 6 MB at most): put the bulk in a report or a link"
        )
    try:
        check_text(text, label)
    except InvalidValue as exc:
        raise ConfigError(str(exc)) from exc


def _check_options(
    name: object,
    scope: str,
    prompt: object,
    details: object,
    timeout_seconds: float,
    poll: float,
) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("name must be a non-empty string, such as 'review_decision'")
    _check_text("name", name, MAX_NAME_CHARS)
    if scope != "run":
        raise ConfigError(f"scope {scope!r} is not supported: only scope='run' is")
    _check_text("prompt", prompt, MAX_PROMPT_CHARS)
    if details is None or isinstance(details, str):
        _check_text("details", details, MAX_DETAILS_CHARS, optional=True)
    for label, number, most in (
        ("timeout_seconds", timeout_seconds, MAX_TIMEOUT_SECONDS),
        ("poll_interval_seconds", poll, MAX_POLL_SECONDS),
    ):
        number_ok = isinstance(number, (int, float)) and not isinstance(number, bool)
        if not number_ok or not 0 < number <= most:  # also refuses nan and inf
            raise ConfigError(
                f"{label} must be a positive number of seconds, at most {most:,} "
                f"({most / 86400:g} days); got {number!r}"
            )


@dataclass
class _Opening:
    """What new_event decided before touching storage."""

    record: EventRecord
    tokens: dict[str, str]
    spec: TypeSpec
    # Apprise URLs (secrets: kept in this process only): the gate's, and each reviewer's own.
    notify: list[str] = field(default_factory=list)
    reviewer_channels: dict[str, str] = field(default_factory=dict)
    backup_channels: dict[str, str | None] = field(default_factory=dict)


def _plan(
    name: str,
    data_type: object,
    scope: str,
    prompt: str,
    timeout_seconds: float,
    poll_interval_seconds: float,
    reviewers: Reviewers | None,
    details: Details | None,
    if_changed: str,
    default: Any = UNSET,
    require_reason: RequireReason = "reject",
    title: str | None = None,
    prompt_format: PromptFormat = "text",
    notify: str | Sequence[str] | None = None,
    remind_every: float | None = None,
    escalate_after: float | None = None,
    backups: Reviewers | None = None,
    quorum: QuorumSpec | None = None,
    requested_by: str | None = None,
) -> _Opening:
    _check_options(name, scope, prompt, details, timeout_seconds, poll_interval_seconds)
    if if_changed not in IF_CHANGED:
        raise ConfigError(f"if_changed must be one of {', '.join(IF_CHANGED)}, not {if_changed!r}")
    if title is not None:
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_CHARS:
            raise ConfigError(f"title must be text of 1 to {MAX_TITLE_CHARS} characters")
        check_text(title, "the title")
    if prompt_format not in PROMPT_FORMATS:
        raise ConfigError(f"prompt_format must be 'text' or 'markdown', not {prompt_format!r}")
    details = check_details(details)
    for label, seconds in (("remind_every", remind_every), ("escalate_after", escalate_after)):
        if seconds is not None and (
            not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0
        ):
            raise ConfigError(f"{label} must be a positive number of seconds, not {seconds!r}")
    if escalate_after is not None and not backups:
        raise ConfigError("escalate_after needs backups=: who the gate goes to, such as ['carol']")
    backup_names = list(backups or [])
    if backups is not None:
        tokens_for(backups)  # the same rules as reviewers' names
    for backup in backup_names:
        if isinstance(backup, str) and (found := find_person(backup, list(reviewers or []))):
            raise ConfigError(f"backup {backup!r} is already a reviewer of this gate ({found!r})")
    spec = spec_for(data_type, require_reason=require_reason)
    stored_default = None
    if default is not UNSET:
        try:
            stored_default = spec.to_json(default)
        except InvalidValue as exc:
            raise ConfigError(
                f"default={default!r} is not a valid answer to this gate ({spec.name}): {exc}"
            ) from None
    tokens = tokens_for(reviewers)
    groups = reviewer_groups(reviewers, backups)
    if requested_by is not None and (not isinstance(requested_by, str) or not requested_by.strip()):
        raise ConfigError(f"requested_by must be the requester's name, not {requested_by!r}")
    if requested_by is not None and spec.name != "approval":
        raise ConfigError("requested_by= goes with approvals (hitl.approve): who may not approve")
    rule = None
    if quorum is not None:
        if spec.name != "approval":
            raise ConfigError("quorum= is for approvals: use hitl.approve(..., quorum=2)")
        if reviewers is None:
            raise ConfigError("quorum= needs named reviewers: reviewers=['alice', 'bob', ...]")
        rule = make_rule(quorum, [*tokens, *backup_names], groups, requested_by)
    run_id = _flyte.run_name() or _config.run_id()
    fingerprint = question_fingerprint(spec.name, prompt, details, spec.schema, prompt_format)
    # With if_changed="new" the question is part of the gate's identity: another question
    # is another gate, the same question (a retry) the same gate.
    identity = name if if_changed == "error" else f"{name}\x00{fingerprint}"
    keys = EventKeys.for_name(run_id, identity)
    now = utcnow()
    record = EventRecord(
        request_id=keys.request_id,
        run_id=run_id,
        name=name,
        scope=scope,
        data_type=spec.name,
        answer_schema=spec.schema,
        has_default=default is not UNSET,
        default=stored_default,
        title=title.strip() if title else None,
        prompt_format=prompt_format,
        remind_every=remind_every,
        escalate_after=escalate_after,
        backups=backup_names,
        reviewer_groups=groups,
        quorum=rule,
        requested_by=requested_by.strip() if requested_by else None,
        prompt=prompt,
        created_at=now,
        deadline=now + timedelta(seconds=timeout_seconds),
        timeout_seconds=timeout_seconds,
        poll_interval_seconds=poll_interval_seconds,
        token_digests={token_digest(t): reviewer for reviewer, t in tokens.items()},
        details=details,
        fingerprint=fingerprint,
    )
    gate_channels = channels(notify if notify is not None else _config.settings().notify)
    own = reviewer_channels(reviewers)
    backup_channels: dict[str, str | None] = dict.fromkeys(backup_names)
    backup_channels.update(reviewer_channels(backups))
    if (gate_channels or own) and importlib.util.find_spec("apprise") is None:
        raise ConfigError(
            "notifications need apprise: pip install 'hitl-gates[notify]' (or apprise)"
        )
    return _Opening(record, tokens, spec, gate_channels, own, backup_channels)


def question_fingerprint(
    data_type: str,
    prompt: str,
    details: Details | None,
    schema: dict[str, Any] | None = None,
    prompt_format: str = "text",
) -> str:
    """SHA-256 of what a reviewer is shown and asked: the same question, the same digest."""
    asked: list[Any] = [data_type, prompt, details]
    if schema is not None:  # the choices offered are part of the question
        asked.append(schema)
    if prompt_format != "text":  # so is how the prompt is shown
        asked.append(prompt_format)
    shown = json.dumps(asked, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(shown.encode()).hexdigest()


def _clip(text: str | None, limit: int = 160) -> str:
    text = "" if text is None else " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _refuse_foreign(existing: EventRecord, wanted: EventRecord) -> None:
    """Adopt an existing event only when it is this very gate asking this very question."""
    if (existing.run_id, existing.name) != (wanted.run_id, wanted.name):
        raise ConfigError(
            f"event id {wanted.request_id} already belongs to gate {existing.name!r} of run "
            f"{existing.run_id!r}, not to {wanted.name!r} of run {wanted.run_id!r} (a key "
            "collision): give the gate another name; its answer is not yours to take"
        )
    if existing.data_type != wanted.data_type:
        raise ConfigError(
            f"event {wanted.name!r} already exists in run {wanted.run_id!r} with data_type "
            f"{existing.data_type}, not {wanted.data_type}: give the new gate another name"
        )
    if existing.fingerprint and existing.fingerprint != wanted.fingerprint:
        raise QuestionChanged(
            f"gate {wanted.name!r} of run {wanted.run_id!r} was opened with another question, "
            f"and an answer belongs to the question its reviewer saw. Before: prompt "
            f"{_clip(existing.prompt)}, details {_clip(details_text(existing.details))}. "
            f"Now: prompt {_clip(wanted.prompt)}, details "
            f"{_clip(details_text(wanted.details))}. Give this question "
            "its own gate name, or pass if_changed='new' to open a new gate whenever the "
            "question changes (a prompt that embeds model output, for one)"
        )


def _open(store: Store, opening: _Opening) -> tuple[EventRecord, DecisionRecord | None]:
    """Create the event, or adopt the existing one of the same name in this run; the record
    and, for a gate that is already closed, its decision.

    Adopting an open gate mints fresh links as grants: the first tokens were never stored, so
    a restarted task cannot show them again, but the links already sent keep working. A closed
    gate gets no new links: nobody can answer it any more.

    Storage trouble that a retry may fix (throttling, a dropped connection) is retried with
    backoff for up to ``OPEN_RETRY_SECONDS``: every write here is an exclusive create that
    recognises its own earlier attempt, so trying again is safe.
    """
    give_up = time.monotonic() + OPEN_RETRY_SECONDS
    failures = 0
    while True:
        try:
            return _open_once(store, opening)
        except TransientStorageError as exc:
            failures += 1
            pause = backoff_seconds(failures, 0.5)
            if time.monotonic() + pause > give_up:
                raise
            log.warning(
                "hitl: storage error opening gate %r (%s); retrying", opening.record.name, exc
            )
            time.sleep(pause)


def _open_once(store: Store, opening: _Opening) -> tuple[EventRecord, DecisionRecord | None]:
    wanted = opening.record
    try:
        store.create_event(wanted)
        _inbox.mark_open(store, wanted)
        return wanted, None
    except KeyExists:
        pass
    keys = EventKeys.parse(wanted.request_id)
    existing = store.get_event(keys)
    if existing is None:
        raise StorageError(f"event {wanted.request_id} exists but could not be read back")
    _refuse_foreign(existing, wanted)
    decision = store.get_decision(keys)
    if decision is None:
        for reviewer, token in opening.tokens.items():
            grant = GrantRecord(request_id=existing.request_id, reviewer=reviewer)
            store.create_grant(token_digest(token), grant)
        _inbox.mark_open(store, existing)  # in case the first run stopped before it could
    return existing, decision


class NewEvent:
    """``hitl.new_event``: open a human-in-the-loop gate and return its ``Event``.

    Same signature as ``flyteplugins.hitl.new_event``; ``await hitl.new_event.aio(...)`` in a
    running event loop (Flyte tasks run in one). Calling it again with the same name in the
    same run returns the same event (same id, same deadline; links already sent keep working).

    Example::

        event = hitl.new_event("review_decision", data_type=bool, prompt="Ship it?")
        print(event.form_url)      # send this link to the reviewer
        approved = event.wait()    # True / False

    Raises ``ConfigError`` for a bad option, ``StorageError`` subclasses for storage trouble.
    """

    @overload
    def __call__(
        self,
        name: str,
        data_type: type[T],
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        *,
        reviewers: Reviewers | None = None,
        details: Details | None = None,
        if_changed: IfChanged = "error",
        default: Any = UNSET,
        title: str | None = None,
        prompt_format: PromptFormat = "text",
        notify: str | Sequence[str] | None = None,
        remind_every: float | None = None,
        escalate_after: float | None = None,
        backups: Reviewers | None = None,
    ) -> Event[T]: ...

    @overload
    def __call__(
        self,
        name: str,
        data_type: Any,
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        *,
        reviewers: Reviewers | None = None,
        details: Details | None = None,
        if_changed: IfChanged = "error",
        default: Any = UNSET,
        title: str | None = None,
        prompt_format: PromptFormat = "text",
        notify: str | Sequence[str] | None = None,
        remind_every: float | None = None,
        escalate_after: float | None = None,
        backups: Reviewers | None = None,
    ) -> Event[Any]: ...

    def __call__(
        self,
        name: str,
        data_type: Any,
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        *,
        reviewers: Reviewers | None = None,
        details: Details | None = None,
        if_changed: IfChanged = "error",
        default: Any = UNSET,
        title: str | None = None,
        prompt_format: PromptFormat = "text",
        notify: str | Sequence[str] | None = None,
        remind_every: float | None = None,
        escalate_after: float | None = None,
        backups: Reviewers | None = None,
    ) -> Event[Any]:
        """Open a gate and return its ``Event`` (blocking; see ``aio`` in a running loop)."""
        opening = _plan(
            name,
            data_type,
            scope,
            prompt,
            timeout_seconds,
            poll_interval_seconds,
            reviewers,
            details,
            if_changed,
            default,
            title=title,
            prompt_format=prompt_format,
            notify=notify,
            remind_every=remind_every,
            escalate_after=escalate_after,
            backups=backups,
        )
        store = _config.get_store()
        record, decision = _open(store, opening)
        tokens = opening.tokens if decision is None else {}
        return Event._opened(record, tokens, store, decision, opening.spec, opening)

    @overload
    async def aio(
        self,
        name: str,
        data_type: type[T],
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        *,
        reviewers: Reviewers | None = None,
        details: Details | None = None,
        if_changed: IfChanged = "error",
        default: Any = UNSET,
        title: str | None = None,
        prompt_format: PromptFormat = "text",
        notify: str | Sequence[str] | None = None,
        remind_every: float | None = None,
        escalate_after: float | None = None,
        backups: Reviewers | None = None,
    ) -> Event[T]: ...

    @overload
    async def aio(
        self,
        name: str,
        data_type: Any,
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        *,
        reviewers: Reviewers | None = None,
        details: Details | None = None,
        if_changed: IfChanged = "error",
        default: Any = UNSET,
        title: str | None = None,
        prompt_format: PromptFormat = "text",
        notify: str | Sequence[str] | None = None,
        remind_every: float | None = None,
        escalate_after: float | None = None,
        backups: Reviewers | None = None,
    ) -> Event[Any]: ...

    async def aio(
        self,
        name: str,
        data_type: Any,
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        *,
        reviewers: Reviewers | None = None,
        details: Details | None = None,
        if_changed: IfChanged = "error",
        default: Any = UNSET,
        title: str | None = None,
        prompt_format: PromptFormat = "text",
        notify: str | Sequence[str] | None = None,
        remind_every: float | None = None,
        escalate_after: float | None = None,
        backups: Reviewers | None = None,
    ) -> Event[Any]:
        """``await hitl.new_event.aio(...)``: the same as ``new_event(...)``, for a running loop.

        Storage calls run in a worker thread, so the loop keeps serving other tasks.
        """
        opening = _plan(
            name,
            data_type,
            scope,
            prompt,
            timeout_seconds,
            poll_interval_seconds,
            reviewers,
            details,
            if_changed,
            default,
            title=title,
            prompt_format=prompt_format,
            notify=notify,
            remind_every=remind_every,
            escalate_after=escalate_after,
            backups=backups,
        )
        store = _config.get_store()
        record, decision = await asyncio.to_thread(_open, store, opening)
        tokens = opening.tokens if decision is None else {}
        event = Event._opened(record, tokens, store, decision, opening.spec, opening)
        if event._report is not None:
            await event._report.flush_aio()
        return event

    def __repr__(self) -> str:
        return "<function hitl_sdk.new_event>"


# Errors about the arguments (TypeError) name the public call, not this class.
NewEvent.__call__.__qualname__ = "new_event"
NewEvent.aio.__qualname__ = "new_event.aio"
new_event = NewEvent()


# -- waiting ----------------------------------------------------------------------------------


def _decision(future: Future[DecisionRecord]) -> DecisionRecord:
    """Block until the poller settles ``future``; Ctrl-C still interrupts (short waits)."""
    try:
        while True:
            try:
                return future.result(timeout=1.0)
            except FutureTimeout:
                continue
    except BaseException:
        if not future.done():  # interrupted: stop watching for a waiter that is gone
            poller().forget(future)
        raise


def watch_all(events: Sequence[Event[Any]]) -> list[Future[DecisionRecord]]:
    """Each gate's decision as a future; the open ones registered with the poller at once."""
    futures: list[Future[DecisionRecord]] = []
    open_gates: dict[int, list[tuple[int, Event[Any]]]] = {}
    for index, event in enumerate(events):
        done: Future[DecisionRecord] = Future()
        known = event._decided or event.closed_with
        if known is not None:
            done.set_result(known)
        else:
            open_gates.setdefault(id(event._store), []).append((index, event))
        futures.append(done)
    for gates in open_gates.values():
        store = gates[0][1]._store
        watched = poller().watch_many(store, [gate._record for _, gate in gates])
        for (index, gate), future in zip(gates, watched, strict=True):
            future.add_done_callback(gate._remember)
            futures[index] = future
    return futures


class Wait(Generic[T]):
    """``event.wait()``: block until the gate is answered and return the answer as the gate's
    ``data_type``; ``await event.wait.aio()`` in a running event loop.

    Polls the store every ``poll_interval_seconds`` until the wall-clock deadline stored with
    the event; storage trouble is retried with backoff. Raises ``EventTimeout`` (a
    ``TimeoutError``) when the deadline passes with no answer.
    """

    def __init__(self, event: Event[T]) -> None:
        self._event = event

    def __call__(self) -> T:
        """Block until the answer arrives and return it (``EventTimeout`` at the deadline)."""
        return self._event._wait()

    async def aio(self) -> T:
        """``await event.wait.aio()``: the same as ``wait()``, without blocking the loop."""
        return await self._event._wait_aio()

    def __repr__(self) -> str:
        return f"<bound method wait of {self._event!r}>"


Wait.__call__.__qualname__ = "wait"
Wait.aio.__qualname__ = "wait.aio"


class Event(Generic[T]):
    """A gate opened by ``new_event``. Wait for its answer with ``wait()``/``wait.aio()``.

    ``form_url`` is the reviewer link (token included), ``links`` maps each named reviewer to
    their personal link, ``api_url`` is the JSON API. A gate that was already closed when it
    was opened again (same name, same run) has no links: ``closed`` is True and ``wait()``
    returns its answer at once.
    """

    #: the gate's panel in its Flyte task's report (None outside a Flyte task with a report)
    _report: _flyte.ReportPanel | None = None

    def __init__(
        self,
        record: EventRecord,
        tokens: dict[str, str],
        store: Store,
        spec: TypeSpec | None = None,
    ) -> None:
        app_url = _config.settings().app_url
        self._record = record
        self._store = store
        self.request_id = record.request_id
        self.name = record.name
        self.scope = record.scope
        self.prompt = record.prompt
        self._spec = spec
        self.data_type: Any = (
            spec.python_type
            if spec is not None
            else (object if record.answer_schema else codec_for(record.data_type).python_type)
        )
        self.timeout_seconds = record.timeout_seconds
        self.poll_interval_seconds = record.poll_interval_seconds
        self.deadline = record.deadline
        self.api_url = f"{app_url}/submit/json"
        self.response_path = f"{store.url}/{EventKeys.parse(record.request_id).decision}"
        form = f"{app_url}/form/{quote(record.request_id)}"
        #: reviewer name ("" for an anonymous link) -> that reviewer's form link
        self.links = {
            reviewer: f"{form}?token={quote(token)}" for reviewer, token in tokens.items()
        }
        self._tokens = tokens
        #: the reviewer link; without a token when the gate was closed before it was opened
        self.form_url = next(iter(self.links.values()), form)
        #: the decision the gate already had when it was opened, if any
        self.closed_with: DecisionRecord | None = None
        # The decision once a wait has seen it: later waits need no request.
        self._decided: DecisionRecord | None = None
        # The gate's notify channels and each reviewer's own (secrets: never shown).
        self._channels: tuple[list[str], dict[str, str]] = ([], {})
        self._closing_sent = False
        self.wait: Wait[T] = Wait(self)

    @classmethod
    def _opened(
        cls,
        record: EventRecord,
        tokens: dict[str, str],
        store: Store,
        decision: DecisionRecord | None = None,
        spec: TypeSpec | None = None,
        opening: _Opening | None = None,
    ) -> Event[Any]:
        event: Event[Any] = cls(record, tokens, store, spec)
        if opening is not None:
            event._channels = (opening.notify, opening.reviewer_channels)
            if decision is None and record is opening.record:  # opened now, not re-adopted
                _notify.announce_open(record, event.links, *event._channels)
            if decision is None:  # reminders and escalation ride on this process's poll loop
                _notify.register(record, event.links, *event._channels, opening.backup_channels)
        event.closed_with = decision
        _announce.show_link_somewhere()
        for line in _announce.opening_lines(event, decision):
            log.info("%s", line)
        event._report = _flyte.ReportPanel.for_current_task(record.request_id)
        if event._report is not None:
            event._report.show(_flyte.panel_html(event, decision))
            event._report.flush()  # skipped inside a running loop: new_event.aio flushes
        return event

    @property
    def closed(self) -> bool:
        """True when the gate had its answer (or timed out) before this ``new_event`` call."""
        return self.closed_with is not None

    def _show_decision(self, decision: DecisionRecord) -> _flyte.ReportPanel | None:
        """Put the answer (or the timeout) in the task report, and tell the gate's channels
        (once); the panel to flush, if any."""
        gate, own = self._channels
        if (gate or own) and not self._closing_sent and self.closed_with is None:
            self._closing_sent = True
            _notify.announce_close(self._record, decision, gate, own)
        if self._report is not None:
            self._report.show(_flyte.panel_html(self, decision))
        return self._report

    def cancel(self, reason: str | None = None, *, by: str | None = None) -> None:
        """Close the gate now with a terminal ``cancelled`` record: its link says so, and
        ``wait()`` raises ``EventCancelled``. ``AlreadyAnswered`` (or ``EventExpired``) if it
        was closed first; cancelling it again is no error."""
        who = by or _operator_name()
        record = _answers.cancel(self._store, self.request_id, by=who, reason=reason, via="sdk")
        self._decided = record

    @property
    def token(self) -> str:
        """The capability token in ``form_url`` (for the JSON API's ``token`` field); empty
        for a gate that was already closed."""
        return next(iter(self._tokens.values()), "")

    def __repr__(self) -> str:
        return f"Event(name={self.name!r}, request_id={self.request_id!r})"

    def _watch(self) -> Future[DecisionRecord]:
        """The gate's decision as a future: the shared poller's, or settled already."""
        return watch_all([self])[0]

    def _remember(self, future: Future[DecisionRecord]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._decided = future.result()

    def _finish(self, decision: DecisionRecord) -> T:
        """The answer (or the typed error), after showing it in the task report."""
        if (panel := self._show_decision(decision)) is not None:
            panel.flush()
        result: T = outcome(self._record, decision, self._spec)
        return result

    def _wait(self) -> T:
        return self._finish(_decision(self._watch()))

    async def _wait_aio(self) -> T:
        future = self._watch()
        try:
            decision = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            poller().forget(future)
            raise
        if (panel := self._show_decision(decision)) is not None:
            await panel.flush_aio()
        result: T = outcome(self._record, decision, self._spec)
        return result


def _operator_name() -> str:
    """Who cancels from code: the OS user, as ``hitl cancel`` records it."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        return "task"
