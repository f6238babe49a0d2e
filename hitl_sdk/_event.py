"""``new_event`` and ``Event.wait``: open a gate, then wait durably for its typed answer.

Both have a sync form and an ``.aio`` form for a running event loop (Flyte tasks run in one).
The decisions (ids, deadlines, validation, what a record means) are pure functions shared by
both; only the waiting and the storage calls differ (``asyncio.to_thread`` in ``.aio``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from . import _config, _flyte
from ._answers import outcome
from ._codecs import codec_for
from ._errors import ConfigError, KeyExists, StorageError, TransientStorageError
from ._keys import EventKeys, new_token, token_digest
from ._models import DecisionRecord, EventRecord, GrantRecord, utcnow
from ._store import Store

log = logging.getLogger("hitl")

T = TypeVar("T")
MAX_BACKOFF_SECONDS = 60.0
# Past the deadline, how long a wait keeps retrying a failing store before giving up.
STORE_GRACE_SECONDS = 300.0


class _Twin(Generic[T]):
    """A callable with a sync ``__call__`` and an ``aio`` coroutine twin."""

    def __init__(self, sync: Callable[..., T], aio: Callable[..., Awaitable[T]]) -> None:
        self._sync, self.aio = sync, aio

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        return self._sync(*args, **kwargs)


# -- opening a gate ---------------------------------------------------------------------------


def _check_options(
    name: object, scope: str, prompt: object, timeout_seconds: float, poll: float
) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("name must be a non-empty string, such as 'review_decision'")
    if scope != "run":
        raise ConfigError(f"scope {scope!r} is not supported: only scope='run' is")
    if not isinstance(prompt, str):
        raise ConfigError("prompt must be a string")
    for label, number in (("timeout_seconds", timeout_seconds), ("poll_interval_seconds", poll)):
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not number > 0:
            raise ConfigError(f"{label} must be a positive number of seconds, got {number!r}")


def _tokens_for(reviewers: Sequence[str] | None) -> dict[str, str]:
    """One fresh token per reviewer (or one anonymous link): reviewer -> token."""
    if reviewers is None:
        return {"": new_token()}
    names = list(reviewers)
    if not names or any(not isinstance(n, str) or not n.strip() for n in names):
        raise ConfigError("reviewers must be a non-empty list of names, such as ['alice']")
    if len(set(names)) != len(names):
        raise ConfigError(f"reviewers has duplicate names: {names!r}")
    return {n: new_token() for n in names}


@dataclass
class _Opening:
    """What new_event decided before touching storage."""

    record: EventRecord
    tokens: dict[str, str]


def _plan(
    name: str,
    data_type: type,
    scope: str,
    prompt: str,
    timeout_seconds: float,
    poll_interval_seconds: float,
    reviewers: Sequence[str] | None,
    details: str | None,
) -> _Opening:
    _check_options(name, scope, prompt, timeout_seconds, poll_interval_seconds)
    codec = codec_for(data_type)
    tokens = _tokens_for(reviewers)
    run_id = _flyte.run_name() or _config.run_id()
    keys = EventKeys.for_name(run_id, name)
    now = utcnow()
    record = EventRecord(
        request_id=keys.request_id,
        run_id=run_id,
        name=name,
        scope=scope,
        data_type=codec.name,
        prompt=prompt,
        created_at=now,
        deadline=now + timedelta(seconds=timeout_seconds),
        timeout_seconds=timeout_seconds,
        poll_interval_seconds=poll_interval_seconds,
        token_digests={token_digest(t): reviewer for reviewer, t in tokens.items()},
        details=details,
    )
    return _Opening(record, tokens)


def _open(store: Store, opening: _Opening) -> EventRecord:
    """Create the event, or adopt the existing one of the same name in this run.

    Adopting mints fresh links as grants: the first tokens were never stored, so a restarted
    task cannot show them again, but the links already sent keep working.
    """
    wanted = opening.record
    try:
        store.create_event(wanted)
        return wanted
    except KeyExists:
        pass
    existing = store.get_event(EventKeys.parse(wanted.request_id))
    if existing is None:
        raise StorageError(f"event {wanted.request_id} exists but could not be read back")
    if existing.data_type != wanted.data_type:
        raise ConfigError(
            f"event {wanted.name!r} already exists in run {wanted.run_id!r} with data_type "
            f"{existing.data_type}, not {wanted.data_type}: give the new gate another name"
        )
    for reviewer, token in opening.tokens.items():
        grant = GrantRecord(request_id=existing.request_id, reviewer=reviewer)
        store.create_grant(token_digest(token), grant)
    return existing


def _new_event(
    name: str,
    data_type: type,
    scope: str = "run",
    prompt: str = "Please provide a value",
    timeout_seconds: int | float = 3600,
    poll_interval_seconds: int | float = 5,
    *,
    reviewers: Sequence[str] | None = None,
    details: str | None = None,
) -> Event:
    opening = _plan(
        name, data_type, scope, prompt, timeout_seconds, poll_interval_seconds, reviewers, details
    )
    store = _config.get_store()
    record = _open(store, opening)
    return Event._opened(record, opening.tokens, store)


async def _new_event_aio(
    name: str,
    data_type: type,
    scope: str = "run",
    prompt: str = "Please provide a value",
    timeout_seconds: int | float = 3600,
    poll_interval_seconds: int | float = 5,
    *,
    reviewers: Sequence[str] | None = None,
    details: str | None = None,
) -> Event:
    opening = _plan(
        name, data_type, scope, prompt, timeout_seconds, poll_interval_seconds, reviewers, details
    )
    store = _config.get_store()
    record = await asyncio.to_thread(_open, store, opening)
    event = Event._opened(record, opening.tokens, store)
    if event._report is not None:
        await event._report.flush_aio()
    return event


new_event = _Twin(_new_event, _new_event_aio)
new_event.__doc__ = """Open a human-in-the-loop gate and return its ``Event``.

    Same signature as ``flyteplugins.hitl.new_event``; ``await hitl.new_event.aio(...)`` in a
    running loop. Calling it again with the same name in the same run returns the same event
    (same id, same deadline; links already sent keep working).

    Example::

        event = hitl.new_event("review_decision", data_type=bool, prompt="Ship it?")
        print(event.form_url)      # send this link to the reviewer
        approved = event.wait()    # True / False

    Raises ``ConfigError`` for a bad option, ``StorageError`` subclasses for storage trouble.
    """


# -- waiting ----------------------------------------------------------------------------------


@dataclass
class _Poll:
    """The wait loop's state machine: what to do after each read. No I/O here."""

    event: EventRecord
    failures: int = 0

    def delay(self, now: datetime) -> float:
        """Seconds to sleep before the next read: the poll interval, never past the deadline."""
        remaining = (self.event.deadline - now).total_seconds()
        return max(0.0, min(self.event.poll_interval_seconds, remaining))

    def backoff(self, exc: TransientStorageError, now: datetime) -> float:
        """Seconds to wait after a transient failure, or re-raise when it has gone on too long."""
        self.failures += 1
        past_deadline = (now - self.event.deadline).total_seconds()
        if past_deadline > STORE_GRACE_SECONDS:
            raise exc
        log.warning("hitl: storage error while waiting (%s); retrying", exc)
        base = min(MAX_BACKOFF_SECONDS, self.event.poll_interval_seconds * 2 ** (self.failures - 1))
        return float(base * random.uniform(0.5, 1.0))

    def recovered(self) -> None:
        self.failures = 0


def _timeout_record(event: EventRecord) -> DecisionRecord:
    return DecisionRecord(
        request_id=event.request_id, status="timed_out", answered_by="deadline", via="timeout"
    )


def _step(store: Store, event: EventRecord) -> DecisionRecord | None:
    """One poll: the decision if there is one; past the deadline, write the timeout (or lose
    the race to an answer and return that)."""
    keys = EventKeys.parse(event.request_id)
    decision = store.get_decision(keys)
    if decision is not None or utcnow() < event.deadline:
        return decision
    with contextlib.suppress(KeyExists):
        store.create_decision(_timeout_record(event))
    return store.get_decision(keys)


def _show_link_somewhere() -> None:
    """A plain script has configured no logging, and Python drops INFO then: give hitl's logger
    a stderr handler of its own, so the person running it sees where to answer."""
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


class Event:
    """A gate opened by ``new_event``. Wait for its answer with ``wait()``/``wait.aio()``."""

    #: the gate's panel in its Flyte task's report (None outside a Flyte task with a report)
    _report: _flyte.ReportPanel | None = None

    def __init__(self, record: EventRecord, tokens: dict[str, str], store: Store) -> None:
        app_url = _config.settings().app_url
        self._record = record
        self._store = store
        self.request_id = record.request_id
        self.name = record.name
        self.scope = record.scope
        self.prompt = record.prompt
        self.data_type: type = codec_for(record.data_type).python_type
        self.timeout_seconds = record.timeout_seconds
        self.poll_interval_seconds = record.poll_interval_seconds
        self.deadline = record.deadline
        self.api_url = f"{app_url}/submit/json"
        self.response_path = f"{store.url}/{EventKeys.parse(record.request_id).decision}"
        #: reviewer name ("" for an anonymous link) -> that reviewer's form link
        self.links = {
            reviewer: f"{app_url}/form/{quote(record.request_id)}?token={quote(token)}"
            for reviewer, token in tokens.items()
        }
        self._tokens = tokens
        self.form_url = next(iter(self.links.values()))
        self.wait = _Twin(self._wait, self._wait_aio)

    @classmethod
    def _opened(cls, record: EventRecord, tokens: dict[str, str], store: Store) -> Event:
        event = cls(record, tokens, store)
        _show_link_somewhere()
        log.info("hitl: gate %r is open; answer it at %s", record.name, event.form_url)
        event._report = _flyte.ReportPanel.for_current_task(record.request_id)
        if event._report is not None:
            event._report.show(_flyte.panel_html(event))
            event._report.flush()  # skipped inside a running loop: new_event.aio flushes
        return event

    def _show_decision(self, decision: DecisionRecord) -> _flyte.ReportPanel | None:
        """Put the answer (or the timeout) in the task report; the panel to flush, if any."""
        if self._report is not None:
            self._report.show(_flyte.panel_html(self, decision))
        return self._report

    @property
    def token(self) -> str:
        """The capability token in ``form_url`` (for the JSON API's ``token`` field)."""
        return next(iter(self._tokens.values()))

    def __repr__(self) -> str:
        return f"Event(name={self.name!r}, request_id={self.request_id!r})"

    def _wait(self) -> Any:
        poll = _Poll(self._record)
        while True:
            try:
                decision = _step(self._store, self._record)
            except TransientStorageError as exc:
                time.sleep(poll.backoff(exc, utcnow()))
                continue
            poll.recovered()
            if decision is not None:
                if (panel := self._show_decision(decision)) is not None:
                    panel.flush()
                return outcome(self._record, decision)
            time.sleep(poll.delay(utcnow()))

    async def _wait_aio(self) -> Any:
        poll = _Poll(self._record)
        while True:
            try:
                decision = await asyncio.to_thread(_step, self._store, self._record)
            except TransientStorageError as exc:
                await asyncio.sleep(poll.backoff(exc, utcnow()))
                continue
            poll.recovered()
            if decision is not None:
                if (panel := self._show_decision(decision)) is not None:
                    await panel.flush_aio()
                return outcome(self._record, decision)
            await asyncio.sleep(poll.delay(utcnow()))
