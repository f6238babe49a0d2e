"""Slack: a gate as a Block Kit message with its answer controls, posted by the waiting task,
answered in Slack through the reviewer app (``hitl_lambda.slack``), updated when it closes.

The waiting task (``HITL_SLACK_BOT_TOKEN`` and ``HITL_SLACK_CHANNEL`` set) posts each gate it
opens to the channel, and to each named reviewer whose name is an email by direct message; it
keeps the messages' ids (channel and timestamp, never a token) in the gate's ``slack`` notice
record, and updates every message when the gate closes by any route. The reviewer app verifies
each click (Slack's signature and timestamp), maps the Slack user to a person by their email,
and answers through the same path as every other channel.

Controls: Approve / Reject buttons for approvals (a reason asked in a modal where one is
required), Yes / No for yes-or-no gates, a select for one choice, and an "Answer…" button
opening a modal for text and numbers. Other gates (several choices, model forms) show where to
answer instead.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..answers import heading, outcome_text, result_text
from ..storage import DecisionRecord, EventRecord

log = logging.getLogger("hitl")

APPROVE, REJECT, CHOOSE, ANSWER = "hitl.approve", "hitl.reject", "hitl.choose", "hitl.answer"
MODAL = "hitl.modal"  # a modal's callback id: a reason, or a text / number answer
MESSAGES_NOTICE = "slack"  # the notice record that lists a gate's messages
MAX_FIELDS = 10  # Slack's limit of fields in one section
DEFAULT_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class SlackSettings:
    """``HITL_SLACK_BOT_TOKEN`` (a secret), ``HITL_SLACK_CHANNEL`` (a channel id, ``C0123``),
    and ``HITL_SLACK_API_URL`` (Slack's API; another only for a proxy or a test stand-in)."""

    bot_token: str
    channel: str | None = None
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls) -> SlackSettings | None:
        token = os.environ.get("HITL_SLACK_BOT_TOKEN", "").strip()
        if not token:
            return None
        channel = os.environ.get("HITL_SLACK_CHANNEL", "").strip() or None
        api_url = os.environ.get("HITL_SLACK_API_URL", "").strip() or DEFAULT_API_URL
        return cls(token, channel, api_url)

    def client(self) -> Any:
        from slack_sdk import WebClient

        return WebClient(token=self.bot_token, base_url=self.api_url, timeout=5)

    def __repr__(self) -> str:  # the token never shows in a log or a traceback
        return f"SlackSettings(channel={self.channel!r}, api_url={self.api_url!r})"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[: limit - 1] + "…" if len(text) > limit else text}


def _mrkdwn(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[: limit - 1] + "…" if len(text) > limit else text}


def _evidence(event: EventRecord) -> list[dict[str, Any]]:
    details = event.details
    if not details:
        return []
    if isinstance(details, dict):
        items = list(details.items())
        fields = [_mrkdwn(f"*{k}*\n{v}", 2000) for k, v in items[:MAX_FIELDS]]
        blocks = [{"type": "section", "fields": fields}]
        if len(items) > MAX_FIELDS:
            blocks.append(
                {
                    "type": "context",
                    "elements": [_mrkdwn(f"and {len(items) - MAX_FIELDS} more on the form")],
                }
            )
        return blocks
    if isinstance(details, list):
        lines = [", ".join(f"{k}: {v}" for k, v in row.items()) for row in details[:20]]
        return [{"type": "section", "text": _mrkdwn("\n".join(lines))}]
    return [{"type": "section", "text": _mrkdwn(str(details))}]


def _controls(event: EventRecord) -> list[dict[str, Any]]:
    """The answer controls for the gate's type (each value is the gate's id)."""
    rid, kind = event.request_id, event.data_type
    if kind in ("approval", "bool"):
        yes, no = ("Approve", "Reject") if kind == "approval" else ("Yes", "No")
        return [
            {
                "type": "actions",
                "block_id": "hitl.controls",
                "elements": [
                    {"type": "button", "action_id": APPROVE, "text": _plain(yes, 75),
                     "style": "primary", "value": rid},
                    {"type": "button", "action_id": REJECT, "text": _plain(no, 75),
                     "style": "danger", "value": rid},
                ],
            }
        ]  # fmt: skip
    if kind == "choice" and event.answer_schema:
        options = [
            {"text": _plain(str(v), 75), "value": json.dumps([rid, v])}
            for v in event.answer_schema.get("enum", [])[:100]
        ]
        return [
            {
                "type": "actions",
                "block_id": "hitl.controls",
                "elements": [
                    {"type": "static_select", "action_id": CHOOSE,
                     "placeholder": _plain("Choose one", 150), "options": options},
                ],
            }
        ]  # fmt: skip
    if kind in ("str", "int", "float"):
        return [
            {
                "type": "actions",
                "block_id": "hitl.controls",
                "elements": [
                    {"type": "button", "action_id": ANSWER, "text": _plain("Answer…", 75),
                     "value": rid},
                ],
            }
        ]  # fmt: skip
    return [
        {
            "type": "context",
            "elements": [
                _mrkdwn("Answer through your link or the inbox (this gate needs a form).")
            ],
        }
    ]


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else ""


def message(
    event: EventRecord, decision: DecisionRecord | None = None, progress: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The gate as a Slack message: its fallback text and its blocks. Open: the answer
    controls; closed (``decision``): how it ended, who and when, and no controls."""
    title, prompt = heading(event.name, event.prompt, event.title, event.prompt_format)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(title, 150)}]
    if prompt.strip():
        blocks.append({"type": "section", "text": _mrkdwn(prompt)})
    blocks += _evidence(event)
    named = sorted({n for n in event.token_digests.values() if n})
    who = f" · for {', '.join(named)}" if named else ""
    if decision is None:
        context = f"Answer by {_when(event.deadline)}{who}"
        if progress:
            context += f" · {progress}"
        blocks.append({"type": "context", "elements": [_mrkdwn(context)]})
        blocks += _controls(event)
        return f"Review needed: {title}", blocks
    ended = outcome_text(decision)
    shown = result_text(decision)
    line = f"*{shown}* — {ended}" if shown != "-" else ended[:1].upper() + ended[1:]
    blocks.append({"type": "section", "block_id": "hitl.outcome", "text": _mrkdwn(line)})
    return f"{title}: {ended}", blocks


def modal(event: EventRecord, want: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """A modal asking for a rejection's reason (``want="reason"``) or a text or number answer
    (``want="value"``); ``metadata`` (the gate, the message) rides in ``private_metadata``."""
    title, _ = heading(event.name, event.prompt, event.title, event.prompt_format)
    label = "Why do you reject it?" if want == "reason" else "Your answer"
    hint = {"int": "A whole number.", "float": "A number.", "str": ""}.get(event.data_type, "")
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "input"}
    if want == "reason" or event.data_type == "str":
        element["multiline"] = True
    block: dict[str, Any] = {
        "type": "input",
        "block_id": want,
        "label": _plain(label, 2000),
        "element": element,
    }
    if hint and want == "value":
        block["hint"] = _plain(hint, 2000)
    return {
        "type": "modal",
        "callback_id": MODAL,
        "private_metadata": json.dumps({**metadata, "want": want}),
        "title": _plain("Reject" if want == "reason" else "Answer", 24),
        "submit": _plain("Reject" if want == "reason" else "Submit", 24),
        "close": _plain("Cancel", 24),
        "blocks": [{"type": "section", "text": _mrkdwn(f"*{title}*")}, block],
    }
