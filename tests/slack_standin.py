"""A stand-in for Slack's Web API on loopback (``slack_sdk``'s ``base_url`` points at it), and
interactivity payloads signed as Slack signs them.

It answers the methods hitl calls (``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``views.open``, ``users.info``, ``users.lookupByEmail``,
``conversations.open``) from a table of users, and records every call with its arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the stand-in app's (not a real one)
BOT_TOKEN = "xoxb-standin-0000-not-a-real-token"


class SlackStandIn:
    def __init__(self, users: dict[str, str | None]) -> None:
        """``users``: Slack user id -> email (``None``: a profile without an email)."""
        self.users = users
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ts = 1_700_000_000.000100
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer({})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                if "json" in (self.headers.get("content-type") or ""):
                    args = json.loads(raw or "{}")
                else:
                    args = dict(parse_qsl(raw))
                self._answer(args)

            def _answer(self, args: dict[str, Any]) -> None:
                parts = urlsplit(self.path)
                args = {**dict(parse_qsl(parts.query)), **args}
                method = parts.path.rsplit("/", 1)[-1]
                auth = self.headers.get("authorization", "")
                reply = standin.reply(method, args, auth)
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def reply(self, method: str, args: dict[str, Any], auth: str) -> dict[str, Any]:
        with self._lock:
            self.calls.append((method, args))
        if auth != f"Bearer {BOT_TOKEN}":
            return {"ok": False, "error": "invalid_auth"}
        if method == "users.info":
            user = args.get("user", "")
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            email = self.users[user]
            profile = {"email": email} if email else {}
            return {"ok": True, "user": {"id": user, "profile": profile}}
        if method == "users.lookupByEmail":
            for user, email in self.users.items():
                if email and email.lower() == str(args.get("email", "")).lower():
                    return {"ok": True, "user": {"id": user}}
            return {"ok": False, "error": "users_not_found"}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": f"D{args.get('users', '')}"}}
        if method == "chat.postMessage":
            with self._lock:
                self._ts += 1
                ts = f"{self._ts:.6f}"
            return {"ok": True, "channel": args.get("channel"), "ts": ts}
        return {"ok": True}

    def called(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [args for m, args in self.calls if m == method]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def signed(payload: dict[str, Any], *, at: float | None = None, secret: str = SIGNING_SECRET):
    """An interactivity request as Slack sends it: the form body and its signature headers."""
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(at if at is not None else time.time()))
    base = f"v0:{stamp}:{body}".encode()
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }
    return body, headers


def click(user: str, action_id: str, value: str, channel: str, ts: str) -> dict[str, Any]:
    """A ``block_actions`` payload: ``user`` pressed a button of the message ``channel:ts``."""
    return {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": f"trigger-{user}-{time.monotonic_ns()}",
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "message": {"ts": ts},
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    }


def submission(user: str, view: dict[str, Any], want: str, text: str) -> dict[str, Any]:
    """A ``view_submission`` payload: ``user`` filled in the modal ``view`` and submitted."""
    return {
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": {want: {"input": {"type": "plain_text_input", "value": text}}}},
        },
    }
