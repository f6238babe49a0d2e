"""What a newcomer tripped on in their first hour (issue 25), each held by a test.

(The README citing a missing DESIGN.md and snippets without their imports are held by
tests/test_docs.py.)
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest

import hitl_sdk as hitl
from hitl_sdk import _config
from hitl_sdk.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = (tmp_path / "store").as_uri()
    monkeypatch.setenv("HITL_STORE_URL", url)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    _config.configure(store_url=url, run_id="papercuts")
    return url


def test_exit_code_6_has_one_meaning_and_a_refused_vote_its_own_code(
    local: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    codes = [line.split()[0] for line in shown.split("exit codes:")[1].splitlines() if line.strip()]
    assert len(codes) == len(set(codes)), "a code listed twice"
    assert "6    the gate is closed: it expired, timed out or was cancelled" in shown
    assert "10   not allowed" in shown
    docs = (ROOT / "docs" / "reference" / "errors.md").read_text()
    assert "| 6 | the gate is closed: it expired, timed out or was cancelled" in docs
    assert "| 10 | not allowed" in docs

    gate = hitl.approve.open("pay", reviewers=["ann", "ben", "cy"], quorum=2, requested_by="ann")
    code = main(["respond", gate.request_id, "approve", "--as", "ann"])
    assert code == 10
    assert "asked for this approval" in capsys.readouterr().err


def test_a_reason_is_asked_for_in_the_words_of_the_cli(
    local: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = hitl.approve.open("drop")
    assert main(["respond", gate.request_id, "reject"]) == 4
    assert "--reason" in capsys.readouterr().err


def test_a_mistyped_store_folder_is_said_not_listed_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    typo = tmp_path / "typo" / "folder"
    assert main(["list", "--store", str(typo)]) == 0
    err = capsys.readouterr().err
    assert "the folder" in err and "does not exist" in err and "no pending events" not in err
    assert main(["show", "run-x.gate-y", "--store", str(typo)]) == 3
    assert "does not exist" in capsys.readouterr().err and not typo.exists()
    real = tmp_path / "real"
    real.mkdir()
    assert main(["show", "nightly-4f", "--store", str(real)]) == 3
    assert real.as_uri() in capsys.readouterr().err  # "no event with id ... in <store>"


def test_the_unsupported_type_error_mentions_models(local: str) -> None:
    with pytest.raises(hitl.ConfigError, match="pydantic model"):
        hitl.new_event("x", dict)


def test_a_group_link_is_logged_as_the_groups(local: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hitl")
    hitl.new_event("release", bool, reviewers=["group:release"])
    line = next(r.getMessage() for r in caplog.records if "group:release" in r.getMessage())
    assert "the link for group:release (anyone in the group" in line
    assert "personal link" not in line


def test_a_cli_quorum_vote_says_the_decision_in_words(
    local: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = hitl.approve.open("ship", reviewers=["ann", "ben"], quorum=2)
    assert main(["respond", gate.request_id, "approve", "--as", "ann"]) == 0
    assert main(["respond", gate.request_id, "approve", "--as", "ben"]) == 0
    out = capsys.readouterr().out
    assert "decided: approved" in out and '{"approved"' not in out
    approval = gate.wait()
    assert approval.approvers == ("ann", "ben") and approval.by == "ann, ben"


def test_the_text_answer_field_has_a_length_limit(local: str) -> None:
    from apigw import apigw_event, invoke
    from mangum import Mangum

    from hitl_lambda.app import create_app

    gate = hitl.new_event("notes", str)
    handler = Mangum(create_app(_config.get_store(), oidc=None, slack=None), lifespan="off")
    page = invoke(
        handler, apigw_event("GET", f"/form/{gate.request_id}", query={"token": gate.token})
    )
    assert 'name="value" required maxlength="4000"' in page["body"]


def test_the_docs_say_what_token_and_form_url_are_with_named_reviewers() -> None:
    text = (ROOT / "docs" / "tutorial.md").read_text()
    assert "`event.token` and `event.form_url` are the **first named reviewer's**" in text


def test_a_refusal_page_of_the_inbox_does_not_talk_about_links() -> None:
    from hitl_lambda import pages

    scope: dict[str, Any] = {"type": "http", "root_path": "", "path": "/inbox/gate/x"}
    page = pages.render(scope, "error.html", 403, kind="not_allowed", message="not yours")
    assert "This link is personal" not in page.body.decode()


def test_the_demo_says_what_to_do_when_serve_holds_the_port(
    local: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--port", str(port), "--answer", "true"]) == 8
    assert "--port 0" in capsys.readouterr().err


def test_email_verified_takes_its_two_words_only() -> None:
    from hitl_lambda.auth import OidcSettings

    base = {
        "HITL_OIDC_ISSUER": "https://idp.example.com",
        "HITL_OIDC_CLIENT_ID": "hitl",
        "HITL_SESSION_SECRET": "s" * 40,
    }
    assert OidcSettings.from_env(base).trust_unverified_email is False  # unset: required
    assert OidcSettings.from_env(
        {**base, "HITL_OIDC_EMAIL_VERIFIED": "trust"}
    ).trust_unverified_email
    with pytest.raises(hitl.ConfigError, match="HITL_OIDC_EMAIL_VERIFIED"):
        OidcSettings.from_env({**base, "HITL_OIDC_EMAIL_VERIFIED": "trusted"})


def test_the_first_install_hides_the_editable_banner() -> None:
    script = (ROOT / "dev").read_text()
    assert '>"$log" 2>&1' in script  # pip's and setuptools' output only when it fails


def test_try_the_inbox_in_one_command() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "try_inbox.py"), "--check", "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alice signed in and her inbox lists her gates" in done.stdout
    assert "./dev inbox" in (ROOT / "dev").read_text()


def test_a_public_client_the_issuer_refuses_is_logged_with_the_fix(
    s3_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The mock issuer (like most) wants the client secret: without one, the refusal names
    the issuer's error in the log and on the page, and says what to set."""
    from urllib.parse import urlsplit

    from apigw import apigw_event, invoke
    from mangum import Mangum
    from oidc import OidcProvider
    from test_inbox import (
        cookie_value,
        environment,
        header,
        response_text,
        set_cookies,
        with_cookies,
    )

    from hitl_lambda.app import create_app
    from hitl_lambda.auth import OidcSettings

    caplog.set_level(logging.WARNING, logger="hitl")
    with OidcProvider() as issuer:
        issuer.user("alice@example.com")
        env = {k: v for k, v in environment(issuer).items() if k != "HITL_OIDC_CLIENT_SECRET"}
        app = Mangum(create_app(s3_store, oidc=OidcSettings.from_env(env)), lifespan="off")
        started = invoke(app, apigw_event("GET", "/login"))
        login = cookie_value(set_cookies(started)["hitl_login"])
        back = urlsplit(issuer.authorize(header(started, "location") or "", "alice@example.com"))
        done = invoke(
            app, with_cookies(apigw_event("GET", back.path, query=back.query), hitl_login=login)
        )
    assert "invalid_client" in response_text(done)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "refused the sign-in: invalid_client" in logged
    assert "HITL_OIDC_CLIENT_SECRET" in logged


def test_hitl_list_fits_the_terminal(
    local: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        hitl.new_event(
            f"nightly-load-{n}", bool, prompt="3 anomalies found in the nightly load. Approve?"
        )
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(len(line) <= 80 for line in lines), lines
    assert lines[0].startswith("ID (end)") and "NAME" in lines[0] and "PROMPT" in lines[0]
    shown = lines[1].split()[0]
    assert main(["show", shown]) == 0  # the id's end is one hitl show takes
    assert "nightly-load-" in capsys.readouterr().out
    monkeypatch.delenv("COLUMNS")
    assert main(["list"]) == 0  # not a terminal: whole rows, whole ids
    assert all(len(line.split()[0]) > 40 for line in capsys.readouterr().out.splitlines()[1:])
