"""A real OpenID Connect provider on loopback for the sign-in tests: ``oidc-provider-mock`` run as
its own process (``python -m oidc_provider_mock``), and the steps a browser takes through it.

    with OidcProvider() as issuer:          # issuer.url: http://127.0.0.1:PORT
        issuer.user("alice@example.com", groups=["legal"])
        location = issuer.authorize(authorize_url, "alice@example.com")  # -> callback URL
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from types import TracebackType
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class OidcProvider:
    def __init__(self, token_max_age: int = 3600) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_max_age = token_max_age
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OidcProvider:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oidc_provider_mock",
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--require-nonce",
                "--token-max-age",
                str(self.token_max_age),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"{self.url}/.well-known/openid-configuration", timeout=2
                ):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OIDC provider did not start") from None
                time.sleep(0.1)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def user(self, email: str, *, groups: list[str] | None = None, verified: bool = True) -> None:
        claims: dict[str, Any] = {"email": email, "email_verified": verified}
        if groups is not None:
            claims["groups"] = groups
        request = urllib.request.Request(
            f"{self.url}/users/{urllib.parse.quote(email, safe='')}",
            data=json.dumps(claims).encode(),
            headers={"Content-Type": "application/json"},
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.status == 204

    def authorize(self, authorize_url: str, sub: str) -> str:
        """The person ``sub`` approves the sign-in on the provider's form: where the provider
        sends the browser back (the app's callback with ``code`` and ``state``)."""
        body = urllib.parse.urlencode({"sub": sub}).encode()
        request = urllib.request.Request(authorize_url, data=body, method="POST")
        try:
            _OPENER.open(request, timeout=5)
        except urllib.error.HTTPError as exc:
            if exc.code in (302, 303):
                return str(exc.headers["Location"])
            raise
        raise AssertionError("the provider did not redirect back")

    def id_token(self, client_id: str, sub: str, nonce: str, redirect_uri: str) -> str:
        """An ID token for ``client_id`` through the provider's own code flow (no PKCE)."""
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid email",
                "state": "s",
                "nonce": nonce,
            }
        )
        back = self.authorize(f"{self.url}/oauth2/authorize?{query}", sub)
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(back).query)["code"][0]
        form = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "client_secret": "x",
            }
        ).encode()
        with urllib.request.urlopen(f"{self.url}/oauth2/token", data=form, timeout=5) as reply:
            return str(json.load(reply)["id_token"])
