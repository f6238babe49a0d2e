"""Flyte 2 integration: which run a gate belongs to, and the task report.

``flyte`` is optional: nothing here imports it unless the calling code already has (a Flyte
task always has), so plain scripts pay nothing.
"""

from __future__ import annotations

import sys
from typing import Any


def _context() -> Any:
    flyte = sys.modules.get("flyte")
    if flyte is None:
        return None
    try:
        return flyte.ctx()
    except Exception:  # outside a task, or an SDK without ctx(): not in Flyte
        return None


def run_name() -> str | None:
    """The Flyte run's name when called inside a Flyte task, else None."""
    ctx = _context()
    action = getattr(ctx, "action", None) if ctx is not None else None
    name = getattr(action, "run_name", None)
    return str(name) if name else None
