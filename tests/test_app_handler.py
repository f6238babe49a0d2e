"""The reviewer app as Lambda runs it: ``handler(event, context)`` with real API Gateway HTTP
API v2 events, against a moto S3 store; the SDK's ``wait()`` sees every answer typed."""

from __future__ import annotations

import importlib
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import pytest
from apigw import (
    Handler,
    apigw_event,
    follow,
    form_post_event,
    header,
    invoke,
    json_post_event,
    load_sample,
    response_json,
    response_text,
)
from mangum import Mangum

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_sdk import _config
from hitl_sdk import answers as _answers
from hitl_sdk.storage.store import Store


def _event(data_type: type, name: str | None = None, **options: Any) -> hitl.Event:
    options.setdefault("poll_interval_seconds", 0.05)
    return hitl.new_event(name or f"gate-{uuid.uuid4().hex[:6]}", data_type, **options)


def _form(handler: Handler, event: hitl.Event, token: str | None = None) -> dict[str, Any]:
    query = {"token": event.token if token is None else token}
    return invoke(handler, apigw_event("GET", f"/form/{event.request_id}", query=query))


def _fields(event: hitl.Event, value: object, **extra: str) -> dict[str, Any]:
    return {"request_id": event.request_id, "token": event.token, "value": value, **extra}


# -- the samples themselves --------------------------------------------------------------------


def test_samples_are_http_api_v2_events() -> None:
    for kind in ("get", "form", "json"):
        sample = load_sample(kind)
        assert sample["version"] == "2.0" and sample["routeKey"] == "$default"
        http = sample["requestContext"]["http"]
        assert http["path"] == sample["rawPath"] and http["sourceIp"]
    form = load_sample("form")
    assert form["isBase64Encoded"] is True  # how API Gateway hands over a browser's form post


def test_builder_sets_method_path_query_and_base64_body() -> None:
    event = apigw_event("POST", "/submit", query={"a": "1"}, body="x=1&y=2", base64=True)
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/submit"
    assert event["rawQueryString"] == "a=1" and event["queryStringParameters"] == {"a": "1"}
    assert event["isBase64Encoded"] is True and event["body"] == "eD0xJnk9Mg=="
    assert event["headers"]["content-length"] == "7"


# -- the Lambda entry point ----------------------------------------------------------------


def _import_handler_module() -> Any:
    """Import ``hitl_lambda.handler`` afresh, as a cold start does (in a plain thread, where
    Mangum sets up its own event loop)."""
    box: dict[str, Any] = {}

    def run() -> None:
        sys.modules.pop("hitl_lambda.handler", None)
        try:
            box["module"] = importlib.import_module("hitl_lambda.handler")
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    sys.modules.pop("hitl_lambda.handler", None)
    if "error" in box:
        raise box["error"]
    return box["module"]


def test_lambda_entry_point_serves_the_store_from_the_environment(
    s3_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITL_STORE_URL", s3_store.url)
    module = _import_handler_module()
    event = _event(int, prompt="How many rows?")

    page = _form(module.handler, event)

    assert page["statusCode"] == 200
    assert "How many rows?" in response_text(page)
    answer = invoke(module.handler, json_post_event(_fields(event, "7")))
    assert answer["statusCode"] == 200
    assert event.wait() == 7


def test_cold_start_without_store_url_fails_with_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HITL_STORE_URL", raising=False)
    with pytest.raises(hitl.ConfigError, match=r"HITL_STORE_URL is not set.*s3://"):
        _import_handler_module()


def test_cold_start_with_a_missing_bucket_names_it(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITL_STORE_URL", "s3://hitl-no-such-bucket-4711/hitl")
    with pytest.raises(hitl.StoreNotFound, match="hitl-no-such-bucket-4711"):
        _import_handler_module()


def test_cold_start_with_a_malformed_store_url_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HITL_STORE_URL", "ftp://somewhere")
    with pytest.raises(hitl.ConfigError, match="not supported"):
        create_app()


# -- the form ----------------------------------------------------------------------------------


def test_form_get_renders_the_prompt_hint_and_a_labelled_input(handler: Handler) -> None:
    event = _event(float, prompt="Confidence threshold?", details="precision 0.91\nrecall 0.83")

    page = _form(handler, event)

    html = response_text(page)
    assert page["statusCode"] == 200
    assert header(page, "content-type") == "text/html; charset=utf-8"
    assert "Confidence threshold?" in html and "precision 0.91\nrecall 0.83" in html
    assert '<label for="value">' in html and 'id="value"' in html
    # Phone keypads for "numeric"/"decimal" have no minus sign: a plain keyboard.
    assert 'inputmode="text"' in html
    assert hitl_hint(float) in html
    assert f'name="token" value="{event.token}"' in html
    assert 'action="../submit"' in html  # relative: a stage prefix keeps working


def hitl_hint(data_type: type) -> str:
    from hitl_sdk.answers.codecs import scalar_codec

    return scalar_codec(data_type).hint


def test_bool_form_is_two_buttons_not_a_text_field(handler: Handler) -> None:
    html = response_text(_form(handler, _event(bool, prompt="Ship it?")))

    assert re.search(r'<button type="submit"[^>]*name="value" value="true">Approve<', html)
    assert re.search(r'<button type="submit"[^>]*name="value" value="false">Reject<', html)
    assert 'id="value"' not in html


@pytest.mark.parametrize("base64", [True, False], ids=["base64-body", "plain-body"])
@pytest.mark.parametrize(
    ("data_type", "sent", "expected"),
    [
        (int, "42", 42),
        (float, "0.75", 0.75),
        (str, "looks good", "looks good"),
        (bool, "false", False),
    ],
)
def test_form_post_records_the_answer_and_wait_returns_it_typed(
    handler: Handler, data_type: type, sent: str, expected: object, base64: bool
) -> None:
    event = _event(data_type, prompt="Your call")

    posted = invoke(
        handler, form_post_event(_fields(event, sent, comment="checked"), base64=base64)
    )
    # 303 to the result page, so a refresh there never posts the answer again.
    assert posted["statusCode"] == 303, response_text(posted)
    page = follow(handler, posted)
    assert page["statusCode"] == 200, response_text(page)
    html = response_text(page)
    assert "your answer was recorded" in html
    value = event.wait()
    assert value == expected and type(value) is data_type
    decision = _answers.load(_config.get_store(), event.request_id).decision
    assert decision is not None
    assert (decision.via, decision.comment, decision.answered_by) == (
        "form",
        "checked",
        "link holder",
    )


def test_wrong_value_shows_the_form_again_with_the_expected_type(handler: Handler) -> None:
    event = _event(int)

    page = invoke(handler, form_post_event(_fields(event, "1.5", comment="my note")))

    html = response_text(page)
    assert page["statusCode"] == 400
    assert "Expected int" in html and 'role="alert"' in html
    assert 'value="1.5"' in html and "my note" in html  # what they typed is kept
    assert 'action="submit"' in html  # relative to /submit itself
    assert _answers.load(_config.get_store(), event.request_id).decision is None


def test_answered_link_shows_who_when_and_what_instead_of_the_form(handler: Handler) -> None:
    event = _event(bool, reviewers=["alice", "bob"])
    bob = event.links["bob"].split("token=", 1)[1]
    answered = invoke(
        handler, form_post_event({"request_id": event.request_id, "token": bob, "value": "true"})
    )
    assert answered["statusCode"] == 303

    page = _form(handler, event)  # alice opens her link afterwards

    html = response_text(page)
    assert page["statusCode"] == 200
    assert "already answered" in html and "Approved" in html and ">bob<" in html
    assert "<form" not in html
    assert event.wait() is True


def test_per_reviewer_link_names_the_reviewer(handler: Handler) -> None:
    event = _event(str, reviewers=["alice"])
    token = event.links["alice"].split("token=", 1)[1]

    page = _form(handler, event, token=token)
    assert "Answering as" in response_text(page) and "alice" in response_text(page)
    invoke(
        handler, json_post_event({"request_id": event.request_id, "token": token, "value": "ok"})
    )

    decision = _answers.load(_config.get_store(), event.request_id).decision
    assert decision is not None and decision.answered_by == "alice"


def test_expired_event_says_so_and_takes_no_answer(handler: Handler) -> None:
    event = _event(int, timeout_seconds=0.05)
    time.sleep(0.1)

    page = _form(handler, event)
    post = invoke(handler, form_post_event(_fields(event, "3")))
    api = invoke(handler, json_post_event(_fields(event, "3")))

    assert page["statusCode"] == 410 and "has expired" in response_text(page)
    assert post["statusCode"] == 410 and "has expired" in response_text(post)
    assert api["statusCode"] == 410 and response_json(api)["error"] == "expired"
    with pytest.raises(hitl.EventTimeout):
        event.wait()


def test_named_stage_prefix_routes_and_relative_links_stay_under_it(handler: Handler) -> None:
    event = _event(int)
    get = apigw_event("GET", f"/prod/form/{event.request_id}", query={"token": event.token})
    get["requestContext"]["stage"] = "prod"
    page = invoke(handler, get)
    assert page["statusCode"] == 200
    action = re.search(r'action="([^"]+)"', response_text(page))
    assert action is not None
    assert (
        urljoin(f"https://h/prod/form/{event.request_id}", action.group(1))
        == "https://h/prod/submit"
    )

    post = form_post_event(_fields(event, "8"), path="/prod/submit")
    post["requestContext"]["stage"] = "prod"
    posted = invoke(handler, post)
    assert posted["statusCode"] == 303
    location = header(posted, "location") or ""
    assert urljoin("https://h/prod/submit", location).startswith(
        f"https://h/prod/form/{event.request_id}?"
    )
    assert event.wait() == 8


# -- the JSON API ------------------------------------------------------------------------------


def test_json_post_with_the_seed_body_answers(handler: Handler, s3_store: Store) -> None:
    event = _event(bool)
    body = {
        "request_id": event.request_id,
        "response_path": event.response_path,
        "value": "true",
        "data_type": "bool",
        "token": event.token,
        "comment": "LGTM",
    }

    response = invoke(handler, json_post_event(body))

    assert response["statusCode"] == 200
    data = response_json(response)
    assert data["status"] == "submitted" and data["value"] is True and data["via"] == "api"
    assert data["comment"] == "LGTM" and data["answered_by"] == "link holder"
    assert event.wait() is True


@pytest.mark.parametrize(
    ("data_type", "value", "expected"),
    [(int, 12, 12), (float, 2, 2.0), (str, "fine", "fine"), (bool, False, False)],
)
def test_json_values_arrive_typed(
    handler: Handler, data_type: type, value: object, expected: object
) -> None:
    event = _event(data_type)
    response = invoke(handler, json_post_event(_fields(event, value)))
    assert response["statusCode"] == 200
    result = event.wait()
    assert result == expected and type(result) is data_type


@pytest.mark.parametrize(
    ("data_type", "value", "expected_type"),
    [(int, "1.5", "int"), (int, True, "int"), (bool, "ture", "bool"), (float, "nan", "float")],
)
def test_json_wrong_type_is_400_naming_the_expected_type(
    handler: Handler, data_type: type, value: object, expected_type: str
) -> None:
    event = _event(data_type)
    response = invoke(handler, json_post_event(_fields(event, value)))
    assert response["statusCode"] == 400
    data = response_json(response)
    assert data["error"] == "invalid_value" and f"expected {expected_type}" in data["detail"]


def test_json_data_type_that_disagrees_with_the_event_is_400(handler: Handler) -> None:
    event = _event(bool)
    response = invoke(handler, json_post_event({**_fields(event, "true"), "data_type": "int"}))
    assert response["statusCode"] == 400
    assert "takes bool" in response_json(response)["detail"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"token": "x", "value": 1}', "request_id is required"),
        ('{"request_id": "a.b", "token": "x"}', "value is required"),
    ],
)
def test_malformed_json_is_a_clear_400(handler: Handler, body: str, says: str) -> None:
    response = invoke(handler, json_post_event(body))
    assert response["statusCode"] == 400
    assert says in response_json(response)["detail"]


def test_bodies_over_the_limit_are_413(handler: Handler) -> None:
    event = _event(str)
    big = json_post_event(_fields(event, "x" * 20_000))
    lying = json_post_event(_fields(event, "y" * 20_000), headers={"content-length": "50"})
    form = form_post_event(_fields(event, "z" * 20_000))

    for request in (big, lying, form):
        response = invoke(handler, request)
        assert response["statusCode"] == 413, response_text(response)
    assert "larger than 16384 bytes" in response_json(invoke(handler, big))["detail"]
    assert _answers.load(_config.get_store(), event.request_id).decision is None


def test_status_reports_pending_then_answered(handler: Handler) -> None:
    event = _event(int)
    query = {"token": event.token}

    before = response_json(
        invoke(handler, apigw_event("GET", f"/status/{event.request_id}", query=query))
    )
    invoke(handler, json_post_event(_fields(event, "5")))
    after = response_json(
        invoke(handler, apigw_event("GET", f"/status/{event.request_id}", query=query))
    )

    assert before["status"] == "pending" and before["decision"] is None
    assert after["status"] == "answered" and after["decision"]["value"] == 5
    assert after["data_type"] == "int" and after["name"] == event.name


def test_storage_failure_is_a_clear_5xx_that_leaks_no_bucket_name(moto_endpoint: str) -> None:
    gone = Mangum(create_app(Store("s3://hitl-bucket-deleted-0815/hitl")), lifespan="off")
    request_id = "run-0123456789.gate-0123456789"

    api = invoke(gone, json_post_event({"request_id": request_id, "token": "t", "value": 1}))
    page = invoke(gone, apigw_event("GET", f"/form/{request_id}", query={"token": "t"}))

    assert api["statusCode"] == 500 and response_json(api)["error"] == "storage_error"
    assert page["statusCode"] == 500 and "misconfigured" in response_text(page)
    for response in (api, page):
        assert "hitl-bucket-deleted-0815" not in response_text(response)


def test_health(handler: Handler) -> None:
    response = invoke(handler, apigw_event("GET", "/health"))
    assert response["statusCode"] == 200 and response_json(response) == {"status": "ok"}


def test_docs_pages_are_off(handler: Handler) -> None:
    # FastAPI's docs load scripts from a CDN; this app serves nothing third-party.
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert invoke(handler, apigw_event("GET", path))["statusCode"] == 404


@pytest.fixture(autouse=True)
def _no_leftover_handler_module() -> Iterator[None]:
    yield
    sys.modules.pop("hitl_lambda.handler", None)
