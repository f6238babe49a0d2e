"""Waiting on many gates at once: ``wait_all`` and ``as_completed``, sync and ``.aio``.

Both ride on the process's one poller (``_poller``): a thousand gates of one run cost one LIST
per cycle, plus one GET per decision as it appears.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any, TypeVar

from ._event import Event, watch_all
from ._poller import poller
from .storage.records import DecisionRecord

T = TypeVar("T")


class WaitAll:
    """``hitl.wait_all(events)``: wait for every gate; their answers, in the order given.

    Example::

        gates = [hitl.new_event(f"row-{i}", bool, prompt=...) for i in range(100)]
        approved = hitl.wait_all(gates)          # or: await hitl.wait_all.aio(gates)

    Like ``asyncio.gather``: the first gate that fails (``EventTimeout``, ``EventCancelled``)
    raises once all are settled; use ``as_completed`` to handle each gate on its own.
    """

    def __call__(self, events: Iterable[Event[T]]) -> list[T]:
        gates = list(events)
        futures = watch_all(gates)
        try:
            while wait_futures(futures, timeout=1.0).not_done:  # short waits: Ctrl-C gets in
                pass
        except BaseException:
            for future in futures:
                if not future.done():
                    poller().forget(future)
            raise
        return [gate._finish(future.result()) for gate, future in zip(gates, futures, strict=True)]

    async def aio(self, events: Iterable[Event[T]]) -> list[T]:
        """``await hitl.wait_all.aio(events)``: the same, without blocking the loop."""
        return list(await asyncio.gather(*(gate.wait.aio() for gate in events)))

    def __repr__(self) -> str:
        return "<function hitl_sdk.wait_all>"


class AsCompleted:
    """``hitl.as_completed(events)``: the gates, each as soon as it is decided.

    Example::

        for gate in hitl.as_completed(gates):    # or: async for gate in ...aio(gates)
            try:
                print(gate.name, gate.wait())    # returns at once: the gate is decided
            except hitl.EventTimeout:
                print(gate.name, "timed out")
    """

    def __call__(self, events: Iterable[Event[T]]) -> Iterator[Event[T]]:
        gates = list(events)
        pending: dict[Future[DecisionRecord], Event[T]] = dict(
            zip(watch_all(gates), gates, strict=True)
        )
        # Each future reports itself once, as it settles: waiting on all of them again after
        # every settled one would cost O(N) each time, O(N^2) for N gates.
        settled: queue.SimpleQueue[Future[DecisionRecord]] = queue.SimpleQueue()
        for future in pending:
            future.add_done_callback(settled.put)
        try:
            while pending:
                try:
                    future = settled.get(timeout=1.0)  # short waits: Ctrl-C gets in
                except queue.Empty:
                    continue
                yield pending.pop(future)
        finally:
            for future in pending:  # the caller stopped early
                poller().forget(future)

    async def aio(self, events: Iterable[Event[T]]) -> AsyncIterator[Event[T]]:
        """``async for gate in hitl.as_completed.aio(events)``: the same, in a running loop."""
        gates = list(events)
        watched = dict(zip(gates, watch_all(gates), strict=True))
        pending: dict[asyncio.Future[Any], Event[T]] = {
            asyncio.wrap_future(f): g for g, f in watched.items()
        }
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future)
        finally:
            for gate in pending.values():  # the caller stopped early
                poller().forget(watched[gate])

    def __repr__(self) -> str:
        return "<function hitl_sdk.as_completed>"


WaitAll.__call__.__qualname__ = "wait_all"
WaitAll.aio.__qualname__ = "wait_all.aio"
AsCompleted.__call__.__qualname__ = "as_completed"
AsCompleted.aio.__qualname__ = "as_completed.aio"
wait_all = WaitAll()
as_completed = AsCompleted()
