"""Key layout, request ids and link tokens. Pure functions: no I/O.

Everything of one run sits under one prefix, so a task lists a run's answers with one LIST
request (a page per 1,000 keys)::

    runs/<run-key>/events/<event-key>.json           event record (write once)
    runs/<run-key>/decisions/<event-key>.json        terminal decision record (write once)
    runs/<run-key>/signed/<event-key>.json           a signed answer, when the decision slot
                                                     holds a record that does not count (once)
    runs/<run-key>/grants/<event-key>/<digest>.json  extra link tokens (write once)
    runs/<run-key>/notices/<event-key>/<name>.json   reminders and escalations sent (write once)
    runs/<run-key>/votes/<event-key>/<voter>.json     a quorum gate's votes (write once each)

A request id is ``<run-key>.<event-key>``; both halves are lowercase slugs with a hash
suffix, so the id is deterministic (the same name in the same run is the same event), safe
in a URL and a key, and a client can never smuggle a path through it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from .._errors import EventNotFound
from .people import identity

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_PART = r"[a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?"
REQUEST_ID_RE = re.compile(rf"({_PART})\.({_PART})")
KEY_PART_RE = re.compile(_PART)
TOKEN_BYTES = 24  # 192 bits, URL-safe base64


def _key(text: str) -> str:
    # 96 bits of hash: two runs (or gates) colliding is out of reach, however many there are.
    slug = _SLUG_CHARS.sub("-", text.lower()).strip("-")[:36].strip("-")
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return f"{slug}-{digest}" if slug else digest


@dataclass(frozen=True)
class EventKeys:
    """Where one event's objects live, relative to the store root."""

    request_id: str
    run_key: str
    event_key: str

    @classmethod
    def for_name(cls, run_id: str, name: str) -> EventKeys:
        run_key, event_key = _key(run_id), _key(name)
        return cls(f"{run_key}.{event_key}", run_key, event_key)

    @classmethod
    def parse(cls, request_id: object) -> EventKeys:
        """Validate a client-supplied id; anything that is not an id is an unknown event."""
        match = REQUEST_ID_RE.fullmatch(request_id) if isinstance(request_id, str) else None
        if match is None:
            raise EventNotFound(f"no event with id {str(request_id)[:80]!r}")
        return cls(request_id, match.group(1), match.group(2))  # type: ignore[arg-type]

    @property
    def event(self) -> str:
        return f"{run_prefix(self.run_key)}/events/{self.event_key}.json"

    @property
    def decision(self) -> str:
        return f"{run_prefix(self.run_key)}/decisions/{self.event_key}.json"

    @property
    def signed_decision(self) -> str:
        """The second slot: a person's signed answer, written by the reviewer app only when the
        first holds a record that does not count (``answers.trust``). A folder of its own, so
        IAM can let the app write it and the task only read it."""
        return f"{run_prefix(self.run_key)}/signed/{self.event_key}.json"

    def grant(self, digest: str) -> str:
        return f"{run_prefix(self.run_key)}/grants/{self.event_key}/{digest}.json"

    @property
    def votes(self) -> str:
        """The folder of a quorum gate's votes."""
        return f"{votes_prefix(self.run_key)}{self.event_key}/"

    def vote(self, reviewer: str) -> str:
        """One reviewer's vote, keyed by their identity (``_identity``: however their name is
        spelled, one person has one vote key; hashed, so any name is a safe key)."""
        return f"{self.votes}{_key(identity(reviewer))}.json"

    def notice(self, name: str) -> str:
        """A reminder or escalation that was sent (``remind-3``, ``escalate``)."""
        return f"{run_prefix(self.run_key)}/notices/{self.event_key}/{name}.json"


def run_prefix(run_key: str) -> str:
    return f"runs/{run_key}"


def run_key(run_id: str) -> str:
    return _key(run_id)


def decisions_prefix(run_key: str) -> str:
    return f"{run_prefix(run_key)}/decisions/"


def votes_prefix(run_key: str) -> str:
    return f"{run_prefix(run_key)}/votes/"


_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+")


def redact_tokens(text: str) -> str:
    """``text`` with every ``token=...`` value replaced, for log lines (a token opens a gate).

    >>> redact_tokens("GET /form/a.b?token=s3cr3t&x=1")
    'GET /form/a.b?token=[redacted]&x=1'
    """
    return _TOKEN_IN_TEXT.sub(r"\1[redacted]", text)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def match_digest(token: str, digests: dict[str, str]) -> str | None:
    """The reviewer a token belongs to, or None. Compares against every digest in constant time."""
    presented = token_digest(token)
    found: str | None = None
    for digest, reviewer in digests.items():
        if hmac.compare_digest(presented, digest):
            found = reviewer
    return found
