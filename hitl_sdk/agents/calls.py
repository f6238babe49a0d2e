"""A function call as a question a person can answer: its name, its arguments shown as a
details table (secret-looking ones masked), and its fingerprint.

The fingerprint is what binds an approval to the call: it is part of the gate's name, so the
same call (same function, same arguments) made again, by this process or a restarted one,
finds the same gate, and a call whose arguments changed is a new question. Masked arguments
are not part of it: the reviewer never sees them, so they cannot be what was approved.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError

MASK = "••••••"
# Parameter names that look like they hold a secret (a word of the name, snake_case, kebab or
# camelCase): shown masked, never written to the gate's record.
SECRET_WORDS = frozenset(
    (
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "secrets",
        "token",
        "tokens",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "cookies",
        "session",
        "signature",
        "pin",
        "otp",
        "ssn",
        "cvv",
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
    )
)
MAX_SHOWN_CHARS = 2000  # one argument's cell in the details table


def looks_secret(name: str) -> bool:
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)]
    pairs = ["".join(pair) for pair in itertools.pairwise(words)]
    return any(word in SECRET_WORDS for word in [*words, *pairs])


@dataclass(frozen=True)
class Call:
    """One call of ``fn`` with its bound arguments (defaults applied)."""

    fn: Callable[..., Any]
    arguments: dict[str, Any]
    masked: frozenset[str]

    @classmethod
    def bind(
        cls,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        redact: Collection[str] = (),
    ) -> Call:
        try:
            bound = inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as exc:  # the call itself is wrong: say so before anyone is asked
            raise TypeError(f"{qualified_name(fn)}(): {exc}") from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        check_redact(fn, redact)
        masked = frozenset(n for n in arguments if n in redact or looks_secret(n))
        return cls(fn, arguments, masked)

    @property
    def name(self) -> str:
        return qualified_name(self.fn)

    @property
    def short_name(self) -> str:
        """The function's own name, for headings (``refund``, not ``Agent.refund``)."""
        return str(getattr(self.fn, "__name__", self.name))

    def shown(self) -> dict[str, str]:
        """The arguments as the reviewer sees them: masked ones as dots."""
        return {
            name: MASK if name in self.masked else _cell(value)
            for name, value in self.arguments.items()
        }

    def fingerprint(self) -> str:
        """What identifies the call: the function and its arguments shown (not the masked)."""
        payload = json.dumps(
            {"fn": self.name, "args": self.shown()}, sort_keys=True, ensure_ascii=False
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def gate_name(self, name: str | None = None) -> str:
        """The gate's name: the given one (or the function's), then the call's fingerprint."""
        return f"{name or self.name}:{self.fingerprint()[:16]}"

    def prompt(self, template: str | None) -> str:
        """The question: ``template`` formatted with the arguments shown, or a default."""
        if template is None:
            return f"Allow the call {self.name}(…) with the arguments below?"
        try:
            return template.format(**self.shown())
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"prompt {template!r} names {exc} which is not a parameter of {self.name}"
            ) from None


def check_redact(fn: Callable[..., Any], redact: Collection[str]) -> None:
    """``redact=`` names only parameters of ``fn`` (``ConfigError`` otherwise)."""
    if isinstance(redact, str):
        raise ConfigError("redact= takes a list of parameter names, not one string")
    unknown = set(redact) - set(inspect.signature(fn).parameters)
    if unknown:
        raise ConfigError(
            f"redact= names {sorted(unknown)[0]!r}, which is not a parameter of "
            f"{qualified_name(fn)}"
        )


def qualified_name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn)))


def _cell(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"
