"""``@hitl.require_approval`` and ``hitl.approve_call``: a person says yes before a call runs.

    @hitl.require_approval(reviewers=["alice@example.com"], prompt="Refund {amount} to {to}?")
    def refund(to: str, amount: float, api_key: str) -> str:
        ...

    refund("bob@example.com", 40.0, api_key=KEY)   # opens a gate showing the call, waits,
                                                   # runs the body only when approved

Before the body runs, an approval gate (``hitl.approve``) opens whose details table shows the
function's name and arguments (``api_key`` masked: names that look secret, and those in
``redact=``, never reach the record, the page or a notification), and the call waits. Approved:
the body runs and its result is returned. Rejected, or timed out with ``on_timeout="reject"``
(the default): ``hitl.Rejected`` (the reason and who), and the body never runs.

The gate's name is the function's plus the fingerprint of the arguments shown: the same call
made again (by a restarted agent) finds the same gate and, if it was approved, is not asked
again; a call with other arguments is another question. Async functions are awaited the same
way, without blocking the loop. Every option of ``hitl.approve`` applies (reviewers, quorum,
requested_by, notify, timeout_seconds, on_timeout, ...).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal, TypeVar, cast, overload

from pydantic import BaseModel, Field, create_model
from typing_extensions import ParamSpec, Unpack

from .._approval import ApproveOptions, approve
from .._errors import ConfigError, Rejected
from .._event import Event
from .._opening import new_event
from ..answers import Approval, type_spec
from .calls import Call, check_redact

Editable = bool | Collection[str]
# hitl.approve's options that a gate with edits (a form of the arguments) takes as new_event's.
_GATE_OPTIONS = (
    "scope", "timeout_seconds", "poll_interval_seconds", "reviewers", "title", "prompt_format",
    "notify", "remind_every", "escalate_after", "backups",
)  # fmt: skip

P = ParamSpec("P")
R = TypeVar("R")


def _approve_options(call: Call, prompt: str | None, options: ApproveOptions) -> dict[str, Any]:
    if "details" in options:
        raise ConfigError("require_approval shows the call's arguments as its details")
    chosen: dict[str, Any] = dict(options)
    chosen["details"] = call.shown()
    chosen.setdefault("title", f"Run {call.short_name}?")
    chosen["prompt"] = call.prompt(prompt)
    return chosen


def _decided(call: Call, approval: Approval) -> None:
    if not approval.approved:
        raise Rejected(call.name, approval)


def approve_call(
    fn: Callable[..., R],
    /,
    *args: Any,
    _name: str | None = None,
    _prompt: str | None = None,
    _redact: Collection[str] = (),
    _editable: Editable = False,
    _options: ApproveOptions | None = None,
    **kwargs: Any,
) -> R:
    """``hitl.approve_call(fn, *args, **kwargs)``: ask, then ``fn(*args, **kwargs)`` if
    approved (``hitl.Rejected`` otherwise): the decorator's work as a plain call, for frameworks
    that wrap tools themselves. Options go in ``_options=`` (``hitl.approve``'s), with
    ``_name``, ``_prompt`` and ``_redact`` as the decorator's."""
    call = Call.bind(fn, args, kwargs, _redact)
    if _editable:
        edits = _ask_edits(call, _name, _prompt, _options or {}, _editable)
        edited_args, edited_kwargs = _with(fn, args, kwargs, edits)
        return fn(*edited_args, **edited_kwargs)
    approval = _ask(call, _name, _prompt, _options or {})
    _decided(call, approval)
    return fn(*args, **kwargs)


def _with(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], edits: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with the reviewer's edits in place."""
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    bound.arguments.update(edits)
    return bound.args, bound.kwargs


def _editable_names(call: Call, editable: Editable) -> list[str]:
    names = [n for n in call.arguments if n not in call.masked] if editable is True else editable
    if isinstance(names, str) or not isinstance(names, Collection):
        raise ConfigError("editable= takes True or a list of parameter names")
    chosen = list(names)
    for name in chosen:
        if name not in call.arguments:
            raise ConfigError(f"editable= names {name!r}, which is not a parameter of {call.name}")
        if name in call.masked:
            raise ConfigError(
                f"editable= names {name!r}, which is masked (it looks secret or is in redact=): "
                "a reviewer cannot edit what they cannot see"
            )
    if not chosen:
        raise ConfigError(f"{call.name} has no parameter a reviewer could edit")
    return chosen


def _edit_model(call: Call, names: list[str]) -> type[BaseModel]:
    """The form of a gate with edits: the decision, each editable argument pre-filled with the
    proposed value (within its type), and a reason."""
    try:
        hints = typing.get_type_hints(call.fn)
    except Exception:  # an annotation that cannot be resolved: the values' own types
        hints = {}
    fields: dict[str, Any] = {
        "decision": (Literal["approve", "reject"], Field(title="Your decision")),
    }
    for name in names:
        proposed = call.arguments[name]
        kind = hints.get(name, type(proposed))
        fields[name] = (kind, Field(default=proposed, title=f"{name} (proposed: {proposed!r})"))
    fields["reason"] = (
        str | None,
        Field(default=None, title="Reason", description="Why you reject or change the call."),
    )
    model: type[BaseModel] = create_model(f"Edit_{call.fn.__name__}", **fields)
    try:
        type_spec(model)
    except ConfigError as exc:
        raise ConfigError(
            f"editable= cannot show {call.name}'s arguments as a form ({exc}); list the "
            "parameters a reviewer may edit: editable=['amount', ...]"
        ) from None
    return model


def _edit_gate(
    call: Call, name: str | None, prompt: str | None, options: ApproveOptions, editable: Editable
) -> tuple[dict[str, Any], list[str], type[BaseModel]]:
    for option in ("quorum", "requested_by"):
        if options.get(option) is not None:
            raise ConfigError(f"{option}= is for approvals without edits (editable=False)")
    names = _editable_names(call, editable)
    model = _edit_model(call, names)
    chosen: dict[str, Any] = {k: v for k, v in options.items() if k in _GATE_OPTIONS}
    chosen["details"] = call.shown()
    chosen.setdefault("title", f"Run {call.short_name}?")
    chosen["prompt"] = call.prompt(prompt) + " You may change the arguments below first."
    proposed = {n: call.arguments[n] for n in names}
    chosen["default"] = model(decision=options.get("on_timeout", "reject"), **proposed)
    return chosen, names, model


def _edits_from(call: Call, event: Event[Any], answer: Any, names: list[str]) -> dict[str, Any]:
    decided = getattr(event, "_decided", None)
    if answer.decision != "approve":
        by = decided.answered_by if decided is not None else ""
        raise Rejected(call.name, Approval(approved=False, reason=answer.reason, by=by or ""))
    return {n: getattr(answer, n) for n in names}


def _ask_edits(
    call: Call, name: str | None, prompt: str | None, options: ApproveOptions, editable: Editable
) -> dict[str, Any]:
    chosen, names, model = _edit_gate(call, name, prompt, options, editable)
    event = new_event(call.gate_name(name), model, **chosen)
    return _edits_from(call, event, event.wait(), names)


async def _ask_edits_aio(
    call: Call, name: str | None, prompt: str | None, options: ApproveOptions, editable: Editable
) -> dict[str, Any]:
    chosen, names, model = _edit_gate(call, name, prompt, options, editable)
    event = await new_event.aio(call.gate_name(name), model, **chosen)
    return _edits_from(call, event, await event.wait.aio(), names)


def _ask(call: Call, name: str | None, prompt: str | None, options: ApproveOptions) -> Approval:
    chosen = _approve_options(call, prompt, options)
    question = chosen.pop("prompt")
    return approve(call.gate_name(name), question, **chosen)


async def _ask_aio(
    call: Call, name: str | None, prompt: str | None, options: ApproveOptions
) -> Approval:
    chosen = _approve_options(call, prompt, options)
    question = chosen.pop("prompt")
    return await approve.aio(call.gate_name(name), question, **chosen)


@overload
def require_approval(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def require_approval(
    *,
    name: str | None = None,
    prompt: str | None = None,
    redact: Collection[str] = (),
    editable: Editable = False,
    **options: Unpack[ApproveOptions],
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def require_approval(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    prompt: str | None = None,
    redact: Collection[str] = (),
    editable: Editable = False,
    **options: Unpack[ApproveOptions],
) -> Any:
    """Gate every call of the decorated function (sync or async) behind a person's approval.

    ``name``: the gate's name before the call's fingerprint (default: the function's
    qualified name). ``prompt``: a template formatted with the arguments shown
    (``"Refund {amount} to {to}?"``). ``redact``: parameter names shown masked (besides those
    that look secret). ``editable``: ``True`` (every argument shown) or a list of parameter
    names the reviewer may change before approving: the form shows them pre-filled with the
    proposed values, checked against their types, and the body runs with the edited values
    (the gate's record keeps the proposal, its decision the edit). The rest are
    ``hitl.approve``'s options (``quorum`` and ``requested_by`` only without edits)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        check_redact(fn, redact)  # at decoration: a wrong name fails before any call
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def gated_aio(*args: Any, **kwargs: Any) -> Any:
                call = Call.bind(fn, args, kwargs, redact)
                body = cast(Callable[..., Awaitable[Any]], fn)
                if editable:
                    edits = await _ask_edits_aio(call, name, prompt, options, editable)
                    edited_args, edited_kwargs = _with(fn, args, kwargs, edits)
                    return await body(*edited_args, **edited_kwargs)
                _decided(call, await _ask_aio(call, name, prompt, options))
                return await body(*args, **kwargs)

            return gated_aio

        @functools.wraps(fn)
        def gated(*args: Any, **kwargs: Any) -> Any:
            call = Call.bind(fn, args, kwargs, redact)
            if editable:
                edits = _ask_edits(call, name, prompt, options, editable)
                edited_args, edited_kwargs = _with(fn, args, kwargs, edits)
                return fn(*edited_args, **edited_kwargs)
            _decided(call, _ask(call, name, prompt, options))
            return fn(*args, **kwargs)

        return gated

    if fn is not None:
        return decorate(fn)
    return decorate
