"""Verifiable approvals: the side that asks can never answer for a person.

The waiting process forges, with its own credentials and the documented layout (on a moto S3
bucket and on a local folder): an answered decision, an approval past a quorum, a decision
listing invented votes, a vote copied from another gate, an early timeout with
on_timeout="approve", an answer re-bound to a changed question, an answer signed with its own
key. wait() refuses every one (hitl.UnverifiedRecord, naming the record), and a real reviewer
can still answer the gate through the app afterwards. Keys rotate; `hitl audit` names forgeries.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from apigw import apigw_event, invoke, json_post_event, response_json
from mangum import Mangum

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_sdk import _config
from hitl_sdk.answers import AppKeys, Keyring, Signer
from hitl_sdk.cli import main as cli
from hitl_sdk.storage import DecisionRecord, EventKeys, EventRecord, Store, VoteRecord

APP_SEED = "the reviewer app's own secret, 32+ characters long"
OLD_SEED = "the reviewer app's previous secret, also 32+ characters"
APP = Signer.from_seed(APP_SEED)
OLD = Signer.from_seed(OLD_SEED)


class Forger:
    """The waiting process writing to the store with its own credentials: raw object writes
    at the documented keys (what the task's role may do; on a folder, anything)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, key: str, data: bytes, *, replace: bool = False) -> None:
        if self.store.bucket is not None:
            root = self.store.url.removeprefix(f"s3://{self.store.bucket}").strip("/")
            extra = {} if replace else {"IfNoneMatch": "*"}
            boto3.client("s3").put_object(
                Bucket=self.store.bucket, Key=f"{root}/{key}", Body=data, **extra
            )
        else:
            path = Path(self.store.url.removeprefix("file://")) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def decision(self, gate: hitl.Event[Any], **fields: Any) -> None:
        record = DecisionRecord(request_id=gate.request_id, **fields)
        self.put(EventKeys.parse(gate.request_id).decision, record.to_bytes())

    def vote(self, vote: VoteRecord) -> None:
        self.put(EventKeys.parse(vote.request_id).vote(vote.reviewer), vote.to_bytes())


@pytest.fixture(params=["s3", "file"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Any]]:
    """A store, the reviewer app over it with its own key, and a task that trusts exactly the
    keys the app publishes (pinned, as HITL_VERIFY_KEYS would), not this machine's."""
    url = (
        str(request.getfixturevalue("s3_url"))
        if request.param == "s3"
        else (tmp_path / "store").as_uri()
    )
    keys = AppKeys({"HITL_SIGNING_KEY": APP_SEED}, local=False)
    _config.configure(
        store_url=url,
        app_url="https://hitl.example.test",
        run_id=f"trust-{uuid.uuid4().hex[:8]}",
        verify_keys=[APP.public.text],
    )
    app = Mangum(create_app(Store(url, for_requests=True), oidc=None, keys=keys), lifespan="off")
    yield _config.get_store(), app


def answer(app: Any, gate: hitl.Event[Any], value: object, **extra: Any) -> dict[str, Any]:
    body = {"request_id": gate.request_id, "token": gate.token, "value": value, **extra}
    return invoke(app, json_post_event(body))


def vote(app: Any, gate: hitl.Event[Any], reviewer: str, value: str) -> dict[str, Any]:
    from urllib.parse import parse_qs, urlsplit

    token = parse_qs(urlsplit(gate.links[reviewer]).query)["token"][0]
    body = {"request_id": gate.request_id, "token": token, "value": value}
    return invoke(app, json_post_event(body))


def refused(gate: hitl.Event[Any]) -> hitl.UnverifiedRecord:
    with pytest.raises(hitl.UnverifiedRecord) as caught:
        gate.wait()
    assert "decisions/" in caught.value.key or "signed/" in caught.value.key
    return caught.value


def test_a_forged_answer_is_refused_and_a_reviewer_can_still_answer(
    deployment: tuple[Store, Any],
) -> None:
    store, app = deployment
    gate = hitl.new_event("deploy", bool, prompt="Deploy?", poll_interval_seconds=0.05)
    Forger(store).decision(gate, status="answered", value=True, answered_by="alice", via="form")
    why = refused(gate)
    assert "no trusted key signed" in str(why) and gate.request_id in str(why)
    # The gate stays open for its reviewers: the real answer lands (in the second slot).
    real = answer(app, gate, False)
    assert real["statusCode"] == 200, real
    assert response_json(real)["value"] is False
    assert gate.wait() is False
    assert hitl.new_event("deploy", bool, prompt="Deploy?").wait() is False  # a restart, too


def test_a_forged_approval_past_a_quorum_is_refused(deployment: tuple[Store, Any]) -> None:
    store, app = deployment
    reviewers = {
        "alice@example.com": hitl.Reviewer(groups=["finance"]),
        "bob@example.com": hitl.Reviewer(groups=["legal"]),
    }
    gate = hitl.approve.open(
        "wire-transfer",
        "Send 1M?",
        reviewers=reviewers,
        quorum={"finance": 1, "legal": 1},
        requested_by="agent",
        poll_interval_seconds=0.05,
    )
    Forger(store).decision(
        gate,
        status="answered",
        value={"approved": True, "reason": None},
        answered_by="alice@example.com, bob@example.com",
        via="form",
    )
    assert "lists no votes" in str(refused(gate))
    assert vote(app, gate, "alice@example.com", "approve")["statusCode"] == 200
    assert vote(app, gate, "bob@example.com", "approve")["statusCode"] == 200
    approval = gate.wait()
    assert approval.approved and {v.reviewer for v in approval.votes} == set(reviewers)


def test_a_decision_listing_invented_votes_is_refused(deployment: tuple[Store, Any]) -> None:
    store, _ = deployment
    gate = hitl.approve.open(
        "two", "Two?", reviewers=["alice", "bob"], quorum=2, poll_interval_seconds=0.05
    )
    mine = Signer.generate()[0]  # the forger's own key: trusted by nobody
    invented = [
        VoteRecord(request_id=gate.request_id, reviewer="alice", approved=True, via="form"),
        mine.sign_vote(
            VoteRecord(request_id=gate.request_id, reviewer="bob", approved=True, via="form"),
            gate.gate.record.fingerprint,
        ),
    ]
    forger = Forger(store)
    for fake in invented:
        forger.vote(fake)  # they do not count as votes either
    forger.decision(
        gate,
        status="answered",
        value={"approved": True, "reason": None},
        answered_by="alice, bob",
        via="form",
        votes=invented,
    )
    assert "a vote that does not count" in str(refused(gate))


def test_a_vote_copied_from_another_gate_is_refused(deployment: tuple[Store, Any]) -> None:
    store, app = deployment
    other = hitl.approve.open("other", "Other?", reviewers=["alice", "bob"], quorum=2)
    assert vote(app, other, "alice", "approve")["statusCode"] == 200
    keys = EventKeys.parse(other.request_id)
    real = Store(store.url).get_vote(keys, Store(store.url).vote_names(keys)[0])
    assert real is not None and real.signature
    gate = hitl.approve.open(
        "target", "Target?", reviewers=["alice"], quorum=1, poll_interval_seconds=0.05
    )
    copied = real.model_copy(update={"request_id": gate.request_id})  # signature and all
    forger = Forger(store)
    forger.vote(copied)
    forger.decision(
        gate,
        status="answered",
        value={"approved": True, "reason": None},
        answered_by="alice",
        via="form",
        votes=[copied],
    )
    assert "does not match this gate's question" in str(refused(gate))
    # Her vote's slot holds the copy, which never counts: the gate cannot be approved by it,
    # only held up (on AWS the task's role may not write votes/ at all).
    assert vote(app, gate, "alice", "approve")["statusCode"] == 409


def test_an_early_timeout_with_on_timeout_approve_is_refused(
    deployment: tuple[Store, Any],
) -> None:
    store, app = deployment
    gate = hitl.approve.open(
        "risky", "Risky?", on_timeout="approve", timeout_seconds=3600, poll_interval_seconds=0.05
    )
    Forger(store).decision(
        gate,
        status="timed_out",
        value={"approved": True, "reason": None},
        default_applied=True,
        answered_by="deadline",
        via="timeout",
    )
    assert "before the deadline" in str(refused(gate))
    real = answer(app, gate, "reject", reason="not today")
    assert real["statusCode"] == 200, real
    assert not gate.wait().approved


def test_an_answer_re_bound_to_a_changed_question_is_refused(
    deployment: tuple[Store, Any],
) -> None:
    store, app = deployment
    gate = hitl.approve.open("ship", "Deploy to staging?", poll_interval_seconds=0.05)
    assert answer(app, gate, "approve")["statusCode"] == 200  # signed, for staging
    keys = EventKeys.parse(gate.request_id)
    record = Store(store.url).get_event(keys)
    assert record is not None
    changed = record.model_copy(update={"prompt": "Deploy to production?"})
    changed = changed.model_copy(update={"fingerprint": _fingerprint(changed)})
    Forger(store).put(keys.event, changed.to_bytes(), replace=True)  # a bucket writer's act
    _config.configure(run_id=record.run_id)
    _config.configure(store_url=_config.settings().store_url)  # a fresh store: nothing remembered
    again = hitl.approve.open("ship", "Deploy to production?", poll_interval_seconds=0.05)
    assert "does not match this gate's question" in str(refused(again))


def _fingerprint(record: EventRecord) -> str:
    from hitl_sdk._planning import question_fingerprint

    return question_fingerprint(
        record.data_type, record.prompt, record.details, record.answer_schema, record.prompt_format
    )


def test_an_answer_signed_with_the_tasks_own_key_is_refused(
    deployment: tuple[Store, Any],
) -> None:
    store, _ = deployment
    gate = hitl.new_event("n", int, poll_interval_seconds=0.05)
    mine = Signer.generate()[0]
    record = DecisionRecord(request_id=gate.request_id, status="answered", value=7, via="form")
    signed = mine.sign_decision(record, gate.gate.record.fingerprint)
    Forger(store).put(EventKeys.parse(gate.request_id).decision, signed.to_bytes())
    why = refused(gate)
    assert "not trusted" in str(why) and "HITL_VERIFY_KEYS" in str(why)


def test_keys_rotate(tmp_path: Path) -> None:
    url = (tmp_path / "store").as_uri()
    _config.configure(store_url=url, run_id="rotate", verify_keys=[OLD.public.text])
    old_app = Mangum(
        create_app(url, oidc=None, keys=AppKeys({"HITL_SIGNING_KEY": OLD_SEED}, local=False))
    )
    gate = hitl.new_event("before", int, poll_interval_seconds=0.05)
    assert answer(old_app, gate, 5)["statusCode"] == 200
    # The app rotates to a new key and keeps publishing the old one (Secrets Manager's
    # "previous"): tasks trust both while the old one is listed.
    rotated = AppKeys({"HITL_SIGNING_KEY": APP_SEED}, local=False)
    rotated._load()
    assert {k for k in rotated.keyring().keys} == {APP.key_id}
    _config.configure(verify_keys=[APP.public.text, OLD.public.text])
    assert gate.wait() == 5
    later = hitl.new_event("after", int, poll_interval_seconds=0.05)
    new_app = Mangum(create_app(url, oidc=None, keys=rotated))
    assert answer(new_app, later, 6)["statusCode"] == 200
    assert later.wait() == 6
    # The old key removed: what it signed no longer counts.
    _config.configure(verify_keys=[APP.public.text])
    _config.configure(store_url=_config.settings().store_url)  # a fresh store: nothing remembered
    with pytest.raises(hitl.UnverifiedRecord, match="not trusted"):
        hitl.new_event("before", int).wait()
    assert hitl.new_event("after", int).wait() == 6


def test_the_app_publishes_its_keys_and_previous_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = AppKeys({"HITL_SIGNING_KEY": APP_SEED, "HITL_OPERATOR_KEYS": OLD.public.text})
    app = Mangum(create_app(f"memory://k-{uuid.uuid4().hex[:6]}", oidc=None, keys=keys))
    response = invoke(app, apigw_event("GET", "/.well-known/hitl-keys"))
    assert response["statusCode"] == 200
    published = Keyring.from_document(response_json(response))
    assert set(published.keys) == {APP.key_id, OLD.key_id}
    assert {k["use"] for k in response_json(response)["keys"]} == {"app", "operator"}
    assert APP_SEED not in json.dumps(response_json(response))


def test_hitl_audit_names_a_forgery_and_passes_a_clean_store(
    deployment: tuple[Store, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    store, app = deployment
    good = hitl.new_event("good", bool)
    assert answer(app, good, True)["statusCode"] == 200
    pinned = ["--keys", APP.public.text, "--store", store.url]
    assert cli(["audit", *pinned]) == 0
    out = capsys.readouterr().out
    assert "good" in out and APP.key_id in out and "ok" in out
    bad = hitl.new_event("bad", bool)
    Forger(store).decision(bad, status="answered", value=True, answered_by="alice", via="form")
    assert cli(["audit", *pinned, "--json"]) == 9
    report = json.loads(capsys.readouterr().out)
    [failed] = [r for r in report["records"] if r["verdict"] != "ok"]
    assert failed["request_id"] == bad.request_id and "no trusted key" in failed["verdict"]
    assert report["failed"] == 1


def test_on_aws_the_key_comes_from_secrets_manager_and_rotates(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The stack's secret read on first use; infra/rotate_signing_key.py keeps the old public
    key published (what it signed still counts) until --retire."""
    import importlib.util

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    arn = client.create_secret(
        Name=f"hitl-signing-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"seed": APP_SEED, "previous": []}),
    )["ARN"]
    env = {"HITL_SIGNING_SECRET_ARN": arn}
    with pytest.raises(hitl.ConfigError, match="no signing key"):
        AppKeys({}, local=False)  # on Lambda, no key is a clear error at cold start
    first = AppKeys(env, local=False)
    assert first.signer().key_id == APP.key_id
    spec = importlib.util.spec_from_file_location(
        "rotate", Path(__file__).parent.parent / "infra" / "rotate_signing_key.py"
    )
    assert spec is not None and spec.loader is not None
    rotate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rotate)
    done = rotate.rotate(client, arn)
    assert done["previous"] == [APP.public.text]
    after = AppKeys(env, local=False)
    assert after.signer().key_id != APP.key_id
    assert set(after.keyring().keys) == {after.signer().key_id, APP.key_id}
    rotate.rotate(client, arn, retire=True)
    assert set(AppKeys(env, local=False).keyring().keys) == {
        AppKeys(env, local=False).signer().key_id
    }
    bad = client.create_secret(Name=f"hitl-bad-{uuid.uuid4().hex[:6]}", SecretString="[]")["ARN"]
    with pytest.raises(hitl.ConfigError, match="must hold a JSON object"):
        AppKeys({"HITL_SIGNING_SECRET_ARN": bad}, local=False).signer()
