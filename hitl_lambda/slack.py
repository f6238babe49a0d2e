"""``POST /slack/interactivity``: answers and votes given with a Slack message's buttons.

Only a signed, user-made interaction answers: every request's ``X-Slack-Signature`` (HMAC of
the body with the app's signing secret) and ``X-Slack-Request-Timestamp`` (within five minutes)
are checked with ``slack_sdk``'s verifier, and a request seen before is refused (its signature
is claimed once in the store, as a notice of the gate). The Slack user is mapped to a person by
their email (``users.info``, the identity the inbox uses); the gate must name them (or names no
one: then the channel's members may answer, recorded by email). The answer goes through the
same path as every other channel (write once, quorum rules, no self-approval, signed by the
app), and every message of the gate is updated; a refused click is told why, privately.

Settings: ``HITL_SLACK_SIGNING_SECRET`` and ``HITL_SLACK_BOT_TOKEN``, or on AWS
``HITL_SLACK_SECRETS_ARN`` (a Secrets Manager secret ``{"signing_secret", "bot_token"}``).
Unset: the route is not installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from hitl_sdk import AlreadyAnswered, ConfigError, HitlError, InvalidValue
from hitl_sdk import answers as _answers
from hitl_sdk.answers import AppKeys, outcome_text, reviewer_for
from hitl_sdk.chat import (
    ANSWER,
    APPROVE,
    CHOOSE,
    DEFAULT_API_URL,
    MODAL,
    REJECT,
    SlackSettings,
    messages_of,
    modal,
    update,
)
from hitl_sdk.storage import EventRecord, NoticeRecord, Store

from .views import blocking

log = logging.getLogger("hitl")
MAX_AGE_SECONDS = 300  # Slack's own advice: older requests may be replays


@dataclass(frozen=True)
class SlackApp:
    signing_secret: str
    bot_token: str
    api_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlackApp | None:
        env = os.environ if env is None else env
        secret = env.get("HITL_SLACK_SIGNING_SECRET", "")
        token = env.get("HITL_SLACK_BOT_TOKEN", "")
        arn = env.get("HITL_SLACK_SECRETS_ARN", "").strip()
        if arn:
            from .auth import _secrets_from_aws

            stored = _secrets_from_aws(arn)
            secret = stored.get("signing_secret") or secret
            token = stored.get("bot_token") or token
        if not secret and not token:
            return None
        if not secret or not token:
            missing = "HITL_SLACK_SIGNING_SECRET" if not secret else "HITL_SLACK_BOT_TOKEN"
            raise ConfigError(f"{missing} is missing: Slack answers need both secrets")
        return cls(secret, token, DEFAULT_API_URL)

    def client(self) -> Any:
        return SlackSettings(self.bot_token, None, self.api_url).client()

    def __repr__(self) -> str:
        return f"SlackApp(api_url={self.api_url!r})"


class Refused(Exception):
    """A click that changes nothing; its message goes to the clicker only."""


def install(app: FastAPI, store: Store, keys: AppKeys, slack: SlackApp, *, inbox: bool) -> None:
    from slack_sdk.signature import SignatureVerifier

    verifier = SignatureVerifier(slack.signing_secret)

    @app.post("/slack/interactivity")
    async def interactivity(request: Request) -> Response:
        body = await request.body()
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not verifier.is_valid(body, timestamp, signature):
            return JSONResponse({"error": "not signed by Slack"}, status_code=401)
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
        except (KeyError, ValueError, UnicodeDecodeError):
            return JSONResponse({"error": "no interaction payload"}, status_code=400)
        return await blocking(handle, payload, signature)

    def handle(payload: dict[str, Any], signature: str) -> Response:
        client = slack.client()
        kind = payload.get("type")
        user = str(payload.get("user", {}).get("id", ""))
        if kind == "block_actions":
            action = (payload.get("actions") or [{}])[0]
            return clicked(client, payload, action, user, signature)
        if kind == "view_submission" and payload.get("view", {}).get("callback_id") == MODAL:
            return submitted(client, payload, user, signature)
        return Response(status_code=200)  # nothing of ours (a modal closed, say)

    def claim(request_id: str, signature: str) -> None:
        """Each signed request answers once: a replay within the five minutes is refused."""
        digest = hashlib.sha256(signature.encode()).hexdigest()[:40]
        notice = NoticeRecord(request_id=request_id, name=f"slack-{digest}")
        if not store.create_notice(notice):
            raise Refused("this Slack request was seen before (a replay): nothing changed")

    def person(client: Any, user: str) -> str:
        try:
            profile = client.users_info(user=user)["user"].get("profile", {})
        except Exception as exc:
            raise Refused(f"Slack would not say who you are ({type(exc).__name__})") from None
        email = str(profile.get("email") or "").strip()
        if not email:
            raise Refused(
                "your Slack profile shows no email, so hitl cannot tell who you are "
                "(the app needs the users:read.email scope); answer through your link"
            )
        return email

    def answer(
        client: Any,
        event: EventRecord,
        user: str,
        raw: object,
        places: list[str],
        reason: str | None = None,
    ) -> None:
        """``user``'s answer to the gate of ``event`` (read by the caller), and every copy of
        its message updated."""
        request_id = event.request_id
        email = person(client, user)
        as_whom = reviewer_for(event, email, (), True)
        if as_whom is None:
            raise Refused(f"this gate does not name {email} as a reviewer: nothing changed")
        try:
            done = _answers.submit(
                store,
                request_id,
                raw,
                via="slack",
                operator=as_whom,
                reason=reason,
                seal=keys.seal(),
                inbox=inbox,
            )
        except AlreadyAnswered as exc:
            raise Refused(str(exc)) from None
        except InvalidValue:
            raise
        except HitlError as exc:  # not allowed (the requester), expired, cancelled
            raise Refused(str(exc)) from None
        everywhere = sorted(set(places) | set(messages_of(store, request_id)))
        progress = None
        if done.record is None and done.tally is not None:
            progress = f"{as_whom} voted; {done.tally.needed}"
        update(client, event, everywhere, done.record, progress)

    def clicked(
        client: Any, payload: dict[str, Any], action: dict[str, Any], user: str, signature: str
    ) -> Response:
        action_id = str(action.get("action_id", ""))
        if action_id == CHOOSE:
            request_id, value = json.loads(action["selected_option"]["value"])
        else:
            request_id, value = str(action.get("value", "")), None
        channel = str(
            payload.get("channel", {}).get("id")
            or payload.get("container", {}).get("channel_id", "")
        )
        ts = str(
            payload.get("message", {}).get("ts")
            or payload.get("container", {}).get("message_ts", "")
        )
        places = [f"{channel}:{ts}"] if channel and ts else []
        try:
            claim(request_id, signature)
            state = _answers.load(store, request_id, trust=keys)
            event = state.event
            if state.decision is not None:  # no modal for a gate that has its answer
                raise Refused(f"this gate is closed: {outcome_text(state.decision)}")
            needs_reason = (event.answer_schema or {}).get("x-require-reason") in (
                "always",
                *(("reject",) if action_id == REJECT else ()),
            )
            if action_id == ANSWER or (event.data_type == "approval" and needs_reason):
                person(client, user)  # who they are is checked again on submit
                meta = {"gate": request_id, "places": places, "action": action_id}
                want = "value" if action_id == ANSWER else "reason"
                client.views_open(
                    trigger_id=payload.get("trigger_id"), view=modal(event, want, meta)
                )
                return Response(status_code=200)
            raw = {
                APPROVE: "approve" if event.data_type == "approval" else "true",
                REJECT: "reject" if event.data_type == "approval" else "false",
                CHOOSE: value,
            }.get(action_id)
            if raw is None:
                return Response(status_code=200)
            answer(client, event, user, raw, places)
        except (Refused, InvalidValue) as exc:
            tell(client, channel, user, str(exc))
        except HitlError as exc:
            tell(client, channel, user, f"hitl could not record it: {exc}")
        return Response(status_code=200)

    def submitted(client: Any, payload: dict[str, Any], user: str, signature: str) -> Response:
        view = payload["view"]
        meta = json.loads(view.get("private_metadata") or "{}")
        request_id, want = str(meta.get("gate", "")), str(meta.get("want", ""))
        entered = view.get("state", {}).get("values", {}).get(want, {}).get("input", {})
        text = str(entered.get("value") or "")
        try:
            claim(request_id, signature)
            event = _answers.load(store, request_id, trust=keys).event
            places = list(meta.get("places", []))
            if want == "reason":
                raw = "approve" if meta.get("action") == APPROVE else "reject"
                answer(client, event, user, raw, places, reason=text)
            else:
                answer(client, event, user, text, places)
        except (Refused, HitlError) as exc:
            return JSONResponse({"response_action": "errors", "errors": {want: str(exc)[:150]}})
        return Response(status_code=200)

    def tell(client: Any, channel: str, user: str, text: str) -> None:
        """A message only this person sees; nothing else changes."""
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        except Exception as exc:
            log.warning("hitl: could not tell a Slack user why their click was refused: %s", exc)
