"""Sign-in with OpenID Connect for the reviewer inbox: authorization code flow with PKCE.

Configured by environment, read once at cold start (``OidcSettings.from_env``)::

    HITL_OIDC_ISSUER            the issuer URL (Cognito, Okta, Entra ID, Google, Keycloak, ...)
    HITL_OIDC_CLIENT_ID         the app's client id at the issuer
    HITL_OIDC_CLIENT_SECRET     its secret (leave unset for a public client: PKCE alone)
    HITL_SESSION_SECRET         signs the session cookie (at least 32 characters)
    HITL_OIDC_SECRETS_ARN       on AWS instead of the two secrets above: a Secrets Manager
                                secret holding {"client_secret": ..., "session_secret": ...}
    HITL_OIDC_REDIRECT_URI      the callback URL registered at the issuer (default: this
                                request's own https://<host>[/<stage>]/auth/callback)
    HITL_OIDC_ALLOWED_DOMAINS   email domains that may sign in (comma separated; empty: any)
    HITL_OIDC_ALLOWED_GROUPS    groups of which a person must be in one (empty: any)
    HITL_OIDC_GROUPS_CLAIM      the ID token claim that lists groups (default "groups")
    HITL_INBOX_UNNAMED          who may answer gates that name no reviewer from the inbox:
                                "nobody" (default), "everyone" (everyone who may sign in) or
                                "group:<name>"
    HITL_SESSION_SECONDS        the session's lifetime (default 3600, at most 43200)

The ID token is verified with the issuer's published keys (JWKS): signature, issuer, audience,
expiry and the nonce of this very sign-in. A person is their email as the issuer asserts it,
verified (``email_verified``; ``HITL_OIDC_EMAIL_VERIFIED=trust`` for an issuer that never sends
the claim). The session is a signed cookie (``HttpOnly``, ``Secure``, ``SameSite=Lax``);
nothing about sessions is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from hitl_sdk import ConfigError, HitlError

SESSION_COOKIE = "hitl_session"
LOGIN_COOKIE = "hitl_login"
LOGIN_SECONDS = 600
MAX_SESSION_SECONDS = 43200
HTTP_TIMEOUT = 5.0


class SignInError(HitlError):
    """Sign-in failed: a token or callback that does not check out. Shown as 400 with a
    link to start again."""


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str | None
    session_secret: str
    redirect_uri: str | None = None
    allowed_domains: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    groups_claim: str = "groups"
    unnamed: str = "nobody"
    session_seconds: int = 3600
    trust_unverified_email: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OidcSettings | None:
        """The settings, or ``None`` when ``HITL_OIDC_ISSUER`` is unset (no sign-in, no inbox).
        ``ConfigError`` naming the variable for anything missing or malformed."""
        env = dict(os.environ) if env is None else env
        issuer = env.get("HITL_OIDC_ISSUER", "").strip().rstrip("/")
        if not issuer:
            return None
        parts = urllib.parse.urlsplit(issuer)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ConfigError(
                f"HITL_OIDC_ISSUER must be an https:// URL (http only on loopback), not {issuer!r}"
            )
        client_id = env.get("HITL_OIDC_CLIENT_ID", "").strip()
        if not client_id:
            raise ConfigError("HITL_OIDC_CLIENT_ID is missing: the app's client id at the issuer")
        client_secret = env.get("HITL_OIDC_CLIENT_SECRET") or None
        session_secret = env.get("HITL_SESSION_SECRET", "")
        arn = env.get("HITL_OIDC_SECRETS_ARN", "").strip()
        if arn:
            stored = _secrets_from_aws(arn)
            client_secret = stored.get("client_secret") or client_secret
            session_secret = stored.get("session_secret") or session_secret
        if len(session_secret) < 32:
            raise ConfigError(
                "HITL_SESSION_SECRET must be at least 32 characters (it signs the session "
                "cookie); generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        redirect_uri = env.get("HITL_OIDC_REDIRECT_URI", "").strip() or None
        if redirect_uri is not None and not redirect_uri.startswith(("https://", "http://")):
            raise ConfigError(
                "HITL_OIDC_REDIRECT_URI must be the full callback URL registered at the issuer, "
                f"such as https://reviews.example.com/auth/callback, not {redirect_uri!r}"
            )
        unnamed = env.get("HITL_INBOX_UNNAMED", "nobody").strip() or "nobody"
        if unnamed not in ("nobody", "everyone") and not (
            unnamed.startswith("group:") and len(unnamed) > 6
        ):
            raise ConfigError(
                f"HITL_INBOX_UNNAMED must be nobody, everyone or group:<name>, not {unnamed!r}"
            )
        try:
            seconds = int(env.get("HITL_SESSION_SECONDS", "3600"))
        except ValueError:
            seconds = 0
        if not 60 <= seconds <= MAX_SESSION_SECONDS:
            raise ConfigError(f"HITL_SESSION_SECONDS must be 60 to {MAX_SESSION_SECONDS} seconds")
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            session_secret=session_secret,
            redirect_uri=redirect_uri,
            allowed_domains=_csv(env.get("HITL_OIDC_ALLOWED_DOMAINS", ""), lower=True),
            allowed_groups=_csv(env.get("HITL_OIDC_ALLOWED_GROUPS", "")),
            groups_claim=env.get("HITL_OIDC_GROUPS_CLAIM", "groups").strip() or "groups",
            unnamed=unnamed,
            session_seconds=seconds,
            trust_unverified_email=_email_verified(env.get("HITL_OIDC_EMAIL_VERIFIED", "")),
        )


def _email_verified(text: str) -> bool:
    """``HITL_OIDC_EMAIL_VERIFIED``: unset or ``required`` (the ID token must say
    ``email_verified``), or ``trust`` (an issuer that never sends the claim); True for trust."""
    word = text.strip().lower()
    if word in ("", "required"):
        return False
    if word == "trust":
        return True
    raise ConfigError(
        f"HITL_OIDC_EMAIL_VERIFIED must be 'required' (the default) or 'trust', not {text!r}"
    )


def _csv(text: str, *, lower: bool = False) -> tuple[str, ...]:
    items = (t.strip() for t in text.split(","))
    return tuple(t.lower() if lower else t for t in items if t)


def _secrets_from_aws(arn: str) -> dict[str, str]:
    import botocore.session

    client = botocore.session.get_session().create_client("secretsmanager")
    try:
        value = client.get_secret_value(SecretId=arn)["SecretString"]
        data = json.loads(value)
    except Exception as exc:
        raise ConfigError(f"cannot read the sign-in secrets from {arn}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"the secret {arn} must hold a JSON object")
    return {k: str(v) for k, v in data.items() if isinstance(v, str)}


@dataclass(frozen=True)
class Person:
    """Who is signed in: the issuer's verified email, their groups, and the session's id."""

    email: str
    groups: tuple[str, ...]
    sid: str
    expires: int


def _sign_key(settings: OidcSettings, purpose: str) -> Any:
    from joserfc.jwk import OctKey

    digest = hmac.new(settings.session_secret.encode(), purpose.encode(), hashlib.sha256)
    return OctKey.import_key(digest.digest())


def _seal(settings: OidcSettings, purpose: str, claims: dict[str, Any]) -> str:
    from joserfc import jwt

    return str(jwt.encode({"alg": "HS256"}, claims, _sign_key(settings, purpose)))


def _open_seal(settings: OidcSettings, purpose: str, token: str | None) -> dict[str, Any] | None:
    """The claims of a cookie we signed, or ``None`` if absent, tampered with or expired."""
    if not token or len(token) > 8192:
        return None
    from joserfc import jwt
    from joserfc.errors import JoseError

    try:
        decoded = jwt.decode(token, _sign_key(settings, purpose), algorithms=["HS256"])
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(decoded.claims)
    except (JoseError, ValueError):
        return None
    return dict(decoded.claims)


def session_cookie(settings: OidcSettings, email: str, groups: list[str]) -> tuple[str, int]:
    now = int(time.time())
    claims = {
        "email": email,
        "groups": groups,
        "sid": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + settings.session_seconds,
    }
    return _seal(settings, "session", claims), settings.session_seconds


def person(settings: OidcSettings, cookie: str | None) -> Person | None:
    claims = _open_seal(settings, "session", cookie)
    if claims is None or not isinstance(claims.get("email"), str):
        return None
    groups = claims.get("groups")
    return Person(
        email=claims["email"],
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
        sid=str(claims.get("sid", "")),
        expires=int(claims["exp"]),
    )


def csrf_token(settings: OidcSettings, who: Person) -> str:
    """The token a signed-in form carries: bound to this session, useless to another site."""
    key = hashlib.sha256(f"csrf\x00{settings.session_secret}".encode()).digest()
    return hmac.new(key, who.sid.encode(), hashlib.sha256).hexdigest()


def csrf_ok(settings: OidcSettings, who: Person, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(settings, who), str(sent))


@dataclass
class Provider:
    """The issuer's endpoints and keys, fetched on first use and kept (keys fetched again
    once when a token names a key we do not know: the issuer rotated)."""

    settings: OidcSettings
    _meta: dict[str, Any] | None = None
    _jwks: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def meta(self) -> dict[str, Any]:
        with self._lock:
            if self._meta is None:
                url = f"{self.settings.issuer}/.well-known/openid-configuration"
                meta = _get_json(url)
                if meta.get("issuer", "").rstrip("/") != self.settings.issuer:
                    raise ConfigError(
                        f"the issuer's discovery document names issuer {meta.get('issuer')!r}, "
                        f"not HITL_OIDC_ISSUER={self.settings.issuer!r}"
                    )
                self._meta = meta
            return self._meta

    def keys(self, refresh: bool = False) -> dict[str, Any]:
        jwks_uri = self.meta()["jwks_uri"]
        with self._lock:
            if self._jwks is None or refresh:
                self._jwks = _get_json(jwks_uri)
            return self._jwks

    def login(self, next_path: str, redirect_uri: str) -> tuple[str, str]:
        """Where to send the browser, and the login cookie (state, nonce, PKCE verifier, and
        the callback URL the issuer was given)."""
        from authlib.common.security import generate_token
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email profile",
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        url = f"{self.meta()['authorization_endpoint']}?{urllib.parse.urlencode(query)}"
        now = int(time.time())
        cookie = _seal(
            self.settings,
            "login",
            {"state": state, "nonce": nonce, "verifier": verifier, "next": next_path,
             "redirect_uri": redirect_uri, "exp": now + LOGIN_SECONDS},
        )  # fmt: skip
        return url, cookie

    def callback(
        self, code: str, state: str, login_cookie: str | None
    ) -> tuple[str, list[str], str]:
        """Finish a sign-in: (email, groups, where to go next). ``SignInError`` for a callback
        without its login cookie (expired, replayed, started elsewhere), a state that does not
        match, a refused code, or an ID token that does not verify."""
        login = _open_seal(self.settings, "login", login_cookie)
        if login is None:
            raise SignInError(
                "this sign-in expired or was already used; start again from the sign-in link"
            )
        if not state or not hmac.compare_digest(str(login.get("state", "")), state):
            raise SignInError("the sign-in reply does not match this browser's sign-in")
        if not code:
            raise SignInError("the issuer sent no authorization code")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": str(login.get("redirect_uri", "")),
            "client_id": self.settings.client_id,
            "code_verifier": str(login["verifier"]),
        }
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if self.settings.client_secret:
            # client_secret_basic (RFC 6749 2.3.1: each part form-encoded first)
            user = urllib.parse.quote(self.settings.client_id, safe="")
            password = urllib.parse.quote(self.settings.client_secret, safe="")
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{user}:{password}".encode()
            ).decode("ascii")
        reply = _post_form(self.meta()["token_endpoint"], form, headers)
        id_token = reply.get("id_token")
        if not isinstance(id_token, str):
            error = str(reply.get("error", "no ID token"))
            detail = str(reply.get("error_description") or "")
            hint = (
                " (the issuer wants the client secret: set HITL_OIDC_CLIENT_SECRET)"
                if error == "invalid_client" and not self.settings.client_secret
                else ""
            )
            logging.getLogger("hitl").warning(
                "hitl: the issuer %s refused the sign-in: %s%s%s",
                self.settings.issuer,
                error,
                f": {detail}" if detail else "",
                hint,
            )
            raise SignInError(f"the issuer refused the sign-in: {error}{hint}")
        claims = self.verify(id_token, str(login["nonce"]))
        email, groups = self.identity(claims)
        return email, groups, str(login.get("next") or "/inbox")

    def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims, verified against the issuer's keys: signature, issuer,
        audience, expiry and nonce."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        algorithms = self.meta().get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in algorithms if a != "none" and not a.startswith("HS")]
        token = None
        for refresh in (False, True):
            try:
                keys = KeySet.import_key_set(self.keys(refresh=refresh))  # type: ignore[arg-type]
                token = jwt.decode(id_token, keys, algorithms=algorithms)
                break
            except (JoseError, ValueError) as exc:
                if refresh:
                    raise SignInError(f"the ID token does not verify: {exc}") from None
        assert token is not None
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": self.settings.issuer},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        claims = dict(token.claims)
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise SignInError(f"the ID token is not valid for this sign-in: {exc}") from None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.settings.client_id not in audiences:
            raise SignInError("the ID token was issued to another application (audience)")
        return claims

    def identity(self, claims: dict[str, Any]) -> tuple[str, list[str]]:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise SignInError("the issuer did not say who you are (no email in the ID token)")
        verified = claims.get("email_verified")
        if verified is not True and verified != "true" and not self.settings.trust_unverified_email:
            raise SignInError(f"the issuer has not verified the email {email}")
        email = email.strip()
        domain = email.rsplit("@", 1)[1].lower()
        if self.settings.allowed_domains and domain not in self.settings.allowed_domains:
            raise SignInError(f"{email} is not in a domain allowed to sign in here")
        raw = claims.get(self.settings.groups_claim)
        groups = [g for g in raw if isinstance(g, str)] if isinstance(raw, list) else []
        if self.settings.allowed_groups and not set(groups) & set(self.settings.allowed_groups):
            raise SignInError(f"{email} is in none of the groups allowed to sign in here")
        return email, groups


def _get_json(url: str) -> dict[str, Any]:
    import urllib.request  # only when signing in: the cold start does not pay for it

    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as reply:
            data = json.load(reply)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {url} from the sign-in issuer: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{url} did not answer a JSON object")
    return data


def _post_form(url: str, form: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    body = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as reply:
            data = json.load(reply)
    except urllib.error.HTTPError as exc:
        try:
            data = json.load(exc)
        except ValueError:
            data = {"error": f"HTTP {exc.code}"}
    except (OSError, ValueError) as exc:
        raise SignInError(f"cannot reach the issuer to finish the sign-in: {exc}") from exc
    return data if isinstance(data, dict) else {"error": "not a JSON object"}
