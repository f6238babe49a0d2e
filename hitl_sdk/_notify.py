"""Notifications: the waiting task tells people that a gate opened and how it closed.

Channels are apprise URLs (Slack, Microsoft Teams, Discord, email, generic JSON webhooks and
the rest): ``new_event(notify=...)`` (or ``HITL_NOTIFY``, several separated by spaces or
commas) for the gate as a whole, and ``reviewers={"alice": "mailto://..."}`` for a named
reviewer's own channel. The gate's channels get the prompt, the deadline and where to answer;
a reviewer's personal link goes only to that reviewer's channel, never to a shared one.

Channel URLs are secrets: they live in this process only (never in a record, a log line or a
report); a log line names a channel by its kind ("json", "slack"). Sending happens on a small
pool of threads of its own: a failing channel is retried once, a hanging one is given up after
``cto``/``rto`` (connect/read timeouts, ``SEND_TIMEOUT_SECONDS`` each) for each attempt, and
neither ever blocks, delays or fails the gate. At exit, messages still being sent get up to
``EXIT_WAIT_SECONDS``.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ._errors import ConfigError
from ._lifecycle import Closed, Opened
from ._reviewers import Reviewers, reviewer_entries
from .answers import closed_message, heading
from .storage.people import identity
from .storage.records import EventRecord, NoticeRecord

if TYPE_CHECKING:
    from .storage.store import Store

log = logging.getLogger("hitl")

NOTIFY_VARIABLE = "HITL_NOTIFY"
SEND_TIMEOUT_SECONDS = 4  # apprise's connect and read timeouts, per attempt
RETRY_DELAY_SECONDS = 1.0
EXIT_WAIT_SECONDS = 5.0


def channels(notify: object) -> list[str]:
    """``notify=`` as a list of apprise URLs; ``ConfigError`` (naming no URL) if malformed."""
    if notify is None:
        return []
    items = notify.replace(",", " ").split() if isinstance(notify, str) else notify
    if not isinstance(items, Sequence) or not all(isinstance(u, str) for u in items):
        raise ConfigError("notify must be an apprise URL or a list of them, such as 'json://host'")
    urls = [u.strip() for u in items if u.strip()]
    for index, url in enumerate(urls, 1):
        if "://" not in url:
            raise ConfigError(
                f"notify channel {index} is not an apprise URL (scheme://...): see "
                "https://appriseit.com for the URL of each service"
            )
        _remember_secret(url)
    return urls


def kind(url: str) -> str:
    """What a log line may say of a channel: its scheme, nothing secret."""
    return urlsplit(url).scheme or "channel"


def _bounded(url: str) -> str:
    """The URL with apprise's connect/read timeouts set, unless the user set them."""
    query = urlsplit(url).query
    extra = [f"{k}={SEND_TIMEOUT_SECONDS}" for k in ("cto", "rto") if f"{k}=" not in query]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


class Notifier:
    """Sends messages on daemon threads of its own; ``flush`` waits (bounded) for those in flight.

    Not a ``ThreadPoolExecutor``: Python joins those pools' threads at exit, before any exit
    hook of ours could bound the wait, so one hanging channel held a script's exit for as long
    as its timeouts. Daemon threads are given up when the interpreter stops; ``flush`` runs
    first (see ``_at_exit``) and gives the messages in flight ``EXIT_WAIT_SECONDS`` in all.
    """

    def __init__(self, workers: int = 4) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[bool], list[str], str, str, str]] = (
            queue.SimpleQueue()
        )
        self._pending: set[Future[bool]] = set()
        self._lock = threading.Lock()
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self.sent = 0
        self.failed = 0

    def send(self, urls: Sequence[str], title: str, body: str, what: str) -> Future[bool] | None:
        """Queue ``title``/``body`` for ``urls``; returns at once."""
        if not urls:
            return None
        future: Future[bool] = Future()
        with self._lock:
            self._pending.add(future)
            if len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name="hitl-notify", daemon=True)
                self._threads.append(thread)
                thread.start()
        future.add_done_callback(self._done)
        self._jobs.put((future, list(urls), title, body, what))
        return future

    def _work(self) -> None:
        while True:
            future, urls, title, body, what = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._deliver(urls, title, body, what))
            except BaseException as exc:  # a bug or an apprise surprise: logged in _done
                future.set_exception(exc)

    def _done(self, future: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(future)
        error = None if future.cancelled() else future.exception()
        if error is not None:  # a bug or an apprise surprise: logged, never raised at the gate
            log.warning("hitl: a notification could not be sent (%s)", type(error).__name__)

    def _deliver(self, urls: list[str], title: str, body: str, what: str) -> bool:
        import apprise

        _hush_senders()

        ok = True
        for index, url in enumerate(urls, 1):
            sender = apprise.Apprise()
            if not sender.add(_bounded(url)):
                log.warning(
                    "hitl: %s: notify channel %d (%s) is not a URL apprise understands; skipped",
                    what,
                    index,
                    kind(url),
                )
                ok = False
                continue
            for attempt in (1, 2):
                if _notify_on_this_thread(sender, title, body):
                    with self._lock:
                        self.sent += 1
                    break
                if attempt == 1:
                    time.sleep(RETRY_DELAY_SECONDS)
            else:
                with self._lock:
                    self.failed += 1
                ok = False
                log.warning(
                    "hitl: %s: notify channel %d (%s) failed twice; the gate is unaffected",
                    what,
                    index,
                    kind(url),
                )
        return ok

    def flush(self, timeout: float = EXIT_WAIT_SECONDS) -> bool:
        """Wait up to ``timeout`` (in all) for messages in flight; True when none is left."""
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return True
        _, not_done = wait_futures(pending, timeout=timeout)
        return not not_done


def _notify_on_this_thread(sender: Any, title: str, body: str) -> bool:
    """Send through each service of ``sender`` on this thread. ``Apprise.notify`` hands the work
    to a thread pool of apprise's, which refuses new work once the interpreter begins to stop:
    the close message of a script whose last act is ``wait()`` would be lost."""
    try:
        return all([service.notify(body=body, title=title) for service in sender])
    except Exception as exc:  # a service that raises counts as a failed attempt
        log.debug("hitl: a notify service raised %s", type(exc).__name__)
        return False


def _at_exit(flush: Callable[[], object]) -> None:
    """Run ``flush`` when the main thread ends, before Python joins thread pools and stops
    accepting new work in them (``concurrent.futures`` registers that step; hooks run newest
    first, so ours, registered after it, runs before it). ``atexit`` where that hook is gone."""
    import concurrent.futures.thread  # noqa: F401  (its exit step is registered on import)

    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading exit hooks")
        register(flush)
    except RuntimeError:  # shutting down already, or an interpreter without the hook
        atexit.register(flush)


_SECRETS: set[str] = set()  # parts of every channel URL seen by this process


def _remember_secret(url: str) -> None:
    """Note the parts of a channel URL that may show in an HTTP library's log line (its
    address, the tokens in its path and query), so the filter below can drop those lines."""
    parts = urlsplit(url)
    pieces = [parts.netloc, parts.netloc.rsplit("@", 1)[-1]]
    pieces += [p for p in parts.path.split("/") if len(p) >= 8]
    pieces += [v for kv in parts.query.split("&") for v in kv.split("=")[1:] if len(v) >= 8]
    _SECRETS.update(p for p in pieces if p)


class _NoChannelSecrets(logging.Filter):
    """Drops a log record of the HTTP and apprise libraries that names a channel: their debug
    lines carry its address (a webhook's path holds its token). hitl logs its own line."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record: judge its parts
            text = f"{record.msg} {record.args}"
        return not any(secret in text for secret in _SECRETS)


_HUSHED = ("apprise", "urllib3.connectionpool", "urllib3.util.retry", "requests")
_hush_lock = threading.Lock()
_hushed = False


def _hush_senders() -> None:
    global _hushed
    with _hush_lock:
        if not _hushed:
            logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)  # ours only
            for name in _HUSHED:
                logging.getLogger(name).addFilter(_NoChannelSecrets())
            _hushed = True


_notifier: Notifier | None = None
_notifier_lock = threading.Lock()


def notifier() -> Notifier:
    global _notifier
    with _notifier_lock:
        if _notifier is None:
            _notifier = Notifier()
            _at_exit(_notifier.flush)
        return _notifier


# -- the channels of one gate -------------------------------------------------------------------


@dataclass(frozen=True)
class Channels:
    """Where one gate's messages go (secrets: kept in this process's memory only): the gate's
    own channels, each named reviewer's own channel, and each backup's (or None)."""

    gate: list[str] = field(default_factory=list)
    own: dict[str, str] = field(default_factory=dict)
    backups: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def planned(
        cls,
        notify: object,
        default: str | None,
        reviewers: Reviewers | None,
        backups: Reviewers | None,
        backup_names: list[str],
    ) -> Channels:
        """The channels ``new_event``'s options name (``default``: ``HITL_NOTIFY``), checked:
        ``ConfigError`` for a malformed URL, or when apprise is needed and missing."""
        gate = channels(notify if notify is not None else default)
        own = _own_channels(reviewers)
        extra: dict[str, str | None] = dict.fromkeys(backup_names)
        extra.update(_own_channels(backups))
        if (gate or own) and importlib.util.find_spec("apprise") is None:
            raise ConfigError(
                "notifications need apprise: pip install 'hitl-gates[notify]' (or apprise)"
            )
        return cls(gate, own, extra)


def _own_channels(reviewers: Reviewers | None) -> dict[str, str]:
    """Each named reviewer's own channel, if they have one."""
    own: dict[str, str] = {}
    for name, entry in reviewer_entries(reviewers).items():
        if entry.notify is not None:
            urls = channels(entry.notify)
            if len(urls) != 1:
                raise ConfigError(f"reviewer {name!r} needs one channel URL, or None")
            own[name] = urls[0]
    return own


# -- the messages, as the gate's lifecycle listener ----------------------------------------------


def _heading(record: EventRecord) -> str:
    """The gate's name in a message: the same heading its page shows."""
    return heading(record.name, record.prompt, record.title, record.prompt_format)[0]


def on_opened(change: Opened) -> None:
    """A gate opened: its channels get the question and where to answer, each named
    reviewer's own channel their personal link (and no shared channel ever does); reminders
    and escalation are scheduled. Nothing for a gate re-adopted or closed already."""
    sent = change.gate.channels
    if not isinstance(sent, Channels) or change.decision is not None:
        return
    record, links = change.gate.record, change.gate.links
    if change.fresh:
        _send_opened(record, links, sent)
    register(record, links, sent.gate, sent.own, sent.backups)


def _send_opened(record: EventRecord, links: Mapping[str, str], sent: Channels) -> None:
    what = f"gate {record.name!r}"
    title = f"Review needed: {_heading(record)}"
    body = f"{record.prompt}\n\nAnswer by {record.deadline:%Y-%m-%d %H:%M} UTC."
    anonymous = links.get("")
    if anonymous:
        shared = f"{body}\nAnswer here: {anonymous}"
    else:
        names = ", ".join(n for n in links if n)
        shared = f"{body}\nPersonal links went to the named reviewers ({names})."
    notifier().send(sent.gate, title, shared, what)
    for reviewer, url in sent.own.items():
        link = links.get(reviewer)
        if link:
            personal = (
                f"{body}\nYour personal link (it answers as {reviewer}; do not forward it): {link}"
            )
            notifier().send([url], title, personal, what)


def on_closed(change: Closed) -> None:
    """A gate closed: answered (by whom, what), timed out (a default applied?) or cancelled."""
    sent = change.gate.channels
    if not isinstance(sent, Channels):
        return
    record = change.gate.record
    urls = list(dict.fromkeys([*sent.gate, *sent.own.values()]))
    text = closed_message(change.decision)
    notifier().send(urls, f"Closed: {_heading(record)}", text, f"gate {record.name!r}")


# -- reminders and escalation, driven by the waiting task's poll loop --------------------------


@dataclass
class _Watched:
    """What this process knows of an open gate's people: links and channels (secrets)."""

    links: dict[str, str]
    gate: list[str]
    own: dict[str, str]
    backups: dict[str, str | None]
    done: set[str] = field(default_factory=set)


_watched: dict[str, _Watched] = {}
_watched_lock = threading.Lock()


def register(
    record: EventRecord,
    links: Mapping[str, str],
    gate: list[str],
    own: Mapping[str, str],
    backups: Mapping[str, str | None],
) -> None:
    """Remember an open gate's people for its reminders and escalation (this process only)."""
    if record.remind_every is None and record.escalate_after is None:
        return
    with _watched_lock:
        _watched[record.request_id] = _Watched(dict(links), list(gate), dict(own), dict(backups))


def due(record: EventRecord, now: datetime) -> list[str]:
    """The notices due now: the latest reminder (``remind-N``; missed ones are not sent late)
    and the escalation."""
    waited = (now - record.created_at).total_seconds()
    names = []
    if record.remind_every and waited >= record.remind_every:
        names.append(f"remind-{int(waited // record.remind_every)}")
    if record.escalate_after is not None and waited >= record.escalate_after:
        names.append("escalate")
    return names


def tick(store: Store, record: EventRecord, now: datetime, voted: Collection[str] = ()) -> None:
    """Send what is due for an open gate, each notice claimed once in the store first (a
    restarted task, or a second waiter, finds it claimed and sends nothing). Reviewers who
    ``voted`` already (a quorum gate) are not reminded."""
    with _watched_lock:
        known = _watched.get(record.request_id)
    if known is None:
        return
    for name in due(record, now):
        if name in known.done:
            continue
        known.done.add(name)
        to = sorted(known.own) if name != "escalate" else sorted(known.backups)
        if not store.create_notice(NoticeRecord(request_id=record.request_id, name=name, to=to)):
            continue  # sent already (before a restart, or by another waiter)
        if name == "escalate":
            _escalate(store, record, known)
        else:
            _remind(record, known, name.split("-", 1)[1], voted)


def _remind(record: EventRecord, known: _Watched, number: str, voted: Collection[str]) -> None:
    what = f"gate {record.name!r}"
    title = f"Reminder {number}: {_heading(record)}"
    deadline = f"{record.deadline:%Y-%m-%d %H:%M} UTC"
    body = f"Still waiting for an answer.\n\n{record.prompt}\n\nAnswer by {deadline}."
    anonymous = known.links.get("")
    notifier().send(
        known.gate, title, body + (f"\nAnswer here: {anonymous}" if anonymous else ""), what
    )
    done = {identity(name) for name in voted}
    for reviewer, url in known.own.items():
        link = known.links.get(reviewer)
        if link and identity(reviewer) not in done:
            notifier().send([url], title, f"{body}\nYour personal link: {link}", what)


def _escalate(store: Store, record: EventRecord, known: _Watched) -> None:
    """Mint each backup's link (a grant, like any extra link) and tell them, and the gate."""
    from .storage.keys import new_token, token_digest
    from .storage.records import GrantRecord

    app = record_app_url(known)
    what = f"gate {record.name!r}"
    title = f"Escalated to you: {_heading(record)}"
    for name, url in known.backups.items():
        token = new_token()
        store.create_grant(
            token_digest(token), GrantRecord(request_id=record.request_id, reviewer=name)
        )
        link = f"{app}/form/{quote(record.request_id)}?token={quote(token)}"
        known.links[name] = link
        if url:
            body = (
                f"{record.prompt}\n\nNobody has answered yet; you are the backup.\nAnswer by "
                f"{record.deadline:%Y-%m-%d %H:%M} UTC.\nYour personal link (it answers as "
                f"{name}; do not forward it): {link}"
            )
            notifier().send([url], title, body, what)
        else:
            log.info("hitl: gate %r escalated to %s: %s", record.name, name, link)
    names = ", ".join(known.backups)
    notifier().send(known.gate, f"Escalated: {_heading(record)}", f"Escalated to {names}.", what)


def record_app_url(known: _Watched) -> str:
    """The app's base URL, from a link this process minted (the settings may have changed)."""
    for link in known.links.values():
        return link.split("/form/", 1)[0]
    from . import _config

    return _config.settings().app_url
