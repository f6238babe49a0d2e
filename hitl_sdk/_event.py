"""The gate handle: ``Event`` and its ``wait()``, durable and typed.

``new_event`` (``_opening``) opens a gate and returns an ``Event``; ``wait()`` blocks until the
gate's terminal decision and returns the answer as the gate's ``data_type`` (``wait.aio()`` in a
running loop). Every wait rides on the process's one poller (``_poller``); when a wait sees the
decision, the lifecycle's listeners hear how the gate closed (``_lifecycle``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from . import _config, _lifecycle
from ._poller import poller
from .answers import TypeSpec, answer_codec, cancel, outcome
from .storage import DecisionRecord, EventKeys, EventRecord, Store

T = TypeVar("T")


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
        trust, index = _config.trust(), _config.inbox()
        records = [gate._record for _, gate in gates]
        watched = poller().watch_many(store, records, trust, inbox=index)
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

    def __init__(
        self,
        record: EventRecord,
        tokens: dict[str, str],
        store: Store,
        spec: TypeSpec | None = None,
        channels: object = None,
        closed_with: DecisionRecord | None = None,
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
            else (
                object if record.answer_schema else answer_codec(record.data_type, None).python_type
            )
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
        self.closed_with: DecisionRecord | None = closed_with
        # The decision once a wait has seen it: later waits need no request.
        self._decided: DecisionRecord | None = None
        self._closing_told = closed_with is not None  # listeners heard of it at opening
        #: the gate as the lifecycle's listeners see it
        self.gate = _lifecycle.Gate(
            record, store.url, self.links, self.form_url, self.api_url, self.token, channels
        )
        self.wait: Wait[T] = Wait(self)

    @property
    def closed(self) -> bool:
        """True when the gate had its answer (or timed out) before this ``new_event`` call."""
        return self.closed_with is not None

    def cancel(self, reason: str | None = None, *, by: str | None = None) -> None:
        """Close the gate now with a terminal ``cancelled`` record: its link says so, and
        ``wait()`` raises ``EventCancelled``. ``AlreadyAnswered`` (or ``EventExpired``) if it
        was closed first; cancelling it again is no error."""
        who = by or _config.operator_name()
        record = cancel(
            self._store,
            self.request_id,
            by=who,
            reason=reason,
            via="sdk",
            keys=_config.trust(),
            inbox=_config.inbox(),
        )
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

    def _closing(self, decision: DecisionRecord, in_loop: bool) -> list[Any]:
        """Tell the lifecycle's listeners how the gate closed, once per handle."""
        if self._closing_told:
            return []
        self._closing_told = True
        return _lifecycle.closed(_lifecycle.Closed(self.gate, decision, in_loop))

    def _finish(self, decision: DecisionRecord) -> T:
        """The answer (or the typed error), after the listeners heard of the decision."""
        self._closing(decision, in_loop=False)
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
        await _lifecycle.settle(self._closing(decision, in_loop=True))
        result: T = outcome(self._record, decision, self._spec)
        return result
