"""Attacks on the reviewer app, through the Lambda handler with real API Gateway v2 events,
against a moto S3 store. Every refused request is checked to have written or changed
nothing: the bucket's full contents are compared byte for byte before and after."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from apigw import (
    Handler,
    apigw_event,
    follow,
    form_post_event,
    header,
    invoke,
    json_post_event,
    response_json,
    response_text,
)

import hitl_sdk as hitl
from hitl_sdk.storage.keys import EventKeys

Snapshot = dict[str, bytes]


@pytest.fixture
def snapshot(s3_bucket: str, moto_endpoint: str) -> Callable[..., Snapshot]:
    """Every object in the test's bucket (and in any ``extra`` buckets), "bucket/key" -> bytes."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)

    def take(*extra: str) -> Snapshot:
        objects: Snapshot = {}
        for name in (s3_bucket, *extra):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                for item in page.get("Contents", []):
                    body = s3.get_object(Bucket=name, Key=item["Key"])["Body"].read()
                    objects[f"{name}/{item['Key']}"] = body
        return objects

    return take


def _event(data_type: type = bool, **options: Any) -> hitl.Event:
    options.setdefault("poll_interval_seconds", 0.05)
    return hitl.new_event(f"gate-{uuid.uuid4().hex[:6]}", data_type, **options)


def _decision_key(bucket: str, event: hitl.Event) -> str:
    return f"{bucket}/hitl/{EventKeys.parse(event.request_id).decision}"


# -- tokens ----------------------------------------------------------------------------------


def _token_cases(event: hitl.Event, other: hitl.Event) -> list[tuple[str, str | None, int]]:
    return [
        ("missing", None, 401),
        ("empty", "", 401),
        ("wrong", "A" * len(event.token), 403),
        ("other event's", other.token, 403),
        ("truncated", event.token[:-1], 403),
    ]


def test_bad_tokens_are_refused_everywhere_and_change_nothing(
    handler: Handler, snapshot: Callable[..., Snapshot]
) -> None:
    event, other = _event(), _event()
    before = snapshot()

    for label, token, status in _token_cases(event, other):
        fields = {"request_id": event.request_id, "value": "true"}
        query = {}
        if token is not None:
            fields["token"] = token
            query["token"] = token
        requests = {
            "form GET": apigw_event("GET", f"/form/{event.request_id}", query=query),
            "status GET": apigw_event("GET", f"/status/{event.request_id}", query=query),
            "form POST": form_post_event(fields),
            "JSON POST": json_post_event(fields),
        }
        for route, request in requests.items():
            response = invoke(handler, request)
            assert response["statusCode"] == status, f"{label} token on {route}"
            body = response_text(response)
            assert event.name not in body and event.token not in body  # nothing leaks

    assert snapshot() == before


def test_wrong_token_reveals_nothing_about_the_event(handler: Handler) -> None:
    event = _event(str, prompt="secret prompt about merger")
    page = invoke(
        handler, apigw_event("GET", f"/form/{event.request_id}", query={"token": "x" * 32})
    )
    assert page["statusCode"] == 403
    assert "secret prompt" not in response_text(page) and event.name not in response_text(page)


# -- request ids that try to be paths ----------------------------------------------------------


HOSTILE_IDS = [
    "../../etc/passwd",
    "..%2F..%2Fruns",
    "runs/x/decisions/y",
    "abc.def/../../other.ghi",
    "%2Fabsolute",
    "s3://another-bucket/runs/x/decisions/y.json",
    "s3:%2F%2Fanother-bucket%2Fkey",
    "..",
    "",
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_request_ids_that_are_paths_are_unknown_events(
    handler: Handler, snapshot: Callable[..., Snapshot], hostile: str
) -> None:
    event = _event()
    before = snapshot()
    token = {"token": event.token}

    responses = [
        invoke(handler, apigw_event("GET", f"/form/{hostile}", query=token)),
        invoke(handler, apigw_event("GET", f"/status/{hostile}", query=token)),
        invoke(handler, form_post_event({"request_id": hostile, "value": "true", **token})),
        invoke(handler, json_post_event({"request_id": hostile, "value": True, **token})),
    ]

    for response in responses:
        assert response["statusCode"] in (404, 405), response_text(response)
    assert snapshot() == before


def test_id_of_a_real_event_with_a_path_suffix_is_refused(
    handler: Handler, snapshot: Callable[..., Snapshot]
) -> None:
    event = _event()
    before = snapshot()
    for suffix in ("/../x", "%2F..%2Fx", "/", ".json"):
        body = {"request_id": event.request_id + suffix, "token": event.token, "value": True}
        assert invoke(handler, json_post_event(body))["statusCode"] == 404
    assert snapshot() == before


def test_client_response_path_is_ignored(
    handler: Handler, snapshot: Callable[..., Snapshot], s3_bucket: str, moto_endpoint: str
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    elsewhere = f"hitl-elsewhere-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=elsewhere)
    event = _event(int)
    other = _event(int)
    targets = [
        f"s3://{s3_bucket}/hitl/evil.json",
        f"s3://{elsewhere}/stolen.json",
        f"s3://{s3_bucket}/hitl/{EventKeys.parse(other.request_id).decision}",
        "../../../../tmp/evil.json",
    ]
    before = snapshot(elsewhere)

    body = {"request_id": event.request_id, "token": event.token, "value": 3, "data_type": "int"}
    response = invoke(handler, json_post_event({**body, "response_path": targets[0]}))
    for target in targets[1:]:  # later attempts, each pointing somewhere else
        invoke(handler, json_post_event({**body, "value": 4, "response_path": target}))

    after = snapshot(elsewhere)
    assert response["statusCode"] == 200
    assert set(after) - set(before) == {_decision_key(s3_bucket, event)}  # the derived key only
    assert not any(key.startswith(elsewhere) for key in after)
    assert event.wait() == 3
    assert _decision_key(s3_bucket, other) not in after


# -- escaping ----------------------------------------------------------------------------------

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _assert_inert(html: str) -> None:
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "&lt;script&gt;" in html


def test_script_in_name_prompt_details_value_and_comment_renders_inert(
    handler: Handler,
) -> None:
    event = hitl.new_event(
        f"gate {XSS}", str, prompt=f"check {XSS}", details=f"log: {XSS}", poll_interval_seconds=0.05
    )

    form = invoke(
        handler, apigw_event("GET", f"/form/{event.request_id}", query={"token": event.token})
    )
    numbers = hitl.new_event(f"count {XSS}", int, prompt=XSS, poll_interval_seconds=0.05)
    wrong = invoke(
        handler,
        form_post_event(
            {"request_id": numbers.request_id, "token": numbers.token, "value": XSS, "comment": XSS}
        ),
    )
    posted = invoke(
        handler,
        form_post_event(
            {"request_id": event.request_id, "token": event.token, "value": XSS, "comment": XSS}
        ),
    )
    assert posted["statusCode"] == 303
    done = follow(handler, posted)  # the result page the browser is sent to
    again = invoke(
        handler, apigw_event("GET", f"/form/{event.request_id}", query={"token": event.token})
    )

    assert [r["statusCode"] for r in (form, wrong, done, again)] == [200, 400, 200, 200]
    for response in (form, wrong, done, again):
        _assert_inert(response_text(response))
    assert event.wait() == XSS  # stored as given, only escaped when shown


def test_script_in_a_hostile_id_renders_inert(handler: Handler) -> None:
    response = invoke(handler, json_post_event({"request_id": XSS, "token": "t", "value": 1}))
    assert response["statusCode"] == 404
    assert header(response, "content-type") == "application/json"
    page = invoke(handler, form_post_event({"request_id": XSS, "token": "t", "value": "1"}))
    assert page["statusCode"] == 404
    assert "<script" not in response_text(page).lower()


# -- write once --------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["form", "json"])
def test_second_answer_is_409_and_the_first_stays(
    handler: Handler, snapshot: Callable[..., Snapshot], channel: str
) -> None:
    event = _event(bool)
    post = form_post_event if channel == "form" else json_post_event
    fields = {"request_id": event.request_id, "token": event.token}
    first = invoke(handler, post({**fields, "value": "true"}))
    assert first["statusCode"] == (303 if channel == "form" else 200)
    before = snapshot()

    second = invoke(handler, post({**fields, "value": "false", "comment": "changed my mind"}))

    assert second["statusCode"] == 409
    text = response_text(second)
    assert "link holder" in text and "already answered" in text
    assert snapshot() == before
    assert event.wait() is True


def test_fifty_concurrent_answers_exactly_one_wins(
    handler: Handler, snapshot: Callable[..., Snapshot], s3_bucket: str
) -> None:
    event = _event(int, reviewers=[f"r{i}" for i in range(50)])
    tokens = {name: link.split("token=", 1)[1] for name, link in event.links.items()}
    before = snapshot()

    def answer(i: int) -> tuple[int, int]:
        body = {"request_id": event.request_id, "token": tokens[f"r{i}"], "value": i}
        return i, invoke(handler, json_post_event(body))["statusCode"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = dict(pool.map(answer, range(50)))

    winners = [i for i, status in results.items() if status == 200]
    assert len(winners) == 1, results
    assert sorted(results.values()) == [200] + [409] * 49
    after = snapshot()
    assert set(after) - set(before) == {_decision_key(s3_bucket, event)}
    assert event.wait() == winners[0]
    status = invoke(
        handler, apigw_event("GET", f"/status/{event.request_id}", query={"token": tokens["r0"]})
    )
    assert response_json(status)["decision"]["answered_by"] == f"r{winners[0]}"


# -- GET is safe, and every page is locked down ------------------------------------------------


def test_get_never_changes_state(handler: Handler, snapshot: Callable[..., Snapshot]) -> None:
    event = _event(bool)
    before = snapshot()
    query = {"token": event.token}
    # What a mail scanner does: fetch the link, and anything that looks like the answer.
    requests = [
        apigw_event("GET", f"/form/{event.request_id}", query=query),
        apigw_event("GET", f"/form/{event.request_id}", query={**query, "value": "true"}),
        apigw_event(
            "GET", "/submit", query={"request_id": event.request_id, "value": "true", **query}
        ),
        apigw_event(
            "GET", "/submit/json", query={"request_id": event.request_id, "value": "true", **query}
        ),
        apigw_event("GET", f"/status/{event.request_id}", query=query),
    ]
    statuses = [invoke(handler, request)["statusCode"] for request in requests]
    assert statuses == [200, 200, 405, 405, 200]
    assert snapshot() == before


SECURITY_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def test_security_headers_on_every_response(handler: Handler) -> None:
    event = _event(int)
    query = {"token": event.token}
    fields = {"request_id": event.request_id, "token": event.token}
    responses = {
        "form": invoke(handler, apigw_event("GET", f"/form/{event.request_id}", query=query)),
        "wrong value": invoke(handler, form_post_event({**fields, "value": "x"})),
        "bad token": invoke(
            handler, apigw_event("GET", f"/form/{event.request_id}", query={"token": "t"})
        ),
        "not found": invoke(handler, apigw_event("GET", "/nowhere")),
        "too large": invoke(handler, json_post_event({**fields, "value": "9" * 20_000})),
        "confirmation": invoke(handler, form_post_event({**fields, "value": "1"})),
        "answered": invoke(handler, apigw_event("GET", f"/form/{event.request_id}", query=query)),
        "api": invoke(handler, apigw_event("GET", f"/status/{event.request_id}", query=query)),
    }
    for label, response in responses.items():
        for name, value in SECURITY_HEADERS.items():
            assert header(response, name) == value, f"{name} on {label}"
        csp = header(response, "content-security-policy") or ""
        for directive in ("default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"):
            assert directive in csp, f"{directive} on {label}"


def test_pages_load_nothing_from_elsewhere_and_style_carries_the_nonce(handler: Handler) -> None:
    event = _event(bool)
    page = invoke(
        handler, apigw_event("GET", f"/form/{event.request_id}", query={"token": event.token})
    )
    html = response_text(page)
    nonce = re.search(r"'nonce-([^']+)'", header(page, "content-security-policy") or "")

    assert nonce is not None and f'<style nonce="{nonce.group(1)}">' in html
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", html)
    assert "<script" not in html and "<iframe" not in html
    other = invoke(
        handler, apigw_event("GET", f"/form/{event.request_id}", query={"token": event.token})
    )
    assert header(other, "content-security-policy") != header(page, "content-security-policy")
