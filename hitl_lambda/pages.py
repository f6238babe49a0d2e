"""The reviewer's HTML pages: one Jinja2 environment (autoescaped), a few filters, render().

Everything a task or a client wrote (name, prompt, details, values, comments) reaches the
page only through autoescaped template variables, never through ``|safe``.

The Lambda package carries the templates compiled to Python modules (``templates_compiled/``,
written by ``compile_templates`` at build time and byte-compiled with the rest): a cold start
then loads them instead of parsing and compiling each template. Run from the source tree, the
templates are compiled on first use as usual.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse
from starlette.types import Scope

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

INPUT_MODES = {"int": "numeric", "float": "decimal", "str": "text"}


def when(moment: datetime) -> str:
    """A timestamp as reviewers read it: ``2026-11-25 14:46 UTC``."""
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def shown(value: Any, data_type: str) -> str:
    """An answer as a reviewer reads it."""
    if data_type == "bool" and isinstance(value, bool):
        return "Approved" if value else "Rejected"
    return "" if value is None else str(value)


_env.filters["when"] = when
_env.globals["shown"] = shown
_env.globals["input_modes"] = INPUT_MODES


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
