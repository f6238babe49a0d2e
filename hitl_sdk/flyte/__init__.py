"""Flyte 2 integration (a room of its own: it depends on the core, never the reverse).

Inside a Flyte task, ``scope="run"`` is the Flyte run and each gate gets a panel in the task's
report; ``hitl.env`` is the empty ``TaskEnvironment`` code written for ``flyteplugins-hitl``
keeps in ``depends_on``. Registered by ``hitl_sdk._wiring``.
"""

from .report import on_closed, on_opened, panel_html, run_name, task_environment

__all__ = ["on_closed", "on_opened", "panel_html", "run_name", "task_environment"]
