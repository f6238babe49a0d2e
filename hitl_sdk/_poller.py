"""One shared poller per process: every ``wait()``, ``wait_all()`` and ``as_completed()`` rides
on it, so N waiting gates cost one LIST per run per cycle, not N GETs.

Each cycle, for every run with a gate waiting: one LIST of the run's ``decisions/`` prefix (a
page per 1,000 keys), then a GET only for decisions that appeared. A run with an open quorum
gate adds one LIST of its ``votes/`` and a GET of each new vote: when the votes decide a gate
and no decision was written (the app stopped between the vote and the decision), the poller
writes it. A gate past its deadline
with no decision gets its ``timed_out`` record (exclusive create; an answer that won the race
is read instead). Waiters hold a ``concurrent.futures.Future`` that the poller's one thread
resolves: a sync wait blocks on it, an async wait awaits it, and no gate needs a thread of
its own. Durability is the records': a restarted process simply watches the same gates again.

    future = poller().watch(store, event_record)    # Future[DecisionRecord]
    decision = future.result()
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from . import _notify
from ._errors import HitlError, TransientStorageError
from .answers import (
    KeySource,
    Tally,
    check_vote,
    mark_closed,
    marked_by_closer,
    read_votes,
    standing,
    tally,
    timeout_record,
    write_decision,
)
from .answers.quorum import decision_for
from .storage import DecisionRecord, EventKeys, EventRecord, Store
from .storage.records import utcnow

log = logging.getLogger("hitl")

MAX_BACKOFF_SECONDS = 60.0
# Past the deadline, how long a wait keeps retrying a failing store before giving up.
STORE_GRACE_SECONDS = 300.0
MIN_CYCLE_SECONDS = 0.01


def backoff_seconds(failures: int, poll_interval: float) -> float:
    """How long to wait after the ``failures``-th transient failure in a row (jittered)."""
    doubling = 2 ** min(failures - 1, 30)  # capped: 2**1000 would overflow a float
    return float(min(MAX_BACKOFF_SECONDS, poll_interval * doubling) * random.uniform(0.5, 1.0))


def _remind(watch: _Watch, voted: set[str]) -> None:
    """Reminders and escalation due for an open gate; their trouble never stops the wait."""
    try:
        _notify.tick(watch.store, watch.event, utcnow(), voted)
    except TransientStorageError:
        pass  # the next cycle claims it again
    except Exception as exc:
        log.warning("hitl: reminder for gate %r not sent: %s", watch.event.name, exc)


@dataclass(eq=False)
class _Watch:
    store: Store
    event: EventRecord
    keys: EventKeys
    trust: KeySource
    inbox: bool = False  # the deployment has an inbox: mark the gate closed there
    future: Future[DecisionRecord] = field(default_factory=Future)

    def due(self, now: datetime | None = None) -> bool:
        """Past its deadline: the poller writes its timeout record."""
        return (now or utcnow()) >= self.event.deadline

    def reminds(self) -> bool:
        """Reminders or escalation are set for it (most gates have neither)."""
        return self.event.remind_every is not None or self.event.escalate_after is not None


@dataclass
class _Run:
    """The watches of one run in one store, and its state between cycles."""

    watches: list[_Watch] = field(default_factory=list)
    failures: int = 0
    retry_at: float = 0.0


class Poller:
    """Watches gates and resolves their futures; its thread runs only while something waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[int, str], _Run] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="hitl-poll")
        self._bookkeeping = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hitl-books")
        #: LIST requests made, one per run per cycle (tests and benchmarks read it)
        self.lists = 0

    def watch(
        self, store: Store, event: EventRecord, trust: KeySource, *, inbox: bool = False
    ) -> Future[DecisionRecord]:
        """A future that resolves to the gate's terminal decision (or its error): a decision
        that counts under ``trust`` (``answers.trust``), never one that does not. ``inbox``:
        mark the gate closed in the inbox index once decided."""
        return self.watch_many(store, [event], trust, inbox=inbox)[0]

    def watch_many(
        self, store: Store, events: list[EventRecord], trust: KeySource, *, inbox: bool = False
    ) -> list[Future[DecisionRecord]]:
        """``watch`` for many gates at once: the poller wakes once for all of them."""
        watches = [_Watch(store, e, EventKeys.parse(e.request_id), trust, inbox) for e in events]
        with self._lock:
            for watch in watches:
                self._runs.setdefault((id(store), watch.keys.run_key), _Run()).watches.append(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="hitl-poller", daemon=True)
                self._thread.start()
        self._wake.set()  # new gates are checked at once (an answered one returns at once)
        return [w.future for w in watches]

    def watching(self) -> int:
        """How many gates are being watched now."""
        with self._lock:
            return sum(len(r.watches) for r in self._runs.values())

    def forget(self, future: Future[DecisionRecord]) -> None:
        """Stop watching for ``future`` (its waiter was cancelled or interrupted)."""
        with self._lock:
            for run in self._runs.values():
                run.watches = [w for w in run.watches if w.future is not future]

    # -- the thread ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                self._runs = {k: r for k, r in self._runs.items() if r.watches}
                if not self._runs:
                    self._thread = None
                    return
                runs = list(self._runs.values())
            self._wake.clear()
            began = time.monotonic()
            for run in runs:
                self._cycle(run)
            # A steady cadence: the cycle's own work comes out of the wait, not on top of it.
            spent = time.monotonic() - began
            self._wake.wait(max(MIN_CYCLE_SECONDS, self._sleep_seconds() - spent))

    def _sleep_seconds(self) -> float:
        """Until the next cycle: the shortest poll interval, never past a deadline."""
        now, wall = time.monotonic(), utcnow()
        with self._lock:
            watches = [w for r in self._runs.values() for w in r.watches]
            retries = [r.retry_at - now for r in self._runs.values() if r.retry_at > now]
        if not watches:
            return 0.0
        seconds = min(w.event.poll_interval_seconds for w in watches)
        for w in watches:
            left = (w.event.deadline - wall).total_seconds()
            if left > 0:
                seconds = min(seconds, left)
        if retries and len(retries) == len(self._runs):  # every run is backing off
            seconds = max(seconds, min(retries))
        return max(MIN_CYCLE_SECONDS, seconds)

    def _cycle(self, run: _Run) -> None:
        with self._lock:
            watches = list(run.watches)
        if not watches or time.monotonic() < run.retry_at:
            return
        store, run_key = watches[0].store, watches[0].keys.run_key
        try:
            decided = store.decided_ids(run_key)  # the one LIST of this run's cycle
            self.lists += 1
            tallies = self._tallies(store, run_key, watches, decided)
            now = utcnow()
            due = [
                w
                for w in watches
                if w.event.request_id in decided
                or w.due(now)
                or (w in tallies and tallies[w].outcome != "pending")
            ]
            if len(due) > 1:  # many decisions at once: read them side by side
                list(self._readers.map(lambda w: self._check(run, w, decided, tallies), due))
            elif due:
                self._check(run, due[0], decided, tallies)
            settling = set(due)
            for watch in watches:  # still open: reminders and escalation due (usually none)
                if watch.reminds() and watch not in settling:
                    counted = tallies.get(watch)
                    _remind(watch, {v.reviewer for v in counted.votes} if counted else set())
            run.failures, run.retry_at = 0, 0.0
        except TransientStorageError as exc:
            run.failures += 1
            now = utcnow()
            for watch in watches:
                if (now - watch.event.deadline).total_seconds() > STORE_GRACE_SECONDS:
                    self._settle(run, watch, error=exc)
            log.warning("hitl: storage error while waiting (%s); retrying", exc)
            interval = min(w.event.poll_interval_seconds for w in watches)
            run.retry_at = time.monotonic() + backoff_seconds(run.failures, interval)
        except HitlError as exc:  # a missing bucket, denied access: no retry helps
            for watch in watches:
                self._settle(run, watch, error=exc)

    def _tallies(
        self, store: Store, run_key: str, watches: list[_Watch], decided: set[str]
    ) -> dict[_Watch, Tally]:
        """The votes of the run's open quorum gates: one LIST, then each new vote read once."""
        open_quorums = [
            w for w in watches if w.event.quorum is not None and w.event.request_id not in decided
        ]
        if not open_quorums:
            return {}
        names = store.run_vote_names(run_key)
        self.lists += 1
        counted = {}
        for w in open_quorums:
            votes = read_votes(store, w.keys, names.get(w.keys.event_key, []))
            keyring = w.trust.keyring(*(v.key_id for v in votes))
            # Only votes a trusted key signed for this gate and question count.
            trusted = [v for v in votes if check_vote(w.event, v, keyring) is None]
            counted[w] = tally(w.event, trusted)
        return counted

    def _check(
        self,
        run: _Run,
        watch: _Watch,
        decided: set[str],
        tallies: dict[_Watch, Tally],
    ) -> None:
        counted = tallies.get(watch)
        store, event, trust = watch.store, watch.event, watch.trust
        try:
            decision = None
            first = store.get_decision(watch.keys) if event.request_id in decided else None
            if first is not None:  # the decision that counts, or UnverifiedRecord (never it)
                decision = standing(store, event, first, trust, utcnow())
            elif counted is not None and counted.outcome != "pending":
                # The votes decided it and nobody wrote the decision: this task does.
                made = decision_for(event, counted)
                decision = write_decision(store, event, made, trust, second_slot=False)
            elif watch.due():  # an answer that won the race stands instead
                timeout = timeout_record(event, counted)
                decision = write_decision(store, event, timeout, trust, second_slot=False)
        except TransientStorageError:
            raise  # the run backs off as a whole
        except HitlError as exc:  # a damaged record of this gate: this waiter learns it
            self._settle(run, watch, error=exc)
            return
        if decision is not None:
            self._settle(run, watch, decision=decision)  # the waiter first, then bookkeeping
            if watch.inbox and not marked_by_closer(decision):  # the inbox learns it closed,
                # on a thread of its own: bookkeeping never delays the next cycle
                self._bookkeeping.submit(mark_closed, watch.store, watch.event, decision)

    def _settle(
        self,
        run: _Run,
        watch: _Watch,
        decision: DecisionRecord | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            if watch in run.watches:
                run.watches.remove(watch)
        with contextlib.suppress(InvalidStateError):  # its waiter gave up (cancelled) meanwhile
            if error is not None:
                watch.future.set_exception(error)
            else:
                watch.future.set_result(decision)  # type: ignore[arg-type]


_poller: Poller | None = None
_poller_lock = threading.Lock()


def poller() -> Poller:
    """The process's one poller."""
    global _poller
    with _poller_lock:
        if _poller is None:
            _poller = Poller()
        return _poller
