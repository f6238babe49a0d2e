"""A deployment for agent tests: a store folder, the reviewer app over it on loopback, a JSON
webhook that receives the reviewers' links (``HITL_NOTIFY``), and the environment a task, an
example or ``hitl mcp`` runs with (the ``deployment`` fixture in conftest)."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from test_notify import Webhook, until


class Deployment:
    """A store folder, the reviewer app over it, a webhook for the links, the server's env."""

    def __init__(self, tmp_path: Path) -> None:
        from hitl_lambda.app import create_app
        from hitl_sdk.cli.server import BackgroundApp, bind
        from hitl_sdk.storage.store import Store

        self.store_url = (tmp_path / "store").as_uri()
        self.hook = Webhook()
        self.env = {
            "HITL_STORE_URL": self.store_url,
            "HITL_NOTIFY": self.hook.url,
            "HITL_RUN_ID": "agent-run",
            "XDG_DATA_HOME": os.environ.get("XDG_DATA_HOME", str(tmp_path / "data")),
            "HOME": os.environ.get("HOME", str(tmp_path)),
        }
        self._app = BackgroundApp(
            create_app(Store(self.store_url, for_requests=True)), bind("127.0.0.1", 0)
        )
        self.app_url = self._app.__enter__().url
        self.env["HITL_APP_URL"] = self.app_url
        self.answered: set[str] = set()

    def close(self) -> None:
        self._app.__exit__(None, None, None)
        self.hook.close()

    def stdio(self) -> Any:
        from mcp import StdioServerParameters

        return StdioServerParameters(
            command=sys.executable, args=["-m", "hitl_sdk.cli", "mcp"], env=self.env
        )

    def links(self) -> list[tuple[str, str]]:
        """The request ids and tokens of the links the webhook received, in order."""
        found = []
        for message in self.hook.received:
            for word in str(message["message"]).split():
                if "token=" in word:
                    parts = urllib.parse.urlsplit(word)
                    token = urllib.parse.parse_qs(parts.query)["token"][0]
                    found.append((urllib.parse.unquote(parts.path.rsplit("/", 1)[1]), token))
        return found

    def link(self) -> tuple[str, str]:
        """The next link of a gate this reviewer has not answered yet (waits for it)."""
        until(lambda: any(rid not in self.answered for rid, _ in self.links()))
        return next((rid, t) for rid, t in self.links() if rid not in self.answered)

    def answer(self, value: Any) -> int:
        """Answer the next gate through the reviewer app's JSON API, as the reviewer."""
        request_id, token = self.link()
        self.answered.add(request_id)
        body = json.dumps({"request_id": request_id, "token": token, "value": value}).encode()
        request = urllib.request.Request(
            f"{self.app_url}/submit/json", data=body, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
