"""Waiting with a live spinner and the time left, drawn only on a terminal.

``wait_with_progress(event.wait, deadline=event.deadline, label="waiting")`` runs the blocking
call in a worker thread and, while it runs, redraws one status line on ``stream`` (stdout by
default) when that stream is a TTY. On a pipe or a file it draws nothing, so logs and CI
output stay clean. The call's result is returned and its exception re-raised.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TextIO, TypeVar

from ..storage.records import utcnow
from .table import format_duration

T = TypeVar("T")

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_FRAMES = "|/-\\"
CLEAR_LINE = "\r\033[K"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream is no terminal
        return False


def _frames(stream: TextIO) -> str:
    try:
        FRAMES.encode(stream.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return ASCII_FRAMES
    return FRAMES


def status_line(frame: str, label: str, deadline: datetime, now: datetime) -> str:
    """One redraw of the status line (without the leading carriage return)."""
    left = math.ceil((deadline - now).total_seconds())  # "1s left" until it is really over
    when = f"{format_duration(left)} left" if left > 0 else "deadline reached"
    return f"{frame} {label} ({when})"


def wait_with_progress(
    call: Callable[[], T],
    *,
    deadline: datetime,
    label: str,
    stream: TextIO | None = None,
    interval: float = 0.1,
) -> T:
    """Run ``call()`` in a worker thread; draw a spinner and time left while it runs on a TTY.

    KeyboardInterrupt in the main thread stops the drawing and propagates; the worker is a
    daemon thread, so it never keeps the process alive.
    """
    out = stream if stream is not None else sys.stdout
    draw = is_terminal(out)
    frames = _frames(out) if draw else ASCII_FRAMES
    done = threading.Event()
    box: dict[str, T] = {}
    failure: list[BaseException] = []

    def worker() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # handed to the caller below, whatever it is
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=worker, name="hitl-wait", daemon=True).start()
    tick = 0
    try:
        while not done.wait(interval if draw else 0.5):
            if draw:
                frame = frames[tick % len(frames)]
                out.write(CLEAR_LINE + status_line(frame, label, deadline, utcnow()))
                out.flush()
                tick += 1
    finally:
        if draw and tick:
            out.write(CLEAR_LINE)
            out.flush()
    if failure:
        raise failure[0]
    return box["result"]
