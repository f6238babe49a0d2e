"""Agents: ``@hitl.require_approval`` and ``hitl.approve_call`` gate a call behind a person.

The reviewer is real: the gate's personal link reaches alice through her own channel (a JSON
webhook on loopback), and she answers through the reviewer app's JSON API (API Gateway v2
events through Mangum), as a person would. The agent runs the call on a thread of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apigw import apigw_event, invoke, json_post_event, response_text
from deployment import Deployment
from test_notify import Webhook, until

import hitl_sdk as hitl
from hitl_sdk import _config
from hitl_sdk.storage.store import Store


@pytest.fixture
def alice() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def link_for(hook: Webhook, seen: int = 0) -> tuple[str, str]:
    """The request id and token of the next personal link alice received."""
    until(lambda: len(hook.received) > seen)
    message = str(hook.received[seen]["message"])
    url = next(w for w in message.split() if "token=" in w)
    parts = urllib.parse.urlsplit(url)
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    return urllib.parse.unquote(parts.path.rsplit("/", 1)[1]), token


def decide(handler: Any, hook: Webhook, approved: bool, reason: str | None = None, seen: int = 0):
    request_id, token = link_for(hook, seen)
    value = {"approved": approved, "reason": reason}
    reply = invoke(
        handler, json_post_event({"request_id": request_id, "token": token, "value": value})
    )
    assert reply["statusCode"] == 200, reply
    return request_id, token


class Agent:
    """Runs a call on a thread: its result or its error."""

    def __init__(self, call: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = call()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Agent:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the gated call never returned"
        return self


def test_approved_runs_the_body_once_rejected_never(
    s3_store: Store, handler: Any, alice: Webhook
) -> None:
    ran: list[tuple[str, float]] = []

    @hitl.require_approval(
        reviewers={"alice": alice.url}, prompt="Refund {amount} to {to}?", poll_interval_seconds=0.1
    )
    def refund(to: str, amount: float, api_key: str = "sk-live-123") -> str:
        ran.append((to, amount))
        return f"refunded {amount} to {to}"

    agent = Agent(lambda: refund("bob@example.com", 40.0))
    # The form shows the call, its arguments and the prompt; the key is masked everywhere.
    request_id, token = link_for(alice)
    form = apigw_event("GET", f"/form/{request_id}", query={"token": token})
    page = response_text(invoke(handler, form))
    assert not ran  # nothing runs before the answer
    decide(handler, alice, True)
    assert agent.join().result == "refunded 40.0 to bob@example.com" and ran == [
        ("bob@example.com", 40.0)
    ]
    assert (
        "refund" in page and "bob@example.com" in page and "Refund 40.0 to bob@example.com?" in page
    )
    everything = (
        page
        + json.dumps(alice.received)
        + json.dumps([s3_store.get_event(_keys(request_id)).model_dump(mode="json")])
    )
    at = everything.find("sk-live-123")
    assert at < 0, everything[max(0, at - 300) : at + 50]
    assert "••••••" in page and "api_key" in page

    # The same call again (a retry, or a restarted agent): approved once, not asked again.
    assert refund("bob@example.com", 40.0) == "refunded 40.0 to bob@example.com"
    assert len(alice.received) == 2  # the link, and the close message: no new question

    # Other arguments are another question; rejected, the body never runs.
    agent = Agent(lambda: refund("eve@example.com", 4000.0))
    decide(handler, alice, False, "not a customer", seen=2)
    error = agent.join().error
    assert isinstance(error, hitl.Rejected) and isinstance(error, hitl.HitlError)
    assert (
        error.reason == "not a customer" and error.by == "alice" and error.call.endswith("refund")
    )
    assert "rejected by alice: not a customer" in str(error)
    assert ran == [("bob@example.com", 40.0)] * 2  # the approved call, twice; never eve's


def _keys(request_id: str) -> Any:
    from hitl_sdk.storage.keys import EventKeys

    return EventKeys.parse(request_id)


def test_timeout_applies_on_timeout(s3_store: Store) -> None:
    ran: list[int] = []

    @hitl.require_approval(timeout_seconds=0.3, poll_interval_seconds=0.1)
    def delete(table: str) -> None:
        ran.append(1)

    with pytest.raises(hitl.Rejected) as caught:
        delete("users")
    assert "timeout" in caught.value.by and not ran

    @hitl.require_approval(timeout_seconds=0.3, poll_interval_seconds=0.1, on_timeout="approve")
    def archive(table: str) -> str:
        return f"archived {table}"

    assert archive("logs") == "archived logs"


def test_async_functions_are_awaited_without_blocking_the_loop(
    s3_store: Store, handler: Any, alice: Webhook
) -> None:
    @hitl.require_approval(reviewers={"alice": alice.url}, poll_interval_seconds=0.1)
    async def send_email(to: str, body: str) -> str:
        await asyncio.sleep(0)
        return f"sent to {to}"

    async def agent() -> tuple[str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beating = asyncio.create_task(ticker())
        result = await send_email("carol@example.com", "hello")
        beating.cancel()
        return result, ticks

    runner = Agent(lambda: asyncio.run(agent()))
    decide(handler, alice, True)
    result, ticks = runner.join().result
    assert result == "sent to carol@example.com" and ticks > 5  # the loop ran while it waited


def test_a_restarted_agent_resumes_the_same_gate(
    s3_store: Store, handler: Any, alice: Webhook
) -> None:
    def transfer(account: str, cents: int) -> str:
        return f"moved {cents} from {account}"

    gated = hitl.require_approval(reviewers={"alice": alice.url}, poll_interval_seconds=0.1)(
        transfer
    )
    first = Agent(lambda: gated("acct-1", 500))
    request_id, _ = link_for(alice)
    # The agent dies before anyone answers: a new process (same run) makes the same call.
    run = _config.run_id()
    _config.configure(store_url=s3_store.url, run_id=run)
    again = Agent(lambda: gated("acct-1", 500))
    decide(handler, alice, True)
    assert again.join().result == "moved 500 from acct-1"
    assert first.join().result == "moved 500 from acct-1"
    assert {
        link_for(alice, i)[0]
        for i in range(len(alice.received))
        if "token=" in str(alice.received[i]["message"])
    } == {request_id}


def test_approve_call_and_mistakes_said_plainly(s3_store: Store) -> None:
    def wipe(disk: str) -> str:
        return f"wiped {disk}"

    with pytest.raises(hitl.Rejected):
        hitl.approve_call(
            wipe, "sda", _options={"timeout_seconds": 0.2, "poll_interval_seconds": 0.1}
        )
    with pytest.raises(TypeError, match=r"wipe\(\): missing a required argument: 'disk'"):
        hitl.approve_call(wipe)
    with pytest.raises(hitl.ConfigError, match="redact= names 'password'"):
        hitl.require_approval(redact=["password"])(wipe)
    with pytest.raises(hitl.ConfigError, match="not a parameter"):
        hitl.approve_call(wipe, "sda", _prompt="Wipe {volume}?")


ROOT = Path(__file__).resolve().parent.parent


def run_example(deployment: Deployment, script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / script)],
        env={**os.environ, **deployment.env},
        stdout=subprocess.PIPE,
        text=True,
    )


def test_the_plain_agent_loop_example(deployment: Deployment) -> None:
    agent = run_example(deployment, "agent_loop.py")
    assert deployment.answer({"approved": True, "reason": None}) == 200  # the charge
    assert deployment.answer({"approved": False, "reason": "wrong address"}) == 200  # the email
    out, _ = agent.communicate(timeout=60)
    assert out.splitlines() == [
        "lookup: ada@example.com: 2 orders, last one damaged in transit",
        "charge: charged ada@example.com 1299 cents",
        "send_email: not done (link holder: wrong address)",
    ], out
    assert "4242424242424242" not in json.dumps(deployment.hook.received)


def test_a_pydantic_ai_agents_tool_waits_for_approval(deployment: Deployment) -> None:
    pytest.importorskip("pydantic_ai")
    agent = run_example(deployment, "pydantic_ai_agent.py")
    assert deployment.answer({"approved": True, "reason": None}) == 200
    out, _ = agent.communicate(timeout=60)
    assert out.strip() == "Done: refunded 40.0 on A-1001", out
    assert "sk-live-not-for-eyes" not in json.dumps(deployment.hook.received)


def test_an_edited_approval_runs_the_body_with_the_edits(
    s3_store: Store, handler: Any, alice: Webhook
) -> None:
    from apigw import form_post_event

    sent: list[tuple[str, float, str]] = []

    @hitl.require_approval(
        reviewers={"alice": alice.url}, editable=["to", "amount"], poll_interval_seconds=0.1
    )
    def pay(to: str, amount: float, memo: str = "invoice 7", token: str = "tok-secret") -> str:
        sent.append((to, amount, memo))
        return f"paid {amount} to {to}"

    agent = Agent(lambda: pay("bob@example.com", 400.0))
    request_id, token = link_for(alice)
    # The form shows the proposed values, pre-filled, and no secret.
    page = response_text(
        invoke(handler, apigw_event("GET", f"/form/{request_id}", query={"token": token}))
    )
    assert 'value="bob@example.com"' in page and 'value="400.0"' in page
    assert "tok-secret" not in page

    def post(**fields: str) -> dict[str, Any]:
        body = {"request_id": request_id, "token": token, "form": "model"}
        body.update({f"f.{k}": v for k, v in fields.items()})
        return invoke(handler, form_post_event(body))

    # A value of the wrong type is refused on the form (and nothing runs).
    refused = post(decision="approve", to="bob@example.com", amount="four hundred")
    assert refused["statusCode"] == 400 and "amount" in response_text(refused) and not sent
    # The reviewer fixes the amount and approves: the body runs with the edit.
    assert (
        post(decision="approve", to="bob@example.com", amount="40", reason="typo")["statusCode"]
        == 303
    )
    assert agent.join().result == "paid 40.0 to bob@example.com"
    assert sent == [("bob@example.com", 40.0, "invoice 7")]
    # The record keeps the proposal (details), the decision the edit.
    from hitl_sdk.storage.keys import EventKeys

    keys = EventKeys.parse(request_id)
    event = s3_store.get_event(keys)
    decision = s3_store.get_decision(keys)
    assert event is not None and decision is not None
    assert event.details == {
        "to": "bob@example.com", "amount": "400.0", "memo": "invoice 7", "token": "••••••"
    }  # fmt: skip
    assert decision.value["amount"] == 40.0 and decision.value["decision"] == "approve"

    # Rejected with edits offered: hitl.Rejected, the body never runs.
    agent = Agent(lambda: pay("mallory@example.com", 9999.0))
    request_id, token = _next_link(alice, {keys.request_id})
    assert (
        post(decision="reject", to="mallory@example.com", amount="9999", reason="fraud")[
            "statusCode"
        ]
        == 303
    )
    error = agent.join().error
    assert isinstance(error, hitl.Rejected) and error.reason == "fraud" and error.by == "alice"
    assert len(sent) == 1

    with pytest.raises(hitl.ConfigError, match="masked"):
        hitl.require_approval(editable=["token"])(pay)("x", 1.0)


def _next_link(hook: Webhook, used: set[str]) -> tuple[str, str]:
    """The first personal link alice received for a gate not in ``used`` (waits for it)."""

    def fresh() -> list[tuple[str, str]]:
        indexes = [i for i, m in enumerate(hook.received) if "token=" in str(m["message"])]
        return [link for link in (link_for(hook, i) for i in indexes) if link[0] not in used]

    until(lambda: bool(fresh()))
    return fresh()[0]
