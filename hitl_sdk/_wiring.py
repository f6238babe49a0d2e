"""The composition root: what listens to a gate's lifecycle, and who names the run.

Imported once by the public face (``hitl_sdk``); the core (``_event``, ``_opening``) knows only
``_lifecycle``, so the log lines, the messages and the Flyte integration all depend on it and
it on none of them. Each listener's module is imported when a gate first needs it: the reviewer
app imports ``hitl_sdk`` for its records and errors, and its cold start pays for none of this.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable

from . import _config, _lifecycle


def _flyte_run() -> str | None:
    if "flyte" not in sys.modules:  # not inside a Flyte task (it would have imported flyte)
        return None
    from .flyte import run_name

    return run_name()


# Each listener on its own (one failing never stops the others), its module imported on first use.


def _console_opened(change: _lifecycle.Opened) -> None:
    from . import _console

    _console.on_opened(change)


def _notify_opened(change: _lifecycle.Opened) -> None:
    from . import _notify

    _notify.on_opened(change)


def _notify_closed(change: _lifecycle.Closed) -> None:
    from . import _notify

    _notify.on_closed(change)


def _slack_opened(change: _lifecycle.Opened) -> None:
    from .chat import posts

    posts.on_opened(change)


def _slack_closed(change: _lifecycle.Closed) -> None:
    from .chat import posts

    posts.on_closed(change)


def _flyte_opened(change: _lifecycle.Opened) -> Awaitable[None] | None:
    from . import flyte

    return flyte.on_opened(change)


def _flyte_closed(change: _lifecycle.Closed) -> Awaitable[None] | None:
    from . import flyte

    return flyte.on_closed(change)


_config.add_run_source(_flyte_run)
_lifecycle.listen(opened=_console_opened)
_lifecycle.listen(opened=_notify_opened, closed=_notify_closed)
_lifecycle.listen(opened=_flyte_opened, closed=_flyte_closed)
_lifecycle.listen(opened=_slack_opened, closed=_slack_closed)
