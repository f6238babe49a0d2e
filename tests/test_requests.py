"""S3 requests counted, not timed: a proxy on loopback (tests/faultproxy.py, injecting nothing)
sees every request the SDK and the app send to the moto server.

- N gates waiting in a run cost one LIST of the run's decisions/ per cycle, whatever N, and
  one GET per decision, once, when it appears.
- The form GET makes 2 requests (event and decision, sent together); an answer's POST makes 2
  (the event, the exclusive create), and reads the decision only when the create is refused.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from apigw import apigw_event, form_post_event, invoke, json_post_event
from faultproxy import FaultProxy
from mangum import Mangum

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_sdk import _config
from hitl_sdk import answers as _answers
from hitl_sdk._poller import poller
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.store import Store

POLL = 0.1


@pytest.fixture
def counting(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A proxy that forwards everything and counts; stores built after it go through it."""
    with FaultProxy(moto_endpoint, lambda method, path: None) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        yield proxy


def kinds(seen: list[tuple[str, str]]) -> Counter[str]:
    """Requests by kind: LIST of a prefix's kind, GET/PUT of an object's kind."""
    counted: Counter[str] = Counter()
    for method, path in seen:
        if "list-type=2" in path:
            prefix = parse_qs(urlsplit(path).query).get("prefix", [""])[0]
            counted[f"LIST {prefix.strip('/').rsplit('/', 1)[-1]}"] += 1
        elif "/inbox/" in path:
            counted[f"{method} inbox"] += 1
        else:
            part = re.search(r"/runs/[^/]+/(\w+)/", path)
            counted[f"{method} {part.group(1) if part else path}"] += 1
    return counted


def direct_store(s3_url: str, moto_endpoint: str) -> Store:
    """A store whose client talks to moto itself: what it does is not counted."""
    proxied = os.environ["AWS_ENDPOINT_URL_S3"]
    os.environ["AWS_ENDPOINT_URL_S3"] = moto_endpoint
    try:
        store = Store(s3_url)
        store.check()  # the client is made now, with moto's endpoint
    finally:
        os.environ["AWS_ENDPOINT_URL_S3"] = proxied
    return store


def open_gates(s3_url: str, run: str, n: int) -> list[hitl.Event[int]]:
    _config.configure(store_url=s3_url, run_id=run)
    return [
        hitl.new_event(f"g{i}", int, timeout_seconds=300, poll_interval_seconds=POLL)
        for i in range(n)
    ]


def test_waiting_gates_cost_one_list_per_run_per_cycle(
    s3_url: str, moto_endpoint: str, counting: FaultProxy
) -> None:
    runs = [f"fan-{uuid.uuid4().hex[:6]}-{r}" for r in "ab"]
    gates = [g for run in runs for g in open_gates(s3_url, run, 40)]
    direct = direct_store(s3_url, moto_endpoint)  # answers are not counted, only the waiting
    results: list[int] = []
    waiter = threading.Thread(target=lambda: results.extend(hitl.wait_all(gates)), daemon=True)
    counting.seen.clear()
    lists_before = poller().lists
    waiter.start()
    time.sleep(1.5)
    counted = poller().lists - lists_before  # LISTs answered; the proxy may see one more run's
    waiting = kinds(counting.seen)  # LIST already sent in the instant between the two reads
    cycles = counted / len(runs)
    # Nothing but LISTs while nobody answers: one per run per cycle, for 80 gates.
    assert set(waiting) == {"LIST decisions"}, waiting
    assert counted <= waiting["LIST decisions"] <= counted + len(runs), (waiting, counted)
    assert 3 <= cycles <= 1.5 / POLL + 2, cycles
    for i, gate in enumerate(gates):
        _answers.submit(direct, gate.request_id, str(i), via="cli", operator="t")
    waiter.join(timeout=60)
    assert results == list(range(len(gates)))
    total = kinds(counting.seen)
    assert total["GET decisions"] == len(gates)  # each decision read once, when it appeared
    assert set(total) == {"LIST decisions", "GET decisions"}, total


def test_asyncio_gather_of_many_waits_shares_the_poller(
    s3_url: str, moto_endpoint: str, counting: FaultProxy
) -> None:
    gates = open_gates(s3_url, f"gather-{uuid.uuid4().hex[:6]}", 30)
    direct = direct_store(s3_url, moto_endpoint)
    counting.seen.clear()
    threads_before = threading.active_count()

    async def main() -> list[int]:
        async def answer_later() -> None:
            await asyncio.sleep(0.5)
            assert threading.active_count() <= threads_before + 2  # no thread per gate
            for i, gate in enumerate(gates):
                await asyncio.to_thread(
                    _answers.submit, direct, gate.request_id, str(i), via="cli", operator="t"
                )

        waits = asyncio.gather(*(g.wait.aio() for g in gates))
        _, values = await asyncio.gather(answer_later(), waits)
        return list(values)

    assert asyncio.run(main()) == list(range(30))
    seen = kinds(counting.seen)
    assert seen["GET decisions"] == 30 and set(seen) == {"LIST decisions", "GET decisions"}


def test_as_completed_yields_each_gate_as_it_is_decided(s3_url: str, moto_endpoint: str) -> None:
    gates = open_gates(s3_url, f"asc-{uuid.uuid4().hex[:6]}", 5)
    store = _config.get_store()
    order = [3, 0, 4, 1, 2]

    def answer() -> None:
        for i in order:
            time.sleep(0.3)
            _answers.submit(store, gates[i].request_id, str(i), via="cli", operator="t")

    threading.Thread(target=answer, daemon=True).start()
    seen = [(gate.name, gate.wait()) for gate in hitl.as_completed(gates)]
    assert seen == [(f"g{i}", i) for i in order]


def test_form_get_and_answer_post_make_the_designed_requests(
    s3_url: str, counting: FaultProxy
) -> None:
    _config.configure(store_url=s3_url, run_id=f"req-{uuid.uuid4().hex[:6]}")
    event = hitl.new_event("counted", bool)
    handler = Mangum(create_app(Store(s3_url, for_requests=True)), lifespan="off")
    query = {"token": event.token}
    counting.seen.clear()
    invoke(handler, apigw_event("GET", "/health"))
    assert counting.seen == []  # health touches no storage

    def count(request: dict[str, Any]) -> tuple[int, Counter[str]]:
        counting.seen.clear()
        resp = invoke(handler, request)
        return resp["statusCode"], kinds(counting.seen)

    form = apigw_event("GET", f"/form/{event.request_id}", query=query)
    # The first view reads the event and its decision side by side; the event, write-once,
    # is then known to this app: a second view reads only the decision.
    assert count(form) == (200, Counter({"GET events": 1, "GET decisions": 1}))
    assert count(form) == (200, Counter({"GET decisions": 1}))
    fields = {"request_id": event.request_id, "token": event.token, "value": "true"}
    # The reviewer's answer after the form: the exclusive create alone.
    assert count(form_post_event(fields)) == (303, Counter({"PUT decisions": 1}))
    # Answered already: the refused create; who answered is known (this app wrote it).
    again = json_post_event({**fields, "value": False})
    assert count(again) == (409, Counter({"PUT decisions": 1}))
    # Both records are known now: the answered page needs no request at all.
    assert count(form) == (200, Counter())

    # An API client answering a gate this app has never read: the event, then the create.
    other = hitl.new_event("counted-api", bool)
    fresh = Mangum(create_app(Store(s3_url, for_requests=True)), lifespan="off")
    counting.seen.clear()
    payload = {"request_id": other.request_id, "token": other.token, "value": True}
    resp = invoke(fresh, json_post_event(payload))
    assert resp["statusCode"] == 200
    assert kinds(counting.seen) == Counter({"GET events": 1, "PUT decisions": 1})
    # ... and answered by someone else meanwhile: the refused create, then the decision.
    third = hitl.new_event("counted-late", bool)
    _answers.submit(Store(s3_url), third.request_id, "false", via="cli", operator="ops")
    counting.seen.clear()
    payload = {"request_id": third.request_id, "token": third.token, "value": True}
    assert invoke(fresh, json_post_event(payload))["statusCode"] == 409
    assert kinds(counting.seen) == Counter(
        {"GET events": 1, "PUT decisions": 1, "GET decisions": 1}
    )
    assert Store(s3_url).get_decision(EventKeys.parse(event.request_id)) is not None


def test_wait_all_aio_and_a_failing_gate(tmp_path: Any) -> None:
    _config.configure(store_url=(tmp_path / "s").as_uri(), run_id="fanout-aio")
    gates = [hitl.new_event(f"a{i}", int, poll_interval_seconds=0.02) for i in range(3)]
    late = hitl.new_event("late", int, timeout_seconds=0.3, poll_interval_seconds=0.02)
    store = _config.get_store()
    for i, gate in enumerate(gates):
        _answers.submit(store, gate.request_id, str(i), via="cli", operator="t")
    assert asyncio.run(hitl.wait_all.aio(gates)) == [0, 1, 2]
    assert not gates[0].closed  # closed means "closed before it was opened", not "waited on"
    with pytest.raises(hitl.EventTimeout):
        hitl.wait_all([*gates, late])

    async def collect() -> list[str]:
        return [gate.name async for gate in hitl.as_completed.aio([late, *gates])]

    assert sorted(asyncio.run(collect())) == ["a0", "a1", "a2", "late"]


WAITER = """
import json, sys
import hitl_sdk as hitl
hitl.configure(store_url=sys.argv[1], run_id=sys.argv[2])
reviewers = json.loads(sys.argv[3]) or None
gate = hitl.new_event("indexed", bool, reviewers=reviewers, poll_interval_seconds=0.1)
tokens = {k: v.split("token=")[1] for k, v in gate.links.items()}
print(json.dumps({"id": gate.request_id, "tokens": tokens}), flush=True)
print(json.dumps(gate.wait()), flush=True)
"""


@pytest.mark.parametrize(
    ("app_inbox", "inbox", "reviewers", "markers"),
    [
        ("", "", [], 0),  # nothing deployed says there is an inbox: none is written
        ("", "off", ["alice@example.com"], 0),
        ("", "on", [], 2),  # "all": opened, closed
        ("", "on", ["alice@example.com", "group:release"], 4),  # two audiences, each twice
        ("on", "", ["alice@example.com"], 2),  # the deployment says so: the task follows
        ("on", "off", ["alice@example.com"], 0),  # the task's own setting wins
    ],
)
def test_the_inbox_index_costs_nothing_where_no_inbox_is_deployed(
    s3_url: str,
    counting: FaultProxy,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    app_inbox: str,
    inbox: str,
    reviewers: list[str],
    markers: int,
) -> None:
    """The waiting task (a process of its own, nothing remembered) against an app without
    sign-in (what the deployment says: no inbox, unless the app's HITL_INBOX says otherwise),
    unless the task's HITL_INBOX says otherwise."""
    import json
    import subprocess
    import sys

    from hitl_sdk.cli.server import BackgroundApp, bind

    monkeypatch.setenv("HITL_INBOX", app_inbox)
    served = create_app(Store(s3_url, for_requests=True), oidc=None)
    monkeypatch.delenv("HITL_INBOX")
    with BackgroundApp(served, bind("127.0.0.1", 0)) as app:
        env = {**os.environ, "HITL_APP_URL": app.url, "XDG_DATA_HOME": str(tmp_path)}
        env["HITL_INBOX"] = inbox
        script = tmp_path / "waiter.py"
        script.write_text(WAITER)
        counting.seen.clear()
        process = subprocess.Popen(
            [sys.executable, str(script), s3_url, f"idx-{uuid.uuid4().hex[:6]}",
             json.dumps(reviewers)],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        opened = json.loads(process.stdout.readline())
        token = next(iter(opened["tokens"].values()))
        answer = {"request_id": opened["id"], "token": token, "value": True}
        request = urllib_request(f"{app.url}/submit/json", answer)
        assert request == 200
        out, _ = process.communicate(timeout=60)
        assert json.loads(out) is True
    seen = kinds(counting.seen)
    assert seen["PUT inbox"] == markers, seen
    # What the waiting task read to resume: the decision, once (one GET per answer); the app
    # read the event and created the decision.
    assert seen["GET decisions"] == 1 and seen["PUT decisions"] == 1, seen


def urllib_request(url: str, body: dict[str, Any]) -> int:
    import json
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return int(reply.status)


def test_a_malformed_inbox_setting_is_refused_naming_it(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hitl_sdk import ConfigError
    from hitl_sdk._config import Settings

    monkeypatch.setenv("HITL_INBOX", "maybe")
    with pytest.raises(ConfigError, match="HITL_INBOX must be on or off, not 'maybe'"):
        create_app(Store(s3_url, for_requests=True), oidc=None)
    with pytest.raises(ConfigError, match="HITL_INBOX must be on or off"):
        Settings.from_env()
