"""Who answers a gate: named reviewers, each with an optional channel of their own and groups.

    reviewers=["alice", "bob"]                                  # names only
    reviewers={"alice": "mailto://...", "bob": None}            # names and own channels
    reviewers={"alice": hitl.Reviewer(notify="slack://...", groups=["legal"]),
               "bob": hitl.Reviewer(groups=["finance"])}

A reviewer's channel is a secret (it stays in the waiting task's memory); names and groups are
stored in the event record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._errors import ConfigError
from .storage.keys import new_token
from .storage.people import identity

GROUP_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")


@dataclass(frozen=True)
class Reviewer:
    """A named reviewer's own channel (an apprise URL, or ``None``) and groups."""

    notify: str | None = None
    groups: Sequence[str] = field(default_factory=tuple)


Reviewers = Sequence[str] | Mapping[str, "str | Reviewer | None"]


def tokens_for(reviewers: Reviewers | None) -> dict[str, str]:
    """One fresh token per reviewer (or one anonymous link): reviewer -> token."""
    if reviewers is None:
        return {"": new_token()}
    if isinstance(reviewers, str):
        raise ConfigError("reviewers must be a list of names, such as ['alice'], not one string")
    names = list(reviewers)
    if not names or any(not isinstance(n, str) or not n.strip() for n in names):
        raise ConfigError("reviewers must be a non-empty list of names, such as ['alice']")
    refuse_same_person(names, "reviewers")
    return {n: new_token() for n in names}


def refuse_same_person(names: Sequence[str], label: str) -> None:
    """``ConfigError`` when two entries of ``names`` are one person (see ``_identity``)."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.get(identity(name))
        seen[identity(name)] = name
        if other is not None:
            raise ConfigError(
                f"{label} has duplicate names: {other!r} and {name!r} are one person (people "
                "are compared ignoring case, Unicode form and surrounding space): name each "
                "person once"
            )


def reviewer_entries(reviewers: Reviewers | None) -> dict[str, Reviewer]:
    """Each named reviewer's entry (``Reviewer``), for a mapping of reviewers; {} for a list."""
    if not isinstance(reviewers, Mapping):
        return {}
    out: dict[str, Reviewer] = {}
    for name, entry in reviewers.items():
        if entry is None or isinstance(entry, str):
            entry = Reviewer(notify=entry)
        if not isinstance(entry, Reviewer):
            raise ConfigError(
                f"reviewer {name!r}: give a channel URL, None or hitl.Reviewer(...), "
                f"not {type(entry).__name__}"
            )
        out[name] = entry
    return out


def reviewer_groups(*reviewers: Reviewers | None) -> dict[str, list[str]]:
    """Each named reviewer's groups (stored in the event record; channels are not)."""
    groups: dict[str, list[str]] = {}
    for each in reviewers:
        for name, entry in reviewer_entries(each).items():
            named = entry.groups
            if isinstance(named, str) or not all(isinstance(g, str) for g in named):
                raise ConfigError(
                    f"reviewer {name!r}: groups is a list of names, such as ['legal']"
                )
            bad = [g for g in named if not GROUP_RE.fullmatch(g)]
            if bad:
                raise ConfigError(
                    f"reviewer {name!r}: group names are 1-64 letters, digits, spaces or "
                    f"._@- (starting with a letter or digit), not {bad[0]!r}"
                )
            if named:
                groups[name] = sorted(set(named))
    return groups
