"""One identity per person: the single rule by which hitl compares and keys people.

A reviewer, a requester, a backup, a voter and a signed-in person are all named by text, most
often an email. Two spellings of one email (``Carol@Example.com``, ``carol@example.com ``, a
full-width ``\uff43arol@example.com``) are one person: the rule normalises Unicode (NFKC), folds
case and strips surrounding space. Every comparison of people (requester and approver, voter and
reviewer, signed-in email and named reviewer) and every key derived from a person (a vote's
object, an inbox audience) goes through ``identity``; what is shown keeps the spelling given.

>>> identity(" Carol@Example.COM ") == identity("carol@example.com")
True
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


def identity(name: str) -> str:
    """The form of ``name`` hitl compares people by: NFKC, case-folded, stripped."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two names are one person (``None`` is nobody, never a match)."""
    return a is not None and b is not None and identity(a) == identity(b)


def find_person(name: str, names: Iterable[str]) -> str | None:
    """The entry of ``names`` that is the same person as ``name`` (its own spelling), or None."""
    wanted = identity(name)
    return next((n for n in names if identity(n) == wanted), None)
