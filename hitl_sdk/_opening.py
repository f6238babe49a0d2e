"""Opening a gate: the planned gate (``_planning``) created, or the existing one of the same name
in this run adopted, with the retries a throttling store needs; then the ``Event`` handle, and
the lifecycle's listeners told (log lines, messages, the Flyte panel). ``new_event`` lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar, overload

from typing_extensions import Unpack

from . import _config, _lifecycle
from ._errors import (
    ConfigError,
    KeyExists,
    QuestionChanged,
    StorageError,
    TransientStorageError,
    UnverifiedRecord,
)
from ._event import Event
from ._planning import GATE_OPTIONS, GateOptions, Opening, plan
from ._poller import backoff_seconds
from .answers import DEFAULT_PROMPT, details_text, mark_open, standing
from .storage import (
    DecisionRecord,
    EventKeys,
    EventRecord,
    GrantRecord,
    Store,
    token_digest,
    utcnow,
)

log = logging.getLogger("hitl")

T = TypeVar("T")
# How long opening a gate keeps retrying a store that throttles or drops connections.
OPEN_RETRY_SECONDS = 60.0


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


# -- writing it ---------------------------------------------------------------------------------


def open_gate(store: Store, opening: Opening) -> tuple[EventRecord, DecisionRecord | None]:
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
    index = _config.inbox()  # the inbox index costs nothing where no inbox is deployed
    while True:
        try:
            return _open_once(store, opening, index)
        except TransientStorageError as exc:
            failures += 1
            pause = backoff_seconds(failures, 0.5)
            if time.monotonic() + pause > give_up:
                raise
            log.warning(
                "hitl: storage error opening gate %r (%s); retrying", opening.record.name, exc
            )
            time.sleep(pause)


def _open_once(
    store: Store, opening: Opening, index: bool
) -> tuple[EventRecord, DecisionRecord | None]:
    wanted = opening.record
    try:
        store.create_event(wanted)
        if index:
            mark_open(store, wanted)
        return wanted, None
    except KeyExists:
        pass
    keys = EventKeys.parse(wanted.request_id)
    existing = store.get_event(keys)
    if existing is None:
        raise StorageError(f"event {wanted.request_id} exists but could not be read back")
    _refuse_foreign(existing, wanted)
    decision = store.get_decision(keys)
    if decision is not None:
        try:  # what closed the gate, if it counts; a record that does not leaves it open
            decision = standing(store, existing, decision, _config.trust(), utcnow())
        except UnverifiedRecord as exc:
            log.error("hitl: gate %r: %s", existing.name, exc)
            decision = None
    if decision is None:
        for reviewer, token in opening.tokens.items():
            grant = GrantRecord(request_id=existing.request_id, reviewer=reviewer)
            store.create_grant(token_digest(token), grant)
        if index:
            mark_open(store, existing)  # in case the first run stopped before it could
    return existing, decision


def _handle(
    opening: Opening, store: Store, record: EventRecord, decision: DecisionRecord | None
) -> tuple[Event[Any], _lifecycle.Opened]:
    tokens = opening.tokens if decision is None else {}
    event: Event[Any] = Event(record, tokens, store, opening.spec, opening.channels, decision)
    fresh = record is opening.record
    return event, _lifecycle.Opened(event.gate, fresh, decision)


def open_event(opening: Opening) -> Event[Any]:
    """Open the planned gate and hand back its handle (listeners told)."""
    store = _config.get_store()
    record, decision = open_gate(store, opening)
    event, change = _handle(opening, store, record, decision)
    _lifecycle.opened(change)
    return event


async def open_event_aio(opening: Opening) -> Event[Any]:
    """``open_event`` in a running loop: storage on a worker thread, listeners awaited."""
    store = _config.get_store()
    record, decision = await asyncio.to_thread(open_gate, store, opening)
    event, change = _handle(opening, store, record, decision)
    await _lifecycle.settle(_lifecycle.opened(_in_loop(change)))
    return event


def _in_loop(change: _lifecycle.Opened) -> _lifecycle.Opened:
    return _lifecycle.Opened(change.gate, change.fresh, change.decision, in_loop=True)


# -- new_event ----------------------------------------------------------------------------------


def _unexpected(call: str, options: dict[str, Any]) -> None:
    """What Python says of an unknown keyword, for ``**options`` too."""
    unknown = sorted(set(options) - GATE_OPTIONS)
    if unknown:
        raise TypeError(f"{call}() got an unexpected keyword argument {unknown[0]!r}")


class NewEvent:
    """``hitl.new_event``: open a human-in-the-loop gate and return its ``Event``.

    Same signature as ``flyteplugins.hitl.new_event``; ``await hitl.new_event.aio(...)`` in a
    running event loop (Flyte tasks run in one). Calling it again with the same name in the
    same run returns the same event (same id, same deadline; links already sent keep working).
    Keyword options (``GateOptions``): ``reviewers``, ``details``, ``if_changed``, ``default``,
    ``title``, ``prompt_format``, ``notify``, ``remind_every``, ``escalate_after``,
    ``backups``.

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
        **options: Unpack[GateOptions],
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
        **options: Unpack[GateOptions],
    ) -> Event[Any]: ...

    def __call__(
        self,
        name: str,
        data_type: Any,
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        **options: Unpack[GateOptions],
    ) -> Event[Any]:
        """Open a gate and return its ``Event`` (blocking; see ``aio`` in a running loop)."""
        _unexpected("new_event", dict(options))
        opening = plan(name, data_type, scope, prompt, timeout_seconds, poll_interval_seconds,
                       options)  # fmt: skip
        return open_event(opening)

    @overload
    async def aio(
        self,
        name: str,
        data_type: type[T],
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        **options: Unpack[GateOptions],
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
        **options: Unpack[GateOptions],
    ) -> Event[Any]: ...

    async def aio(
        self,
        name: str,
        data_type: Any,
        scope: str = "run",
        prompt: str = DEFAULT_PROMPT,
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        **options: Unpack[GateOptions],
    ) -> Event[Any]:
        """``await hitl.new_event.aio(...)``: the same as ``new_event(...)``, for a running loop.

        Storage calls run in a worker thread, so the loop keeps serving other tasks.
        """
        _unexpected("new_event.aio", dict(options))
        opening = plan(name, data_type, scope, prompt, timeout_seconds, poll_interval_seconds,
                       options)  # fmt: skip
        return await open_event_aio(opening)

    def __repr__(self) -> str:
        return "<function hitl_sdk.new_event>"


# Errors about the arguments (TypeError) name the public call, not this class.
NewEvent.__call__.__qualname__ = "new_event"
NewEvent.aio.__qualname__ = "new_event.aio"
new_event = NewEvent()
