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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from ._errors import ConfigError
from ._event import Event, _open, _Opening, _plan
from ._evidence import Details
from ._types import Approval, RequireReason

OnTimeout = Literal["reject", "approve"]
DEFAULT_PROMPT = "Approve?"
REQUIRE_REASON = ("reject", "always", None)


def _planned(
    name: str,
    prompt: str,
    require_reason: RequireReason,
    on_timeout: OnTimeout,
    scope: str,
    timeout_seconds: float,
    poll_interval_seconds: float,
    reviewers: Sequence[str] | None,
    details: Details | None,
) -> _Opening:
    if require_reason not in REQUIRE_REASON:
        raise ConfigError(
            f"require_reason must be 'reject', 'always' or None, not {require_reason!r}"
        )
    if on_timeout not in ("reject", "approve"):
        raise ConfigError(f"on_timeout must be 'reject' or 'approve', not {on_timeout!r}")
    return _plan(
        name,
        Approval,
        scope,
        prompt,
        timeout_seconds,
        poll_interval_seconds,
        reviewers,
        details,
        "error",
        Approval(approved=on_timeout == "approve"),
        require_reason=require_reason,
    )


class Approve:
    """``hitl.approve(name, prompt=..., require_reason="reject", on_timeout="reject", ...)``:
    open an approve/reject gate, wait, return the ``Approval``; ``await hitl.approve.aio(...)``
    in a running event loop. ``require_reason``: ``"reject"`` (a rejection must say why),
    ``"always"`` or ``None``; enforced by the reviewer app, the JSON API and the CLI."""

    def __call__(
        self,
        name: str,
        prompt: str = DEFAULT_PROMPT,
        *,
        require_reason: RequireReason = "reject",
        on_timeout: OnTimeout = "reject",
        scope: str = "run",
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        reviewers: Sequence[str] | None = None,
        details: Details | None = None,
    ) -> Approval:
        return self.open(
            name,
            prompt,
            require_reason=require_reason,
            on_timeout=on_timeout,
            scope=scope,
            timeout_seconds=timeout_seconds,
            poll_interval_seconds=poll_interval_seconds,
            reviewers=reviewers,
            details=details,
        ).wait()

    async def aio(
        self,
        name: str,
        prompt: str = DEFAULT_PROMPT,
        *,
        require_reason: RequireReason = "reject",
        on_timeout: OnTimeout = "reject",
        scope: str = "run",
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        reviewers: Sequence[str] | None = None,
        details: Details | None = None,
    ) -> Approval:
        import asyncio

        from . import _config

        opening = _planned(
            name, prompt, require_reason, on_timeout, scope, timeout_seconds,
            poll_interval_seconds, reviewers, details,
        )  # fmt: skip
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
        self,
        name: str,
        prompt: str = DEFAULT_PROMPT,
        *,
        require_reason: RequireReason = "reject",
        on_timeout: OnTimeout = "reject",
        scope: str = "run",
        timeout_seconds: float = 3600,
        poll_interval_seconds: float = 5,
        reviewers: Sequence[str] | None = None,
        details: Details | None = None,
    ) -> Event[Approval]:
        """Open the gate without waiting: its ``Event`` (``wait()`` returns the Approval)."""
        from . import _config

        opening = _planned(
            name, prompt, require_reason, on_timeout, scope, timeout_seconds,
            poll_interval_seconds, reviewers, details,
        )  # fmt: skip
        store = _config.get_store()
        record, decision = _open(store, opening)
        tokens = opening.tokens if decision is None else {}
        return Event._opened(record, tokens, store, decision, opening.spec, opening)

    def __repr__(self) -> str:
        return "<function hitl_sdk.approve>"


Approve.__call__.__qualname__ = "approve"
Approve.aio.__qualname__ = "approve.aio"
approve = Approve()
