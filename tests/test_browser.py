"""A reviewer in a real browser: Debian's headless Chromium, driven by Playwright, opens the
links the SDK mints, answers, and the SDK's ``wait()`` returns each value typed.

The app runs under uvicorn (as ``hitl serve`` runs it) on a free loopback port, over a moto
S3 store. A screenshot of the form is saved to ``test-artifacts/form.png``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_sdk import _config
from hitl_sdk.storage.store import Store

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def served_store(moto_endpoint: str) -> Iterator[tuple[str, str]]:
    """The reviewer app under uvicorn on 127.0.0.1 (a free port); (store URL, app URL)."""
    bucket = f"hitl-browser-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    store_url = f"s3://{bucket}/hitl"
    config = uvicorn.Config(
        create_app(Store(store_url)), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield store_url, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./dev test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, served_store: tuple[str, str]) -> Iterator[Any]:
    """A fresh browser page, with the SDK minting links that point at the served app."""
    store_url, app_url = served_store
    _config.configure(store_url=store_url, app_url=app_url, run_id=f"br-{uuid.uuid4().hex[:8]}")
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def _gate(data_type: type, prompt: str, **options: Any) -> hitl.Event:
    options.setdefault("poll_interval_seconds", 0.05)
    return hitl.new_event(f"{data_type.__name__}_gate", data_type, prompt=prompt, **options)


def _confirmed(page: Any) -> str:
    page.get_by_role("status").wait_for()
    text: str = page.get_by_role("status").inner_text()
    assert "your answer was recorded" in text
    return text


def test_reviewer_answers_int_float_str_and_bool_in_chromium(page: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    bool_event = _gate(
        bool,
        "3 anomalies found in the nightly load. Approve for downstream processing?",
        details="table: orders_2026_11\nrows: 1,204,551\nanomalies: 3 (null customer_id)",
        reviewers=["alice"],
    )
    page.goto(bool_event.form_url)
    # The heading is the prompt's first line (or title=), not the machine name.
    heading = page.get_by_role("heading", level=1).inner_text()
    assert heading == "3 anomalies found in the nightly load. Approve for downstream processing?"
    assert "(in 59 min)" in page.locator(".meta").inner_text()  # the deadline, relative too
    # The inline style is allowed by the CSP nonce: the buttons are styled, not browser default.
    approve = page.get_by_role("button", name="Approve")
    assert approve.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(23, 121, 74)"
    page.screenshot(path=str(ARTIFACTS / "form.png"), full_page=True)
    page.get_by_label("Comment").fill("Checked the three rows; known upstream gap.")
    approve.click()
    _confirmed(page)
    assert page.locator("#answer").inner_text() == "Approved"
    assert page.locator("#answered-by").inner_text() == "alice"

    answers: list[tuple[hitl.Event, str, object]] = [
        (_gate(int, "How many retries?"), "3", 3),
        (_gate(float, "Confidence threshold?"), "0.85", 0.85),
        (_gate(str, "Release note headline?"), "Faster loads, <b>fewer</b> retries", None),
    ]
    for event, typed, _ in answers:
        page.goto(event.form_url)
        field = page.get_by_label("Your answer")
        field.fill(typed)
        if event.data_type is str:
            page.get_by_role("button", name="Submit answer").click()
        else:
            field.press("Enter")  # keyboard-friendly: Enter submits
        _confirmed(page)

    assert bool_event.wait() is True
    for event, typed, expected in answers:
        value = event.wait()
        assert type(value) is event.data_type
        assert value == (typed if expected is None else expected)


def test_wrong_value_shows_the_error_and_the_form_again(page: Any) -> None:
    event = _gate(int, "How many shards?")
    page.goto(event.form_url)
    page.get_by_label("Your answer").fill("12.5")
    page.get_by_role("button", name="Submit answer").click()

    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Expected int" in alert.inner_text()
    field = page.get_by_label("Your answer")
    assert field.input_value() == "12.5"
    assert field.get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(ARTIFACTS / "form-error.png"), full_page=True)

    field.fill("12")
    page.get_by_role("button", name="Submit answer").click()
    _confirmed(page)
    assert event.wait() == 12


def test_answered_link_shows_the_answer_not_the_form(page: Any) -> None:
    event = _gate(bool, "Deploy to production?")
    page.goto(event.form_url)
    page.get_by_role("button", name="Reject").click()
    _confirmed(page)

    page.goto(event.form_url)  # the same link, opened again

    assert "already answered" in page.get_by_role("status").inner_text()
    assert page.locator("#answer").inner_text() == "Rejected"
    assert page.locator("form").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "answered.png"), full_page=True)
    assert event.wait() is False


# -- richer gates: choices, a multi-select, a model form, an approval --------------------------

WIDTHS = {"desktop": 1200, "phone": 390}


def _shots(page: Any, name: str) -> None:
    """The page at desktop and phone width, saved as test-artifacts/<name>-<width>.png; no
    sideways scrolling at either."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, label)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 900, "height": 900})


def test_reviewer_picks_a_choice_and_several_in_chromium(page: Any) -> None:
    import enum
    from typing import Annotated, Literal

    from pydantic import Field

    class Stage(enum.Enum):
        CANARY = "canary"
        HALF = "50%"
        ALL = "everyone"

    choice = hitl.new_event(
        "rollout", Stage, prompt="Roll 1.4 out to whom?", poll_interval_seconds=0.05
    )
    page.goto(choice.form_url)
    _shots(page, "choice")
    page.get_by_label("50%").check()
    page.get_by_role("button", name="Submit answer").click()
    _confirmed(page)
    assert choice.wait() is Stage.HALF

    picks = Annotated[list[Literal["web", "api", "data", "ml"]], Field(min_length=1, max_length=2)]
    multi = hitl.new_event(
        "teams", picks, prompt="Which teams sign off?", poll_interval_seconds=0.05
    )
    page.goto(multi.form_url)
    for team in ("web", "api", "ml"):
        page.get_by_label(team).check()
    page.get_by_role("button", name="Submit answer").click()
    page.get_by_role("alert").wait_for()
    assert "Pick at most 2" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("ml").is_checked()  # the picks are kept
    _shots(page, "multi-select-error")
    page.get_by_label("ml").uncheck()
    page.get_by_role("button", name="Submit answer").click()
    _confirmed(page)
    assert multi.wait() == ["web", "api"]


def test_reviewer_fills_a_model_form_in_chromium(page: Any) -> None:
    import enum
    from typing import Literal

    from pydantic import BaseModel, Field

    class Severity(enum.Enum):
        LOW = "low"
        HIGH = "high"

    class Incident(BaseModel):
        title: str = Field(max_length=60, description="One line for the changelog")
        affected: int = Field(ge=0, le=1000, description="How many customers")
        severity: Severity = Severity.LOW
        teams: list[Literal["web", "api", "data"]] = []
        customer_visible: bool = False

    event = hitl.new_event(
        "incident", Incident, prompt="Describe the incident", poll_interval_seconds=0.05
    )
    page.goto(event.form_url)
    _shots(page, "model-form")
    page.get_by_label("Title").fill("Checkout errors after deploy")
    page.get_by_label("Affected").fill("5000")  # out of its constraint
    page.get_by_label("high").check()
    page.get_by_label("api").check()
    page.get_by_label("Customer Visible").check()
    page.get_by_role("button", name="Submit answer").click()
    page.get_by_role("alert").wait_for()
    assert "Affected: must be at most 1000" in page.get_by_role("alert").inner_text()
    # Everything typed and ticked is still there.
    assert page.get_by_label("Title").input_value() == "Checkout errors after deploy"
    assert page.get_by_label("Affected").input_value() == "5000"
    assert page.get_by_label("high").is_checked() and page.get_by_label("api").is_checked()
    assert page.get_by_label("Customer Visible").is_checked()
    _shots(page, "model-form-error")
    page.get_by_label("Affected").fill("120")
    page.get_by_role("button", name="Submit answer").click()
    _confirmed(page)
    assert event.wait() == Incident(
        title="Checkout errors after deploy",
        affected=120,
        severity=Severity.HIGH,
        teams=["api"],
        customer_visible=True,
    )


def test_reviewer_rejects_an_approval_with_a_reason_in_chromium(page: Any) -> None:
    event = hitl.approve.open(
        "deploy", "Ship 1.4 to production?", require_reason="reject", poll_interval_seconds=0.05
    )
    page.goto(event.form_url)
    _shots(page, "approval")
    page.get_by_role("button", name="Reject").click()  # no reason: refused by the server
    page.get_by_role("alert").wait_for()
    assert "reason is required to reject" in page.get_by_role("alert").inner_text()
    _shots(page, "approval-error")
    page.get_by_label("Reason").fill("The canary error rate doubled.")
    page.get_by_role("button", name="Reject").click()
    _confirmed(page)
    assert "Rejected: The canary error rate doubled." in page.locator("#answer").inner_text()
    _shots(page, "approval-done")
    approval = event.wait()
    assert not approval.approved and approval.reason == "The canary error rate doubled."
    assert approval.via == "form"


def test_reviewers_cast_quorum_votes_and_see_the_progress_in_chromium(page: Any) -> None:
    event = hitl.approve.open(
        "release",
        "Release 2.0 to every region?",
        reviewers={
            "alice@example.com": hitl.Reviewer(groups=["legal"]),
            "bob@example.com": hitl.Reviewer(groups=["finance"]),
            "carol@example.com": None,
        },
        quorum={"legal": 1, "finance": 1},
        requested_by="carol@example.com",
        poll_interval_seconds=0.05,
    )
    page.goto(event.links["alice@example.com"])
    assert "No votes yet." in page.locator(".votes").inner_text()
    page.get_by_role("button", name="Approve").click()
    page.locator("#my-vote").wait_for()
    assert "you approved" in page.locator("#my-vote").inner_text()
    assert "1 from finance" in page.locator("#quorum-needed").inner_text()
    assert page.get_by_role("button", name="Approve").count() == 0  # one vote a person
    _shots(page, "quorum-voted")
    page.goto(event.links["bob@example.com"])
    rows = page.locator("#vote-list tbody tr")
    assert rows.count() == 1 and "alice@example.com" in rows.first.inner_text()
    _shots(page, "quorum-pending")
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("status").wait_for()
    assert "your vote was recorded" in page.get_by_role("status").inner_text()
    assert "decided: approved" in page.get_by_role("status").inner_text()
    assert page.locator("#vote-list tbody tr").count() == 2
    assert "alice@example.com, bob@example.com" in page.locator("#answered-by").inner_text()
    _shots(page, "quorum-decided")
    approval = event.wait()
    assert approval.approved and [v.reviewer for v in approval.votes] == [
        "alice@example.com",
        "bob@example.com",
    ]


def test_evidence_table_and_markdown_fit_a_phone_in_chromium(page: Any) -> None:
    rows = [
        {"check": "p95 latency", "before": "180 ms", "after": "212 ms", "verdict": "within budget"},
        {"check": "error rate", "before": "0.10%", "after": "0.12%", "verdict": "within budget"},
        {"check": "checkout_conversion_rate_mobile_web", "before": "3.1%", "after": "3.0%",
         "verdict": "watch"},
    ]  # fmt: skip
    event = hitl.new_event(
        "canary",
        bool,
        prompt="# Promote the canary?\n\nThe **canary** ran 2 h; see "
        "[the dashboard](https://grafana.example/d/abc?orgId=1&from=now-2h&to=now).",
        prompt_format="markdown",
        details=rows,
        poll_interval_seconds=0.05,
    )
    page.goto(event.form_url)
    assert page.get_by_role("heading", level=1).inner_text() == "Promote the canary?"
    assert page.locator("table th").count() == 4
    _shots(page, "evidence")
    page.get_by_role("button", name="Approve").click()
    _confirmed(page)
    assert event.wait() is True


def test_flyte_report_panel_fits_a_phone_in_chromium(browser: Any, served_store: Any) -> None:
    from hitl_sdk.flyte.report import panel_html

    store_url, app_url = served_store
    _config.configure(store_url=store_url, app_url=app_url, run_id=f"panel-{uuid.uuid4().hex[:6]}")
    event = hitl.new_event(
        "promote",
        bool,
        prompt="Promote build 2026.11.26-rc3 to production?",
        details={"commit": "9f1c2ab", "tests": "1,204 passed", "owner": "release-bot"},
    )
    context = browser.new_context(viewport={"width": 390, "height": 900})
    panel = context.new_page()
    try:
        panel.set_content(f"<!doctype html><meta charset=utf-8><body>{panel_html(event)}</body>")
        _shots(panel, "flyte-panel")
        # The curl line is whole and ready to paste: wrapped on screen, one command as text.
        curl = panel.locator("pre.hitl-curl").inner_text()
        assert curl.startswith("curl -X POST ") and event.token in curl
    finally:
        context.close()


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-inbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def test_reviewer_signs_in_and_works_through_three_gates_from_the_inbox_in_chromium(
    browser: Any, served_store: tuple[str, str]
) -> None:
    from oidc import OidcProvider

    from hitl_lambda.auth import OidcSettings

    store_url, _ = served_store
    with OidcProvider() as issuer:
        issuer.user("rina@example.com", groups=["release"])
        settings = OidcSettings.from_env(
            {
                "HITL_OIDC_ISSUER": issuer.url,
                "HITL_OIDC_CLIENT_ID": "hitl-inbox",
                "HITL_OIDC_CLIENT_SECRET": "client-secret",
                "HITL_SESSION_SECRET": "k" * 48,
            }
        )
        server, thread, app_url = _serve(create_app(Store(store_url), oidc=settings))
        try:
            _config.configure(store_url=store_url, app_url=app_url, run_id="release-2-0")
            replicas = hitl.new_event(
                "replicas", int, prompt="How many replicas for 2.0?",
                reviewers=["rina@example.com"], timeout_seconds=600, poll_interval_seconds=0.05,
            )  # fmt: skip
            ship = hitl.approve.open(
                "ship", "Ship 2.0 to every region?", reviewers=["group:release"],
                timeout_seconds=1800, poll_interval_seconds=0.05,
            )  # fmt: skip
            notes = hitl.new_event(
                "notes", str, prompt="Release notes headline", reviewers=["rina@example.com"],
                timeout_seconds=7200, poll_interval_seconds=0.05,
            )  # fmt: skip
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.goto(f"{app_url}/inbox")  # not signed in: to the issuer's own login page
            page.get_by_placeholder("sub").fill("rina@example.com")
            page.get_by_role("button", name="Authorize").click()
            page.locator("#gates").wait_for()
            titles = page.locator("#gates a.gate").all_inner_texts()
            assert titles == [
                "How many replicas for 2.0?",
                "Ship 2.0 to every region?",
                "Release notes headline",
            ]  # most urgent first
            assert "Signed in as rina@example.com" in page.locator("footer").inner_text()
            _shots(page, "inbox")
            page.locator("#gates a.gate").first.click()
            page.get_by_label("Your answer").fill("3")
            _shots(page, "inbox-gate")
            page.get_by_role("button", name="Submit answer").click()
            page.locator("#answered").wait_for()
            assert "Recorded: How many replicas for 2.0?" in page.locator("#answered").inner_text()
            page.locator("#next-gate").click()
            page.get_by_role("button", name="Approve").click()
            page.locator("#answered").wait_for()
            page.locator("#next-gate").click()
            page.get_by_label("Your answer").fill("Faster everywhere")
            page.get_by_role("button", name="Submit answer").click()
            page.locator("#answered").wait_for()
            assert "Nothing else waits for you" in page.locator("#answered").inner_text()
            assert page.locator("#empty").is_visible()
            page.get_by_role("link", name="Recently closed (3)").click()
            assert page.locator("#gates li").count() == 3
            _shots(page, "inbox-closed")
            assert replicas.wait() == 3 and ship.wait().by == "rina@example.com"
            assert notes.wait() == "Faster everywhere"
            page.get_by_role("link", name="Sign out").click()
            assert "You are signed out" in page.get_by_role("status").inner_text()
            context.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def test_a_reviewer_edits_an_agents_call_before_approving_in_chromium(page: Any) -> None:
    """``@hitl.require_approval(editable=...)``: the proposed arguments pre-filled on the form,
    a wrong type refused, the edited call run; at desktop and phone width."""
    from test_notify import Webhook, until

    hook = Webhook()
    ran: list[tuple[str, float]] = []

    @hitl.require_approval(
        editable=["to", "amount"],
        prompt="Pay {amount} to {to}?",
        notify=hook.url,
        poll_interval_seconds=0.05,
    )
    def pay(to: str, amount: float, api_key: str = "sk-browser-secret") -> str:
        ran.append((to, amount))
        return f"paid {amount} to {to}"

    results: list[str] = []
    agent = threading.Thread(target=lambda: results.append(pay("bob@example.com", 400.0)))
    agent.start()
    try:
        until(lambda: any("token=" in str(m["message"]) for m in hook.received))
        message = next(str(m["message"]) for m in hook.received if "token=" in str(m["message"]))
        page.goto(next(w for w in message.split() if "token=" in w))
        amount = page.get_by_label("amount (proposed: 400.0)")
        assert amount.input_value() == "400.0"
        assert page.get_by_label("to (proposed: 'bob@example.com')").input_value() == (
            "bob@example.com"
        )
        assert "sk-browser-secret" not in page.content()
        _shots(page, "agent-edit")
        page.get_by_label("approve").check()
        amount.fill("forty")
        page.get_by_role("button", name="Submit answer").click()
        assert "Amount" in page.get_by_role("alert").inner_text() and not ran
        page.get_by_label("approve").check()
        page.get_by_label("amount (proposed: 400.0)").fill("40")
        page.get_by_role("button", name="Submit answer").click()
        _confirmed(page)
        agent.join(timeout=15)
        assert results == ["paid 40.0 to bob@example.com"] and ran == [("bob@example.com", 40.0)]
    finally:
        hook.close()
