"""Try the reviewer inbox locally in one command: ``./dev inbox``.

Starts a local OpenID Connect provider (``oidc-provider-mock``, a dev dependency) with two
people, the reviewer app configured to sign in with it (a confidential client: the mock, like
most issuers, wants the client secret), and a few gates in a fresh local store: an approval
for alice, a choice for the ``release`` group, a quorum of two, and a gate that names no one
(``HITL_INBOX_UNNAMED=everyone``). Then it prints where to sign in, and runs until Ctrl-C.

``--check`` signs alice in through the provider and reads her inbox, then exits (the test of
this command).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from oidc import OidcProvider  # noqa: E402  (the test suite's provider helper)

PEOPLE = {"alice@example.com": ["release"], "bob@example.com": ["release"]}


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _get(url: str, cookie: str = "") -> tuple[int, dict[str, str], list[str], str]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        reply = urllib.request.build_opener(_Stay).open(request, timeout=10)
    except urllib.error.HTTPError as exc:
        reply = exc
    cookies = reply.headers.get_all("Set-Cookie") or []
    body = reply.read().decode(errors="replace")
    return reply.status, dict(reply.headers.items()), cookies, body


def _cookie(lines: list[str], name: str) -> str:
    return next(line.split(";", 1)[0] for line in lines if line.startswith(f"{name}="))


def check(app_url: str, issuer: OidcProvider) -> None:
    """alice signs in (the browser's round trip, by hand) and sees her gates."""
    status, headers, cookies, _ = _get(f"{app_url}/login?next=/inbox")
    assert status == 303, status
    location = next(v for k, v in headers.items() if k.lower() == "location")
    back = issuer.authorize(location, "alice@example.com")
    parts = urllib.parse.urlsplit(back)
    status, _, session, _ = _get(
        f"{app_url}{parts.path}?{parts.query}", _cookie(cookies, "hitl_login")
    )
    assert status == 303, status
    status, _, _, page = _get(f"{app_url}/inbox", _cookie(session, "hitl_session"))
    assert status == 200 and "Ship payments-api 1.4" in page, page[-800:]
    print("check: alice signed in and her inbox lists her gates")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--check", action="store_true", help="sign in as alice, read, exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    import hitl_sdk as hitl
    from hitl_lambda.app import create_app
    from hitl_sdk.cli.server import BackgroundApp, bind
    from hitl_sdk.storage.store import Store

    with OidcProvider() as issuer:
        for email, groups in PEOPLE.items():
            issuer.user(email, groups=groups)
        store_url = Path(tempfile.mkdtemp(prefix="hitl-inbox-")).as_uri()
        os.environ.update(
            HITL_OIDC_ISSUER=issuer.url,
            HITL_OIDC_CLIENT_ID="hitl-local",
            HITL_OIDC_CLIENT_SECRET="local-secret",
            HITL_SESSION_SECRET=secrets.token_urlsafe(48),
            HITL_INBOX_UNNAMED="everyone",
        )
        app = create_app(Store(store_url, for_requests=True))
        with BackgroundApp(app, bind("127.0.0.1", args.port)) as server:
            hitl.configure(store_url=store_url, app_url=server.url, run_id="try-inbox")
            logging.getLogger("hitl").setLevel(logging.WARNING)  # the links are not the point
            hitl.approve.open(
                "deploy",
                "Ship payments-api 1.4 to production?",
                reviewers=["alice@example.com"],
                details={"version": "1.4.0", "tests": "512 passed"},
            )
            hitl.new_event(
                "region", Literal["eu-west-1", "us-east-1"], prompt="Where does it go?",
                reviewers=["group:release"],
            )  # fmt: skip
            hitl.approve.open(
                "migration", "Run migration 0042?",
                reviewers=["alice@example.com", "bob@example.com"], quorum=2,
            )  # fmt: skip
            hitl.new_event("notes", str, prompt="Anything to add to the release notes?")
            if args.check:
                check(server.url, issuer)
                return 0
            print(
                f"\nThe inbox: {server.url}/inbox\n"
                f"Sign in on the provider's page by typing alice@example.com or bob@example.com "
                f"(both in group 'release'); the store is {store_url}.\n"
                "Ctrl-C to stop.",
                flush=True,
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
