"""Plain-text rendering for the CLI: aligned tables, durations and timestamps.

Pure functions, no I/O: ``render_table(["ID", "STATE"], [["a.b", "pending"]])`` returns the
lines to print.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone

ELLIPSIS = "…"
# C0 and C1 controls (ESC, BEL, CR, ...) except newline and tab, plus the bidi overrides that
# reorder what a terminal shows: a prompt or comment must not drive the operator's terminal.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters made inert and visible (``\\x1b``), for a terminal.

    >>> printable("ok\\x1b[2Jgone\\a")
    'ok\\\\x1b[2Jgone\\\\x07'
    """
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + ELLIPSIS


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    max_widths: Sequence[int | None] | None = None,
) -> list[str]:
    """Left-aligned columns two spaces apart; a column's cells are clipped to its max width."""
    limits = list(max_widths) if max_widths is not None else [None] * len(headers)
    cells = [
        [
            clip(cell, limit) if limit else " ".join(cell.split())
            for cell, limit in zip(row, limits, strict=True)
        ]
        for row in rows
    ]
    widths = [
        max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) for value, width in zip(values, widths, strict=True)
        ).rstrip()

    return [line(headers), *(line(row) for row in cells)]


def format_duration(seconds: float) -> str:
    """A short human duration: ``45s``, ``12m 05s``, ``3h 07m``, ``2d 04h``."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_time(moment: datetime) -> str:
    """A timestamp in UTC to the second: ``2026-11-25 14:03:07 UTC``."""
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
