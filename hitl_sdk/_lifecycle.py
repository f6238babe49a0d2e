"""A gate's lifecycle hooks: who hears that a gate opened, and how it closed.

The gate handle (``_event``) emits; listeners act: the link lines for whoever runs the task
(``_console``), messages to people (``_notify``), the Flyte task report (``hitl_sdk.flyte``)
and, later, chat messages. ``_wiring`` (imported by the public face) registers them, so every
listener depends on the core and the core on no listener::

    _lifecycle.listen(opened=show_links, closed=tell_channels)

A listener gets an ``Opened`` or ``Closed`` change carrying the ``Gate``: the public facts of
one gate in this process (its record, links, store) plus what was planned for it at opening
(``channels``, opaque here). It returns nothing, or, when ``change.in_loop`` (an ``.aio``
call), an awaitable that its caller awaits (a report written without blocking the loop). A
listener's failure is logged and never reaches the gate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .storage.records import DecisionRecord, EventRecord

log = logging.getLogger("hitl")


@dataclass(frozen=True, eq=False)
class Gate:
    """One gate as this process opened it (listeners keep per-gate state keyed by it)."""

    record: EventRecord
    store_url: str
    #: reviewer name ("" for the unnamed link) -> that reviewer's form link
    links: Mapping[str, str]
    form_url: str
    api_url: str
    token: str
    #: what the gate's messages go to (``_notify.Channels``): secrets, kept in memory only
    channels: Any = None


@dataclass(frozen=True)
class Opened:
    gate: Gate
    #: opened by this call; False when an earlier run of the task opened it (adopted)
    fresh: bool
    #: the gate's decision when it was closed already as it was opened again
    decision: DecisionRecord | None = None
    in_loop: bool = False


@dataclass(frozen=True)
class Closed:
    gate: Gate
    decision: DecisionRecord
    in_loop: bool = False


C = TypeVar("C", Opened, Closed)
Listener = Callable[[C], Awaitable[None] | None]


@dataclass
class _Listeners:
    opened: list[Listener[Opened]] = field(default_factory=list)
    closed: list[Listener[Closed]] = field(default_factory=list)


_listeners = _Listeners()


def listen(
    *, opened: Listener[Opened] | None = None, closed: Listener[Closed] | None = None
) -> None:
    """Register listeners (each once: registering the same function again does nothing)."""
    if opened is not None and opened not in _listeners.opened:
        _listeners.opened.append(opened)
    if closed is not None and closed not in _listeners.closed:
        _listeners.closed.append(closed)


def _emit(listeners: list[Listener[C]], change: C) -> list[Awaitable[None]]:
    waiting: list[Awaitable[None]] = []
    for listener in list(listeners):
        try:
            result = listener(change)
        except Exception as exc:  # a listener never breaks the gate
            log.warning("hitl: %s failed on gate %r: %s", _name(listener), _gate_name(change), exc)
            continue
        if result is not None:
            waiting.append(result)
    return waiting


def opened(change: Opened) -> list[Awaitable[None]]:
    """Tell every listener the gate opened; the awaitables to await (``in_loop`` only)."""
    return _emit(_listeners.opened, change)


def closed(change: Closed) -> list[Awaitable[None]]:
    """Tell every listener how the gate closed; the awaitables to await (``in_loop`` only)."""
    return _emit(_listeners.closed, change)


async def settle(waiting: list[Awaitable[None]]) -> None:
    """Await what listeners handed back; a failure is logged like a listener's own."""
    for item in waiting:
        try:
            await item
        except Exception as exc:
            log.warning("hitl: a gate listener failed: %s", exc)


def _name(listener: Callable[..., object]) -> str:
    return getattr(listener, "__qualname__", repr(listener))


def _gate_name(change: Opened | Closed) -> str:
    return change.gate.record.name
