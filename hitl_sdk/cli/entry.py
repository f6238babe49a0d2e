"""The ``hitl`` command: run the reviewer app locally, run the demo, inspect and answer events.

::

    hitl serve [--host 127.0.0.1] [--port 8787]     the reviewer app under uvicorn
    hitl demo [--answer true]                       the example pipeline, end to end
    hitl list [--all]                               pending events, newest first
    hitl show ID                                    one event: record, state, answer
    hitl respond ID VALUE [--comment TEXT]          answer as an operator with store access
    hitl respond ID approve|reject [--reason TEXT]  decide an approval gate
    hitl cancel ID [--reason TEXT]                  close a gate nobody should answer now
    hitl mcp [--http] [--port 8788]                 the MCP server for agents (stdio or HTTP)

Every command takes ``--store URL`` (default ``HITL_STORE_URL``, else the local default
store) and ``--endpoint-url URL`` for an S3-compatible service. ``main(argv)`` returns the
exit code; errors are one line on stderr (codes in ``EXIT_CODES``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import HitlError
from .audit import add_commands
from .common import _EPILOG, EXIT_INTERRUPTED, complain, exit_code
from .gates import cmd_cancel, cmd_list, cmd_respond, cmd_show
from .local import cmd_demo, cmd_mcp, cmd_serve

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
    mcp = command(
        "mcp",
        "Run the MCP server for agents (tools ask_human, request_approval, gate_status, "
        "cancel_gate): over stdio for a client that starts it, or --http.",
        cmd_mcp,
    )
    mcp.add_argument(
        "--http", action="store_true", help="serve streamable HTTP at http://HOST:PORT/mcp"
    )
    mcp.add_argument("--host", default="127.0.0.1", help="with --http: address (%(default)s)")
    mcp.add_argument("--port", type=_port, default=8788, help="with --http: port (%(default)s)")
    add_commands(command)
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
