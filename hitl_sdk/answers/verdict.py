"""One validator's verdict: what the reviewer app accepts, ``wait()`` accepts, and the reverse.

The app never imports task code: it validates an answer against the JSON Schema stored in the
event, and ``wait()`` validates the stored answer again with the task's own pydantic type. Two
engines can disagree (Python's ``re`` lets ``$`` match before a final newline, pydantic's Rust
regex does not; JSON Schema's ``integer`` admits ``1.0``; ``NaN`` parses as a number), and a
disagreement closes a write-once gate with an answer the task cannot use. So:

- The app judges the structure with ``jsonschema`` (messages a reviewer can read) and the leaves
  the way pydantic does: ``pattern`` and ``multipleOf`` through ``pydantic_core`` itself (its
  Rust regex runs in linear time: no pattern can stall the app), ``integer`` is a JSON integer
  (not ``1.0``, not ``true``), ``number`` a finite one (``NaN``, ``Infinity``, ``1e400`` refused:
  JSON cannot store them), and text must be valid UTF-8.
- The SDK validates in pydantic's strict JSON mode and adds the rules hitl's schema states
  beyond the type (no option picked twice, no unknown field).
- ``new_event`` refuses a model whose checks the app could not repeat: custom validators
  (``@field_validator``, ``AfterValidator``, ``EmailStr``, URL types), string transformations,
  ``regex_engine="python-re"``.

``tests/test_verdict.py`` generates models and answers with hypothesis and asserts that the app
accepts an answer exactly when ``wait()`` does.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from .._errors import ConfigError, InvalidValue
from .codecs import check_text

# Keys a core schema of a supported field may carry (anything else changes what is accepted
# in a way the stored JSON Schema does not say).
_PLAIN_KEYS = {"type", "metadata", "ref", "strict", "serialization"}
_SUPPORTED: dict[str, set[str]] = {
    "str": {"pattern", "min_length", "max_length"},
    "int": {"ge", "le", "gt", "lt", "multiple_of"},
    "float": {"ge", "le", "gt", "lt", "multiple_of", "allow_inf_nan"},
    "bool": set(),
    "literal": {"expected"},
    "enum": {"cls", "members", "sub_type", "missing"},
    "list": {"items_schema", "min_length", "max_length"},
    "nullable": {"schema"},
    "default": {"schema", "default", "validate_default"},
}
_REFUSED_CONFIG = {
    "str_strip_whitespace": "strips text",
    "str_to_lower": "lowers text",
    "str_to_upper": "uppers text",
    "coerce_numbers_to_str": "turns numbers into text",
}


# -- new_event: a model whose every check the app can repeat ----------------------------------


def check_model(model: type[BaseModel]) -> None:
    """``ConfigError`` naming the first field of ``model`` whose check the reviewer app could not
    repeat from the stored schema (so an answer it accepts might be refused by ``wait()``)."""
    core = model.__pydantic_core_schema__
    config = dict(core.get("config") or {})
    if config.get("regex_engine") == "python-re":
        raise ConfigError(
            f"{model.__name__} sets regex_engine='python-re': hitl checks patterns in linear time "
            "with pydantic's default engine (rust-regex), in the app and in wait() alike; drop "
            "the setting"
        )
    for key, what in _REFUSED_CONFIG.items():
        if config.get(key):
            raise ConfigError(
                f"{model.__name__} sets {key} (it {what} before checking): the reviewer app "
                "checks what the reviewer sent, so drop the setting and transform after wait()"
            )
    fields = _model_fields(core)
    for name, field in fields.items():
        problem = _unsupported(field.get("schema", {}), _definitions(core))
        if problem:
            raise ConfigError(
                f"field {name!r} of {model.__name__} {problem}: the reviewer app validates "
                "answers from the stored schema and cannot run task code, so it could accept "
                "an answer wait() then refuses. Express the rule as a constraint (ge, le, gt, "
                "lt, min_length, max_length, pattern) or check the value after wait()"
            )


def _definitions(core: Any) -> dict[str, Any]:
    if core.get("type") == "definitions":
        return {d.get("ref"): d for d in core.get("definitions", [])}
    return {}


def _model_fields(core: Any) -> dict[str, Any]:
    schema = core
    defs = _definitions(core)
    while True:
        kind = schema.get("type")
        if kind == "definitions":
            schema = schema["schema"]
        elif kind == "definition-ref":
            schema = defs.get(schema.get("schema_ref"), {})
        elif kind == "model":
            schema = schema["schema"]
        elif kind == "model-fields":
            return dict(schema.get("fields", {}))
        else:
            return {}


def _unsupported(schema: Any, defs: dict[str, Any]) -> str | None:
    """What in a field's core schema the app cannot repeat, in words; None when nothing."""
    kind = schema.get("type")
    if kind == "definition-ref":
        return _unsupported(defs.get(schema.get("schema_ref"), {}), defs)
    if isinstance(kind, str) and kind.startswith("function-"):
        return "has a custom validator (a function, or a type such as EmailStr or HttpUrl)"
    allowed = _SUPPORTED.get(str(kind))
    if allowed is None:
        return f"is of a type the form does not offer ({kind})"
    extra = set(schema) - allowed - _PLAIN_KEYS
    if extra:
        return f"uses {', '.join(sorted(extra))}"
    for key in ("items_schema", "schema"):
        if isinstance(schema.get(key), dict):
            problem = _unsupported(schema[key], defs)
            if problem:
                return problem
    return None


# -- the app: judge an answer against the stored schema ---------------------------------------


@functools.lru_cache(maxsize=256)
def _leaf(kind: str, key: str, bound: Any) -> Any:
    """A ``pydantic_core`` validator of one constraint (cached: a gate's answers share it)."""
    from pydantic_core import SchemaValidator, core_schema

    builders: dict[str, Any] = {
        "str": core_schema.str_schema,
        "int": core_schema.int_schema,
        "float": core_schema.float_schema,
    }
    return SchemaValidator(builders[kind](**{key: bound}))


def _passes(kind: str, key: str, bound: Any, value: Any) -> bool:
    from pydantic_core import SchemaError, ValidationError

    try:
        validator = _leaf(kind, key, bound)
    except SchemaError as exc:  # a pattern pydantic cannot compile: nothing matches it
        raise InvalidValue(f"this gate's pattern {bound!r} cannot be checked: {exc}") from None
    try:
        validator.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if isinstance(instance, str) and not _passes("str", "pattern", pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _multiple_of(validator: Any, factor: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if not _is_number(None, instance):
        return
    whole = isinstance(instance, int) and isinstance(factor, int)
    kind = "int" if whole and schema.get("type") == "integer" else "float"
    if not _passes(kind, "multiple_of", factor, instance if kind == "int" else float(instance)):
        yield ValidationError(f"{instance!r} is not a multiple of {factor!r}")


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool) or not isinstance(instance, (int, float)):
        return False
    return isinstance(instance, int) or math.isfinite(instance)


@functools.lru_cache(maxsize=1)
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    types = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    )
    return validators.extend(
        Draft202012Validator,
        validators={"pattern": _pattern, "multipleOf": _multiple_of},
        type_checker=types,
    )


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def validate(schema: dict[str, Any], value: Any) -> None:
    """``InvalidValue`` (in words a reviewer reads) unless ``value`` fits ``schema`` exactly as
    pydantic would judge it; ``jsonschema`` is imported on first use (not at cold start)."""
    for text in _texts(value):
        check_text(text, "the answer")
    errors = sorted(_validator_class()(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        properties = schema.get("properties", {})
        where = "/".join(
            str(properties.get(p, {}).get("title", p)) if i == 0 else str(p)
            for i, p in enumerate(first.path)
        )
        message = first.message if len(first.message) <= 200 else first.message[:197] + "..."
        raise InvalidValue(f"{where + ': ' if where else ''}{_plain(first, message)}")


_PLAIN = {
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be more than {}",
    "exclusiveMaximum": "must be less than {}",
    "maxLength": "must be at most {} characters",
    "minLength": "must be at least {} characters",
    "pattern": "must match the pattern {}",
    "multipleOf": "must be a multiple of {}",
    "minItems": "pick at least {}",
    "maxItems": "pick at most {}",
}
_TYPES = {
    "integer": "must be a whole number (such as 42)",
    "number": "must be a finite number (such as 0.75; not NaN or Infinity)",
    "string": "must be text",
    "boolean": "must be true or false",
    "array": "must be a list",
    "object": "must be an object of the form's fields",
}


def _plain(error: Any, message: str) -> str:
    if error.validator in _PLAIN:
        return _PLAIN[error.validator].format(error.validator_value)
    if error.validator == "type":
        wanted = error.validator_value
        names = wanted if isinstance(wanted, list) else [wanted]
        said = [_TYPES[n] for n in names if n in _TYPES]
        if said:
            return " or ".join(said) + (" (or empty)" if "null" in names else "")
    if error.validator == "required":
        return message.replace("is a required property", "is required")
    return message


# -- wait(): the stored answer, judged as strictly ---------------------------------------------


def stored_json(value: Any) -> str:
    """The stored answer as JSON text for pydantic's strict JSON mode (``InvalidValue`` for a
    number JSON cannot hold)."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        raise InvalidValue(f"the answer holds a number JSON cannot store: {exc}") from None


def hitl_rules(schema: dict[str, Any], value: Any) -> None:
    """The rules the stored schema states beyond pydantic's type: an option picked once, no
    field the form does not have. ``InvalidValue`` otherwise."""
    if schema.get("type") == "object" and isinstance(value, dict):
        unknown = set(value) - set(schema.get("properties", {}))
        if unknown:
            raise InvalidValue(f"the answer has no field {sorted(unknown)[0]!r}")
    picks = value if schema.get("uniqueItems") and isinstance(value, list) else []
    if len({json.dumps(i, sort_keys=True) for i in picks}) != len(picks):
        raise InvalidValue("an option was picked twice")
