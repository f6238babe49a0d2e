"""The reviewer's HTML pages: one Jinja2 environment (autoescaped), a few filters, render().

Everything a task or a client wrote (name, prompt, details, values, comments) reaches the
page through autoescaped template variables, or as HTML built by ``hitl_sdk.answers``
(tables and markdown), which escapes every text it is given and renders no raw HTML.

The Lambda package carries the templates compiled to Python modules (``templates_compiled/``,
written by ``compile_templates`` at build time and byte-compiled with the rest): a cold start
then loads them instead of parsing and compiling each template. Run from the source tree, the
templates are compiled on first use as usual.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.responses import HTMLResponse
from starlette.types import Scope

from hitl_sdk.answers import answer_text, details_html, field_kind, prompt_html, via_text
from hitl_sdk.answers import heading as gate_heading

TEMPLATES = Path(__file__).parent / "templates"
COMPILED = Path(__file__).parent / "templates_compiled"
PAGES = ("form.html", "answered.html", "closed.html", "submitted.html", "error.html")

_loader: jinja2.BaseLoader = jinja2.FileSystemLoader(TEMPLATES)
if COMPILED.is_dir():
    _loader = jinja2.ChoiceLoader([jinja2.ModuleLoader(str(COMPILED)), _loader])
_env = jinja2.Environment(
    loader=_loader,
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Phone keypads for "numeric" and "decimal" have no minus sign, and these numbers may be negative.
INPUT_MODES = {"int": "text", "float": "text", "str": "text"}


def when(moment: datetime) -> str:
    """A timestamp as reviewers read it: ``2026-11-25 14:46 UTC``."""
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def heading(event: Any) -> tuple[str, str]:
    """The page's heading and the prompt text left under it: ``title=`` if the gate has one,
    else the prompt's first line (the machine name only when the prompt says nothing)."""
    return gate_heading(event.name, event.prompt, event.title, event.prompt_format)


def left(deadline: datetime, now: datetime | None = None) -> str:
    """Time to a deadline as a reviewer reads it: "in 3 h 12 min", "in 45 s", "passed"."""
    seconds = int((deadline - (now or datetime.now(timezone.utc))).total_seconds())
    if seconds <= 0:
        return "passed"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"in {days} d {hours} h" if hours else f"in {days} d"
    if hours:
        return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"
    if minutes:
        return f"in {minutes} min"
    return f"in {secs} s"


def ago(moment: datetime, now: datetime | None = None) -> str:
    """How long ago, as a reviewer reads it: "3 h 12 min ago", "just now"."""
    seconds = int(((now or datetime.now(timezone.utc)) - moment).total_seconds())
    if seconds < 60:
        return "just now"
    return left(moment, moment - timedelta(seconds=seconds)).removeprefix("in ") + " ago"


def prompt_block(text: str, prompt_format: str) -> Markup:
    """The prompt (or what is left of it under the heading) as HTML: escaped text, or
    markdown rendered with raw HTML disabled (``hitl_sdk.answers``)."""
    return Markup(prompt_html(text, prompt_format))


def evidence(event: Any) -> Markup:
    """``details=`` as HTML: a table for mappings, else text (markdown when asked)."""
    return Markup(details_html(event.details, event.prompt_format))


def model_fields(schema: dict[str, Any], sent: dict[str, list[str]] | None) -> list[dict[str, Any]]:
    """A model gate's form fields, from its stored schema: label, kind, hint, what to show in
    the input (the texts sent, when the form comes back with an error; else the default)."""
    fields = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        kind, inner, optional = field_kind(prop)
        default = prop.get("default")
        if sent is not None:
            texts = sent.get(name, [])
        elif isinstance(default, list):
            texts = [str(v) for v in default]
        elif isinstance(default, bool):
            texts = ["true"] if default else []
        else:
            texts = [] if default is None else [str(default)]
        options = inner.get("enum") or inner.get("items", {}).get("enum") or []
        low = inner.get("minimum", inner.get("exclusiveMinimum"))
        fields.append(
            {
                "name": name,
                "id": f"f-{name}",
                "label": prop.get("title", name),
                "kind": kind,
                "required": name in required,
                "optional": optional or name not in required,
                "hint": " ".join(
                    filter(None, [_sentence(prop.get("description")), _limits(kind, inner)])
                ),
                "text": texts[-1] if texts else "",
                "picked": texts,
                "options": options,
                "maxlength": inner.get("maxLength"),
                # Phone keypads: "numeric"/"decimal" have no minus sign; offer it when needed.
                "inputmode": _inputmode(kind, low),
            }
        )
    return fields


def _sentence(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        return ""
    text = text.strip()
    return text if text[-1] in ".!?" else text + "."


def _inputmode(kind: str, low: Any) -> str:
    if kind not in ("integer", "number") or low is None or low < 0:
        return "text"
    return "numeric" if kind == "integer" else "decimal"


def _limits(kind: str, schema: dict[str, Any]) -> str:
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        whole = "A whole number" if kind == "integer" else "A number"
        if low is not None and high is not None:
            return f"{whole} from {low} to {high}."
        if low is not None:
            return f"{whole}, at least {low}."
        if high is not None:
            return f"{whole}, at most {high}."
        return f"{whole}."
    if kind == "text":
        parts = []
        if schema.get("maxLength"):
            parts.append(f"at most {schema['maxLength']} characters")
        if schema.get("pattern"):
            parts.append(f"matching {schema['pattern']}")
        return ("Text, " + ", ".join(parts) + ".") if parts else ""
    if kind == "choices":
        return "Any of these."
    return ""


_env.filters["when"] = when
_env.filters["left"] = left
_env.filters["ago"] = ago
_env.globals["prompt_block"] = prompt_block
_env.globals["evidence"] = evidence
_env.globals["heading"] = heading
_env.globals["model_fields"] = model_fields
_env.globals["shown"] = answer_text
_env.globals["via_text"] = via_text
_env.globals["input_modes"] = INPUT_MODES
# A text answer's length on the form: with the comment and reason it fits the request body
# limit (16 KB), so a long answer is stopped by the browser, not by a 413 page.
MAX_TEXT_ANSWER_CHARS = 4000
_env.globals["max_text_chars"] = MAX_TEXT_ANSWER_CHARS


# Template loading compiles Python code; CPython 3.11 before 3.11.8 can fail compile() run on
# two threads at once ("AST constructor recursion depth mismatch"), so loads take turns.
_loading = threading.Lock()


def _template(name: str) -> jinja2.Template:
    with _loading:
        return _env.get_template(name)


def preload() -> None:
    """Load every page's template now (at cold start) rather than in a reviewer's request."""
    for name in PAGES:
        _template(name)


def compile_templates(target: str) -> None:
    """Write every template, compiled, as a Python module under ``target`` (build time)."""
    _env.compile_templates(target, zip=None, ignore_errors=False)


def render(scope: Scope, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; the CSP nonce set by ``SecurityHeaders`` unlocks its inline style."""
    nonce = scope.get("state", {}).get("csp_nonce", "")
    html = _template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code=status)
