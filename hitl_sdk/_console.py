"""What a gate tells the person running the task when it opens: where to answer it.

Opening a gate logs its link (logger ``hitl``, INFO). A personal link is logged on a line that
names its reviewer, so whoever reads the line knows whose answer it gives. A gate that was
already closed says so (who answered, when) and shows no link. When the link points at a
reviewer app on this machine and nothing answers there, one more line says how to start it.
"""

from __future__ import annotations

import logging
import shlex
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from . import _config
from ._lifecycle import Gate, Opened
from .answers import outcome_text
from .storage.records import DecisionRecord

log = logging.getLogger("hitl")

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_hinted: set[tuple[str, str]] = set()
_hinted_lock = threading.Lock()


def show_link_somewhere() -> None:
    """A plain script has configured no logging, and Python drops INFO then: give hitl's logger
    a stderr handler of its own, so the person running it sees where to answer."""
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def on_opened(change: Opened) -> None:
    """The gate's lifecycle listener: log where to answer (or how it closed already)."""
    show_link_somewhere()
    for line in opening_lines(change.gate, change.decision):
        log.info("%s", line)


def opening_lines(gate: Gate, decision: DecisionRecord | None) -> Iterator[str]:
    """The log lines for a gate just opened (or re-opened)."""
    name = gate.record.name
    if decision is not None:
        yield (
            f"hitl: gate {name!r} is already closed: {outcome_text(decision)}; "
            "wait() returns that outcome at once and no new link was made"
        )
        return
    for reviewer, link in gate.links.items():
        if reviewer.startswith("group:"):
            yield (
                f"hitl: gate {name!r} is open; the link for {reviewer} (anyone in the group "
                f"answers with it, recorded as {reviewer}; give it to the group only): {link}"
            )
        elif reviewer:
            yield (
                f"hitl: gate {name!r} is open; {reviewer}'s personal link "
                f"(answers as {reviewer}; give it to {reviewer} only): {link}"
            )
        else:
            yield f"hitl: gate {name!r} is open; answer it at {link}"
    hint = local_app_hint(gate.form_url, gate.store_url)
    if hint:
        yield hint


def local_app_hint(link: str, store_url: str) -> str | None:
    """A line saying how to serve ``link`` when it points at this machine and nothing listens
    there; None otherwise. Looked at once per app and store: None after the first time."""
    parts = urlsplit(link)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    if host not in _LOOPBACK:
        return None
    base = f"{parts.scheme}://{parts.netloc}"
    with _hinted_lock:  # one look per app and store, not one connection per gate
        if (base, store_url) in _hinted:
            return None
        _hinted.add((base, store_url))
    if _listening(host, port):
        return None
    if store_url.startswith("memory://"):
        return (
            f"hitl: nothing answers at {base}, and a memory:// store lives in this process "
            "only: answer with the SDK, or use a file:// or s3:// store and `hitl serve`"
        )
    command = "hitl serve"
    if port != 8787:
        command += f" --port {port}"
    if store_url != _config.default_store_url():
        command += f" --store {shlex.quote(store_url)}"
    return f"hitl: nothing answers at {base} yet: run `{command}` in another terminal to serve it"


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
