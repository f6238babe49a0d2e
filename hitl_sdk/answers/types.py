"""Type specs: what a gate asks for, turned once into a name and the JSON Schema of the answer.

``data_type`` may be ``int``, ``float``, ``str``, ``bool`` (strict scalar codecs, as before),
``Literal[...]`` or an ``Enum`` (one choice), ``list[...]`` of those (several choices; bounds
with ``Annotated[list[X], Field(min_length=1, max_length=2)]``) or ``hitl.Approval`` (approve
or reject, with a reason). The event record stores the spec's name and schema, never Python
code: the reviewer app renders the form from the schema and validates answers against it
(``verdict``: jsonschema for the structure, pydantic-core for the leaves); the SDK validates the
stored answer again with pydantic and returns the typed value (the ``Enum`` member, the literal,
a list of them, an ``Approval``, the model).
"""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

from .._errors import ConfigError, InvalidValue
from ..storage.records import VoteRecord
from .codecs import CODECS, Codec, _show, check_text, scalar_codec
from .verdict import check_model, hitl_rules, stored_json, validate

SCHEMA_KINDS = ("choice", "choices", "approval", "model")
MAX_FIELDS = 50


class _Unset:
    def __repr__(self) -> str:
        return "<no default>"


UNSET: Any = _Unset()  # default= not given (None is a value a gate may default to)
MAX_OPTIONS = 200
RequireReason = Literal["reject", "always"] | None


class Approval(BaseModel):
    """The outcome of an approval gate (``hitl.approve`` or ``data_type=hitl.Approval``)."""

    model_config = ConfigDict(frozen=True)

    approved: bool
    reason: str | None = None
    by: str = ""
    at: datetime | None = None
    via: str = ""
    # A quorum gate's votes, oldest first (who approved or rejected, why, when, how).
    votes: tuple[VoteRecord, ...] = ()

    def __bool__(self) -> bool:
        return self.approved

    @property
    def approvers(self) -> tuple[str, ...]:
        """Who approved, one name each: a quorum gate's approving voters (oldest first), else
        ``by`` when it was approved by a person (``by`` itself is the readable, comma-joined
        form); empty for a rejection or a timeout's default."""
        if self.votes:
            return tuple(v.reviewer for v in self.votes if v.approved)
        return (self.by,) if self.approved and self.by and self.via != "timeout" else ()


@dataclass(frozen=True)
class TypeSpec:
    """One ``data_type``: its stored name, the answer's JSON Schema (``None`` for scalars)
    and the Python type ``wait()`` returns."""

    name: str
    schema: dict[str, Any] | None
    python_type: Any

    def value(self, stored: Any) -> Any:
        """The typed value of a stored answer, validated again with pydantic in strict JSON
        mode, plus the rules the schema states beyond the type (``_verdict``): ``InvalidValue``
        if it does not fit (``outcome`` reports that as ``CorruptRecord``)."""
        if self.schema is None:
            return CODECS[self.name].from_json(stored)
        from pydantic import ValidationError

        text = stored_json(stored)
        hitl_rules(self.schema, stored)
        try:
            if self.name == "approval":
                return Approval.model_validate_json(text, strict=True)
            return TypeAdapter(self.python_type).validate_json(text, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "/".join(str(p) for p in first.get("loc", ()))
            raise InvalidValue(f"{where + ': ' if where else ''}{first.get('msg')}") from None

    def to_json(self, value: Any) -> Any:
        """A typed value (a default, say) as the stored answer; ``InvalidValue`` if it is not
        one this type admits."""
        if self.schema is None:
            codec = CODECS[self.name]
            return codec.to_json(codec.parse(value))
        if self.name == "approval":
            if isinstance(value, Approval):
                return {"approved": value.approved, "reason": value.reason}
            return schema_codec(self.name, self.schema).parse(value)
        try:
            typed = TypeAdapter(self.python_type).validate_python(value, strict=True)
        except Exception as exc:
            raise InvalidValue(f"{_show(value)} is not one of the choices") from exc
        out = TypeAdapter(self.python_type).dump_python(typed, mode="json")
        return schema_codec(self.name, self.schema).parse(out)


def approval_schema(require_reason: RequireReason = "reject") -> dict[str, Any]:
    reason: dict[str, Any] = {"type": ["string", "null"], "maxLength": 2000}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"approved": {"type": "boolean"}, "reason": reason},
        "required": ["approved"],
        "additionalProperties": False,
        "x-require-reason": require_reason,
    }
    return schema


def type_spec(data_type: object, *, require_reason: RequireReason = "reject") -> TypeSpec:
    """The spec of a ``data_type``, or ``ConfigError`` saying what is supported."""
    if isinstance(data_type, type) and data_type in tuple(c.python_type for c in CODECS.values()):
        codec = scalar_codec(data_type)
        return TypeSpec(codec.name, None, codec.python_type)
    if data_type is Approval:
        return TypeSpec("approval", approval_schema(require_reason), Approval)
    options = _options(data_type)
    if options is not None:
        return TypeSpec("choice", {"enum": options}, data_type)
    inner, bounds = _list_of(data_type)
    if inner is not None:
        options = _options(inner)
        if options is not None:
            schema: dict[str, Any] = {
                "type": "array",
                "items": {"enum": options},
                "uniqueItems": True,
                **bounds,
            }
            return TypeSpec("choices", schema, data_type)
    if isinstance(data_type, type) and issubclass(data_type, BaseModel):
        schema = model_schema(data_type)
        check_model(data_type)
        return TypeSpec("model", schema, data_type)
    raise ConfigError(
        f"unsupported data_type {data_type!r}: use int, float, str, bool, Literal[...] or an "
        "Enum (one choice), list[Literal[...]] or list[AnEnum] (several), a pydantic model "
        "of such fields (a form), or hitl.Approval"
    )


def _options(data_type: object) -> list[Any] | None:
    """The offered values of ``Literal[...]`` or an ``Enum`` (JSON scalars), else ``None``."""
    if typing.get_origin(data_type) is Literal:
        values = list(typing.get_args(data_type))
    elif isinstance(data_type, type) and issubclass(data_type, enum.Enum):
        values = [member.value for member in data_type]
    else:
        return None
    if not values or len(values) > MAX_OPTIONS:
        raise ConfigError(
            f"a choice needs 1 to {MAX_OPTIONS} options, {data_type!r} has {len(values)}"
        )
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConfigError(
                f"choice {value!r} of {data_type!r} is not a string or a whole number: options "
                "must be shown and sent back exactly"
            )
        if isinstance(value, str):
            check_text(value, "a choice")
    if len({str(v) for v in values}) != len(values):
        raise ConfigError(f"the options of {data_type!r} are not distinct as text")
    return values


def _list_of(data_type: object) -> tuple[object | None, dict[str, int]]:
    """``(X, bounds)`` for ``list[X]`` or ``Annotated[list[X], Field(min_length=.., ..)]``."""
    bounds: dict[str, int] = {}
    if typing.get_origin(data_type) is typing.Annotated:
        base, *extras = typing.get_args(data_type)
        for extra in extras:
            for item in getattr(extra, "metadata", []):
                for attr, key in (("min_length", "minItems"), ("max_length", "maxItems")):
                    if getattr(item, attr, None) is not None:
                        bounds[key] = int(getattr(item, attr))
        data_type = base
    if typing.get_origin(data_type) is list:
        (inner,) = typing.get_args(data_type) or (None,)
        return inner, bounds
    return None, {}


# -- flat pydantic models: one form field per model field ------------------------------------


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with choice types inlined, or ``ConfigError`` naming the first
    field a form cannot render (a nested model, a dict, a list of anything but choices)."""
    full = TypeAdapter(model).json_schema()
    defs = full.get("$defs", {})
    properties: dict[str, Any] = {}
    for name, prop in full.get("properties", {}).items():
        properties[name] = _form_field(model, name, _inline(prop, defs))
    if not properties or len(properties) > MAX_FIELDS:
        raise ConfigError(
            f"data_type {model.__name__} needs 1 to {MAX_FIELDS} fields for a form, it has "
            f"{len(properties)}"
        )
    return {
        "type": "object",
        "title": full.get("title", model.__name__),
        "properties": properties,
        "required": list(full.get("required", [])),
        "additionalProperties": False,
    }


def _inline(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``$ref`` (and pydantic's ``allOf: [$ref]``) replaced by the definition it names."""
    if "$ref" in prop:
        target = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
        merged = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
        return _inline(merged, defs)
    out = dict(prop)
    for key in ("anyOf", "allOf"):
        if key in out:
            out[key] = [_inline(p, defs) for p in out[key]]
    if isinstance(out.get("items"), dict):
        out["items"] = _inline(out["items"], defs)
    return out


def field_kind(prop: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """``(kind, the non-null schema, optional)`` of one field: kind is ``text``, ``integer``,
    ``number``, ``boolean``, ``choice`` or ``choices``; ``unsupported`` otherwise."""
    optional = False
    inner = prop
    options = prop.get("anyOf")
    if isinstance(options, list):
        rest = [p for p in options if p.get("type") != "null"]
        optional = len(rest) < len(options)
        inner = rest[0] if len(rest) == 1 else {}
    if "enum" in inner:
        return "choice", inner, optional
    kind = inner.get("type")
    if kind == "array" and isinstance(inner.get("items"), dict) and "enum" in inner["items"]:
        return "choices", inner, optional
    names = {"string": "text", "integer": "integer", "number": "number", "boolean": "boolean"}
    if kind in names:
        return names[kind], inner, optional
    return "unsupported", inner, optional


def _form_field(model: type[BaseModel], name: str, prop: dict[str, Any]) -> dict[str, Any]:
    kind, inner, _ = field_kind(prop)
    if kind == "unsupported" or inner.get("format") is not None:
        raise ConfigError(
            f"field {name!r} of {model.__name__} cannot be a form field ({_describe(prop)}): "
            "use str, int, float, bool, a Literal/Enum or a list of one, optionally with None"
        )
    return prop


def _describe(prop: dict[str, Any]) -> str:
    if "properties" in prop or prop.get("type") == "object":
        return "a nested model or a dict"
    if prop.get("type") == "array":
        return "a list of something other than choices"
    return f"type {prop.get('type') or prop.get('format') or 'unknown'}"


# -- the app's side: parse and validate what a reviewer sent, from the stored schema ----------


def answer_codec(data_type: str, schema: dict[str, Any] | None) -> Codec[Any]:
    """The codec of a stored event: a scalar's, or one validating against its schema."""
    if schema is None:
        return scalar_codec(data_type)
    return schema_codec(data_type, schema)


def schema_codec(name: str, schema: dict[str, Any]) -> Codec[Any]:
    hints = {
        "choice": "One of the options.",
        "choices": "Any of the options" + _bounds_hint(schema) + ".",
        "approval": "Approve or reject" + _reason_hint(schema) + ".",
        "model": "Fill in the fields.",
    }
    return Codec(name, object, hints.get(name, ""), lambda raw: _parse(name, schema, raw))


def _bounds_hint(schema: dict[str, Any]) -> str:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low and high:
        return f" (pick {low} to {high})" if low != high else f" (pick {low})"
    if low:
        return f" (pick at least {low})"
    if high:
        return f" (pick at most {high})"
    return ""


def _reason_hint(schema: dict[str, Any]) -> str:
    need = schema.get("x-require-reason")
    if need == "always":
        return "; a reason is required"
    if need == "reject":
        return "; a reason is required to reject"
    return ""


def _match(options: list[Any], raw: object) -> Any:
    """The offered value ``raw`` stands for: itself, or its text (a form sends text)."""
    for option in options:
        if raw == option and type(raw) is type(option):
            return option
    if isinstance(raw, str):
        for option in options:
            if str(option) == raw:
                return option
    shown = ", ".join(str(o) for o in options[:10]) + (", ..." if len(options) > 10 else "")
    raise InvalidValue(f"{_show(raw)} is not one of the options ({shown})")


def _json_text(raw: object, opener: str) -> object:
    """Text that holds a JSON list/object (the CLI's VALUE, ``'["web", "api"]'``) as JSON."""
    if isinstance(raw, str) and raw.lstrip().startswith(opener):
        import json

        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InvalidValue(f"{_show(raw)} is not valid JSON: {exc}") from None
    return raw


def _parse(name: str, schema: dict[str, Any], raw: object) -> Any:
    if name == "choices":
        raw = _json_text(raw, "[")
    elif name in ("model", "approval"):
        raw = _json_text(raw, "{")
    if name == "choice":
        value: Any = _match(schema["enum"], raw)
    elif name == "choices":
        if raw == "":  # a form with nothing ticked
            raw = []
        items = [raw] if isinstance(raw, (str, int)) and not isinstance(raw, bool) else raw
        if not isinstance(items, list):
            raise InvalidValue(f"expected a list of options, got {_show(raw)}")
        value = [_match(schema["items"]["enum"], item) for item in items]
        if len(set(map(str, value))) != len(value):
            raise InvalidValue("an option was picked twice")
    elif name == "approval":
        value = _approval(raw)
    elif name == "model":
        if isinstance(raw, FormFields):
            raw = _from_form(schema, raw)
        if not isinstance(raw, dict):
            raise InvalidValue(f"expected an object of the form's fields, got {_show(raw)}")
        value = raw
    else:
        raise InvalidValue(f"this gate's answer type {name!r} is unknown to this version of hitl")
    validate(schema, value)
    if name == "approval":
        _check_reason(schema, value)
    return value


def _approval(raw: object) -> dict[str, Any]:
    words = {"approve": True, "approved": True, "reject": False, "rejected": False}
    if isinstance(raw, dict):
        approved, reason = raw.get("approved"), raw.get("reason")
        if set(raw) - {"approved", "reason"}:
            raise InvalidValue("an approval has only 'approved' and 'reason'")
    else:
        approved, reason = raw, None
    if isinstance(approved, str) and approved.strip().lower() in words:
        approved = words[approved.strip().lower()]
    elif not isinstance(approved, bool):
        approved = CODECS["bool"].parse(approved) if isinstance(approved, str) else approved
    if not isinstance(approved, bool):
        raise InvalidValue(f"expected approve or reject, got {_show(raw)}")
    if reason is not None:
        if not isinstance(reason, str):
            raise InvalidValue("the reason must be text")
        reason = reason.replace("\r\n", "\n").replace("\r", "\n").strip() or None
        if reason is not None:
            check_text(reason, "the reason")
    return {"approved": approved, "reason": reason}


def _check_reason(schema: dict[str, Any], value: dict[str, Any]) -> None:
    need = schema.get("x-require-reason")
    if value["reason"] is None and (
        need == "always" or (need == "reject" and not value["approved"])
    ):
        what = "to reject" if need == "reject" else "with this decision"
        raise InvalidValue(
            f"a reason is required {what}: say why (the form's reason field, --reason with "
            'hitl respond, "reason" in the JSON API)'
        )


class FormFields(dict[str, list[str]]):
    """The texts an HTML form sent for a model gate's fields (each name -> its values). Only
    the reviewer app builds one; JSON clients send typed values."""


def _from_form(schema: dict[str, Any], sent: FormFields) -> dict[str, Any]:
    """A model gate's form texts as typed JSON, field by field, from the stored schema."""
    out: dict[str, Any] = {}
    required = set(schema.get("required", []))
    for name, prop in schema["properties"].items():
        kind, inner, optional = field_kind(prop)
        texts = sent.get(name, [])
        label = prop.get("title", name)
        if kind == "boolean":  # an unticked checkbox sends nothing
            out[name] = bool(texts) and CODECS["bool"].parse(texts[-1])
            continue
        if kind == "choices":
            out[name] = [_match(inner["items"]["enum"], t) for t in texts if t != ""]
            continue
        text = texts[-1].replace("\r\n", "\n").replace("\r", "\n") if texts else ""
        if text.strip() == "":
            if name in required:
                raise InvalidValue(f"{label}: this field is required")
            if optional:
                out[name] = None
            continue  # left out: the model's default applies
        try:
            if kind == "integer":
                out[name] = CODECS["int"].parse(text)
            elif kind == "number":
                out[name] = CODECS["float"].parse(text)
            elif kind == "choice":
                out[name] = _match(inner["enum"], text)
            else:
                out[name] = check_text(text, label)
        except InvalidValue as exc:
            raise InvalidValue(f"{label}: {exc}") from None
    return out
