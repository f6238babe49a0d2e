"""The ``hitl`` command: run the reviewer app locally, run the demo, inspect and answer events.

::

    hitl serve [--host 127.0.0.1] [--port 8787]     the reviewer app under uvicorn
    hitl demo [--answer true]                       the example pipeline, end to end
    hitl list [--all]                               pending events, newest first
    hitl show ID                                    one event: record, state, answer
    hitl respond ID VALUE [--comment TEXT]          answer as an operator with store access
    hitl respond ID approve|reject [--reason TEXT]  decide an approval gate
    hitl cancel ID [--reason TEXT]                  close a gate nobody should answer now

Every command takes ``--store URL`` (default ``HITL_STORE_URL``, else the local default
store) and ``--endpoint-url URL`` for an S3-compatible service. ``main(argv)`` returns the
exit code; errors are one line on stderr (codes in ``EXIT_CODES``).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import _config, demo
from .._errors import (
    AlreadyAnswered,
    ConfigError,
    CorruptRecord,
    EventCancelled,
    EventExpired,
    EventNotFound,
    EventTimeout,
    HitlError,
    InvalidToken,
    InvalidValue,
    StorageError,
)
from .._event import Event
from ..answers import quorum as _quorum
from ..answers.answer_path import EventState, cancel, load, status_of, submit
from ..answers.codecs import codec_for
from ..answers.evidence import details_text
from ..answers.types import codec_of
from ..storage.keys import EventKeys
from ..storage.records import DecisionRecord, EventRecord, Status, utcnow
from ..storage.store import Store, normalize_store_url
from .progress import wait_with_progress
from .server import AppStartError, BackgroundApp, bind, build_app, serve_forever, url_of
from .table import format_duration, format_time, printable, render_table

# First match wins, so subclasses come before their bases.
EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    (ConfigError, 2, "bad usage or configuration (store URL, option)"),
    (EventNotFound, 3, "no event with that id"),
    (InvalidValue, 4, "the value is not of the event's type"),
    (AlreadyAnswered, 5, "the event was already answered; the first answer stands"),
    (EventExpired, 6, "the event expired or timed out"),
    (EventCancelled, 6, "the event was cancelled"),
    (EventTimeout, 6, ""),
    (StorageError, 7, "the store cannot be reached (missing bucket, access denied, network)"),
    (AppStartError, 8, "the reviewer app cannot start (port in use, 'app' extra missing)"),
    (HitlError, 1, "any other error"),
)
EXIT_INTERRUPTED = 130
_ID_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9-]*(\.[a-z0-9-]*)?")

_MEANINGS = sorted({code: m for _, code, m in EXIT_CODES if m}.items())
_EPILOG = "exit codes:\n" + "\n".join(
    f"  {code:<3}  {meaning}"
    for code, meaning in [(0, "success"), *_MEANINGS, (EXIT_INTERRUPTED, "interrupted (Ctrl-C)")]
)


def exit_code(exc: BaseException) -> int:
    return next(code for cls, code, _ in EXIT_CODES if isinstance(exc, cls))


def say(text: str = "") -> None:
    # Flushed at once: a waiting demo must show its link even when stdout is a pipe. What a
    # task or a reviewer wrote may hold terminal escapes: printed inert.
    print(printable(text), flush=True)


def complain(text: str) -> None:
    print(printable(text), file=sys.stderr, flush=True)


# -- the store ---------------------------------------------------------------------------------


def store_url(args: argparse.Namespace) -> str:
    """The store URL from ``--store`` (a URL or an absolute folder path), else the SDK's
    settings; the same rule as the SDK's (``normalize_store_url``)."""
    given: str | None = args.store
    return normalize_store_url(given if given is not None else _config.settings().store_url)


def open_store(args: argparse.Namespace, *, for_requests: bool = False) -> Store:
    if args.endpoint_url:
        # The standard variable boto3 and s3fs both honour; hitl adds no setting of its own.
        os.environ["AWS_ENDPOINT_URL_S3"] = args.endpoint_url
    url = store_url(args)
    try:
        return Store(url, for_requests=for_requests)
    except HitlError:
        raise
    except OSError as exc:  # a local folder that cannot be created
        raise StorageError(f"cannot open store {url}: {exc}") from exc


def probe(store: Store) -> None:
    """Fail now, with the store's own clear message, if it cannot be read (missing bucket)."""
    store.check()


def _program() -> str:
    """How to run this command again: ``hitl`` if that is on PATH, else the script's path."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if script is None or script.name != "hitl":
        return "hitl"
    on_path = shutil.which("hitl")
    return "hitl" if on_path and Path(on_path).resolve() == script else str(script)


def _store_flag(args: argparse.Namespace) -> str:
    """The store options to repeat in a suggested command, as they were given."""
    flags = f" --store {shlex.quote(store_url(args))}" if args.store else ""
    if args.endpoint_url:
        flags += f" --endpoint-url {shlex.quote(args.endpoint_url)}"
    return flags


# -- hitl list / show / respond ----------------------------------------------------------------


def resolve_id(store: Store, given: str) -> str:
    """The request id that ``given`` is, or the one id it is a unique prefix of (ids are 60+
    characters); ``EventNotFound`` naming the candidates when it is none or several."""
    text = given.strip()
    if not text:
        raise EventNotFound("no event id given: copy one from `hitl list`")
    with contextlib.suppress(EventNotFound):
        keys = EventKeys.parse(text)
        if store.get_event(keys) is not None:
            return keys.request_id
    matches: list[str] = []
    if _ID_PREFIX_RE.fullmatch(text):
        run_part, dot, _ = text.partition(".")
        runs = [run_part] if dot else [r for r in store.run_keys() if r.startswith(text)]
        matches = [i for run in runs for i in store.event_ids(run) if i.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise EventNotFound(f"no event with id {text[:80]!r}")
    shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
    raise EventNotFound(
        f"{text!r} is the start of {len(matches)} event ids ({shown}): give more of the id"
    )


def _event_states(store: Store, everything: bool) -> list[EventState]:
    now = utcnow()
    decided: dict[str, set[str]] = {}
    states: list[EventState] = []
    skipped: list[str] = []
    for event in store.iter_events(skipped):
        keys = EventKeys.parse(event.request_id)
        if keys.run_key not in decided:
            decided[keys.run_key] = store.decided_ids(keys.run_key)  # one LIST per run
        decision = None
        if event.request_id in decided[keys.run_key]:
            try:
                decision = store.get_decision(keys)
            except CorruptRecord as exc:
                skipped.append(exc.key)
                continue
        state = EventState(keys, event, decision, status_of(event, decision, now))
        if everything or state.status is Status.PENDING:
            states.append(state)
    if skipped:
        complain(
            f"hitl: passed over {len(skipped)} object(s) that hold no valid record (truncated "
            f"or not hitl's): {', '.join(skipped)}"
        )
    states.sort(key=lambda s: s.event.created_at, reverse=True)
    return states


def _value_text(decision: DecisionRecord | None) -> str:
    if decision is None or decision.status == "cancelled":
        return "-"
    if decision.status == "timed_out":
        if decision.default_applied:
            return json.dumps(decision.value, ensure_ascii=False) + " (default, timed out)"
        return "-"
    return json.dumps(decision.value, ensure_ascii=False)


def _left_text(event: EventRecord, status: Status) -> str:
    if status is not Status.PENDING:
        return "-"
    return format_duration((event.deadline - utcnow()).total_seconds())


def _state_json(state: EventState) -> dict[str, Any]:
    event, decision = state.event, state.decision
    return {
        "request_id": event.request_id,
        "name": event.name,
        "run_id": event.run_id,
        "status": state.status.value,
        "data_type": event.data_type,
        "prompt": event.prompt,
        "details": event.details,
        "created_at": event.created_at.isoformat(),
        "deadline": event.deadline.isoformat(),
        "links_issued": len(event.token_digests),
        "decision": decision.model_dump(mode="json") if decision is not None else None,
    }


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(args)
    states = _event_states(store, args.all)
    if args.json:
        say(json.dumps([_state_json(s) for s in states], indent=1, ensure_ascii=False))
        return 0
    if not states:
        what = "events" if args.all else "pending events (hitl list --all shows every state)"
        print(f"no {what} in {store.url}", file=sys.stderr)
        return 0
    headers = ["ID", "NAME", "TYPE", "STATE", "CREATED (UTC)", "LEFT", "PROMPT"]
    widths: list[int | None] = [None, 24, None, None, None, None, 48]
    if args.all:
        headers.insert(6, "ANSWER")
        widths.insert(6, 16)
    rows = []
    for s in states:
        row = [
            s.event.request_id,
            s.event.name,
            s.event.data_type,
            s.status.value,
            f"{s.event.created_at:%Y-%m-%d %H:%M}",
            _left_text(s.event, s.status),
            s.event.prompt,
        ]
        if args.all:
            row.insert(6, _value_text(s.decision))
        rows.append(row)
    for line in render_table(headers, rows, widths):
        say(line)
    return 0


def _links_text(event: EventRecord, status: Status) -> str:
    named = sorted(r for r in event.token_digests.values() if r)
    anonymous = len(event.token_digests) - len(named)
    parts = [f"{anonymous} anonymous"] if anonymous else []
    if named:
        parts.append("for " + ", ".join(named))
    issued = f"{len(event.token_digests)} issued ({'; '.join(parts)})."
    if status is not Status.PENDING:
        return f"{issued} The gate is closed: its links no longer take answers."
    return (
        f"{issued} Only their SHA-256 digests are stored, so links cannot be shown again: "
        "answer here with `hitl respond`, or reopen the gate from its task (the same name in "
        "the same run) to mint fresh links."
    )


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    state = load(store, resolve_id(store, args.id))
    if args.json:
        say(json.dumps(_state_json(state), indent=1, ensure_ascii=False))
        return 0
    event, decision = state.event, state.decision
    status = state.status.value
    if state.status is Status.PENDING:
        status += f" ({_left_text(event, state.status)} left)"
    fields: list[tuple[str, str]] = [
        ("id", event.request_id),
        ("name", event.name),
        ("run", event.run_id),
        ("state", status),
        ("type", f"{event.data_type}: {codec_of(event.data_type, event.answer_schema).hint}"),
        ("prompt", event.prompt),
    ]
    if event.details:
        fields.append(("details", details_text(event.details)))
    fields += [
        ("created", format_time(event.created_at)),
        ("deadline", f"{format_time(event.deadline)} (timeout {event.timeout_seconds:g}s)"),
        ("links", _links_text(event, state.status)),
    ]
    if decision is not None and decision.status == "answered":
        fields += [
            ("answer", _value_text(decision)),
            ("by", decision.answered_by),
            ("at", format_time(decision.answered_at)),
            ("via", decision.via),
        ]
        if decision.comment:
            fields.append(("comment", decision.comment))
    elif decision is not None and decision.status == "cancelled":
        why = f": {decision.comment}" if decision.comment else ""
        fields.append(
            (
                "answer",
                f"none: cancelled by {decision.answered_by} at "
                f"{format_time(decision.answered_at)}{why}",
            )
        )
    elif decision is not None and decision.default_applied:
        fields.append(
            (
                "answer",
                f"{_value_text(decision)}: nobody answered by the deadline "
                f"({format_time(decision.answered_at)}); the gate's default applies",
            )
        )
    elif decision is not None:
        fields.append(("answer", f"none: timed out, recorded {format_time(decision.answered_at)}"))
    elif state.status is Status.EXPIRED:
        fields.append(("answer", "none: the deadline passed with no answer"))
    else:
        fields.append(("answer", "none yet"))
    if event.quorum is not None:
        fields += _quorum_fields(store, state)
    width = max(len(label) for label, _ in fields) + 1
    for label, value in fields:
        say(f"{label + ':':<{width}} {value}")
    return 0


def _quorum_fields(store: Store, state: EventState) -> list[tuple[str, str]]:
    """A quorum gate's rule, votes (the decision's, or those cast so far) and what is needed."""
    event, decision = state.event, state.decision
    rule = event.quorum
    assert rule is not None
    groups = ", ".join(f"{n} from {g}" for g, n in rule.groups.items())
    needs = f"{rule.approvals} distinct approvals" + (f" ({groups})" if groups else "")
    if event.requested_by:
        needs += f"; {event.requested_by} asked and cannot approve"
    if decision is not None:
        votes, needed = list(decision.votes or []), ""
    else:
        counted = _quorum.tally(event, _quorum.read(store, state.keys))
        votes, needed = list(counted.votes), counted.needed
    fields = [("quorum", needs)]
    for vote in votes:
        what = "approved" if vote.approved else "rejected"
        why = f": {vote.reason}" if vote.reason else ""
        fields.append(("vote", f"{vote.reviewer} {what}{why} ({format_time(vote.cast_at)})"))
    if needed:
        fields.append(("needed", needed))
    return fields


def _operator(name: str | None) -> str:
    if name is not None:
        if not name.strip():
            raise ConfigError("--as needs a name, such as --as alice")
        return name.strip()
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "cli"


def cmd_respond(args: argparse.Namespace) -> int:
    store = open_store(args)
    done = submit(
        store,
        resolve_id(store, args.id),
        args.value,
        via="cli",
        operator=_operator(args.operator),
        comment=args.comment,
        reason=args.reason,
    )
    record = done.record
    if done.vote is not None:
        vote = done.vote
        what = "approved" if vote.approved else "rejected"
        left = done.tally.needed if done.tally is not None else ""
        state = f"still needed: {left}" if record is None else f"decided: {_value_text(record)}"
        say(f"voted on {vote.request_id}: {what} (by {vote.reviewer} via cli); {state}")
        return 0
    assert record is not None  # only a quorum vote leaves a gate undecided
    what = "already recorded" if done.repeated else "answered"
    say(
        f"{what} {record.request_id}: {_value_text(record)} "
        f"(by {record.answered_by} via {record.via} at {format_time(record.answered_at)})"
    )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    store = open_store(args)
    record = cancel(
        store, resolve_id(store, args.id), by=_operator(args.operator), reason=args.reason
    )
    why = f": {record.comment}" if record.comment else ""
    say(
        f"cancelled {record.request_id} (by {record.answered_by} at "
        f"{format_time(record.answered_at)}){why}"
    )
    return 0


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


def _error_detail(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:200]
    if isinstance(payload, dict):
        return str(payload.get("detail") or payload.get("error") or payload)
    return str(payload)


_HTTP_ERRORS: dict[int, Callable[[str], HitlError]] = {
    400: InvalidValue,
    401: InvalidToken,
    403: InvalidToken,
    404: EventNotFound,
    409: AlreadyAnswered,
    410: EventExpired,
}


def post_answer(event: Event[Any], value: str) -> dict[str, Any]:
    """Answer ``event`` through the reviewer app's JSON API, as any HTTP client would."""
    body = json.dumps({"request_id": event.request_id, "token": event.token, "value": value})
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
        detail = _error_detail(exc.read())
        error = _HTTP_ERRORS.get(exc.code, HitlError)
        raise error(
            f"the reviewer app refused the answer {value!r} ({exc.code}): {detail}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise HitlError(f"could not reach the reviewer app at {event.api_url}: {exc}") from exc


def curl_line(event: Event[Any], value: object) -> str:
    body = json.dumps({"request_id": event.request_id, "token": event.token, "value": value})
    return (
        f"curl -sS -X POST {event.api_url} -H 'content-type: application/json' "
        f"-d {shlex.quote(body)}"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    if args.answer is not None:
        # Checked before anything starts, so a typo leaves no open gate behind.
        try:
            codec_for(bool).parse(args.answer)
        except InvalidValue as exc:
            raise InvalidValue(f"--answer {args.answer!r}: {exc}") from exc
    store = open_store(args)
    probe(store)
    app = build_app(store)
    sock = bind("127.0.0.1", args.port)
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
        respond = f"{_program()} respond {event.request_id} true{_store_flag(args)}"
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
                f"; `{_program()} show {event.request_id}{_store_flag(args)}` shows it.",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        except EventTimeout as exc:
            say(f"[3/3] outcome: timed out. {exc}")
            return exit_code(exc)
        outcome = demo.decide(approved)
        say(f"[3/3] outcome: {outcome}. {demo.MESSAGES[outcome]}")
    return 0


# -- the parser --------------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535; 0 picks a free one)")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        metavar="URL",
        help="where events live: s3://bucket/prefix, file:///path, memory://name or a folder "
        "(default: HITL_STORE_URL, else a folder under the user's data dir)",
    )
    common.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="S3-compatible endpoint for s3:// stores (moto, MinIO); sets AWS_ENDPOINT_URL_S3",
    )
    parser = argparse.ArgumentParser(
        prog="hitl",
        description="Human-in-the-loop gates for workflow tasks: run the reviewer app, "
        "inspect and answer events.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, run: Callable[[argparse.Namespace], int]) -> Any:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog="exit codes: see `hitl --help`",
        )
        sub.set_defaults(run=run)
        return sub

    serve = command("serve", "Run the reviewer app under uvicorn.", cmd_serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    serve.add_argument("--port", type=_port, default=8787, help="port (%(default)s; 0: any)")

    run_demo = command(
        "demo",
        "Run the example pipeline (analysis, review gate, approved/rejected) with the "
        "reviewer app in the background.",
        cmd_demo,
    )
    run_demo.add_argument(
        "--answer",
        metavar="VALUE",
        help="answer the gate itself through the HTTP API (true/false), for CI and a quick look",
    )
    run_demo.add_argument("--port", type=_port, default=8787, help="port (%(default)s; 0: any)")
    run_demo.add_argument(
        "--timeout", type=_seconds, default=3600, help="the gate's timeout (%(default)ss)"
    )

    listing = command("list", "Pending events, newest first.", cmd_list)
    listing.add_argument("--all", action="store_true", help="every state, not only pending")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")

    show = command("show", "One event: record, state, links, answer.", cmd_show)
    show.add_argument(
        "id", metavar="ID", help="the event's request id (from hitl list), or a unique prefix"
    )
    show.add_argument("--json", action="store_true", help="JSON instead of text")

    respond = command(
        "respond",
        "Answer an event directly in the store (checked and written once, like the app).",
        cmd_respond,
    )
    respond.add_argument(
        "id", metavar="ID", help="the event's request id (from hitl list), or a unique prefix"
    )
    respond.add_argument("value", metavar="VALUE", help="the answer, e.g. true, 42, 0.5, text")
    respond.add_argument("--comment", metavar="TEXT", help="a note kept with the answer")
    respond.add_argument(
        "--reason", metavar="TEXT", help="why (approval gates: VALUE is approve or reject)"
    )
    respond.add_argument(
        "--as",
        dest="operator",
        metavar="NAME",
        help="who answers (default: your login name)",
    )

    cancelling = command(
        "cancel",
        "Close a gate with a 'cancelled' record: its link says so and wait() raises "
        "EventCancelled.",
        cmd_cancel,
    )
    cancelling.add_argument(
        "id", metavar="ID", help="the event's request id (from hitl list), or a unique prefix"
    )
    cancelling.add_argument("--reason", metavar="TEXT", help="why, shown to reviewers")
    cancelling.add_argument(
        "--as", dest="operator", metavar="NAME", help="who cancels (default: your login name)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hitl`` command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `hitl`: what it can do, not an error
        parser.print_help()
        return 0
    # The commands print links themselves; the SDK's log shows only warnings (store retries).
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    try:
        code: int = args.run(args)
        return code
    except KeyboardInterrupt:
        print("\nhitl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except HitlError as exc:
        complain(f"hitl {args.command}: error: {exc}")
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
