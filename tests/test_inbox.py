"""The reviewer inbox behind OpenID Connect sign-in, through the Lambda handler (API Gateway v2
events, cookies as HTTP API sends them) on a moto S3 server, against a real OIDC provider
process on loopback (oidc-provider-mock)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from apigw import apigw_event, form_post_event, header, invoke, response_json, response_text
from mangum import Mangum
from oidc import OidcProvider

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_lambda.auth import SESSION_COOKIE, OidcSettings, Provider, SignInError, _seal
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.store import Store

APP_URL = "https://hitl.example.test"
SECRET = "s" * 48


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        provider.user("alice@example.com", groups=["legal"])
        provider.user("bob@example.com", groups=["finance"])
        provider.user("eve@other.test", groups=["legal"])
        provider.user("unverified@example.com", verified=False)
        yield provider


def environment(issuer: OidcProvider) -> dict[str, str]:
    """The sign-in settings these tests run with, as the environment gives them."""
    return {
        "HITL_OIDC_ISSUER": issuer.url,
        "HITL_OIDC_CLIENT_ID": "hitl-inbox",
        "HITL_OIDC_CLIENT_SECRET": "client-secret",
        "HITL_SESSION_SECRET": SECRET,
        "HITL_OIDC_REDIRECT_URI": f"{APP_URL}/auth/callback",
        "HITL_OIDC_ALLOWED_DOMAINS": "example.com",
    }


def settings_for(issuer: OidcProvider, **extra: str) -> OidcSettings:
    settings = OidcSettings.from_env({**environment(issuer), **extra})
    assert settings is not None
    return settings


@pytest.fixture
def app(s3_store: Store, issuer: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The function as its cold start builds it, with sign-in configured by environment."""
    for name, value in environment(issuer).items():
        monkeypatch.setenv(name, value)
    return Mangum(create_app(Store(s3_store.url, for_requests=True)), lifespan="off")


def with_cookies(event: dict[str, Any], **cookies: str) -> dict[str, Any]:
    """HTTP API v2 sends the request's cookies as a list of its own."""
    event["cookies"] = [f"{k}={v}" for k, v in cookies.items()]
    return event


def set_cookies(response: dict[str, Any]) -> dict[str, str]:
    """name -> the whole Set-Cookie line (v2 responses list them under "cookies")."""
    return {line.split("=", 1)[0]: line for line in response.get("cookies") or []}


def cookie_value(line: str) -> str:
    return line.split(";", 1)[0].split("=", 1)[1]


def sign_in(app: Any, issuer: OidcProvider, email: str, next_path: str = "/inbox") -> str:
    """The browser's round trip: /login -> the provider's form -> /auth/callback. The session
    cookie's value."""
    started = invoke(app, apigw_event("GET", "/login", query={"next": next_path}))
    assert started["statusCode"] == 303, started.get("body")
    login = cookie_value(set_cookies(started)["hitl_login"])
    back = urlsplit(issuer.authorize(header(started, "location") or "", email))
    assert f"{back.scheme}://{back.netloc}{back.path}" == f"{APP_URL}/auth/callback"
    done = invoke(
        app, with_cookies(apigw_event("GET", back.path, query=back.query), hitl_login=login)
    )
    assert done["statusCode"] == 303, response_text(done)
    assert header(done, "location") == next_path
    return cookie_value(set_cookies(done)[SESSION_COOKIE])


def get(app: Any, path: str, session: str | None = None, **query: str) -> dict[str, Any]:
    event = apigw_event("GET", path, query=query)
    return invoke(app, with_cookies(event, hitl_session=session) if session else event)


def gates_of(app: Any, session: str) -> dict[str, Any]:
    resp = get(app, "/inbox.json", session)
    assert resp["statusCode"] == 200, response_text(resp)
    return response_json(resp)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF field in the form"
    return found.group(1)


def test_sign_in_see_exactly_ones_gates_answer_one_and_sign_out(
    s3_store: Store, app: Any, issuer: OidcProvider
) -> None:
    mine = hitl.new_event("mine", int, prompt="How many replicas?", reviewers=["Alice@Example.com"])
    legal = hitl.approve.open("nda", "Sign the NDA?", reviewers=["group:legal"])
    bobs = hitl.new_event("bobs", bool, reviewers=["bob@example.com"])
    anyone = hitl.new_event("anyone", bool)  # names no one: not in inboxes by default
    session = sign_in(app, issuer, "alice@example.com")

    listed = gates_of(app, session)
    assert listed["email"] == "alice@example.com" and listed["groups"] == ["legal"]
    ids = {g["request_id"] for g in listed["open"]}
    assert ids == {mine.request_id, legal.request_id}
    assert bobs.request_id not in ids and anyone.request_id not in ids

    page = response_text(get(app, "/inbox", session))
    assert "How many replicas?" in page and "Sign the NDA?" in page
    asked = with_cookies(
        apigw_event("GET", "/inbox", headers={"accept": "application/json"}), hitl_session=session
    )
    assert response_json(invoke(app, asked)) == listed  # the JSON twin, by Accept
    assert response_json(get(app, "/inbox", session, format="json")) == listed

    form = get(app, f"/inbox/gate/{mine.request_id}", session)
    assert form["statusCode"] == 200
    posted = invoke(
        app,
        with_cookies(
            form_post_event(
                {"request_id": mine.request_id, "value": "3", "csrf": csrf_of(response_text(form))},
                path=f"/inbox/gate/{mine.request_id}",
            ),
            hitl_session=session,
        ),
    )
    assert posted["statusCode"] == 303, response_text(posted)
    assert header(posted, "location") == f"/inbox?answered={mine.request_id}"
    decision = Store(s3_store.url).get_decision(EventKeys.parse(mine.request_id))
    assert decision is not None
    assert (decision.answered_by, decision.via, decision.value) == ("Alice@Example.com", "inbox", 3)
    assert mine.wait() == 3

    after = gates_of(app, session)
    assert {g["request_id"] for g in after["open"]} == {legal.request_id}
    assert [g["closed"]["by"] for g in after["closed"]] == ["Alice@Example.com"]
    landed = response_text(get(app, "/inbox", session, answered=mine.request_id))
    assert "Recorded: How many replicas?" in landed and "Sign the NDA?" in landed

    out = invoke(app, with_cookies(apigw_event("GET", "/logout"), hitl_session=session))
    assert out["statusCode"] == 200
    cleared = set_cookies(out)[SESSION_COOKIE]
    assert "Max-Age=0" in cleared or "expires=" in cleared.lower()
    assert get(app, "/inbox")["statusCode"] == 303  # signed out: to the sign-in
    assert get(app, "/inbox.json")["statusCode"] == 401


def test_cookies_are_httponly_secure_lax_and_short_lived(app: Any, issuer: OidcProvider) -> None:
    started = invoke(app, apigw_event("GET", "/login"))
    login = set_cookies(started)["hitl_login"]
    for attribute in ("HttpOnly", "Secure", "SameSite=lax", "Path=/", "Max-Age=600"):
        assert attribute in login, login
    query = parse_qs(urlsplit(header(started, "location") or "").query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
    back = urlsplit(issuer.authorize(header(started, "location") or "", "alice@example.com"))
    done = invoke(
        app,
        with_cookies(
            apigw_event("GET", back.path, query=back.query), hitl_login=cookie_value(login)
        ),
    )
    session = set_cookies(done)[SESSION_COOKIE]
    for attribute in ("HttpOnly", "Secure", "SameSite=lax", "Max-Age=3600"):
        assert attribute in session, session


def test_a_tampered_or_expired_session_is_refused(app: Any, issuer: OidcProvider) -> None:
    session = sign_in(app, issuer, "alice@example.com")
    head, body, signature = session.split(".")
    forged_body = body[:-2] + ("AA" if not body.endswith("AA") else "BB")
    for bad in (f"{head}.{forged_body}.{signature}", session[:-3] + "xyz", "garbage"):
        assert get(app, "/inbox.json", bad)["statusCode"] == 401
        assert get(app, "/inbox", bad)["statusCode"] == 303
    settings = settings_for(issuer)
    past = int(time.time()) - 10
    claims = {"email": "alice@example.com", "groups": [], "sid": "x", "iat": past - 60, "exp": past}
    expired = _seal(settings, "session", claims)
    assert get(app, "/inbox.json", expired)["statusCode"] == 401
    wrong_key = _seal(settings_for(issuer, HITL_SESSION_SECRET="t" * 48), "session", claims)
    assert get(app, "/inbox.json", wrong_key)["statusCode"] == 401


def test_a_replayed_callback_is_refused(app: Any, issuer: OidcProvider) -> None:
    started = invoke(app, apigw_event("GET", "/login"))
    login = cookie_value(set_cookies(started)["hitl_login"])
    back = urlsplit(issuer.authorize(header(started, "location") or "", "alice@example.com"))
    callback = apigw_event("GET", back.path, query=back.query)
    first = invoke(app, with_cookies(dict(callback), hitl_login=login))
    assert first["statusCode"] == 303
    # The same code again, with the login cookie (stolen) or without it (another browser).
    again = invoke(
        app, with_cookies(apigw_event("GET", back.path, query=back.query), hitl_login=login)
    )
    assert again["statusCode"] == 400 and SESSION_COOKIE not in set_cookies(again)
    bare = invoke(app, apigw_event("GET", back.path, query=back.query))
    assert bare["statusCode"] == 400 and "expired or was already used" in response_text(bare)
    # A state that is not this browser's sign-in.
    other = invoke(app, apigw_event("GET", "/login"))
    mixed = invoke(
        app,
        with_cookies(
            apigw_event("GET", back.path, query=back.query),
            hitl_login=cookie_value(set_cookies(other)["hitl_login"]),
        ),
    )
    assert mixed["statusCode"] == 400


def test_id_tokens_from_another_issuer_or_audience_are_refused(issuer: OidcProvider) -> None:
    provider = Provider(settings_for(issuer))
    redirect = f"{APP_URL}/auth/callback"
    foreign_audience = issuer.id_token("someone-else", "alice@example.com", "n1", redirect)
    with pytest.raises(SignInError, match="another application"):
        provider.verify(foreign_audience, "n1")
    own = issuer.id_token("hitl-inbox", "alice@example.com", "n2", redirect)
    assert provider.verify(own, "n2")["email"] == "alice@example.com"
    with pytest.raises(SignInError, match="nonce"):
        provider.verify(own, "another-nonce")
    with OidcProvider() as elsewhere:  # another issuer, its own keys
        elsewhere.user("alice@example.com")
        foreign = elsewhere.id_token("hitl-inbox", "alice@example.com", "n3", redirect)
    with pytest.raises(SignInError):
        provider.verify(foreign, "n3")


def test_who_may_sign_in(app: Any, issuer: OidcProvider) -> None:
    for email, why in (
        ("eve@other.test", "not in a domain allowed"),
        ("unverified@example.com", "not verified"),
    ):
        started = invoke(app, apigw_event("GET", "/login"))
        login = cookie_value(set_cookies(started)["hitl_login"])
        back = urlsplit(issuer.authorize(header(started, "location") or "", email))
        done = invoke(
            app, with_cookies(apigw_event("GET", back.path, query=back.query), hitl_login=login)
        )
        assert done["statusCode"] == 400 and why in response_text(done), email


def test_a_gate_that_does_not_name_you_and_a_post_without_csrf_are_refused(
    s3_store: Store, app: Any, issuer: OidcProvider
) -> None:
    bobs = hitl.new_event("bobs", bool, reviewers=["bob@example.com"])
    mine = hitl.new_event("mine", bool, reviewers=["alice@example.com"])
    session = sign_in(app, issuer, "alice@example.com")
    assert get(app, f"/inbox/gate/{bobs.request_id}", session)["statusCode"] == 403
    csrf = csrf_of(response_text(get(app, f"/inbox/gate/{mine.request_id}", session)))

    def post(event: hitl.Event[Any], **fields: str) -> dict[str, Any]:
        body = {"request_id": event.request_id, "value": "true", **fields}
        raw = form_post_event(body, path=f"/inbox/gate/{event.request_id}")
        return invoke(app, with_cookies(raw, hitl_session=session))

    assert post(bobs, csrf=csrf)["statusCode"] == 403  # not named
    assert post(mine)["statusCode"] == 403  # a cross-site form: no CSRF token
    assert post(mine, csrf="0" * 64)["statusCode"] == 403
    other = sign_in(app, issuer, "bob@example.com")
    assert (
        post(mine, csrf=csrf_of(response_text(get(app, f"/inbox/gate/{bobs.request_id}", other))))[
            "statusCode"
        ]
        == 403
    )  # another session's token
    fresh = Store(s3_store.url)
    assert fresh.get_decision(EventKeys.parse(mine.request_id)) is None
    assert fresh.get_decision(EventKeys.parse(bobs.request_id)) is None
    assert post(mine, csrf=csrf)["statusCode"] == 303
    assert mine.wait() is True


def test_unnamed_gates_follow_the_deployment_rule(
    s3_store: Store, issuer: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    anyone = hitl.new_event("anyone", bool)
    store = Store(s3_store.url, for_requests=True)
    for rule, seen in (
        ("nobody", False),
        ("everyone", True),
        ("group:legal", True),
        ("group:ops", False),
    ):
        app = Mangum(
            create_app(store, oidc=settings_for(issuer, HITL_INBOX_UNNAMED=rule)), lifespan="off"
        )
        session = sign_in(app, issuer, "alice@example.com")
        ids = {g["request_id"] for g in gates_of(app, session)["open"]}
        assert (anyone.request_id in ids) is seen, rule


def test_without_oidc_there_are_no_inbox_routes(handler: Any) -> None:
    for path in ("/inbox", "/inbox.json", "/login", "/auth/callback", "/logout"):
        assert invoke(handler, apigw_event("GET", path))["statusCode"] == 404, path


def test_quorum_gates_show_their_votes_in_the_inbox(
    s3_store: Store, app: Any, issuer: OidcProvider
) -> None:
    gate = hitl.approve.open(
        "two", "Two approvals?", reviewers=["alice@example.com", "bob@example.com"], quorum=2
    )
    bob = sign_in(app, issuer, "bob@example.com")
    form = get(app, f"/inbox/gate/{gate.request_id}", bob)
    raw = form_post_event(
        {"request_id": gate.request_id, "value": "approve", "csrf": csrf_of(response_text(form))},
        path=f"/inbox/gate/{gate.request_id}",
    )
    assert invoke(app, with_cookies(raw, hitl_session=bob))["statusCode"] == 303
    alice = sign_in(app, issuer, "alice@example.com")
    [entry] = [g for g in gates_of(app, alice)["open"] if g["request_id"] == gate.request_id]
    assert entry["quorum"] == 2 and entry["votes"] == 1
    assert "votes 1, needs 2 approvals" in response_text(get(app, "/inbox", alice))


def test_settings_are_checked(issuer: OidcProvider) -> None:
    from hitl_sdk import ConfigError

    assert OidcSettings.from_env({}) is None
    with pytest.raises(ConfigError, match="HITL_SESSION_SECRET"):
        settings_for(issuer, HITL_SESSION_SECRET="short")
    with pytest.raises(ConfigError, match="https"):
        settings_for(issuer, HITL_OIDC_ISSUER="http://idp.example.com")
    with pytest.raises(ConfigError, match="HITL_INBOX_UNNAMED"):
        settings_for(issuer, HITL_INBOX_UNNAMED="all")
    with pytest.raises(ConfigError, match="HITL_OIDC_REDIRECT_URI"):
        settings_for(issuer, HITL_OIDC_REDIRECT_URI="/auth/callback")


def test_an_inbox_of_1000_open_gates_among_100000_closed_ones_costs_few_requests(
    s3_bucket: str, moto_endpoint: str, issuer: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 open gates for alice across 100 runs, in a bucket that also holds 100,000 closed
    ones (their decision records and index markers, in alice's own inbox too), written straight
    into the moto server's backend (300,000 PUTs over HTTP would take minutes); then one inbox
    render, its S3 requests counted by a proxy."""
    from datetime import datetime, timedelta, timezone

    from faultproxy import FaultProxy
    from moto.s3.models import s3_backends

    from hitl_lambda.auth import session_cookie
    from hitl_sdk.answers import index as _inbox
    from hitl_sdk.storage.keys import token_digest
    from hitl_sdk.storage.records import DecisionRecord, EventRecord

    backend = s3_backends["123456789012"]["global"]
    prefix = "hitl"
    now = datetime.now(timezone.utc)

    def put(key: str, data: bytes = b"") -> None:
        backend.put_object(s3_bucket, f"{prefix}/{key}", data)

    def gate(run: str, name: str, created: datetime, seconds: float) -> EventRecord:
        keys = EventKeys.for_name(run, name)
        return EventRecord(
            request_id=keys.request_id,
            run_id=run,
            name=name,
            data_type="bool",
            prompt=f"Ship {name}?",
            created_at=created,
            deadline=created + timedelta(seconds=seconds),
            timeout_seconds=seconds,
            poll_interval_seconds=5,
            token_digests={token_digest(name): "alice@example.com"},
        )

    started = time.monotonic()
    # Closed: answered weeks ago, in alice's inbox then. One gate's markers and decision are
    # made by the real code, then copied under 100,000 request ids (pydantic per gate would
    # triple the seeding time and test nothing more).
    sample = gate("past-0", "old-sample", now - timedelta(days=30), 3600)
    decision = DecisionRecord(
        request_id=sample.request_id, status="answered", value=True, via="api"
    )
    record = decision.to_bytes()
    markers = [*_inbox.open_markers(sample), *_inbox.close_markers(sample, decision)]
    for i in range(100_000):
        other = EventKeys.for_name(f"past-{i // 1000}", f"old-{i}").request_id
        put(
            EventKeys.parse(other).decision,
            record.replace(sample.request_id.encode(), other.encode()),
        )
        for marker in markers:
            put(marker.replace(sample.request_id, other))
    assert len(backend.buckets[s3_bucket].keys) >= 300_000
    for i in range(1000):  # open: 10 in each of 100 runs
        fresh = gate(f"run-{i % 100}", f"gate-{i}", now - timedelta(minutes=i % 50), 86400)
        put(EventKeys.parse(fresh.request_id).event, fresh.to_bytes())
        for marker in _inbox.open_markers(fresh):
            put(marker)
    seeded = time.monotonic() - started

    settings = settings_for(issuer)
    session, _ = session_cookie(settings, "alice@example.com", ["legal"])
    with FaultProxy(moto_endpoint, lambda method, path: None) as counting:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", counting.url)
        store = Store(f"s3://{s3_bucket}/{prefix}", for_requests=True)
        app = Mangum(create_app(store, oidc=settings), lifespan="off")
        counting.seen.clear()
        listed = gates_of(app, session)
        json_requests = len(counting.seen)
        counting.seen.clear()
        page = get(app, "/inbox", session)
        page_requests = len(counting.seen)
    assert len(listed["open"]) == 1000 and listed["closed"] == []
    deadlines = [g["deadline"] for g in listed["open"]]
    assert deadlines == sorted(deadlines)  # most urgent first
    assert page["statusCode"] == 200 and response_text(page).count('class="gate"') == 1000
    assert json_requests <= 25 and page_requests <= 25, (json_requests, page_requests)
    print(
        f"inbox: {json_requests} S3 requests (JSON), {page_requests} (page); seeded {seeded:.0f}s"
    )


def test_on_aws_the_secrets_come_from_secrets_manager(
    moto_endpoint: str, issuer: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's secret (client secret given, session key generated) read at cold start."""
    import json

    import boto3

    from hitl_sdk import ConfigError

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    arn = client.create_secret(
        Name=f"hitl-oidc-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"client_secret": "from-aws", "session_secret": "g" * 64}),
    )["ARN"]
    env = {
        "HITL_OIDC_ISSUER": issuer.url,
        "HITL_OIDC_CLIENT_ID": "hitl",
        "HITL_OIDC_SECRETS_ARN": arn,
    }
    settings = OidcSettings.from_env(env)
    assert settings is not None
    assert (settings.client_secret, settings.session_secret) == ("from-aws", "g" * 64)
    with pytest.raises(ConfigError, match="cannot read the sign-in secrets"):
        OidcSettings.from_env({**env, "HITL_OIDC_SECRETS_ARN": arn + "-gone"})


# -- one identity per person; markers that fit any file system ---------------------------------


def inbox_post(
    app: Any, session: str, event: hitl.Event[Any], value: str, **fields: str
) -> dict[str, Any]:
    """Open the gate from the inbox and answer it, as the signed-in person's browser does."""
    form = get(app, f"/inbox/gate/{event.request_id}", session)
    assert form["statusCode"] == 200, response_text(form)
    csrf = csrf_of(response_text(form))
    raw = form_post_event(
        {"request_id": event.request_id, "value": value, "csrf": csrf, **fields},
        path=f"/inbox/gate/{event.request_id}",
    )
    return invoke(app, with_cookies(raw, hitl_session=session))


def test_the_requester_signed_in_under_another_case_cannot_approve(
    s3_store: Store, issuer: OidcProvider
) -> None:
    issuer.user("Carol@Example.com", groups=["release"])
    store = Store(s3_store.url, for_requests=True)
    app = Mangum(create_app(store, oidc=settings_for(issuer, HITL_INBOX_UNNAMED="everyone")))
    group = hitl.approve.open(
        "release", "Ship?", reviewers=["group:release"], requested_by="carol@example.com"
    )
    quorum = hitl.approve.open(
        "quorum",
        "Ship twice?",
        reviewers=["carol@example.com", "alice@example.com", "bob@example.com"],
        quorum=2,
        requested_by="carol@example.com",
    )
    unnamed = hitl.approve.open("unnamed", "Ship too?", requested_by="carol@example.com")
    carol = sign_in(app, issuer, "Carol@Example.com")
    for gate in (group, quorum, unnamed):
        refused = inbox_post(app, carol, gate, "approve")
        assert refused["statusCode"] == 403, (gate.name, response_text(refused))
        assert "cannot approve" in response_text(refused)
        fresh = Store(s3_store.url)
        keys = EventKeys.parse(gate.request_id)
        assert fresh.get_decision(keys) is None and fresh.vote_names(keys) == []
    # Withdrawing stays her right.
    withdrawn = inbox_post(app, carol, group, "reject", reason="not needed after all")
    assert withdrawn["statusCode"] == 303
    assert not group.wait().approved


def test_one_person_on_two_app_instances_is_one_vote(s3_store: Store, issuer: OidcProvider) -> None:
    issuer.user("Alice@Example.com", groups=["legal"])
    gate = hitl.approve.open(
        "pair", "Two?", reviewers=["alice@example.com", "bob@example.com"], quorum=2
    )
    first, second = (
        Mangum(create_app(Store(s3_store.url, for_requests=True), oidc=settings_for(issuer)))
        for _ in range(2)
    )
    assert (
        inbox_post(first, sign_in(first, issuer, "alice@example.com"), gate, "approve")[
            "statusCode"
        ]
        == 303
    )
    session = sign_in(second, issuer, "Alice@Example.com")
    page = response_text(get(second, f"/inbox/gate/{gate.request_id}", session))
    assert "Your vote is recorded: you approved" in page  # her vote, not the buttons
    other = hitl.new_event("other", bool, reviewers=["alice@example.com"])
    csrf = csrf_of(response_text(get(second, f"/inbox/gate/{other.request_id}", session)))
    raw = form_post_event(
        {"request_id": gate.request_id, "value": "approve", "csrf": csrf},
        path=f"/inbox/gate/{gate.request_id}",
    )
    again = invoke(second, with_cookies(raw, hitl_session=session))  # a crafted second vote
    assert again["statusCode"] == 200
    assert "Your vote is recorded: you approved" in response_text(again)
    keys = EventKeys.parse(gate.request_id)
    assert len(Store(s3_store.url).vote_names(keys)) == 1
    assert Store(s3_store.url).get_decision(keys) is None  # one approval, not two


@pytest.mark.parametrize(
    "title",
    [
        "Release " + "x" * 112,  # 120 characters
        "本番データベースの移行を承認しますか" * 6,  # Japanese: 3 bytes a character
        "🚀🔥 Ship the rocket? " + "🛰️" * 40,
    ],
    ids=["120-characters", "japanese", "emoji"],
)
def test_gates_with_long_or_wide_titles_show_in_a_local_folder_inbox(
    tmp_path: Any, issuer: OidcProvider, title: str
) -> None:
    url = (tmp_path / "store").as_uri()
    hitl.configure(store_url=url, run_id="r-" + "ラン" * 40)
    gate = hitl.new_event(
        "名前" * 50, bool, prompt=title, title=title[:200], reviewers=["alice@example.com"]
    )
    for path in (tmp_path / "store" / "inbox").rglob("*"):
        assert len(path.name.encode()) <= 255, path.name
        assert len(str(path.relative_to(tmp_path / "store")).encode()) <= 1024 - 200
    app = Mangum(create_app(Store(url, for_requests=True), oidc=settings_for(issuer)))
    session = sign_in(app, issuer, "alice@example.com")
    [entry] = gates_of(app, session)["open"]
    assert entry["request_id"] == gate.request_id
    assert entry["title"].rstrip("…") and title.startswith(entry["title"].rstrip("…"))
    assert inbox_post(app, session, gate, "true")["statusCode"] == 303
    listed = gates_of(app, session)
    assert listed["open"] == [] and [g["request_id"] for g in listed["closed"]] == [gate.request_id]


def test_a_marker_that_cannot_be_written_fails_the_open_loudly(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hitl.configure(store_url=(tmp_path / "store").as_uri(), run_id="denied")

    def refuse(self: Store, key: str) -> None:
        raise hitl.StoreAccessDenied(f"access denied while trying to create {key}")

    monkeypatch.setattr(Store, "create_marker", refuse)
    with pytest.raises(hitl.StoreAccessDenied, match="inbox/"):
        hitl.new_event("hidden", bool, reviewers=["alice@example.com"])
    monkeypatch.undo()
    assert not list((tmp_path / "store").rglob("o.*"))
    # Calling it again (the task's retry) adopts the gate and writes what was missing.
    hitl.new_event("hidden", bool, reviewers=["alice@example.com"])
    assert len(list((tmp_path / "store" / "inbox").rglob("o.*"))) == 1
