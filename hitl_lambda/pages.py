"""The reviewer's HTML pages: one Jinja2 environment (autoescaped), a few filters, render().

Everything a task or a client wrote (name, prompt, details, values, comments) reaches the
page only through autoescaped template variables, never through ``|safe``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse
from starlette.types import Scope

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
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


def render(scope: Scope, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; the CSP nonce set by ``SecurityHeaders`` unlocks its inline style."""
    nonce = scope.get("state", {}).get("csp_nonce", "")
    html = _env.get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code=status)
