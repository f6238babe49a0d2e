"""``hitl mcp``: an MCP server (the official ``mcp`` SDK) that lets an agent ask a person.

Tools:

- ``ask_human``: a question with a type (``text``, ``number``, ``integer``, ``yes_no``,
  ``choice`` with ``choices``, or ``json`` with a JSON Schema object of flat fields), for the
  named reviewers or anyone with the link.
- ``request_approval``: an action to approve, with evidence (a details table), reviewers,
  a quorum and a timeout; the answer is ``approved`` (true/false), the reason and who.
- ``gate_status``: where a gate stands (``pending``, ``answered``, ``timed_out``, ``cancelled``,
  ``expired``) and its answer once it has one; ``wait_seconds`` to wait that long for it.
- ``cancel_gate``: close a gate nobody answered (its links then say it was cancelled).

``ask_human`` and ``request_approval`` wait for the answer by default, reporting progress while
they wait (to clients that ask for it, as often as the gate is polled). With ``wait: false``
they return at once with the gate's id: a durable handle, since the gate is an object in the
store, so any server process (after a restart, another instance) answers ``gate_status``.
Resources: ``hitl://gates/open`` (the open gates of the configured store) and
``hitl://gates/{id}``.

The store, the app URL and the defaults come from the usual configuration (``HITL_STORE_URL``,
``HITL_APP_URL``, ``HITL_NOTIFY``, ``HITL_RUN_ID``...). Tool output never carries a reviewer's
link or token: the links go to the reviewers (their channels, the inbox, the server's log on
stderr), never to the agent, which therefore cannot answer its own question.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal, TypedDict

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, create_model

from .. import _config
from .._approval import approve
from .._errors import ConfigError, EventNotFound, HitlError
from .._opening import new_event
from ..answers import cancel, gate_json, load
from ..storage import Status
from ..storage.records import utcnow

log = logging.getLogger("hitl")

AnswerType = Literal["text", "number", "integer", "yes_no", "choice", "json"]
MAX_STATUS_WAIT_SECONDS = 600.0
_SCALARS: dict[str, Any] = {"string": str, "number": float, "integer": int, "boolean": bool}


def _data_type(answer_type: str, choices: list[str] | None, schema: dict[str, Any] | None) -> Any:
    """The gate's data type for an ``ask_human`` answer type."""
    if answer_type == "choice":
        if not choices:
            raise ConfigError("answer_type 'choice' needs choices: a list of the options")
        return Literal[tuple(choices)]
    if choices:
        raise ConfigError("choices go with answer_type 'choice'")
    if answer_type == "json":
        return _model(schema)
    if schema is not None:
        raise ConfigError("schema goes with answer_type 'json'")
    return {"text": str, "number": float, "integer": int, "yes_no": bool}[answer_type]


def _model(schema: dict[str, Any] | None) -> type[BaseModel]:
    """A flat pydantic model from a JSON Schema object (the fields a form can show)."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ConfigError("answer_type 'json' needs schema: a JSON Schema with type 'object'")
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise ConfigError("the schema needs properties: the fields the reviewer fills in")
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"the schema of field {name!r} must be an object")
        kind: Any
        if "enum" in spec:
            kind = Literal[tuple(spec["enum"])]
        elif spec.get("type") in _SCALARS:
            kind = _SCALARS[spec["type"]]
        else:
            raise ConfigError(
                f"field {name!r}: a form shows string, number, integer, boolean or enum "
                f"fields, not {spec.get('type', 'this')!r}"
            )
        described = Field(description=spec.get("description"), title=spec.get("title"))
        if name in required:
            fields[name] = (kind, described)
        else:
            fields[name] = (kind | None, Field(default=None, description=spec.get("description")))
    return create_model(str(schema.get("title") or "Answer"), **fields)


def _answer_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def _status(request_id: str) -> dict[str, Any]:
    """A gate as the tools report it (no tokens: ``links_issued`` is a count)."""
    store = _config.get_store()
    try:
        state = load(store, request_id, trust=_config.trust())
    except EventNotFound:
        raise ConfigError(f"no gate {request_id!r} in {store.url}") from None
    shown = gate_json(state.event, state.status.value, state.decision)
    decision = state.decision
    shown["answer"] = decision.value if decision is not None else None
    shown["by"] = decision.answered_by if decision is not None else None
    shown["gate"] = request_id
    return shown


async def _waited(event: Any, ctx: Any, timeout: float) -> dict[str, Any]:
    """Wait for the gate's answer, reporting progress; its status once decided."""
    started = time.monotonic()
    waiting = asyncio.ensure_future(event.wait.aio())
    while True:
        # Progress as often as the gate is polled (0.5 to 5 s): news cannot come faster.
        every = _timing(timeout)["poll_interval_seconds"]
        done, _ = await asyncio.wait({waiting}, timeout=every)
        if done:
            break
        if ctx is not None:
            spent = time.monotonic() - started
            await ctx.report_progress(spent, timeout, "waiting for a person to answer")
    try:
        value = waiting.result()
    except HitlError as exc:  # timed out, cancelled: the status says which
        shown = _status(event.request_id)
        shown["error"] = str(exc)
        return shown
    shown = _status(event.request_id)
    shown["answer"] = _answer_json(value)
    return shown


def _named(name: str | None, kind: str) -> str:
    """The gate's name: the agent's, else a fresh one (each question its own gate)."""
    return name or f"{kind}-{time.time_ns() // 1_000_000}"


class _Timing(TypedDict):
    timeout_seconds: float
    poll_interval_seconds: float


def _timing(timeout: float) -> _Timing:
    """The deadline, and a poll interval to match (a hundredth of it, 0.5 to 5 s)."""
    return {"timeout_seconds": timeout, "poll_interval_seconds": min(5.0, max(0.5, timeout / 100))}


def _opened(event: Any) -> dict[str, Any]:
    shown = _status(event.request_id)
    shown["note"] = (
        "The reviewers have their links (their channels, the inbox, the server's log). "
        "Poll gate_status with this gate id for the answer."
    )
    return shown


def build_server() -> MCPServer:
    """The MCP server (``mcp.server.mcpserver.MCPServer``) with hitl's tools and resources."""
    server = MCPServer(
        name="hitl",
        instructions=(
            "Ask a person before you act: request_approval for an action, ask_human for a "
            "question. Both wait for the answer unless wait=false; then poll gate_status."
        ),
    )

    def refused(exc: HitlError) -> ToolError:
        return ToolError(f"{type(exc).__name__}: {exc}")

    @server.tool()
    async def ask_human(
        question: str,
        ctx: Context,
        answer_type: AnswerType = "text",
        choices: list[str] | None = None,
        schema: dict[str, Any] | None = None,
        title: str | None = None,
        details: dict[str, str] | None = None,
        reviewers: list[str] | None = None,
        timeout_seconds: float = 3600.0,
        name: str | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Ask a person a question and get a typed answer. answer_type: text, number,
        integer, yes_no, choice (with choices) or json (with schema, a JSON Schema object of
        flat fields). reviewers: who may answer (names or emails; none: anyone with the link).
        wait=false returns the gate id at once; poll gate_status for the answer."""
        try:
            data_type = _data_type(answer_type, choices, schema)
            event = await asyncio.to_thread(
                lambda: new_event(
                    _named(name, "ask"),
                    data_type,
                    prompt=question,
                    title=title,
                    details=details,
                    reviewers=reviewers,
                    **_timing(timeout_seconds),
                )
            )
            if not wait:
                return _opened(event)
            return await _waited(event, ctx, timeout_seconds)
        except HitlError as exc:
            raise refused(exc) from None

    @server.tool()
    async def request_approval(
        action: str,
        ctx: Context,
        evidence: dict[str, str] | None = None,
        reviewers: list[str] | None = None,
        quorum: int | None = None,
        requested_by: str | None = None,
        timeout_seconds: float = 3600.0,
        on_timeout: Literal["reject", "approve"] = "reject",
        name: str | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Ask for a person's approval of an action before taking it. evidence: what the
        reviewer should see (a table). reviewers, quorum (distinct approvals), requested_by
        (who asks, and so may not approve). The answer's approved is true or false; on a
        timeout, on_timeout applies (reject by default). wait=false returns the gate id."""
        try:
            gate = await asyncio.to_thread(
                approve.open,
                _named(name, "approve"),
                action,
                title=action if len(action) <= 120 else action[:119] + "…",
                details=evidence,
                reviewers=reviewers,
                quorum=quorum,
                requested_by=requested_by,
                on_timeout=on_timeout,
                **_timing(timeout_seconds),
            )
            if not wait:
                return _opened(gate)
            shown = await _waited(gate, ctx, timeout_seconds)
            answer = shown.get("answer")
            shown["approved"] = bool(answer.get("approved")) if isinstance(answer, dict) else False
            return shown
        except HitlError as exc:
            raise refused(exc) from None

    @server.tool()
    async def gate_status(gate: str, wait_seconds: float = 0.0) -> dict[str, Any]:
        """Where a gate stands: open, answered, timed_out, cancelled or expired, and its
        answer once it has one. wait_seconds (up to 600): wait that long for an answer."""
        deadline = time.monotonic() + min(max(wait_seconds, 0.0), MAX_STATUS_WAIT_SECONDS)
        try:
            while True:
                shown = await asyncio.to_thread(_status, gate)
                if shown["status"] != Status.PENDING.value or time.monotonic() >= deadline:
                    return shown
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        except HitlError as exc:
            raise refused(exc) from None

    @server.tool()
    async def cancel_gate(gate: str, reason: str | None = None) -> dict[str, Any]:
        """Cancel a gate nobody answered: its links say so, and it takes no answer."""
        try:
            store = _config.get_store()
            await asyncio.to_thread(
                cancel,
                store,
                gate,
                by="agent (hitl mcp)",
                reason=reason,
                keys=_config.trust(),
                inbox=_config.inbox(),
            )
            return await asyncio.to_thread(_status, gate)
        except HitlError as exc:
            raise refused(exc) from None

    @server.resource("hitl://gates/open", mime_type="application/json")
    def open_gates() -> list[dict[str, Any]]:
        """The open gates of the configured store, newest first."""
        from ..answers import gate_states

        store = _config.get_store()
        return [
            gate_json(s.event, s.status.value, s.decision)
            for s in gate_states(store, everything=False, now=utcnow())
        ]

    @server.resource("hitl://gates/{gate}", mime_type="application/json")
    def one_gate(gate: str) -> dict[str, Any]:
        """One gate: its question, its status and its answer."""
        return _status(gate)

    return server


def serve(transport: str = "stdio", host: str = "127.0.0.1", port: int = 8788) -> None:
    """Run the server: ``stdio`` (a client starts ``hitl mcp``) or ``http`` (streamable
    HTTP at ``http://host:port/mcp``)."""
    server = build_server()
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
