"""hitl: serverless human-in-the-loop gates for workflow tasks.

A task opens a gate, a person answers through a link (or a JSON call), and the task resumes
with a typed value. State lives as JSON objects in object storage::

    import hitl_sdk as hitl

    event = hitl.new_event("review_decision", data_type=bool, prompt="Approve?")
    approved = event.wait()          # or: await event.wait.aio()

Drop-in for ``flyteplugins.hitl``: change the import, keep the calls.

The house (rooms by concern; nothing imports in a circle)::

    hitl_sdk/              the task's side: this public face, the gate handle and waiting
                           (_event, _poller, _fanout), opening (_planning, _opening), approvals,
                           reviewers, notifications, the lifecycle hooks and their wiring
    hitl_sdk/storage/      byte backends, the one store seam, keys, records, people
    hitl_sdk/answers/      the answer path every channel shares (the inner API of the app, the
                           CLI and channels to come): submit, types, validation, evidence,
                           quorum, the inbox index, a decision in words and JSON
    hitl_sdk/cli/          the ``hitl`` command
    hitl_sdk/flyte/        the Flyte integration (a lifecycle listener; the core never imports it)
    hitl_lambda/           the reviewer app: routers by concern over shared views
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _wiring  # noqa: F401  (who listens to gates: log lines, messages, Flyte)
from ._errors import (
    AlreadyAnswered,
    AlreadyVoted,
    ConfigError,
    CorruptRecord,
    EventCancelled,
    EventExpired,
    EventNotFound,
    EventTimeout,
    HitlError,
    InvalidToken,
    InvalidValue,
    KeyExists,
    NotAllowed,
    QuestionChanged,
    Rejected,
    StorageError,
    StoreAccessDenied,
    StoreNotFound,
    TransientStorageError,
    UnverifiedRecord,
)
from .answers.codecs import CODECS
from .answers.types import Approval
from .storage.records import DecisionRecord, EventRecord, Status, VoteRecord

if TYPE_CHECKING:
    from ._approval import approve
    from ._config import configure
    from ._event import Event
    from ._fanout import as_completed, wait_all
    from ._opening import new_event
    from ._reviewers import Reviewer
    from .agents import approve_call, require_approval

SUPPORTED_TYPES = tuple(codec.python_type for codec in CODECS.values())

# What a task uses is imported on first use: the reviewer app imports this package for its
# records and errors only, and its cold start should not pay for the waiting machinery.
_LAZY = {
    "approve": "._approval",
    "approve_call": ".agents",
    "require_approval": ".agents",
    "configure": "._config",
    "Event": "._event",
    "new_event": "._opening",
    "as_completed": "._fanout",
    "Reviewer": "._reviewers",
    "wait_all": "._fanout",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    # ``hitl.env`` imports flyte, so it is built on first use only: plain scripts never pay.
    if name == "env":
        from .flyte import task_environment

        return task_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "SUPPORTED_TYPES",
    "AlreadyAnswered",
    "AlreadyVoted",
    "Approval",
    "ConfigError",
    "CorruptRecord",
    "DecisionRecord",
    "Event",
    "EventCancelled",
    "EventExpired",
    "EventNotFound",
    "EventRecord",
    "EventTimeout",
    "HitlError",
    "InvalidToken",
    "InvalidValue",
    "KeyExists",
    "NotAllowed",
    "QuestionChanged",
    "Rejected",
    "Reviewer",
    "Status",
    "StorageError",
    "StoreAccessDenied",
    "StoreNotFound",
    "TransientStorageError",
    "UnverifiedRecord",
    "VoteRecord",
    "approve",
    "approve_call",
    "as_completed",
    "configure",
    "new_event",
    "require_approval",
    "wait_all",
]
