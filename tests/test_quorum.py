"""Quorum approvals through the Lambda handler (API Gateway v2 events) on a moto S3 server:
N distinct approvals, per-group counts, a veto, one vote per person, who may vote, no
self-approval, concurrent votes, and a decision written by the waiting task when the app
never wrote it."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from apigw import (
    apigw_event,
    follow,
    form_post_event,
    invoke,
    json_post_event,
    response_json,
    response_text,
)
from faultproxy import Fault, FaultProxy
from mangum import Mangum

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_sdk import _config
from hitl_sdk.cli import main as cli
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.records import DecisionRecord, VoteRecord
from hitl_sdk.storage.store import Store

THREE = ["alice", "bob", "carol"]


def token_of(event: hitl.Event[Any], reviewer: str) -> str:
    return parse_qs(urlsplit(event.links[reviewer]).query)["token"][0]


def vote(
    handler: Any, event: hitl.Event[Any], reviewer: str, value: object, **extra: Any
) -> dict[str, Any]:
    body = {
        "request_id": event.request_id,
        "token": token_of(event, reviewer),
        "value": value,
        **extra,
    }
    return invoke(handler, json_post_event(body))


def stored_votes(store: Store, event: hitl.Event[Any]) -> list[VoteRecord]:
    keys = EventKeys.parse(event.request_id)
    fresh = Store(store.url)  # nothing remembered: what the bucket holds
    found = [fresh.get_vote(keys, name) for name in fresh.vote_names(keys)]
    return sorted((v for v in found if v is not None), key=lambda v: v.reviewer)


def stored_decision(store: Store, event: hitl.Event[Any]) -> DecisionRecord | None:
    return Store(store.url).get_decision(EventKeys.parse(event.request_id))


def test_two_of_three_needs_two_distinct_approvals(s3_store: Store, handler: Any) -> None:
    event = hitl.approve.open("deploy", "Ship 1.4?", reviewers=THREE, quorum=2)
    first = vote(handler, event, "alice", "approve")
    assert first["statusCode"] == 200, response_json(first)
    body = response_json(first)
    assert body["outcome"] == "pending" and body["vote"]["reviewer"] == "alice"
    assert body["quorum"]["needed"] == "1 more approval"
    assert stored_decision(s3_store, event) is None
    status = invoke(
        handler,
        apigw_event(
            "GET", f"/status/{event.request_id}", query={"token": token_of(event, "carol")}
        ),
    )
    progress = response_json(status)
    assert progress["status"] == "pending"
    assert [v["reviewer"] for v in progress["quorum"]["votes"]] == ["alice"]

    second = vote(handler, event, "bob", "approve")
    assert second["statusCode"] == 200
    assert response_json(second)["outcome"] == "answered"
    approval = event.wait()
    assert approval.approved and approval.by == "alice, bob"
    assert [v.reviewer for v in approval.votes] == ["alice", "bob"]
    decision = stored_decision(s3_store, event)
    assert decision is not None and decision.votes == stored_votes(s3_store, event)

    late = vote(handler, event, "carol", "reject", reason="too late")
    assert late["statusCode"] == 409, response_json(late)
    assert len(stored_votes(s3_store, event)) == 2  # a closed gate takes no vote object


def test_per_group_counts_need_distinct_people_from_each_group(
    s3_store: Store, handler: Any
) -> None:
    reviewers = {
        "dana": hitl.Reviewer(groups=["legal", "finance"]),
        "lee": hitl.Reviewer(groups=["legal"]),
        "fay": hitl.Reviewer(groups=["finance"]),
        "sam": None,
    }
    event = hitl.approve.open(
        "contract", "Sign it?", reviewers=reviewers, quorum={"legal": 1, "finance": 1}
    )
    # Dana is in both groups, but one person counts towards one group only.
    assert response_json(vote(handler, event, "dana", "approve"))["outcome"] == "pending"
    # Sam is in neither group: a vote, but no seat.
    body = response_json(vote(handler, event, "sam", "approve"))
    assert body["outcome"] == "pending"
    assert body["quorum"]["needed"] == "1 more approval"
    done = response_json(vote(handler, event, "lee", "approve"))
    assert done["outcome"] == "answered" and done["value"]["approved"] is True
    approval = event.wait()
    assert approval.approved and [v.reviewer for v in approval.votes] == ["dana", "sam", "lee"]


def test_per_group_progress_names_the_missing_group(s3_store: Store, handler: Any) -> None:
    reviewers = {
        "lee": hitl.Reviewer(groups=["legal"]),
        "lou": hitl.Reviewer(groups=["legal"]),
        "fay": hitl.Reviewer(groups=["finance"]),
    }
    event = hitl.approve.open("nda", reviewers=reviewers, quorum={"legal": 1, "finance": 1})
    vote(handler, event, "lee", "approve")
    body = response_json(vote(handler, event, "lou", "approve"))
    assert body["outcome"] == "pending"  # two legal approvals do not make a finance one
    assert body["quorum"]["needed"] == "1 more approval: 1 from finance"


def test_any_rejection_vetoes_the_gate(s3_store: Store, handler: Any) -> None:
    event = hitl.approve.open("migrate", reviewers=THREE, quorum=2)
    assert vote(handler, event, "alice", "approve")["statusCode"] == 200
    refused = vote(handler, event, "bob", "reject")  # a rejection must say why (the default)
    assert refused["statusCode"] == 400
    veto = vote(handler, event, "bob", "reject", reason="the backup failed")
    assert veto["statusCode"] == 200 and response_json(veto)["outcome"] == "answered"
    approval = event.wait()
    assert not approval.approved and approval.reason == "the backup failed"
    assert approval.by == "bob" and [v.approved for v in approval.votes] == [True, False]
    assert vote(handler, event, "carol", "approve")["statusCode"] == 409


def test_a_second_vote_by_the_same_person_is_refused_and_the_first_stands(
    s3_store: Store, handler: Any
) -> None:
    event = hitl.approve.open("scale", reviewers=THREE, quorum=3)
    assert vote(handler, event, "alice", "approve")["statusCode"] == 200
    for again in ("approve", "reject"):
        resp = vote(handler, event, "alice", again, reason="changed my mind")
        assert resp["statusCode"] == 409
        assert response_json(resp)["error"] == "already_voted"
        assert "alice approved" in response_json(resp)["detail"]
    [only] = stored_votes(s3_store, event)
    assert only.approved and only.reason is None


def test_only_the_gates_reviewers_vote(s3_store: Store, handler: Any, tmp_path: Any) -> None:
    event = hitl.approve.open("rotate", reviewers=["alice", "bob"], quorum=2)
    other = hitl.approve.open("other", reviewers=["mallory"])
    body = {"request_id": event.request_id, "token": token_of(other, "mallory"), "value": True}
    assert invoke(handler, json_post_event(body))["statusCode"] == 403
    # An operator with store access votes as a person, and must be one of the reviewers.
    store = ["--store", s3_store.url]
    assert cli(["respond", event.request_id, "approve", "--as", "mallory", *store]) == 10
    assert cli(["respond", event.request_id, "approve", "--as", "bob", *store]) == 0
    assert [v.reviewer for v in stored_votes(s3_store, event)] == ["bob"]


def test_hitl_show_lists_the_votes_and_what_is_needed(
    s3_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    event = hitl.approve.open("show", reviewers=THREE, quorum=2, requested_by="carol")
    store = ["--store", s3_store.url]
    assert cli(["respond", event.request_id, "approve", "--as", "alice", *store]) == 0
    assert "still needed: 1 more approval" in capsys.readouterr().out
    assert cli(["show", event.request_id, *store]) == 0
    shown = capsys.readouterr().out
    assert "2 distinct approvals; carol asked and cannot approve" in shown
    assert "alice approved" in shown and "needed:   1 more approval" in shown


def test_the_requester_cannot_approve_their_own_request(s3_store: Store, handler: Any) -> None:
    with pytest.raises(hitl.ConfigError, match="cannot be met"):
        hitl.approve.open("x", reviewers=THREE, quorum=3, requested_by="alice")
    event = hitl.approve.open("grant", reviewers=THREE, quorum=2, requested_by="alice")
    own = vote(handler, event, "alice", "approve")
    assert own["statusCode"] == 403 and response_json(own)["error"] == "not_allowed"
    assert "cannot approve" in response_json(own)["detail"]
    assert stored_votes(s3_store, event) == []
    # Withdrawing (a rejection) is the requester's right.
    withdraw = vote(handler, event, "alice", "reject", reason="no longer needed")
    assert withdraw["statusCode"] == 200
    assert not event.wait().approved
    # A single-approver gate too.
    single = hitl.approve.open("solo", reviewers=["alice", "bob"], requested_by="alice")
    assert vote(handler, single, "alice", "approve")["statusCode"] == 403
    assert vote(handler, single, "bob", "approve")["statusCode"] == 200


def test_quorum_options_are_checked(s3_store: Store) -> None:
    with pytest.raises(hitl.ConfigError, match="named reviewers"):
        hitl.approve.open("a", quorum=2)
    with pytest.raises(hitl.ConfigError, match="cannot be met"):
        hitl.approve.open("b", reviewers=["alice"], quorum=2)
    with pytest.raises(hitl.ConfigError, match="cannot be met"):
        hitl.approve.open("c", reviewers=THREE, quorum={"legal": 1})
    with pytest.raises(hitl.ConfigError, match="quorum must be"):
        hitl.approve.open("d", reviewers=THREE, quorum=True)  # type: ignore[typeddict-item]
    with pytest.raises(hitl.ConfigError, match="requested_by"):
        hitl.approve.open("e", reviewers=THREE, requested_by=" ")
    with pytest.raises(hitl.ConfigError, match="groups"):
        hitl.approve.open("f", reviewers={"a": hitl.Reviewer(groups="legal")}, quorum=1)


def _concurrent_votes(handler: Any, event: hitl.Event[Any], names: list[str]) -> dict[str, int]:
    codes: dict[str, int] = {}
    start = threading.Barrier(len(names))

    def cast(name: str) -> None:
        start.wait()
        codes[name] = vote(handler, event, name, "approve")["statusCode"]

    threads = [threading.Thread(target=cast, args=(n,), daemon=True) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return codes


def test_twenty_concurrent_votes_make_one_decision_listing_every_vote(
    s3_store: Store, handler: Any
) -> None:
    names = [f"r{i:02d}" for i in range(20)]
    event = hitl.approve.open("launch", reviewers=names, quorum=20)
    codes = _concurrent_votes(handler, event, names)
    assert sorted(codes.values()) == [200] * 20
    decision = stored_decision(s3_store, event)
    assert decision is not None and decision.value == {"approved": True, "reason": None}
    listed = sorted(decision.votes or [], key=lambda v: v.reviewer)
    assert listed == stored_votes(s3_store, event)  # the very records, write ids and all
    assert len(listed) == 20 and event.wait().approved


def test_concurrent_votes_past_the_quorum_are_told_they_did_not_count(
    s3_store: Store, handler: Any
) -> None:
    names = [f"r{i:02d}" for i in range(20)]
    event = hitl.approve.open("hotfix", reviewers=names, quorum=3)
    codes = _concurrent_votes(handler, event, names)
    decision = stored_decision(s3_store, event)
    assert decision is not None and decision.votes is not None
    counted = {v.reviewer for v in decision.votes}
    assert len(counted) >= 3
    # Every vote the decision lists was told 200; every other one 409, never lost silently.
    assert {n for n, c in codes.items() if c == 200} == counted
    assert all(codes[n] == 409 for n in names if n not in counted)
    objects = {v.reviewer: v for v in stored_votes(s3_store, event)}
    assert all(objects[v.reviewer] == v for v in decision.votes)


def test_the_waiting_task_writes_the_decision_the_app_never_wrote(
    s3_url: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = "quorum-kill"
    _config.configure(store_url=s3_url, run_id=run)
    event = hitl.approve.open(
        "cutover", reviewers=THREE, quorum=2, poll_interval_seconds=0.1, timeout_seconds=60
    )

    # The app's connection breaks on every decision write: it dies between the two writes.
    def no_decisions(method: str, path: str) -> Fault | None:
        return Fault("drop") if method == "PUT" and "/decisions/" in path else None

    with FaultProxy(moto_endpoint, no_decisions) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        app = Mangum(create_app(Store(s3_url, for_requests=True)), lifespan="off")
        assert vote(app, event, "alice", "approve")["statusCode"] == 200
        decisive = vote(app, event, "carol", "approve")
        assert decisive["statusCode"] == 503  # the vote landed; the decision did not
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    assert stored_decision(Store(s3_url), event) is None
    assert [v.reviewer for v in stored_votes(Store(s3_url), event)] == ["alice", "carol"]

    _config.configure(store_url=s3_url, run_id=run)  # the task, restarted, waits again
    approval = hitl.approve("cutover", reviewers=THREE, quorum=2, poll_interval_seconds=0.1)
    assert approval.approved and approval.by == "alice, carol"
    decision = stored_decision(Store(s3_url), event)
    assert decision is not None
    assert decision.votes == stored_votes(Store(s3_url), event)


def test_the_form_shows_the_votes_and_what_is_still_needed(s3_store: Store, handler: Any) -> None:
    event = hitl.approve.open(
        "release", "Release 2.0?", reviewers=THREE, quorum=2, requested_by="carol"
    )
    vote(handler, event, "alice", "approve")
    page = response_text(
        invoke(
            handler,
            apigw_event(
                "GET", f"/form/{event.request_id}", query={"token": token_of(event, "bob")}
            ),
        )
    )
    assert "Still needed:</strong> 1 more approval" in page
    assert "alice" in page and "Approved" in page and "carol asked for it" in page
    assert 'value="approve"' in page  # bob has not voted: the buttons are there
    posted = invoke(
        handler,
        form_post_event(
            {
                "request_id": event.request_id,
                "token": token_of(event, "bob"),
                "value": "approve",
            }
        ),
    )
    assert posted["statusCode"] == 303
    after = response_text(follow(handler, posted))
    assert "Approved" in after and "bob" in after and "alice" in after
    assert 'value="approve"' not in after  # decided: no buttons
    assert event.wait().approved


def test_a_reviewer_who_voted_sees_their_vote_not_the_buttons(
    s3_store: Store, handler: Any
) -> None:
    event = hitl.approve.open("rollout", reviewers=THREE, quorum=3)
    fields = {"request_id": event.request_id, "token": token_of(event, "alice")}
    posted = invoke(handler, form_post_event({**fields, "value": "approve"}))
    page = response_text(follow(handler, posted))
    assert "Your vote is recorded: you approved" in page
    assert "2 more approvals" in page and 'value="approve"' not in page


def test_reminders_skip_reviewers_who_voted(s3_store: Store) -> None:
    from hitl_sdk import _notify
    from hitl_sdk.storage.records import utcnow

    sent: list[list[str]] = []

    class Recorder:
        def send(self, urls: list[str], title: str, body: str, what: str) -> None:
            sent.append(list(urls))

    event = hitl.approve.open(
        "remind",
        reviewers={"alice": "json://127.0.0.1:9/a", "bob": "json://127.0.0.1:9/b"},
        quorum=2,
        remind_every=0.01,
    )
    record = event._record
    original = _notify.notifier
    _notify.notifier = lambda: Recorder()  # type: ignore[assignment,return-value]
    try:
        _notify.tick(s3_store, record, utcnow(), voted={"alice"})
    finally:
        _notify.notifier = original
    assert sent and all("json://127.0.0.1:9/a" not in urls for urls in sent)
    assert any("json://127.0.0.1:9/b" in urls for urls in sent)


# -- one identity per person -------------------------------------------------------------------


def test_one_person_named_twice_is_refused_when_the_gate_opens(s3_store: Store) -> None:
    for reviewers in (
        ["alice@example.com", "Alice@Example.com", "bob@example.com"],
        [" carol@example.com", "carol@example.com"],
        ["\uff41lice@example.com", "alice@example.com"],  # a full-width "a": NFKC folds it
    ):
        with pytest.raises(hitl.ConfigError, match=r"duplicate names: .* are one person"):
            hitl.approve.open("twice", reviewers=reviewers, quorum=2)
    with pytest.raises(hitl.ConfigError, match="already a reviewer"):
        hitl.approve.open("backup", reviewers=["alice@example.com"], backups=["ALICE@example.com"])


def test_one_person_votes_once_however_they_spell_their_name(s3_store: Store, handler: Any) -> None:
    event = hitl.approve.open(
        "two", reviewers=["alice@example.com", "bob@example.com", "carol@example.com"], quorum=2
    )
    store = ["--store", s3_store.url]
    assert cli(["respond", event.request_id, "approve", "--as", "alice@example.com", *store]) == 0
    # The same person under another spelling: the first vote stands, nothing is counted twice.
    again = cli(["respond", event.request_id, "approve", "--as", "ALICE@Example.COM ", *store])
    assert again == 5
    assert [v.reviewer for v in stored_votes(s3_store, event)] == ["alice@example.com"]
    assert stored_decision(s3_store, event) is None  # still one approval of the two needed
    assert vote(handler, event, "bob@example.com", "approve")["statusCode"] == 200
    assert sorted(event.wait().by.split(", ")) == ["alice@example.com", "bob@example.com"]


def test_the_requester_under_another_spelling_still_cannot_approve(
    s3_store: Store, handler: Any
) -> None:
    with pytest.raises(hitl.ConfigError, match="cannot be met"):  # carol cannot fill a seat
        hitl.approve.open("q", reviewers=["alice", "Carol"], quorum=2, requested_by="carol")
    single = hitl.approve.open("solo", reviewers=["Carol@Example.com", "bob"],
                               requested_by="carol@example.com ")  # fmt: skip
    own = vote(handler, single, "Carol@Example.com", "approve")
    assert own["statusCode"] == 403 and response_json(own)["error"] == "not_allowed"
    code = cli(["respond", single.request_id, "approve", "--as", "CAROL@example.com",
                "--store", s3_store.url])  # fmt: skip
    assert code != 0 and stored_decision(s3_store, single) is None
