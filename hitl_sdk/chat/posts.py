"""The waiting task's side of Slack: post a gate when it opens, update its messages when it
closes (by any route: the link, the inbox, the CLI, a Slack click, the timeout, a cancel).

The messages' ids (``channel:ts``) are kept in the gate's ``slack`` notice record (written
once), so the reviewer app updates them after a click and a restarted task after a close;
never a token, never the bot token. A Slack failure is logged and never stops a gate.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .._lifecycle import Closed, Opened
from ..storage import NoticeRecord, Store
from . import slack

log = logging.getLogger("hitl")

_posted: dict[str, list[str]] = {}  # request id -> "channel:ts" of its messages (this process)
_lock = threading.Lock()


def _store(url: str) -> Store:
    from .. import _config

    store = _config.get_store()
    return store if store.url == url else Store(url)


def on_opened(change: Opened) -> None:
    settings = slack.SlackSettings.from_env()
    if settings is None or change.decision is not None or not change.fresh:
        return
    record = change.gate.record
    try:
        client = settings.client()
        text, blocks = slack.message(record)
        places: list[str] = []
        targets = [settings.channel] if settings.channel else []
        for person in sorted({n for n in record.token_digests.values() if "@" in n}):
            found = _direct_channel(client, person)
            if found:
                targets.append(found)
        for channel in targets:
            reply = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            places.append(f"{reply['channel']}:{reply['ts']}")
        if places:
            with _lock:
                _posted[record.request_id] = places
            notice = NoticeRecord(
                request_id=record.request_id, name=slack.MESSAGES_NOTICE, to=places
            )
            _store(change.gate.store_url).create_notice(notice)
    except Exception as exc:  # Slack down, a bad token: the gate goes on; say so
        log.warning("hitl: gate %r not posted to Slack: %s", record.name, _safe(exc))


def _direct_channel(client: Any, email: str) -> str | None:
    """The DM channel with the Slack user who has this email, if there is one."""
    try:
        user = client.users_lookupByEmail(email=email)["user"]["id"]
        return str(client.conversations_open(users=user)["channel"]["id"])
    except Exception as exc:
        log.info("hitl: no Slack DM for %s: %s", email, _safe(exc))
        return None


def on_closed(change: Closed) -> None:
    settings = slack.SlackSettings.from_env()
    if settings is None:
        return
    record = change.gate.record
    with _lock:
        places = _posted.pop(record.request_id, None)
    if places is None:
        places = messages_of(_store(change.gate.store_url), record.request_id)
    if places:
        update(settings.client(), record, places, change.decision)


def messages_of(store: Store, request_id: str) -> list[str]:
    """The ``channel:ts`` of a gate's Slack messages (none if it was never posted)."""
    try:
        notice = store.get_notice(request_id, slack.MESSAGES_NOTICE)
    except Exception as exc:
        log.warning("hitl: the Slack messages of %s could not be read: %s", request_id, exc)
        return []
    return list(notice.to) if notice is not None else []


def update(
    client: Any, record: Any, places: list[str], decision: Any, progress: str | None = None
) -> None:
    """Every message of the gate shows its state now (closed: no more controls)."""
    text, blocks = slack.message(record, decision, progress)
    for place in places:
        channel, _, ts = place.partition(":")
        try:
            client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except Exception as exc:
            log.warning(
                "hitl: Slack message %s of gate %r not updated: %s", place, record.name, _safe(exc)
            )


def _safe(exc: BaseException) -> str:
    """An error's text without a token that might be in it (slack_sdk quotes responses)."""
    text = str(exc)
    return text.split("The server responded with:")[0].strip() or type(exc).__name__
