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
from hitl_sdk._store import Store

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
    assert page.get_by_role("heading", level=1).inner_text() == "bool_gate"
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
