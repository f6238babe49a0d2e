"""Fuzz: hypothesis over the JSON API, the form post, the form GET and status (through the
Lambda handler, on the moto server), and property tests of the codecs and the records.

No input gives a 5xx; every value a gate's type admits goes through the API and comes back
from ``wait()`` exactly.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import pytest
from apigw import apigw_event, invoke, json_post_event, response_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mangum import Mangum

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_sdk import _config
from hitl_sdk.answers.codecs import CODECS, scalar_codec
from hitl_sdk.storage.records import DecisionRecord, EventRecord, GrantRecord
from hitl_sdk.storage.store import Store

pytestmark = pytest.mark.fuzz

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
ALLOWED = {200, 400, 401, 403, 404, 405, 409, 410, 413}
STATUSES: Counter[int] = Counter()
ROUND_TRIPS = Counter[str]()

# Text as clients really send it, plus what they should not: lone surrogates, controls, NUL.
texts = st.text(st.characters(codec=None, blacklist_categories=()), max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    """One bucket, one handler and a few gates of every type, shared by the module's examples."""
    import boto3

    bucket = f"hitl-fuzz-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/hitl"
    _config.configure(store_url=url, run_id=f"fuzz-{uuid.uuid4().hex[:8]}")
    gates = {
        name: hitl.new_event(f"gate-{name}", codec.python_type) for name, codec in CODECS.items()
    }
    handler = Mangum(create_app(Store(url, for_requests=True)), lifespan="off")
    yield {"handler": handler, "gates": gates, "url": url}
    from conftest import SUMMARY_LINES

    server_errors = sum(n for status, n in STATUSES.items() if status >= 500)
    SUMMARY_LINES.append(
        f"fuzz: requests={sum(STATUSES.values())} 5xx={server_errors} "
        f"round_trips={sum(ROUND_TRIPS.values())} "
        + " ".join(f"{code}s={n}" for code, n in sorted(STATUSES.items()))
    )


def pct(text: str) -> str:
    """Percent-encoded as a hostile client would: lone surrogates become invalid UTF-8."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def call(world: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    resp = invoke(world["handler"], event)
    STATUSES[resp["statusCode"]] += 1
    assert resp["statusCode"] in ALLOWED, (event.get("rawPath"), resp["statusCode"], resp["body"])
    return resp


def a_gate(world: dict[str, Any], data: st.DataObject) -> hitl.Event[Any]:
    return data.draw(st.sampled_from(sorted(world["gates"].values(), key=lambda e: e.name)))


# -- the routes never answer 5xx -------------------------------------------------------------------


@FUZZ
@given(data=st.data(), value=json_values, comment=st.none() | texts, extra=json_values)
def test_json_api_never_5xx(
    world: dict[str, Any], data: st.DataObject, value: Any, comment: Any, extra: Any
) -> None:
    gate = a_gate(world, data)
    request_id = data.draw(st.sampled_from([gate.request_id, "x.y", "../../etc"]) | texts)
    token = data.draw(st.sampled_from([gate.token, "", "A" * 32]) | texts | st.none())
    payload: Any = {"request_id": request_id, "token": token, "value": value, "comment": comment}
    payload["data_type"] = data.draw(st.none() | st.sampled_from(sorted(CODECS)) | texts)
    payload = data.draw(st.sampled_from([payload, extra, [payload]]))
    resp = call(world, json_post_event(json.dumps(payload)))
    if resp["statusCode"] == 200:
        assert response_json(resp)["status"] in ("submitted", "already recorded")


@FUZZ
@given(body=st.binary(max_size=300))
def test_json_api_takes_any_bytes_without_5xx(world: dict[str, Any], body: bytes) -> None:
    call(world, json_post_event(body, base64=True))  # API Gateway base64-encodes binary bodies


@FUZZ
@given(data=st.data(), fields=st.dictionaries(texts, texts, max_size=5))
def test_form_post_never_5xx(
    world: dict[str, Any], data: st.DataObject, fields: dict[str, str]
) -> None:
    gate = a_gate(world, data)
    base = {"request_id": gate.request_id, "token": gate.token}
    chosen = data.draw(st.sampled_from([{**base, **fields}, fields, {**fields, **base}]))
    body = "&".join(f"{pct(k)}={pct(v)}" for k, v in chosen.items())
    headers = {"content-type": "application/x-www-form-urlencoded"}
    call(world, apigw_event("POST", "/submit", body=body, headers=headers, base64=True))


@FUZZ
@given(data=st.data(), segment=texts, token=texts)
def test_form_get_and_status_never_5xx(
    world: dict[str, Any], data: st.DataObject, segment: str, token: str
) -> None:
    gate = a_gate(world, data)
    request_id = data.draw(st.sampled_from([gate.request_id, segment]))
    chosen_token = data.draw(st.sampled_from([gate.token, token, ""]))
    for route in ("form", "status"):
        path = f"/{route}/{pct(request_id)}"
        call(world, apigw_event("GET", path, query=f"token={pct(chosen_token)}"))


# -- round trips are exact -------------------------------------------------------------------------


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


answers = {
    "int": st.integers(min_value=-(10**300), max_value=10**300),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "str": texts.filter(lambda t: t.strip() != "" and _encodable(t)),
}


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_every_admitted_value_comes_back_from_wait_exactly(
    world: dict[str, Any], data: st.DataObject
) -> None:
    _config.configure(store_url=world["url"], run_id="fuzz-round-trips")
    name = data.draw(st.sampled_from(sorted(answers)))
    value = data.draw(answers[name])
    event = hitl.new_event(f"rt-{uuid.uuid4().hex}", scalar_codec(name).python_type)
    as_sent = data.draw(st.sampled_from([value, json.dumps(value) if name != "str" else value]))
    resp = call(
        world,
        json_post_event({"request_id": event.request_id, "token": event.token, "value": as_sent}),
    )
    assert resp["statusCode"] == 200, resp["body"]
    got = event.wait()
    expected = value.replace("\r\n", "\n").replace("\r", "\n") if name == "str" else value
    assert got == expected and type(got) is type(expected)
    if name == "float":
        assert math.copysign(1, got) == math.copysign(1, expected)
    ROUND_TRIPS[name] += 1


# -- properties of the codecs and the records ------------------------------------------------------


@settings(max_examples=300, database=None)
@given(name=st.sampled_from(sorted(CODECS)), raw=json_values)
def test_a_codec_accepts_only_what_it_can_store_and_read_back(name: str, raw: Any) -> None:
    codec = scalar_codec(name)
    try:
        value = codec.parse(raw)
    except hitl.InvalidValue:
        return
    stored = json.loads(json.dumps(codec.to_json(value)))
    assert codec.from_json(stored) == value
    assert isinstance(value, codec.python_type) and not (name == "int" and isinstance(value, bool))


@settings(max_examples=200, database=None)
@given(
    prompt=texts.filter(_encodable),
    value=st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts.filter(_encodable),
    who=texts.filter(_encodable),
    digests=st.dictionaries(
        st.text("0123456789abcdef", min_size=64, max_size=64), texts.filter(_encodable), max_size=3
    ),
)
def test_records_survive_their_bytes(
    prompt: str, value: Any, who: str, digests: dict[str, str]
) -> None:
    now = datetime.now(timezone.utc)
    event = EventRecord(
        request_id="r-1.e-2",
        run_id="r",
        name="e",
        data_type="str",
        prompt=prompt,
        created_at=now,
        deadline=now,
        timeout_seconds=1,
        poll_interval_seconds=1,
        token_digests=digests,
    )
    decision = DecisionRecord(
        request_id="r-1.e-2", status="answered", value=value, answered_by=who, via="api"
    )
    grant = GrantRecord(request_id="r-1.e-2", reviewer=who)
    for record in (event, decision, grant):
        assert type(record).model_validate_json(record.to_bytes()) == record
