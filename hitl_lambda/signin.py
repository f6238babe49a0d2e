"""Signing in with OpenID Connect (present only when ``HITL_OIDC_ISSUER`` is set; see ``auth``
for the protocol and the settings)::

    GET  /login                 start signing in (redirect to the issuer, PKCE)
    GET  /auth/callback         the issuer's redirect back: verify, set the session cookie
    GET|POST /logout            forget the session
"""

from __future__ import annotations

from fastapi import FastAPI, Query, Request
from starlette.responses import RedirectResponse, Response

from . import pages
from .auth import (
    LOGIN_COOKIE,
    LOGIN_SECONDS,
    SESSION_COOKIE,
    OidcSettings,
    Provider,
    SignInError,
    session_cookie,
)
from .views import blocking, root_path


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax"
    )


def _forget(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="lax")


def _safe_next(path: str) -> str:
    """Where to go after signing in: a path of this app only (never another site)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or len(path) > 500:
        return "/inbox"
    return path


def install(app: FastAPI, settings: OidcSettings) -> None:
    """Add these routes to ``app``."""
    provider = Provider(settings)

    def callback_url(request: Request) -> str:
        if settings.redirect_uri:
            return settings.redirect_uri
        host = request.headers.get("host", "localhost")
        return f"{request.url.scheme}://{host}{root_path(request)}auth/callback"

    @app.get("/login")
    async def login(request: Request, next: str = Query("/inbox")) -> Response:
        url, cookie = await blocking(provider.login, _safe_next(next), callback_url(request))
        response = RedirectResponse(url, status_code=303)
        _cookie(response, LOGIN_COOKIE, cookie, LOGIN_SECONDS)
        return response

    @app.get("/auth/callback")
    async def callback(
        request: Request,
        code: str = Query(""),
        state: str = Query(""),
        error: str = Query(""),
    ) -> Response:
        if error:
            raise SignInError(f"the issuer did not sign you in ({error[:80]})")
        email, groups, nxt = await blocking(
            provider.callback, code, state, request.cookies.get(LOGIN_COOKIE)
        )
        cookie, seconds = session_cookie(settings, email, groups)
        response = RedirectResponse(f"{root_path(request).rstrip('/')}{nxt}", status_code=303)
        _cookie(response, SESSION_COOKIE, cookie, seconds)
        _forget(response, LOGIN_COOKIE)  # used once: a replayed callback finds none
        return response

    @app.api_route("/logout", methods=["GET", "POST"])
    async def logout(request: Request) -> Response:
        response = pages.render(
            request.scope, "signed_out.html", 200, inbox_root=root_path(request)
        )
        _forget(response, SESSION_COOKIE)
        return response
