"""Faults: a fault-injecting proxy of our own (tests/faultproxy.py) in front of the moto server.

SlowDown 503s, delays, dropped connections and lost replies (the write lands, its answer never
comes back). Waits complete, the app answers 503 with Retry-After inside the Lambda's time, no
object is half written, and a lost reply is recognised as the writer's own success.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from apigw import (
    LambdaContext,
    apigw_event,
    header,
    invoke,
    json_post_event,
    response_json,
)
from faultproxy import Fault, FaultProxy, Policy
from mangum import Mangum

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_sdk import _config
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.records import DecisionRecord, EventRecord, GrantRecord
from hitl_sdk.storage.store import Store

FUNCTION_TIMEOUT = 15.0  # template.yaml's Timeout


class Stats:
    """What the suite saw, for its summary line."""

    def __init__(self) -> None:
        self.requests = 0
        self.faults = 0
        self.answers = 0
        self.conflicts = 0
        self.server_errors = 0
        self.lost = 0

    def add_proxy(self, proxy: FaultProxy) -> None:
        self.requests += proxy.requests
        self.faults += sum(proxy.faults.values())


STATS = Stats()


@pytest.fixture(scope="module", autouse=True)
def _summary_line() -> Iterator[None]:
    yield
    from conftest import SUMMARY_LINES

    SUMMARY_LINES.append(
        f"faults: requests={STATS.requests} faults_injected={STATS.faults} "
        f"answers={STATS.answers} 409s={STATS.conflicts} 5xx={STATS.server_errors} "
        f"lost={STATS.lost}"
    )


@pytest.fixture
def proxied(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``proxied(policy)`` starts a proxy and points every store built after it at it."""
    started: list[FaultProxy] = []

    def start(policy: Policy) -> FaultProxy:
        proxy = FaultProxy(moto_endpoint, policy).__enter__()
        started.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        return proxy

    yield start
    for proxy in started:
        STATS.add_proxy(proxy)
        proxy.__exit__(None, None, None)


def context(seconds: float = FUNCTION_TIMEOUT) -> LambdaContext:
    ctx = LambdaContext()
    ctx._deadline = time.monotonic() + seconds
    return ctx


def app_over(url: str) -> Any:
    """What the Lambda builds at cold start: the request store (short timeouts, 1 retry)."""
    return Mangum(create_app(Store(url, for_requests=True)), lifespan="off")


def answer(handler: Any, event: hitl.Event[Any], value: object) -> dict[str, Any]:
    payload = {"request_id": event.request_id, "token": event.token, "value": value}
    resp = invoke(handler, json_post_event(payload), context())
    STATS.answers += 1
    STATS.conflicts += resp["statusCode"] == 409
    STATS.server_errors += resp["statusCode"] >= 500 and resp["statusCode"] != 503
    return resp


def lose_reply_once(method: str, part: str) -> Policy:
    """A policy that loses the reply of the first ``method`` request whose path has ``part``."""
    fired = threading.Event()

    def policy(m: str, path: str) -> Fault | None:
        if m == method and part in path and not fired.is_set():
            fired.set()
            return Fault("lost_reply")
        return None

    return policy


def all_records_whole(store: Store) -> None:
    """Every object under runs/ parses as the record its key says, and every inbox marker is
    empty: nothing half written."""
    models = {"events": EventRecord, "decisions": DecisionRecord, "grants": GrantRecord}
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
    assert store.bucket is not None
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    for item in (item for page in pages for item in page.get("Contents", ())):
        body = client.get_object(Bucket=store.bucket, Key=item["Key"])["Body"].read()
        if "/inbox/" in item["Key"]:
            assert body == b"", item["Key"]
            continue
        kind = item["Key"].split("/runs/", 1)[1].split("/")[1]
        models[kind].model_validate_json(body)


# -- lost replies -------------------------------------------------------------------------------


def test_a_lost_reply_to_an_answer_is_the_answerers_success(s3_url: str, proxied: Any) -> None:
    _config.configure(store_url=s3_url, run_id=f"lost-{uuid.uuid4().hex[:8]}")
    event = hitl.new_event("lost", bool)
    proxy = proxied(lose_reply_once("PUT", "/decisions/"))
    handler = app_over(s3_url)
    first = answer(handler, event, False)
    assert proxy.faults["lost_reply"] == 1
    assert first["statusCode"] == 200, response_json(first)
    assert response_json(first)["status"] == "submitted"
    # The client's own retry of that answer: recorded already, not a conflict.
    again = answer(handler, event, False)
    assert again["statusCode"] == 200 and response_json(again)["status"] == "already recorded"
    other = answer(handler, event, True)
    assert other["statusCode"] == 409
    assert event.wait() is False


def test_a_lost_reply_to_the_event_or_a_grant_write_is_no_error(s3_url: str, proxied: Any) -> None:
    run = f"lost-open-{uuid.uuid4().hex[:8]}"
    proxied(lose_reply_once("PUT", "/events/"))
    _config.configure(store_url=s3_url, run_id=run)
    first = hitl.new_event("gate", int)  # the event write's reply is lost: still opened
    proxied(lose_reply_once("PUT", "/grants/"))
    _config.configure(store_url=s3_url, run_id=run)  # a new store: through the new proxy
    again = hitl.new_event("gate", int)  # a restart: the grant write's reply is lost
    assert again.request_id == first.request_id and again.token != first.token
    handler = app_over(s3_url)
    assert answer(handler, again, 5)["statusCode"] == 200
    assert first.wait() == 5
    all_records_whole(first._store)


# -- the app's storage budget -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "budget"),
    [
        (Fault("slowdown"), FUNCTION_TIMEOUT),
        (Fault("drop"), FUNCTION_TIMEOUT),
        (Fault("delay", 20.0), FUNCTION_TIMEOUT),
        (Fault("delay", 20.0), 6.0),  # a function with less time left: the budget follows
    ],
    ids=["throttled", "dropped", "hanging", "hanging-short"],
)
def test_the_app_answers_503_with_retry_after_before_lambda_stops_it(
    s3_url: str, proxied: Any, fault: Fault, budget: float
) -> None:
    _config.configure(store_url=s3_url, run_id=f"budget-{uuid.uuid4().hex[:8]}")
    event = hitl.new_event("budget", bool)
    direct = _config.get_store()  # its client is made already: it goes straight to moto
    proxied(lambda method, path: fault)
    handler = app_over(s3_url)
    for request in (
        json_post_event({"request_id": event.request_id, "token": event.token, "value": True}),
        apigw_event("GET", f"/form/{event.request_id}", query={"token": event.token}),
    ):
        started = time.monotonic()
        resp = invoke(handler, request, context(budget))
        took = time.monotonic() - started
        assert resp["statusCode"] == 503, resp
        assert header(resp, "retry-after") == "5"
        assert header(resp, "content-security-policy")  # the app's own page, every header
        assert took < budget - 0.5, f"{fault}: 503 after {took:.1f}s of a {budget:g}s budget"
    assert direct.get_decision(EventKeys.parse(event.request_id)) is None


# -- waits under a flaky store ------------------------------------------------------------------


def test_waits_complete_through_throttling_drops_and_lost_replies(
    s3_url: str, proxied: Any
) -> None:
    rng = random.Random(11)
    lock = threading.Lock()

    def flaky(method: str, path: str) -> Fault | None:
        with lock:
            roll = rng.random()
        if roll < 0.2:
            return Fault("slowdown")
        if roll < 0.3:
            return Fault("drop")
        if roll < 0.35 and method == "PUT":
            return Fault("lost_reply")
        return None

    run = f"flaky-{uuid.uuid4().hex[:8]}"
    _config.configure(store_url=s3_url, run_id=run)
    events = [
        hitl.new_event(f"g{i}", int, timeout_seconds=120, poll_interval_seconds=0.05)
        for i in range(8)
    ]
    proxied(flaky)
    _config.configure(store_url=s3_url, run_id=run)
    handler = app_over(s3_url)
    results: dict[str, int] = {}

    def waiter(event: hitl.Event[int]) -> None:
        reopened = hitl.new_event(event.name, int, timeout_seconds=120, poll_interval_seconds=0.05)
        results[event.name] = reopened.wait()

    threads = [threading.Thread(target=waiter, args=(e,), daemon=True) for e in events]
    for thread in threads:
        thread.start()
    for i, event in enumerate(events):
        for _ in range(20):  # a reviewer retries a 503, as its Retry-After says
            resp = answer(handler, event, i)
            if resp["statusCode"] != 503:
                break
        assert resp["statusCode"] == 200, response_json(resp)
    for thread in threads:
        thread.join(timeout=120)
    assert results == {f"g{i}": i for i in range(8)}
    STATS.lost += 8 - len(results)
    all_records_whole(events[0]._store)
