"""One validator's verdict: what the reviewer app accepts, wait() accepts, and the reverse.

Through the Lambda handler (API Gateway v2 events) and the CLI on moto S3, then a hypothesis
property over generated models and answers: the app's codec accepts an answer exactly when the
SDK's validation of the stored answer does.
"""

from __future__ import annotations

import enum
import json
import threading
import time
from typing import Annotated, Any, Literal

import pytest
from apigw import invoke, json_post_event, response_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, create_model

import hitl_sdk as hitl
from hitl_sdk._errors import ConfigError, InvalidValue
from hitl_sdk.answers.types import schema_codec, type_spec
from hitl_sdk.cli import main as cli
from hitl_sdk.storage.records import DecisionRecord
from hitl_sdk.storage.store import Store


class Reading(BaseModel):
    value: float = Field(ge=-1e6)
    count: int = 0


class Ticket(BaseModel):
    ticket: str = Field(pattern=r"^[A-Z]{3}-[0-9]{4}$")


class Sentence(BaseModel):
    words: str = Field(pattern=r"^([a-zA-Z0-9]+\s?)*$")


def post(handler: Any, event: hitl.Event[Any], raw_body: str) -> dict[str, Any]:
    """A JSON API post whose body is sent exactly as given (NaN is not valid JSON, and yet
    Python's parser, like many clients' encoders, speaks it)."""
    body = json_post_event({"request_id": event.request_id, "token": event.token, "value": 0})
    body["body"] = raw_body.replace("@ID", event.request_id).replace("@TOKEN", event.token)
    return invoke(handler, body)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_number_json_cannot_store_is_refused_and_the_gate_stays_open(
    s3_store: Store, handler: Any, number: str
) -> None:
    event = hitl.new_event(f"reading-{number.lower()}", Reading, poll_interval_seconds=0.1)
    template = '{"request_id": "@ID", "token": "@TOKEN", "value": {"value": %s}}'
    refused = post(handler, event, template % number)
    assert refused["statusCode"] == 400, refused
    assert "finite number" in response_json(refused)["detail"]
    answer_text = '{"value": ' + number + "}"
    cli_code = cli(["respond", event.request_id, answer_text, "--store", s3_store.url])
    assert cli_code == 4
    # The gate is still open: a good answer lands and wait() returns it.
    assert post(handler, event, template % "2.5")["statusCode"] == 200
    assert event.wait() == Reading(value=2.5)


def test_the_app_and_wait_agree_on_a_patterns_anchors(s3_store: Store, handler: Any) -> None:
    event = hitl.new_event("ticket", Ticket, poll_interval_seconds=0.1)
    template = '{"request_id": "@ID", "token": "@TOKEN", "value": {"ticket": %s}}'
    refused = post(handler, event, template % json.dumps("OPS-1234\n"))
    assert refused["statusCode"] == 400
    assert "must match the pattern" in response_json(refused)["detail"]
    assert post(handler, event, template % json.dumps("OPS-1234"))["statusCode"] == 200
    assert event.wait() == Ticket(ticket="OPS-1234")


def test_a_pattern_that_backtracks_in_pythons_re_answers_at_once(
    s3_store: Store, handler: Any
) -> None:
    event = hitl.new_event("sentence", Sentence)
    sentence = "This is an everyday sentence that ends with a shout!"
    template = '{"request_id": "@ID", "token": "@TOKEN", "value": {"words": %s}}'
    replies: list[dict[str, Any]] = []
    worker = threading.Thread(
        target=lambda: replies.append(post(handler, event, template % json.dumps(sentence))),
        daemon=True,
    )
    started = time.monotonic()
    worker.start()
    worker.join(timeout=10)  # Python's re takes longer than Lambda's 15 s here
    assert replies, f"no reply after {time.monotonic() - started:.0f}s"
    assert replies[0]["statusCode"] == 400


def test_a_stored_answer_that_does_not_fit_is_a_corrupt_record(s3_store: Store) -> None:
    from hitl_sdk.answers import machine_signer

    gate = hitl.approve.open("deploy", "Ship?", poll_interval_seconds=0.1)
    # A well-formed, signed record whose value is a bool where an Approval belongs (a bug):
    # wait() names the record, never a raw pydantic error.
    wrong = DecisionRecord(request_id=gate.request_id, status="answered", value=True, via="api")
    s3_store.create_decision(machine_signer().sign_decision(wrong, gate.gate.record.fingerprint))
    with pytest.raises(hitl.CorruptRecord) as caught:
        gate.wait()
    assert "decisions/" in caught.value.key and "not a valid approval" in str(caught.value)
    # Unsigned (a foreign writer), it does not even get that far: it does not count.
    other = hitl.approve.open("deploy-2", "Ship?", poll_interval_seconds=0.1)
    s3_store.create_decision(wrong.model_copy(update={"request_id": other.request_id}))
    with pytest.raises(hitl.CorruptRecord) as refused:
        other.wait()
    assert isinstance(refused.value, hitl.UnverifiedRecord)


def test_models_whose_checks_the_app_cannot_repeat_are_refused(s3_store: Store) -> None:
    from pydantic import AfterValidator, ConfigDict, HttpUrl, field_validator

    class Checked(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def shout(cls, value: str) -> str:
            return value.upper()

    class Stripped(BaseModel):
        model_config = ConfigDict(str_strip_whitespace=True)
        name: str

    class PythonRe(BaseModel):
        model_config = ConfigDict(regex_engine="python-re")
        name: str = Field(pattern=r"^a$")

    class Linked(BaseModel):
        link: HttpUrl

    class Trimmed(BaseModel):
        name: Annotated[str, AfterValidator(str.strip)]

    for model in (Checked, Stripped, PythonRe, Linked, Trimmed):
        with pytest.raises(ConfigError) as caught:
            hitl.new_event(f"m-{model.__name__.lower()}", model)
        assert "field" in str(caught.value) or "sets" in str(caught.value)


# -- the property: app accepts <=> wait() accepts ----------------------------------------------

PATTERNS = [r"^[A-Z]{3}-[0-9]{4}$", r"^a+$", r"b", r"^x.?y$", r"^\d+(\.\d+)?$"]


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"
    ONE = 1


NEAR = st.sampled_from([0, 1, -1, 0.5, 1.0, 3.0, -2.0, 0.1, 0.30000000000000004, 2**63, 1e400])
TEXTS = st.sampled_from(
    ["OPS-1234", "OPS-1234\n", "aaa", "a\n", "xy", "x\ny", "12.5", "3", "a", "", "b", "\ud800"]
)


@st.composite
def fields(draw: st.DrawFn) -> tuple[Any, Any, Any]:
    """One model field: (annotation, FieldInfo, a strategy for answers near its rules)."""
    kind = draw(st.sampled_from(["str", "int", "float", "bool", "literal", "enum", "choices"]))
    extra: dict[str, Any] = {}
    annotation: Any
    values: Any
    if kind == "str":
        annotation = str
        if draw(st.booleans()):
            extra["pattern"] = draw(st.sampled_from(PATTERNS))
        if draw(st.booleans()):
            extra["max_length"] = draw(st.integers(0, 12))
        if draw(st.booleans()):
            extra["min_length"] = draw(st.integers(0, 4))
        values = TEXTS | st.text(alphabet="abxyOPS-0123456789.\n", max_size=10) | st.text()
    elif kind in ("int", "float"):
        annotation = int if kind == "int" else float
        number = st.integers(-50, 50) if kind == "int" else st.floats(-50, 50, width=32)
        for bound in ("ge", "le", "gt", "lt", "multiple_of"):
            if draw(st.integers(0, 3)) == 0:
                value = draw(number)
                if bound == "multiple_of":
                    value = abs(value) or 1
                    if kind == "float":
                        value = draw(st.sampled_from([0.5, 0.1, 0.25, 3.0]))
                extra[bound] = value
        edges = [v for v in extra.values() if isinstance(v, (int, float))]
        values = (
            NEAR
            | st.integers(-60, 60)
            | st.floats(-60, 60)
            | st.sampled_from(edges or [0])
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.sampled_from([True, "3", None])
        )
    elif kind == "bool":
        annotation = bool
        values = st.sampled_from([True, False, 1, 0, "true", "yes", None])
    elif kind == "literal":
        annotation = Literal["a", "b", 3]
        values = st.sampled_from(["a", "b", 3, "3", 3.0, "c", True, None])
    elif kind == "enum":
        annotation = Shade
        values = st.sampled_from(["light", "dark", 1, "1", 1.0, "LIGHT", None])
    else:
        annotation = list[Literal["p", "q", "r"]]
        if draw(st.booleans()):
            extra["min_length"] = draw(st.integers(0, 2))
        if draw(st.booleans()):
            extra["max_length"] = draw(st.integers(1, 3))
        values = st.lists(st.sampled_from(["p", "q", "r", "s", 1]), max_size=4) | st.just("p")
    if draw(st.booleans()):
        return annotation | None, Field(None, **extra), values | st.none()
    return annotation, Field(**extra), values


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@st.composite
def models_and_answers(draw: st.DrawFn) -> tuple[type[BaseModel], Any]:
    names = draw(st.lists(st.sampled_from(list("abcdef")), min_size=1, max_size=3, unique=True))
    drawn = {n: draw(fields()) for n in names}
    model = create_model("Generated", **{n: (a, f) for n, (a, f, _) in drawn.items()})  # type: ignore[call-overload]
    answer: dict[str, Any] = {}
    for name, (_, _, values) in drawn.items():
        if draw(st.integers(0, 9)):  # mostly present; sometimes left out
            answer[name] = draw(values)
    if draw(st.integers(0, 15)) == 0:
        answer["zz"] = draw(JSON_VALUES)  # a field the model does not have
    if draw(st.integers(0, 20)) == 0:
        return model, draw(JSON_VALUES)  # not even an object
    return model, answer


def app_verdict(schema: dict[str, Any], answer: Any) -> Any:
    """What the reviewer app stores for ``answer`` (its JSON API path), or InvalidValue."""
    return schema_codec("model", schema).parse(answer)


def sdk_verdict(spec: Any, stored: Any) -> bool:
    try:
        spec.value(stored)
    except InvalidValue:
        return False
    return True


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(models_and_answers())
def test_the_app_accepts_an_answer_exactly_when_wait_does(drawn: tuple[Any, Any]) -> None:
    model, answer = drawn
    spec = type_spec(model)
    assert spec.schema is not None
    try:
        stored = app_verdict(spec.schema, answer)
    except InvalidValue:
        # Refused by the app: wait() would refuse it as well (when JSON can hold it at all).
        assert not sdk_verdict(spec, answer), f"the app refused what wait() accepts: {answer!r}"
        return
    record = DecisionRecord(request_id="r.e", status="answered", value=stored, via="api")
    kept = DecisionRecord.model_validate_json(record.to_bytes()).value  # as stored and read back
    assert sdk_verdict(spec, kept), f"the app accepted what wait() refuses: {answer!r}"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["p", "q", "r", "s", 1]), max_size=4),
    st.integers(0, 2),
    st.integers(1, 3),
)
def test_choices_agree_too(picks: list[Any], low: int, high: int) -> None:
    spec = type_spec(
        Annotated[list[Literal["p", "q", "r"]], Field(min_length=low, max_length=high)]
    )
    assert spec.schema is not None
    try:
        stored = schema_codec("choices", spec.schema).parse(picks)
    except InvalidValue:
        assert not sdk_verdict(spec, picks)
        return
    assert sdk_verdict(spec, stored)
