"""Slack: the waiting task posts each gate with its buttons (``slack_sdk`` against a stand-in of
Slack's Web API on loopback), reviewers click, and the reviewer app takes the signed
interactivity payloads through the Lambda handler (API Gateway v2 events through Mangum).

Attackers hold what they would: a Slack user id that is not a reviewer's, a payload without
the signing secret, an old one, one seen before, the requester's own account.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from apigw import apigw_event, invoke
from slack_standin import BOT_TOKEN, SIGNING_SECRET, SlackStandIn, click, signed, submission

import hitl_sdk as hitl
from hitl_sdk.chat import APPROVE, CHOOSE, REJECT
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.store import Store

pytest.importorskip("slack_sdk")

USERS = {
    "UALICE": "Alice@Example.com",
    "UBOB": "bob@example.com",
    "UEVE": "eve@example.com",
    "UNOMAIL": None,
}
CHANNEL = "CREVIEWS"


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    standin = SlackStandIn(USERS)
    monkeypatch.setenv("HITL_SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("HITL_SLACK_CHANNEL", CHANNEL)
    monkeypatch.setenv("HITL_SLACK_API_URL", standin.url)
    yield standin
    standin.close()


@pytest.fixture
def app(s3_store: Store, slack: SlackStandIn) -> Any:
    from mangum import Mangum

    from hitl_lambda.app import create_app
    from hitl_lambda.slack import SlackApp

    return Mangum(
        create_app(s3_store, slack=SlackApp(SIGNING_SECRET, BOT_TOKEN, slack.url)), lifespan="off"
    )


def post(app: Any, payload: dict[str, Any], **signing: Any) -> dict[str, Any]:
    body, headers = signed(payload, **signing)
    event = apigw_event(
        "POST", "/slack/interactivity", body=body, headers=headers, base64=True, sample="form"
    )
    return invoke(app, event)


def channel_message(slack: SlackStandIn) -> tuple[str, str]:
    """The channel copy of the last gate posted: (channel, ts)."""
    posted = [m for m in slack.called("chat.postMessage") if m["channel"] == CHANNEL]
    assert posted, slack.calls
    index = len(slack.called("chat.postMessage")) - 1
    return CHANNEL, f"{1_700_000_000.000100 + index + 1:.6f}"


def actions_of(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def updates_of(slack: SlackStandIn) -> list[dict[str, Any]]:
    return slack.called("chat.update")


def nothing_written(store: Store, gate: Any) -> None:
    keys = EventKeys.parse(gate.request_id)
    assert store.get_decision(keys) is None
    assert store.run_vote_names(keys.run_key).get(keys.event_key, []) == []


def test_an_approval_by_button_updates_every_copy(
    s3_store: Store, slack: SlackStandIn, app: Any
) -> None:
    gate = hitl.approve.open(
        "deploy",
        "Ship 1.4 to production?",
        reviewers=["alice@example.com"],
        details={"version": "1.4.0", "tests": "512 passed"},
        poll_interval_seconds=0.1,
    )
    posted = slack.called("chat.postMessage")
    assert {m["channel"] for m in posted} == {CHANNEL, "DUALICE"}  # the channel, alice's DM
    blocks = posted[0]["blocks"]
    assert actions_of(blocks) == [APPROVE, REJECT]
    shown = json.dumps(blocks)
    assert "Ship 1.4 to production?" in shown and "512 passed" in shown and "token" not in shown

    channel, ts = channel_message(slack)
    assert post(app, click("UALICE", APPROVE, gate.request_id, channel, ts))["statusCode"] == 200
    approval = gate.wait()
    assert approval.approved and approval.by == "alice@example.com" and approval.via == "slack"
    # Both copies now say who decided, with no buttons.
    updated = {u["channel"] for u in updates_of(slack) if not actions_of(u["blocks"])}
    assert updated == {CHANNEL, "DUALICE"}
    assert any("alice@example.com" in json.dumps(u["blocks"]) for u in updates_of(slack))
    # A second click: the first answer stands; the clicker is told, privately.
    again = post(app, click("UALICE", REJECT, gate.request_id, channel, ts))
    assert again["statusCode"] == 200
    assert "closed: answered by alice" in slack.called("chat.postEphemeral")[-1]["text"]
    assert gate.wait().approved


def test_a_quorum_of_two_by_two_people(s3_store: Store, slack: SlackStandIn, app: Any) -> None:
    gate = hitl.approve.open(
        "release",
        "Release?",
        reviewers=["alice@example.com", "bob@example.com"],
        quorum=2,
        poll_interval_seconds=0.1,
    )
    channel, ts = channel_message(slack)
    post(app, click("UALICE", APPROVE, gate.request_id, channel, ts))
    progress = json.dumps(updates_of(slack)[-1]["blocks"])
    assert "voted" in progress and APPROVE in progress  # still open: buttons, and the tally
    post(app, click("UBOB", APPROVE, gate.request_id, channel, ts))
    approval = gate.wait()
    assert approval.approved and {v.reviewer for v in approval.votes} == {
        "alice@example.com",
        "bob@example.com",
    }


def test_a_reject_asks_for_its_reason_in_a_modal(
    s3_store: Store, slack: SlackStandIn, app: Any
) -> None:
    gate = hitl.approve.open("drop", "Drop the table?", poll_interval_seconds=0.1)
    channel, ts = channel_message(slack)
    assert post(app, click("UBOB", REJECT, gate.request_id, channel, ts))["statusCode"] == 200
    view = slack.called("views.open")[-1]["view"]
    nothing_written(s3_store, gate)  # a click that opens a modal records nothing
    empty = post(app, submission("UBOB", view, "reason", ""))
    assert "reason" in json.loads(empty["body"])["errors"]["reason"]
    done = post(app, submission("UBOB", view, "reason", "the backup is a day old"))
    assert done["statusCode"] == 200
    approval = gate.wait()
    assert not approval.approved and approval.reason == "the backup is a day old"
    assert approval.by == "bob@example.com"


def test_choices_and_numbers(s3_store: Store, slack: SlackStandIn, app: Any) -> None:
    from typing import Literal

    region = hitl.new_event("region", Literal["eu", "us"], poll_interval_seconds=0.1)
    channel, ts = channel_message(slack)
    payload = click("UBOB", CHOOSE, "", channel, ts)
    payload["actions"] = [
        {"action_id": CHOOSE, "selected_option": {"value": json.dumps([region.request_id, "eu"])}}
    ]
    post(app, payload)
    assert region.wait() == "eu"

    replicas = hitl.new_event("replicas", int, poll_interval_seconds=0.1)
    channel, ts = channel_message(slack)
    from hitl_sdk.chat import ANSWER

    post(app, click("UBOB", ANSWER, replicas.request_id, channel, ts))
    view = slack.called("views.open")[-1]["view"]
    wrong = post(app, submission("UBOB", view, "value", "three"))
    assert "value" in json.loads(wrong["body"])["errors"]
    post(app, submission("UBOB", view, "value", "3"))
    assert replicas.wait() == 3


def test_forged_stale_replayed_and_unnamed_clicks_change_nothing(
    s3_store: Store, slack: SlackStandIn, app: Any
) -> None:
    gate = hitl.approve.open(
        "pay",
        "Pay the invoice?",
        reviewers=["alice@example.com", "bob@example.com"],
        requested_by="alice@example.com",
        poll_interval_seconds=0.1,
    )
    channel, ts = channel_message(slack)
    approve = click("UBOB", APPROVE, gate.request_id, channel, ts)
    # Not signed with the app's secret; signed five minutes and more ago.
    assert post(app, approve, secret="an attacker's guess")["statusCode"] == 401
    assert post(app, approve, at=time.time() - 301)["statusCode"] == 401
    nothing_written(s3_store, gate)
    told = len(slack.called("chat.postEphemeral"))
    # A user the gate does not name; a user without an email; the requester herself.
    for user in ("UEVE", "UNOMAIL", "UALICE"):
        assert post(app, click(user, APPROVE, gate.request_id, channel, ts))["statusCode"] == 200
        nothing_written(s3_store, gate)
    said = [m["text"] for m in slack.called("chat.postEphemeral")[told:]]
    assert "does not name eve@example.com" in said[0]
    assert "no email" in said[1]
    assert "asked for this approval and cannot approve it" in said[2]
    assert all(
        m["user"] in ("UEVE", "UNOMAIL", "UALICE")
        for m in slack.called("chat.postEphemeral")[told:]
    )
    # A captured, valid request replayed: the first counts, the replay does not.
    body, headers = signed(click("UBOB", REJECT, gate.request_id, channel, ts))
    event = apigw_event(
        "POST", "/slack/interactivity", body=body, headers=headers, base64=True, sample="form"
    )
    assert invoke(app, event)["statusCode"] == 200  # opens the reason modal: nothing recorded
    assert invoke(app, event)["statusCode"] == 200
    assert "replay" in slack.called("chat.postEphemeral")[-1]["text"]
    assert len(slack.called("views.open")) == 1
    nothing_written(s3_store, gate)


def test_messages_update_after_a_link_answer_and_after_a_timeout(
    s3_store: Store, slack: SlackStandIn, handler: Any
) -> None:
    from apigw import json_post_event

    gate = hitl.new_event("go", bool, poll_interval_seconds=0.1)
    body = {"request_id": gate.request_id, "token": gate.token, "value": True}
    assert invoke(handler, json_post_event(body))["statusCode"] == 200
    assert gate.wait() is True  # the task sees it and updates its message
    closed = updates_of(slack)[-1]
    assert not actions_of(closed["blocks"]) and "link holder" in json.dumps(closed["blocks"])

    lapsing = hitl.new_event("late", bool, timeout_seconds=0.3, poll_interval_seconds=0.1)
    with pytest.raises(hitl.EventTimeout):
        lapsing.wait()
    closed = updates_of(slack)[-1]
    assert not actions_of(closed["blocks"]) and "timed out" in json.dumps(closed["blocks"]).lower()
    # The bot token never lands in a record.
    from test_notify import every_object

    assert BOT_TOKEN not in every_object(s3_store)


def _html(blocks: list[dict[str, Any]]) -> str:
    """Block Kit as Slack draws it, near enough for a picture: header, sections (text and
    fields), context, buttons and selects."""
    import html
    import re

    def text(node: dict[str, Any]) -> str:
        escaped = html.escape(node.get("text", ""))
        return re.sub(r"\*([^*]+)\*", r"<b>\1</b>", escaped).replace("\n", "<br>")

    out = []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            out.append(f"<h3>{text(block['text'])}</h3>")
        elif kind == "section" and "fields" in block:
            cells = "".join(f"<div>{text(f)}</div>" for f in block["fields"])
            out.append(f"<div class='fields'>{cells}</div>")
        elif kind == "section":
            out.append(f"<p>{text(block['text'])}</p>")
        elif kind == "context":
            out.append(f"<p class='context'>{' '.join(text(e) for e in block['elements'])}</p>")
        elif kind == "actions":
            items = []
            for e in block["elements"]:
                if e["type"] == "button":
                    items.append(f"<button class='{e.get('style', '')}'>{text(e['text'])}</button>")
                else:
                    items.append(f"<select><option>{text(e['placeholder'])}</option></select>")
            out.append(f"<div class='actions'>{''.join(items)}</div>")
    style = (
        "body{font:15px -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;padding:16px;"
        "background:#fff;color:#1d1c1d}.msg{display:flex;gap:8px;max-width:620px}"
        ".avatar{width:36px;height:36px;border-radius:4px;background:#2f5fd0;flex:none}"
        ".who b{margin-right:6px}.who span{color:#616061;font-size:12px}h3{margin:4px 0}"
        "p{margin:6px 0}.context{color:#616061;font-size:13px}"
        ".fields{display:grid;grid-template-columns:1fr 1fr;gap:6px 16px;margin:6px 0}"
        ".actions{display:flex;gap:8px;margin-top:8px;flex-wrap:wrap}button,select{font:inherit;"
        "font-weight:700;padding:6px 14px;border:1px solid #ddd;border-radius:4px;background:#fff}"
        "button.primary{background:#007a5a;color:#fff;border-color:#007a5a}"
        "button.danger{background:#e01e5a;color:#fff;border-color:#e01e5a}"
    )
    return (
        f"<!doctype html><meta charset='utf-8'><style>{style}</style><div class='msg'>"
        "<div class='avatar'></div><div><div class='who'><b>hitl</b><span>APP 10:42</span></div>"
        f"{''.join(out)}</div></div>"
    )


def test_the_message_as_reviewers_see_it(s3_store: Store, slack: SlackStandIn) -> None:
    """The README's picture: the Block Kit JSON posted for an approval, drawn in Chromium."""
    from pathlib import Path

    from test_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./dev test does)")
    from playwright.sync_api import sync_playwright

    hitl.approve.open(
        "deploy",
        "Ship *1.4.0* to production? The canary has run for an hour.",
        title="Deploy payments-api 1.4.0",
        reviewers=["alice@example.com", "bob@example.com"],
        details={"version": "1.4.0", "tests": "512 passed", "canary errors": "0.02%"},
    )
    blocks = slack.called("chat.postMessage")[0]["blocks"]
    root = Path(__file__).resolve().parent.parent
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 680, "height": 300})
        page.set_content(_html(blocks))
        for target in (root / "test-artifacts", root / "docs" / "images"):
            target.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target / "slack-message.png"), full_page=True)
        assert page.get_by_role("button", name="Approve").is_visible()
        browser.close()
