"""``hitl serve`` and ``hitl demo``: the reviewer app on this machine, and the example
pipeline answered through it (as any HTTP client would)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import sys
import urllib.error
import urllib.request
from typing import Any

from .. import _config, demo
from .._errors import ConfigError, EventTimeout, HitlError, InvalidValue
from .._event import Event
from ..answers import answer_json, error_for_status, scalar_codec
from ..answers import curl_line as api_curl_line
from ..storage.records import utcnow
from .common import EXIT_INTERRUPTED, exit_code, open_store, probe, program, say, store_flag
from .progress import wait_with_progress
from .server import AppStartError, BackgroundApp, bind, build_app, serve_forever, url_of
from .table import format_time

# -- hitl serve / demo -------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    store = open_store(args, for_requests=True)
    probe(store)
    app = build_app(store)
    sock = bind(args.host, args.port)
    url = url_of(sock)
    say(f"hitl: reviewer app on {url} over store {store.url} (Ctrl-C to stop)")
    if url != _config.settings().app_url:
        say(f"hitl: tasks link here when HITL_APP_URL={url}")
    # uvicorn shuts down cleanly on Ctrl-C, then re-raises it: a stop asked for, not a failure.
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever(app, sock)
    print("hitl: reviewer app stopped", file=sys.stderr)
    return 0


def _error_detail(body: bytes) -> tuple[str, str]:
    """The app's error reply: (its ``error`` kind, its message)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return "", body.decode(errors="replace")[:200]
    if isinstance(payload, dict):
        kind = str(payload.get("error") or "")
        return kind, str(payload.get("detail") or kind or payload)
    return "", str(payload)


def post_answer(event: Event[Any], value: str) -> dict[str, Any]:
    """Answer ``event`` through the reviewer app's JSON API, as any HTTP client would."""
    body = answer_json(event.request_id, event.token, value)
    request = urllib.request.Request(
        event.api_url,
        data=body.encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload: dict[str, Any] = json.load(response)
            return payload
    except urllib.error.HTTPError as exc:
        kind, detail = _error_detail(exc.read())
        error = error_for_status(exc.code, kind)
        raise error(
            f"the reviewer app refused the answer {value!r} ({exc.code}): {detail}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise HitlError(f"could not reach the reviewer app at {event.api_url}: {exc}") from exc


def curl_line(event: Event[Any], value: object) -> str:
    return api_curl_line(event.api_url, event.request_id, event.token, value, silent=True)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.answer is not None:
        # Checked before anything starts, so a typo leaves no open gate behind.
        try:
            scalar_codec(bool).parse(args.answer)
        except InvalidValue as exc:
            raise InvalidValue(f"--answer {args.answer!r}: {exc}") from exc
    store = open_store(args)
    probe(store)
    app = build_app(store)
    try:
        sock = bind("127.0.0.1", args.port)
    except AppStartError as exc:
        if "already in use" not in str(exc):
            raise
        raise AppStartError(
            f"port {args.port} on 127.0.0.1 is already in use (by `hitl serve` or ./dev serve?):"
            " the demo runs a reviewer app of its own; pick another port with --port "
            "(--port 0: any free port, as in ./dev demo --port 0)"
        ) from exc
    with BackgroundApp(app, sock) as server:
        run_id = (
            _config.settings().run_id or f"demo-{utcnow():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        )
        _config.configure(store_url=store.url, app_url=server.url, run_id=run_id)
        say(f"hitl demo: reviewer app on {server.url}, store {store.url}")
        analysis = demo.analyze_data()
        say(f"[1/3] automated analysis: {demo.summary(analysis)}")
        event = demo.request_human_review(analysis, timeout_seconds=args.timeout)
        say(f"[2/3] review gate {event.name!r} is open: {event.prompt}")
        say(f"      open the form:  {event.form_url}")
        say(f"      or use the API: {curl_line(event, True)}")
        respond = f"{program()} respond {event.request_id} true{store_flag(args)}"
        say(f"      or the CLI:     {respond}")
        try:
            if args.answer is not None:
                post_answer(event, args.answer)
                say(f"      answered {args.answer!r} through {event.api_url}")
            approved = wait_with_progress(
                event.wait, deadline=event.deadline, label="waiting for the reviewer"
            )
        except KeyboardInterrupt:
            print(
                f"\nhitl demo: stopped. The gate stays open until {format_time(event.deadline)}"
                f"; `{program()} show {event.request_id}{store_flag(args)}` shows it.",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        except EventTimeout as exc:
            say(f"[3/3] outcome: timed out. {exc}")
            return exit_code(exc)
        outcome = demo.decide(approved)
        say(f"[3/3] outcome: {outcome}. {demo.MESSAGES[outcome]}")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """``hitl mcp``: the MCP server for agents, over stdio (default) or streamable HTTP."""
    try:
        from ..agents.mcp_server import serve
    except ImportError as exc:  # the mcp SDK is an extra
        raise ConfigError(
            f"hitl mcp needs the MCP SDK ({exc.name} is not installed): "
            "pip install 'hitl-gates[mcp]'"
        ) from None
    store = open_store(args)
    probe(store)
    _config.configure(store_url=store.url)
    # stdout is the protocol on stdio: every line hitl prints (links, warnings) goes to stderr.
    logging.getLogger("hitl").setLevel(logging.INFO)
    if args.http:
        print(f"hitl: MCP server on http://{args.host}:{args.port}/mcp", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        serve("http" if args.http else "stdio", args.host, args.port)
    return 0
