"""Planning a gate: ``new_event``'s (and ``hitl.approve``'s) options checked and the gate decided
before anything is written (pure, no I/O): ids, deadline, the answer's schema, reviewers,
quorum, channels and the question's fingerprint. ``ConfigError`` says what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypedDict, TypeVar

from . import _config
from ._errors import ConfigError, InvalidValue
from ._notify import Channels
from ._reviewers import Reviewers, reviewer_groups, tokens_for
from .answers import (
    PROMPT_FORMATS,
    UNSET,
    Details,
    PromptFormat,
    QuorumSpec,
    RequireReason,
    TypeSpec,
    check_details,
    check_text,
    make_rule,
    type_spec,
)
from .storage import EventKeys, EventRecord, find_person, token_digest, utcnow

T = TypeVar("T")
IfChanged = Literal["error", "new"]
IF_CHANGED: tuple[str, ...] = ("error", "new")
# Bounds on what a gate may carry: the reviewer's page must fit Lambda's 6 MB response even
# with every character escaped, and a deadline must be a date.
MAX_NAME_CHARS = 200
MAX_TITLE_CHARS = 200
MAX_PROMPT_CHARS = 10_000
MAX_DETAILS_CHARS = 200_000
MAX_TIMEOUT_SECONDS = 366 * 86400
MAX_POLL_SECONDS = 86400


class SharedOptions(TypedDict, total=False):
    """Options ``new_event`` and ``hitl.approve`` both take (keywords)."""

    reviewers: Reviewers | None
    details: Details | None
    title: str | None
    prompt_format: PromptFormat
    notify: str | Sequence[str] | None
    remind_every: float | None
    escalate_after: float | None
    backups: Reviewers | None


class GateOptions(SharedOptions, total=False):
    """``new_event``'s keyword options: the shared ones, ``if_changed`` and ``default``."""

    if_changed: IfChanged
    default: Any


class PlanOptions(GateOptions, total=False):
    """Everything a plan takes: ``new_event``'s options and the approval-only ones."""

    require_reason: RequireReason
    quorum: QuorumSpec | None
    requested_by: str | None


GATE_OPTIONS = frozenset(GateOptions.__annotations__) | frozenset(SharedOptions.__annotations__)


# -- checking and planning ---------------------------------------------------------------------


def _check_text(label: str, text: object, limit: int, *, optional: bool = False) -> None:
    if optional and text is None:
        return
    if not isinstance(text, str):
        raise ConfigError(f"{label} must be a string, got {type(text).__name__}")
    if len(text) > limit:
        raise ConfigError(
            f"{label} is {len(text):,} characters; at most {limit:,} fit a reviewer's page "
            "(Lambda answers 6 MB at most): put the bulk in a report or a link"
        )
    try:
        check_text(text, label)
    except InvalidValue as exc:
        raise ConfigError(str(exc)) from exc


def _check_options(
    name: object, scope: str, prompt: object, details: object, timeout: float, poll: float
) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("name must be a non-empty string, such as 'review_decision'")
    _check_text("name", name, MAX_NAME_CHARS)
    if scope != "run":
        raise ConfigError(f"scope {scope!r} is not supported: only scope='run' is")
    _check_text("prompt", prompt, MAX_PROMPT_CHARS)
    if details is None or isinstance(details, str):
        _check_text("details", details, MAX_DETAILS_CHARS, optional=True)
    for label, number, most in (
        ("timeout_seconds", timeout, MAX_TIMEOUT_SECONDS),
        ("poll_interval_seconds", poll, MAX_POLL_SECONDS),
    ):
        number_ok = isinstance(number, (int, float)) and not isinstance(number, bool)
        if not number_ok or not 0 < number <= most:  # also refuses nan and inf
            raise ConfigError(
                f"{label} must be a positive number of seconds, at most {most:,} "
                f"({most / 86400:g} days); got {number!r}"
            )


def _check_schedule(options: Mapping[str, Any]) -> list[str]:
    """remind_every, escalate_after and backups checked; the backups' names."""
    for label in ("remind_every", "escalate_after"):
        seconds = options.get(label)
        if seconds is not None and (
            not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0
        ):
            raise ConfigError(f"{label} must be a positive number of seconds, not {seconds!r}")
    backups = options.get("backups")
    if options.get("escalate_after") is not None and not backups:
        raise ConfigError("escalate_after needs backups=: who the gate goes to, such as ['carol']")
    if backups is not None:
        tokens_for(backups)  # the same rules as reviewers' names
    names = list(backups or [])
    reviewers = list(options.get("reviewers") or [])
    for backup in names:
        if isinstance(backup, str) and (found := find_person(backup, reviewers)):
            raise ConfigError(f"backup {backup!r} is already a reviewer of this gate ({found!r})")
    return names


@dataclass
class Opening:
    """What opening a gate decided before touching storage."""

    record: EventRecord
    tokens: dict[str, str]
    spec: TypeSpec
    channels: Channels


def plan(
    name: str,
    data_type: object,
    scope: str,
    prompt: str,
    timeout_seconds: float,
    poll_interval_seconds: float,
    options: Mapping[str, Any],
) -> Opening:
    """Check every option and decide the gate (``ConfigError`` saying what is wrong)."""
    details = options.get("details")
    _check_options(name, scope, prompt, details, timeout_seconds, poll_interval_seconds)
    if_changed = options.get("if_changed", "error")
    if if_changed not in IF_CHANGED:
        raise ConfigError(f"if_changed must be one of {', '.join(IF_CHANGED)}, not {if_changed!r}")
    title = options.get("title")
    if title is not None:
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_CHARS:
            raise ConfigError(f"title must be text of 1 to {MAX_TITLE_CHARS} characters")
        check_text(title, "the title")
    prompt_format = options.get("prompt_format", "text")
    if prompt_format not in PROMPT_FORMATS:
        raise ConfigError(f"prompt_format must be 'text' or 'markdown', not {prompt_format!r}")
    details = check_details(details)
    backup_names = _check_schedule(options)
    reviewers, backups = options.get("reviewers"), options.get("backups")
    spec = type_spec(data_type, require_reason=options.get("require_reason", "reject"))
    default = options.get("default", UNSET)
    stored_default = None
    if default is not UNSET:
        try:
            stored_default = spec.to_json(default)
        except InvalidValue as exc:
            raise ConfigError(
                f"default={default!r} is not a valid answer to this gate ({spec.name}): {exc}"
            ) from None
    tokens = tokens_for(reviewers)
    groups = reviewer_groups(reviewers, backups)
    requested_by = options.get("requested_by")
    if requested_by is not None and (not isinstance(requested_by, str) or not requested_by.strip()):
        raise ConfigError(f"requested_by must be the requester's name, not {requested_by!r}")
    if requested_by is not None and spec.name != "approval":
        raise ConfigError("requested_by= goes with approvals (hitl.approve): who may not approve")
    quorum, rule = options.get("quorum"), None
    if quorum is not None:
        if spec.name != "approval":
            raise ConfigError("quorum= is for approvals: use hitl.approve(..., quorum=2)")
        if reviewers is None:
            raise ConfigError("quorum= needs named reviewers: reviewers=['alice', 'bob', ...]")
        rule = make_rule(quorum, [*tokens, *backup_names], groups, requested_by)
    run_id = _config.run_id()
    fingerprint = question_fingerprint(spec.name, prompt, details, spec.schema, prompt_format)
    # With if_changed="new" the question is part of the gate's identity: another question
    # is another gate, the same question (a retry) the same gate.
    identity = name if if_changed == "error" else f"{name}\x00{fingerprint}"
    keys = EventKeys.for_name(run_id, identity)
    now = utcnow()
    record = EventRecord(
        request_id=keys.request_id,
        run_id=run_id,
        name=name,
        scope=scope,
        data_type=spec.name,
        answer_schema=spec.schema,
        has_default=default is not UNSET,
        default=stored_default,
        title=title.strip() if title else None,
        prompt_format=prompt_format,
        remind_every=options.get("remind_every"),
        escalate_after=options.get("escalate_after"),
        backups=backup_names,
        reviewer_groups=groups,
        quorum=rule,
        requested_by=requested_by.strip() if requested_by else None,
        prompt=prompt,
        created_at=now,
        deadline=now + timedelta(seconds=timeout_seconds),
        timeout_seconds=timeout_seconds,
        poll_interval_seconds=poll_interval_seconds,
        token_digests={token_digest(t): reviewer for reviewer, t in tokens.items()},
        details=details,
        fingerprint=fingerprint,
    )
    channels = Channels.planned(
        options.get("notify"), _config.settings().notify, reviewers, backups, backup_names
    )
    return Opening(record, tokens, spec, channels)


def question_fingerprint(
    data_type: str,
    prompt: str,
    details: Details | None,
    schema: dict[str, Any] | None = None,
    prompt_format: str = "text",
) -> str:
    """SHA-256 of what a reviewer is shown and asked: the same question, the same digest."""
    asked: list[Any] = [data_type, prompt, details]
    if schema is not None:  # the choices offered are part of the question
        asked.append(schema)
    if prompt_format != "text":  # so is how the prompt is shown
        asked.append(prompt_format)
    shown = json.dumps(asked, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(shown.encode()).hexdigest()
