"""Flyte 2 integration: which run a gate belongs to, and the gate's panel in the task report.

``flyte`` is optional: nothing here imports it unless the calling code already has (a Flyte
task always has), so plain scripts pay nothing. Inside a Flyte task:

- ``scope="run"`` is the Flyte run (``run_name``), so a retried or restarted action opens the
  same event and finds an answer given meanwhile.
- In a task with ``report=True`` each gate gets a panel in the report's "Human input" tab: the
  prompt, the form link, a ready ``curl`` line for the JSON API and the state, updated when the
  answer (or the deadline) arrives. Other content of the report is left as the task wrote it.

The integration listens to the gate's lifecycle (``on_opened``, ``on_closed``) and names the run
(``run_name``, a run source of ``_config``); the core never imports it.
"""

from __future__ import annotations

import asyncio
import html
import inspect
import logging
import sys
import weakref
from collections.abc import Awaitable
from types import CodeType, FrameType
from typing import Any, Protocol

from .._lifecycle import Closed, Gate, Opened
from ..answers import (
    answer_codec,
    curl_line,
    details_html,
    outcome_parts,
    prompt_html,
    value_json,
    when,
)
from ..storage import DecisionRecord

log = logging.getLogger("hitl")

REPORT_TAB = "Human input"
_MAX_FRAMES = 200


def _context() -> Any:
    flyte = sys.modules.get("flyte")
    if flyte is None:
        return None
    try:
        ctx = flyte.ctx()
    except Exception:  # an SDK without ctx(), or a broken context: not in Flyte
        return None
    # Outside a task flyte.ctx() is a falsy null context (older SDKs return None).
    return ctx if ctx else None


def run_name() -> str | None:
    """The Flyte run this code runs in (what ``scope="run"`` means), else None.

    The run's name, qualified by org, project and domain when Flyte knows them (runs on a
    cluster): run names are unique only within a project and domain, and two runs that share a
    bucket must never share a gate. Every action and retry of one run gets the same value.
    """
    ctx = _context()
    action = getattr(ctx, "action", None) if ctx is not None else None
    name = getattr(action, "run_name", None)
    if not name:
        return None
    scope = [getattr(action, part, None) for part in ("org", "project", "domain")]
    return "/".join(str(part) for part in [*scope, name] if part)


# -- which task is running, and does it have report=True ----------------------------------------


def _task_templates_by_code() -> dict[CodeType, Any]:
    """The code object of every loaded Flyte task's function -> its task template."""
    try:
        from flyte._environment import list_loaded_environments
    except ImportError:  # an SDK that moved it: report_enabled() then answers "unknown"
        return {}
    found: dict[CodeType, Any] = {}
    for env in list_loaded_environments():
        try:
            templates = list(getattr(env, "tasks", {}).values())
        except Exception:
            continue
        for template in templates:
            func = getattr(template, "func", None)
            if not callable(func):
                continue
            code = getattr(inspect.unwrap(func), "__code__", None)
            if isinstance(code, CodeType):
                found[code] = template
    return found


def report_enabled(frame: FrameType | None = None) -> bool | None:
    """Whether the Flyte task whose body called us was declared with ``report=True``.

    Flyte keeps no pointer from the running context back to its task, so this looks for the
    task's function on the call stack (an async task's body and a sync task's thread both have
    it) and reads the template's flag. None when no task function is on the stack.
    """
    templates = _task_templates_by_code()
    if not templates:
        return None
    frame = frame or sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        template = templates.get(frame.f_code)
        if template is not None:
            return bool(getattr(template, "report", False))
        frame = frame.f_back
    return None


# -- the gate's panel ---------------------------------------------------------------------------


def _state_html(gate: Gate, decision: DecisionRecord | None) -> str:
    if decision is None:
        return (
            '<p data-hitl-state="pending"><strong>Waiting for an answer</strong> until '
            f"{html.escape(when(gate.record.deadline))}.</p>"
        )
    label, rest = outcome_parts(decision)
    if decision.status != "answered":
        return (
            f'<p data-hitl-state="{decision.status}"><strong>{label}</strong> '
            f"{html.escape(rest)}.</p>"
        )
    comment = (
        f"<br>Comment: {html.escape(decision.comment)}" if decision.comment is not None else ""
    )
    return (
        f'<p data-hitl-state="answered"><strong>{label}</strong>: '
        f"<code>{html.escape(value_json(decision.value))}</code> {html.escape(rest)} "
        f"(via {html.escape(decision.via)}).{comment}</p>"
    )


# The panel, styled like the reviewer's form; nothing scrolls sideways on a phone (long links
# and the curl line wrap; a wide table scrolls inside its own box).
PANEL_STYLE = (
    ".hitl-gate{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330;"
    "background:#fff;border:1px solid #dde1e8;border-radius:12px;padding:1rem 1.25rem;"
    "margin:0 0 1rem;max-width:44rem;line-height:1.5;box-sizing:border-box;overflow-wrap:anywhere}"
    ".hitl-gate h3{margin:0 0 .5rem;font-size:1.125rem}"
    ".hitl-gate pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f5f7;"
    "border:1px solid #dde1e8;border-radius:8px;padding:.625rem .75rem;font-size:.875rem}"
    ".hitl-gate code{overflow-wrap:anywhere}.hitl-gate a{color:#2f5bd3}"
    ".hitl-gate .table{overflow-x:auto;max-width:100%}"
    ".hitl-gate table{border-collapse:collapse;font-size:.875rem}"
    ".hitl-gate th,.hitl-gate td{border:1px solid #dde1e8;padding:.25rem .5rem;text-align:left;"
    "vertical-align:top;overflow-wrap:anywhere;min-width:3.5rem}"
    "[data-hitl-state=pending] strong{color:#2f5bd3}"
    "[data-hitl-state=answered] strong{color:#17794a}"
    "[data-hitl-state=timed_out] strong,[data-hitl-state=cancelled] strong{color:#b42318}"
)


class _HasGate(Protocol):
    gate: Gate


def panel_html(source: Gate | _HasGate, decision: DecisionRecord | None = None) -> str:
    """The report panel of one gate (a ``Gate``, or an ``Event``): prompt, state, form link
    and JSON API call, all escaped."""
    gate = source if isinstance(source, Gate) else source.gate
    record = gate.record
    hint = answer_codec(record.data_type, record.answer_schema).hint
    link = html.escape(gate.form_url)
    request_id = html.escape(record.request_id)
    evidence = details_html(record.details, record.prompt_format)
    curl = curl_line(gate.api_url, record.request_id, gate.token, "VALUE", record.data_type)
    # A closed gate's link and curl line would only lead to "already answered": drop them.
    answer_here = (
        f'<p>Form: <a class="hitl-form-link" href="{link}" target="_blank" '
        f'rel="noopener noreferrer">{link}</a></p>'
        f"<p>JSON API (VALUE is a {html.escape(record.data_type)}: "
        f"{html.escape(hint)}):</p>"
        f'<pre class="hitl-curl">{html.escape(curl)}</pre>'
        if decision is None
        else ""
    )
    return (
        f'<section class="hitl-gate" data-hitl-request="{request_id}">'
        f"<style>{PANEL_STYLE}</style>"
        f"<h3>Human input: {html.escape(record.title or record.name)}</h3>"
        f'<div class="hitl-prompt">{prompt_html(record.prompt, record.prompt_format)}</div>'
        f"{evidence}"
        f"{_state_html(gate, decision)}"
        f"{answer_here}"
        f"<p>Request id: <code>{request_id}</code></p>"
        "</section>"
    )


class ReportPanel:
    """One gate's panel in the report of the Flyte task that opened it.

    ``show`` changes the report in memory (no I/O); ``flush``/``flush_aio`` write the report
    out. A report that cannot be written is logged, never raised: the gate works without it.
    """

    def __init__(self, report: Any, request_id: str) -> None:
        self._report = report
        self._marker = f'data-hitl-request="{html.escape(request_id)}"'

    @classmethod
    def for_current_task(cls, request_id: str) -> ReportPanel | None:
        """The panel for a gate opened here, if this runs in a Flyte task with a report."""
        ctx = _context()
        report = getattr(ctx, "report", None) if ctx is not None else None
        if report is None or not hasattr(report, "get_tab"):
            return None
        # Unknown (no task function on the stack) still shows the panel: a link too many in an
        # unshown report costs nothing, a missing one strands the reviewer.
        if report_enabled(sys._getframe(1)) is False:
            return None
        return cls(report, request_id)

    def show(self, content: str) -> None:
        """Put ``content`` in place of this gate's previous panel (or add it)."""
        try:
            tab = self._report.get_tab(REPORT_TAB)
            for index, entry in enumerate(tab.content):
                if self._marker in entry:
                    tab.content[index] = content
                    return
            tab.log(content)
        except Exception as exc:  # a Flyte SDK whose report API changed: the gate still works
            log.warning("hitl: could not add the gate to the Flyte task report: %s", exc)

    def flush(self) -> None:
        """Write the report out from sync code. Inside a running loop (a sync call in an async
        task) the report is written by ``flush_aio`` or by Flyte when the task ends."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return
        try:
            import flyte.report

            flyte.report.flush()
        except Exception as exc:
            log.warning("hitl: could not write the Flyte task report: %s", exc)

    async def flush_aio(self) -> None:
        try:
            import flyte.report

            await flyte.report.flush.aio()
        except Exception as exc:
            log.warning("hitl: could not write the Flyte task report: %s", exc)


# -- the gate's lifecycle listener -------------------------------------------------------------

# Each gate's panel, from the moment it opened in a report task until this process forgets it.
_panels: weakref.WeakKeyDictionary[Gate, ReportPanel] = weakref.WeakKeyDictionary()


def _write(panel: ReportPanel, in_loop: bool) -> Awaitable[None] | None:
    if in_loop:
        return panel.flush_aio()
    panel.flush()  # skipped inside a running loop: the .aio caller awaits flush_aio
    return None


def on_opened(change: Opened) -> Awaitable[None] | None:
    """A gate opened in a Flyte task with a report: its panel, written out."""
    panel = ReportPanel.for_current_task(change.gate.record.request_id)
    if panel is None:
        return None
    _panels[change.gate] = panel
    panel.show(panel_html(change.gate, change.decision))
    return _write(panel, change.in_loop)


def on_closed(change: Closed) -> Awaitable[None] | None:
    """The gate closed: its panel shows how (who, what, when)."""
    panel = _panels.get(change.gate)
    if panel is None:
        return None
    panel.show(panel_html(change.gate, change.decision))
    return _write(panel, change.in_loop)


# -- hitl.env -----------------------------------------------------------------------------------

ENV_NAME = "hitl-sdk"
_env: Any = None


def task_environment() -> Any:
    """``hitl.env``: an empty ``flyte.TaskEnvironment`` that is harmless in ``depends_on``.

    ``flyteplugins-hitl`` needed ``depends_on=[hitl.env]`` to serve its web app in the cluster;
    hitl needs no app there, so this environment has no tasks and no image: deploying it builds
    and registers nothing. It exists so code written for the plugin runs unchanged.
    """
    global _env
    if _env is None:
        try:
            import flyte
        except ImportError as exc:
            raise ImportError(
                "hitl.env is for Flyte task environments and needs the Flyte SDK: "
                "pip install 'hitl-gates[flyte]' (or drop depends_on=[hitl.env]; hitl does not "
                "need it)"
            ) from exc
        _env = flyte.TaskEnvironment(
            name=ENV_NAME,
            image=None,
            description="hitl needs no app in the cluster; kept for flyteplugins-hitl code.",
        )
    return _env
