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

from typing import Any, Literal

from typing_extensions import Unpack

from ._errors import ConfigError
from ._event import Event
from ._opening import open_event, open_event_aio
from ._planning import Opening, SharedOptions, plan
from .answers import Approval, QuorumSpec, RequireReason

OnTimeout = Literal["reject", "approve"]
DEFAULT_PROMPT = "Approve?"
REQUIRE_REASON = ("reject", "always", None)


class ApproveOptions(SharedOptions, total=False):
    """``hitl.approve``'s options beyond the question itself: ``new_event``'s shared ones
    (``SharedOptions``), the timing, and ``quorum`` and ``requested_by``."""

    require_reason: RequireReason
    on_timeout: OnTimeout
    scope: str
    timeout_seconds: float
    poll_interval_seconds: float
    quorum: QuorumSpec | None
    requested_by: str | None


APPROVE_OPTIONS = frozenset(ApproveOptions.__annotations__) | frozenset(
    SharedOptions.__annotations__
)


def _planned(name: str, prompt: str, options: ApproveOptions) -> Opening:
    require_reason = options.get("require_reason", "reject")
    on_timeout = options.get("on_timeout", "reject")
    if require_reason not in REQUIRE_REASON:
        raise ConfigError(
            f"require_reason must be 'reject', 'always' or None, not {require_reason!r}"
        )
    if on_timeout not in ("reject", "approve"):
        raise ConfigError(f"on_timeout must be 'reject' or 'approve', not {on_timeout!r}")
    unknown = set(options) - APPROVE_OPTIONS
    if unknown:
        raise ConfigError(f"hitl.approve has no option {sorted(unknown)[0]!r}")
    planned: dict[str, Any] = {
        key: value
        for key, value in options.items()
        if key not in ("on_timeout", "scope", "timeout_seconds", "poll_interval_seconds")
    }
    planned["default"] = Approval(approved=on_timeout == "approve")
    return plan(
        name,
        Approval,
        options.get("scope", "run"),
        prompt,
        options.get("timeout_seconds", 3600),
        options.get("poll_interval_seconds", 5),
        planned,
    )


class Approve:
    """``hitl.approve(name, prompt=..., require_reason="reject", on_timeout="reject", ...)``:
    open an approve/reject gate, wait, return the ``Approval``; ``await hitl.approve.aio(...)``
    in a running event loop. ``require_reason``: ``"reject"`` (a rejection must say why),
    ``"always"`` or ``None``; enforced by the reviewer app, the JSON API and the CLI.

    Options (keywords, ``ApproveOptions``): ``require_reason``, ``on_timeout``, ``scope``,
    ``timeout_seconds``, ``poll_interval_seconds``, ``reviewers``, ``details``, ``title``,
    ``prompt_format``, ``notify``, ``remind_every``, ``escalate_after``, ``backups`` (as in
    ``new_event``); ``quorum`` (``2``, or ``{"legal": 1, "finance": 1}``) and ``requested_by``
    (who asked, and so may not approve)."""

    def __call__(
        self, name: str, prompt: str = DEFAULT_PROMPT, **options: Unpack[ApproveOptions]
    ) -> Approval:
        return self.open(name, prompt, **options).wait()

    async def aio(
        self, name: str, prompt: str = DEFAULT_PROMPT, **options: Unpack[ApproveOptions]
    ) -> Approval:
        event: Event[Approval] = await open_event_aio(_planned(name, prompt, options))
        return await event.wait.aio()

    def open(
        self, name: str, prompt: str = DEFAULT_PROMPT, **options: Unpack[ApproveOptions]
    ) -> Event[Approval]:
        """Open the gate without waiting: its ``Event`` (``wait()`` returns the Approval)."""
        return open_event(_planned(name, prompt, options))

    def __repr__(self) -> str:
        return "<function hitl_sdk.approve>"


Approve.__call__.__qualname__ = "approve"
Approve.aio.__qualname__ = "approve.aio"
approve = Approve()
