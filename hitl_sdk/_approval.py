"""``hitl.approve``: open an approve/reject gate and wait for its ``Approval``.

    approval = hitl.approve("deploy", prompt="Ship 1.4 to production?", require_reason="reject")
    if approval:            # approval.approved
        ship()
    else:
        log(approval.reason, approval.by, approval.at, approval.via)

Same durability as ``new_event`` (it is one: ``data_type=hitl.Approval``): a restarted task
calling it again with the same name waits on the same gate. When nobody decides by the
deadline, ``on_timeout`` applies: ``"reject"`` (the default: fail closed) or ``"approve"``;
the decision record says it was the timeout, and ``approval.by`` reads
``"timeout (default applied)"``.

Several approvers: ``quorum=2`` (distinct approvals) or ``quorum={"legal": 1, "finance": 1}``
(per group; groups come with ``hitl.Reviewer(groups=[...])``), and ``requested_by=`` names who
asked, who may not approve. Any rejection rejects (see ``_quorum`` for the rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict, Unpack

from ._errors import ConfigError
from ._event import Event, _open, _Opening, _plan
from ._reviewers import Reviewers
from .answers.evidence import Details, PromptFormat
from .answers.quorum import QuorumSpec
from .answers.types import Approval, RequireReason

OnTimeout = Literal["reject", "approve"]
DEFAULT_PROMPT = "Approve?"
REQUIRE_REASON = ("reject", "always", None)


class ApproveOptions(TypedDict, total=False):
    """``hitl.approve``'s options beyond the question itself (each as in ``new_event``, plus
    ``quorum`` and ``requested_by``)."""

    require_reason: RequireReason
    on_timeout: OnTimeout
    scope: str
    timeout_seconds: float
    poll_interval_seconds: float
    reviewers: Reviewers | None
    details: Details | None
    title: str | None
    prompt_format: PromptFormat
    notify: str | Sequence[str] | None
    remind_every: float | None
    escalate_after: float | None
    backups: Reviewers | None
    quorum: QuorumSpec | None
    requested_by: str | None


def _planned(name: str, prompt: str, options: ApproveOptions) -> _Opening:
    require_reason = options.get("require_reason", "reject")
    on_timeout = options.get("on_timeout", "reject")
    if require_reason not in REQUIRE_REASON:
        raise ConfigError(
            f"require_reason must be 'reject', 'always' or None, not {require_reason!r}"
        )
    if on_timeout not in ("reject", "approve"):
        raise ConfigError(f"on_timeout must be 'reject' or 'approve', not {on_timeout!r}")
    unknown = set(options) - set(ApproveOptions.__annotations__)
    if unknown:
        raise ConfigError(f"hitl.approve has no option {sorted(unknown)[0]!r}")
    return _plan(
        name,
        Approval,
        options.get("scope", "run"),
        prompt,
        options.get("timeout_seconds", 3600),
        options.get("poll_interval_seconds", 5),
        options.get("reviewers"),
        options.get("details"),
        "error",
        Approval(approved=on_timeout == "approve"),
        require_reason=require_reason,
        title=options.get("title"),
        prompt_format=options.get("prompt_format", "text"),
        notify=options.get("notify"),
        remind_every=options.get("remind_every"),
        escalate_after=options.get("escalate_after"),
        backups=options.get("backups"),
        quorum=options.get("quorum"),
        requested_by=options.get("requested_by"),
    )


class Approve:
    """``hitl.approve(name, prompt=..., require_reason="reject", on_timeout="reject", ...)``:
    open an approve/reject gate, wait, return the ``Approval``; ``await hitl.approve.aio(...)``
    in a running event loop. ``require_reason``: ``"reject"`` (a rejection must say why),
    ``"always"`` or ``None``; enforced by the reviewer app, the JSON API and the CLI.

    Options (keywords): ``require_reason``, ``on_timeout``, ``scope``, ``timeout_seconds``,
    ``poll_interval_seconds``, ``reviewers``, ``details``, ``title``, ``prompt_format``,
    ``notify``, ``remind_every``, ``escalate_after``, ``backups`` (as in ``new_event``);
    ``quorum`` (``2``, or ``{"legal": 1, "finance": 1}``) and ``requested_by`` (who asked, and
    so may not approve)."""

    def __call__(
        self, name: str, prompt: str = DEFAULT_PROMPT, **options: Unpack[ApproveOptions]
    ) -> Approval:
        return self.open(name, prompt, **options).wait()

    async def aio(
        self, name: str, prompt: str = DEFAULT_PROMPT, **options: Unpack[ApproveOptions]
    ) -> Approval:
        import asyncio

        from . import _config

        opening = _planned(name, prompt, options)
        store = _config.get_store()
        record, decision = await asyncio.to_thread(_open, store, opening)
        tokens = opening.tokens if decision is None else {}
        event: Event[Approval] = Event._opened(
            record, tokens, store, decision, opening.spec, opening
        )
        if event._report is not None:
            await event._report.flush_aio()
        return await event.wait.aio()

    def open(
        self, name: str, prompt: str = DEFAULT_PROMPT, **options: Unpack[ApproveOptions]
    ) -> Event[Approval]:
        """Open the gate without waiting: its ``Event`` (``wait()`` returns the Approval)."""
        from . import _config

        opening = _planned(name, prompt, options)
        store = _config.get_store()
        record, decision = _open(store, opening)
        tokens = opening.tokens if decision is None else {}
        return Event._opened(record, tokens, store, decision, opening.spec, opening)

    def __repr__(self) -> str:
        return "<function hitl_sdk.approve>"


Approve.__call__.__qualname__ = "approve"
Approve.aio.__qualname__ = "approve.aio"
approve = Approve()
