"""Richer gates through the SDK and the Lambda handler (API Gateway v2 events, moto S3):
choices, multi-selects, approvals with a reason, a default on timeout, and cancel."""

from __future__ import annotations

import enum
import threading
import time
from typing import Annotated, Any, Literal

import pytest
from apigw import (
    apigw_event,
    form_post_event,
    invoke,
    json_post_event,
    response_json,
    response_text,
)
from pydantic import BaseModel, Field

import hitl_sdk as hitl
from hitl_sdk import _config
from hitl_sdk.cli import main as cli
from hitl_sdk.storage.store import Store


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


Region = Literal["eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1",
                 "ap-northeast-1", "sa-east-1", "ca-central-1"]  # fmt: skip


def form(handler: Any, event: hitl.Event[Any]) -> dict[str, Any]:
    query = {"token": event.token}
    return invoke(handler, apigw_event("GET", f"/form/{event.request_id}", query=query))


def answer(handler: Any, event: hitl.Event[Any], value: object, **extra: Any) -> dict[str, Any]:
    body = {"request_id": event.request_id, "token": event.token, "value": value, **extra}
    return invoke(handler, json_post_event(body))


def post_form(handler: Any, event: hitl.Event[Any], *pairs: tuple[str, str]) -> dict[str, Any]:
    fields = [("request_id", event.request_id), ("token", event.token), *pairs]
    return invoke(handler, form_post_event(fields))


# -- choices -----------------------------------------------------------------------------------


def test_a_literal_choice_is_offered_as_radios_and_returned_as_the_literal(
    s3_store: Store, handler: Any
) -> None:
    event = hitl.new_event("release", Literal["ship", "hold", "rollback"], prompt="What now?")
    page = response_text(form(handler, event))
    for option in ("ship", "hold", "rollback"):
        assert f'type="radio" name="value" value="{option}"' in page
    refused = answer(handler, event, "yolo")
    assert refused["statusCode"] == 400
    assert "not one of the options" in response_json(refused)["detail"]
    assert answer(handler, event, "hold")["statusCode"] == 200
    assert event.wait() == "hold"


def test_an_enum_choice_comes_back_as_the_member_and_many_options_as_a_select(
    s3_store: Store, handler: Any
) -> None:
    colour = hitl.new_event("colour", Color)
    resp = post_form(handler, colour, ("value", "green"))
    assert resp["statusCode"] == 303, response_text(resp)
    assert colour.wait() is Color.GREEN
    region = hitl.new_event("region", Region)
    page = response_text(form(handler, region))
    assert '<select id="value" name="value"' in page and 'type="radio"' not in page
    refused = post_form(handler, region, ("value", "mars-1"))
    assert refused["statusCode"] == 400 and "not one of the options" in response_text(refused)
    assert post_form(handler, region, ("value", "ap-south-1"))["statusCode"] == 303
    assert region.wait() == "ap-south-1"


def test_a_multi_select_takes_a_list_within_its_bounds(s3_store: Store, handler: Any) -> None:
    picks = Annotated[list[Color], Field(min_length=1, max_length=2)]
    event = hitl.new_event("palette", picks)
    page = response_text(form(handler, event))
    assert page.count('type="checkbox" name="value"') == 3
    assert "pick 1 to 2" in page
    # Three picks: refused, and the form comes back with the picks still checked.
    resp = post_form(handler, event, ("value", "red"), ("value", "green"), ("value", "blue"))
    assert resp["statusCode"] == 400
    again = response_text(resp)
    assert "Pick at most 2" in again
    assert again.count(" checked>") == 3
    # None picked: refused too.
    assert "Pick at least 1" in response_text(post_form(handler, event))
    assert answer(handler, event, ["red", "nope"])["statusCode"] == 400
    assert answer(handler, event, ["red", "red"])["statusCode"] == 400
    assert post_form(handler, event, ("value", "red"), ("value", "blue"))["statusCode"] == 303
    assert event.wait() == [Color.RED, Color.BLUE]


class Severity(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Incident(BaseModel):
    title: str = Field(max_length=40, description="One line for the changelog")
    count: int = Field(ge=0, le=10)
    ratio: float | None = None
    urgent: bool = False
    severity: Severity = Severity.LOW
    teams: list[Literal["web", "api", "data"]] = []
    code: str = Field(default="A1", pattern=r"^[A-Z][0-9]$")


def test_a_model_gate_renders_its_fields_and_returns_the_model(
    s3_store: Store, handler: Any
) -> None:
    event = hitl.new_event("incident", Incident)
    page = response_text(form(handler, event))
    for name in ("title", "count", "ratio", "urgent", "severity", "teams", "code"):
        assert f'name="f.{name}"' in page
    assert "One line for the changelog" in page and "A whole number from 0 to 10." in page
    assert 'maxlength="40"' in page
    sent = [("form", "model"), ("f.title", "Disk full"), ("f.count", "3"), ("f.ratio", "")]
    sent += [("f.urgent", "true"), ("f.severity", "high"), ("f.teams", "web")]
    sent += [("f.teams", "data"), ("f.code", "B7")]

    # One field out of its constraint: the form comes back with the error and every text kept.
    def but(field: str, text: str) -> list[tuple[str, str]]:
        return [(k, text if k == field else v) for k, v in sent]

    bad = post_form(handler, event, *but("f.count", "12"))
    assert bad["statusCode"] == 400
    again = response_text(bad)
    assert "Count: must be at most 10" in again
    assert 'value="Disk full"' in again and 'value="12"' in again and 'value="B7"' in again
    assert again.count(" checked>") >= 3  # urgent, high, web, data
    wrong_type = post_form(
        handler, event, *[(k, "three" if k == "f.count" else v) for k, v in sent]
    )
    assert wrong_type["statusCode"] == 400 and "Count: expected int" in response_text(wrong_type)
    pattern = post_form(handler, event, *but("f.code", "b7"))
    assert "must match the pattern" in response_text(pattern)
    missing = post_form(handler, event, *but("f.title", ""))
    assert "Title: this field is required" in response_text(missing)
    ok = post_form(handler, event, *sent)
    assert ok["statusCode"] == 303, response_text(ok)
    incident = event.wait()
    assert incident == Incident(
        title="Disk full", count=3, urgent=True, severity=Severity.HIGH,
        teams=["web", "data"], code="B7",
    )  # fmt: skip


def test_a_model_gate_through_the_json_api_is_strict(s3_store: Store, handler: Any) -> None:
    event = hitl.new_event("incident-api", Incident)
    for bad in ({"title": "x", "count": "3"}, {"title": "x"}, {"title": "x", "count": 1, "z": 1}):
        assert answer(handler, event, bad)["statusCode"] == 400, bad
    assert answer(handler, event, {"title": "x", "count": 1})["statusCode"] == 200
    assert event.wait() == Incident(title="x", count=1)


def test_types_the_form_cannot_render_are_refused_at_new_event(s3_store: Store) -> None:
    class Nested(BaseModel):
        inner: Incident

    class Mapping(BaseModel):
        extra: dict[str, int]

    for bad in (dict, list[int], Nested, Mapping, Literal[1.5, 2.5], tuple):
        with pytest.raises(hitl.ConfigError):
            hitl.new_event("bad", bad)


# -- approvals ---------------------------------------------------------------------------------


def test_an_approval_needs_a_reason_to_reject_and_returns_who_when_and_how(
    s3_store: Store, handler: Any
) -> None:
    event = hitl.approve.open("deploy", "Ship 1.4?", require_reason="reject")
    page = response_text(form(handler, event))
    assert 'name="reason"' in page and "(required to reject)" in page
    refused = answer(handler, event, "reject")
    assert refused["statusCode"] == 400
    assert "a reason is required to reject" in response_json(refused)["detail"]
    # The form refuses it the same way, and keeps what was typed.
    assert post_form(handler, event, ("value", "reject"), ("reason", " "))["statusCode"] == 400
    done = answer(handler, event, "reject", reason="the canary is red")
    assert done["statusCode"] == 200, response_json(done)
    assert response_json(done)["value"] == {"approved": False, "reason": "the canary is red"}
    approval = event.wait()
    assert isinstance(approval, hitl.Approval)
    assert not approval and approval.reason == "the canary is red"
    assert approval.by == "link holder" and approval.via == "api" and approval.at is not None


def test_approve_blocks_until_decided_through_the_form(s3_store: Store, handler: Any) -> None:
    opened: list[hitl.Event[Any]] = []

    def reviewer() -> None:
        deadline = time.monotonic() + 10
        while not opened and time.monotonic() < deadline:
            time.sleep(0.05)
        post_form(handler, opened[0], ("value", "approve"), ("reason", "looks good"))

    threading.Thread(target=reviewer, daemon=True).start()
    event = hitl.approve.open("launch", require_reason="always", poll_interval_seconds=0.1)
    opened.append(event)
    approval = hitl.approve("launch", require_reason="always", poll_interval_seconds=0.1)
    assert approval.approved and approval.reason == "looks good" and approval.via == "form"


def test_require_reason_always_and_the_cli(s3_store: Store, capsys: Any) -> None:
    event = hitl.approve.open("cli-gate", require_reason="always")
    store = ["--store", s3_store.url]
    assert cli(["respond", event.request_id, "approve", *store]) == 4
    assert "a reason is required" in capsys.readouterr().err
    assert cli(["respond", event.request_id, "approve", "--reason", "ok", *store]) == 0
    assert event.wait().reason == "ok"


def test_a_reason_on_a_gate_that_is_no_approval_is_refused(s3_store: Store, handler: Any) -> None:
    event = hitl.new_event("plain", bool)
    resp = answer(handler, event, True, reason="because")
    assert resp["statusCode"] == 400 and "reason" in response_json(resp)["detail"]


# -- timeouts with a default -------------------------------------------------------------------


def test_default_applies_on_timeout_and_says_so(s3_store: Store, handler: Any) -> None:
    event = hitl.new_event("size", int, timeout_seconds=0.5, poll_interval_seconds=0.1, default=3)
    assert event.wait() == 3
    status = invoke(
        handler,
        apigw_event("GET", f"/status/{event.request_id}", query={"token": event.token}),
    )
    body = response_json(status)
    assert body["status"] == "timed_out"
    assert body["decision"]["default_applied"] is True and body["decision"]["value"] == 3
    assert body["decision"]["answered_by"] == "deadline"  # never presented as a person's
    page = form(handler, event)
    assert page["statusCode"] == 410 and "default, 3, was applied" in response_text(page)


def test_a_default_of_the_wrong_type_is_refused(s3_store: Store) -> None:
    with pytest.raises(hitl.ConfigError, match="default="):
        hitl.new_event("n", int, default="three")
    with pytest.raises(hitl.ConfigError, match="default="):
        hitl.new_event("c", Color, default="purple")
    with pytest.raises(hitl.ConfigError, match="on_timeout"):
        hitl.approve.open("a", on_timeout="maybe")  # type: ignore[arg-type]


def test_approval_fails_closed_on_timeout_unless_told_otherwise(s3_store: Store) -> None:
    rejected = hitl.approve("quiet", timeout_seconds=0.3, poll_interval_seconds=0.1)
    assert not rejected.approved and rejected.by == "timeout (default applied)"
    approved = hitl.approve(
        "quiet2", timeout_seconds=0.3, poll_interval_seconds=0.1, on_timeout="approve"
    )
    assert approved.approved and approved.via == "timeout"


# -- cancel ------------------------------------------------------------------------------------


def test_a_cancelled_gate_refuses_answers_and_wait_raises(s3_store: Store, handler: Any) -> None:
    event = hitl.new_event("obsolete", bool)
    event.cancel("superseded by 1.5", by="ops")
    with pytest.raises(hitl.EventCancelled, match=r"superseded by 1\.5"):
        event.wait()
    refused = answer(handler, event, True)
    assert refused["statusCode"] == 410
    assert response_json(refused)["error"] == "cancelled"
    page = form(handler, event)
    assert page["statusCode"] == 410
    assert "cancelled" in response_text(page) and "ops" in response_text(page)
    assert "superseded by 1.5" in response_text(page)


def test_hitl_cancel_closes_a_gate_from_the_command_line(s3_store: Store, capsys: Any) -> None:
    event = hitl.new_event("stuck", int)
    store = ["--store", s3_store.url]
    assert cli(["cancel", event.request_id, "--reason", "task was stopped", *store]) == 0
    assert "cancelled" in capsys.readouterr().out
    with pytest.raises(hitl.EventCancelled):
        event.wait()
    assert cli(["respond", event.request_id, "5", *store]) == 6  # no answers any more
    assert cli(["show", event.request_id, *store]) == 0
    assert "cancelled by" in capsys.readouterr().out
    answered = hitl.new_event("done", int)
    assert cli(["respond", answered.request_id, "5", *store]) == 0
    assert cli(["cancel", answered.request_id, *store]) == 5  # the answer stands
    assert answered.wait() == 5


def test_the_same_gate_with_other_choices_is_another_question(s3_store: Store) -> None:
    hitl.new_event("pick", Literal["a", "b"])
    with pytest.raises(hitl.QuestionChanged):
        hitl.new_event("pick", Literal["a", "b", "c"])
    _config.reset()


def test_the_cli_answers_a_multi_select_and_a_model_with_json_text(
    s3_store: Store, capsys: Any
) -> None:
    store = ["--store", s3_store.url]
    picks = hitl.new_event("cli-picks", list[Color])
    assert cli(["respond", picks.request_id, '["red", "blue"]', *store]) == 0
    assert picks.wait() == [Color.RED, Color.BLUE]
    model = hitl.new_event("cli-model", Incident)
    assert cli(["respond", model.request_id, '{"title": "x", "count": 11}', *store]) == 4
    assert "must be at most 10" in capsys.readouterr().err
    assert cli(["respond", model.request_id, '{"title": "x", "count": 2}', *store]) == 0
    assert model.wait() == Incident(title="x", count=2)
    single = hitl.new_event("cli-one", list[Color])
    assert cli(["respond", single.request_id, "green", *store]) == 0  # one pick as plain text
    assert single.wait() == [Color.GREEN]
