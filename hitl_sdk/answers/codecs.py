"""Value codecs: how an answer is parsed, stored and described; the scalar ones live here.

A codec turns what a person or client sent (form text or a JSON value) into the typed value,
strictly: ``"ture"`` is not a bool and ``"1.5"`` is not an int. Stored answers hold the
codec's JSON form, and ``from_json`` reads them back. ``int``, ``float``, ``str`` and ``bool``
are here (``scalar_codec``); choices, approvals and models get a codec built from their stored
JSON Schema in ``types`` (``answer_codec`` picks the right one for a stored gate).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .._errors import ConfigError, InvalidValue

T = TypeVar("T")

_INT_RE = re.compile(r"[+-]?[0-9]+")
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
_MAX_NUMBER_CHARS = 400
_MAX_INT_BITS = 1328  # about 400 decimal digits, like the text form
BOOL_WORDS = "true or false; yes/no, y/n, on/off, 1/0 also work"


def _show(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise InvalidValue(f"expected bool ({BOOL_WORDS}), got {_show(raw)}")


def _parse_int(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw.bit_length() <= _MAX_INT_BITS:
            return raw
    elif isinstance(raw, str):
        text = raw.strip()
        if len(text) <= _MAX_NUMBER_CHARS and text.isascii() and _INT_RE.fullmatch(text):
            return int(text)
    raise InvalidValue(f"expected int (a whole number such as 42), got {_show(raw)}")


def _parse_float(raw: object) -> float:
    value: float | None = None
    try:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)  # an int past 1e308 overflows: refused below
        elif isinstance(raw, str) and len(raw.strip()) <= _MAX_NUMBER_CHARS and raw.isascii():
            # ASCII only, like int: float() would take "٤٢"; and it takes "1_0", we do not.
            value = float(raw.strip().replace("_", "!"))
    except (ValueError, OverflowError):
        value = None
    if value is None or not math.isfinite(value):
        raise InvalidValue(f"expected float (a finite number such as 0.75), got {_show(raw)}")
    return value


def _parse_str(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidValue(f"expected str (text), got {_show(raw)}")
    check_text(raw, "the answer")
    if not raw.strip():
        raise InvalidValue("expected str (text), got an empty answer: write something")
    # Browsers send a textarea's line ends as CRLF; every channel stores plain \n.
    return raw.replace("\r\n", "\n").replace("\r", "\n")


def check_text(text: str, what: str) -> str:
    """``text`` if it can be stored as UTF-8; a lone surrogate ("\\ud800", legal in JSON
    escapes, not in text) is refused with ``InvalidValue``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValue(
            f"{what} holds a character that is not valid text (a lone UTF-16 surrogate at "
            f"position {exc.start})"
        ) from exc
    return text


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How one ``data_type`` is parsed, stored as JSON and described to a reviewer."""

    name: str
    python_type: type
    hint: str
    parse: Callable[[object], T]

    def to_json(self, value: T) -> Any:
        """The JSON form stored in a response record."""
        return value

    def from_json(self, stored: Any) -> T:
        """Read a stored JSON value back (stored values went through ``parse``)."""
        return self.parse(stored)


CODECS: dict[str, Codec[Any]] = {
    codec.name: codec
    for codec in (
        Codec("int", int, "A whole number, such as 42 or -7.", _parse_int),
        Codec("float", float, "A number, such as 0.75 or 12.", _parse_float),
        Codec("str", str, "Any text.", _parse_str),
        Codec("bool", bool, "Approve (true) or reject (false).", _parse_bool),
    )
}


def scalar_codec(data_type: object) -> Codec[Any]:
    """The codec for a Python type (``bool``) or its name (``"bool"``)."""
    if isinstance(data_type, str):
        codec = CODECS.get(data_type)
    else:
        codec = next((c for c in CODECS.values() if c.python_type is data_type), None)
    if codec is None:
        supported = ", ".join(CODECS)
        raise ConfigError(f"unsupported data_type {data_type!r}: use one of {supported}")
    return codec
