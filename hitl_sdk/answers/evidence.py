"""What a reviewer is shown beside the question: the prompt and the ``details=`` evidence.

``details`` may be text, a mapping (a two-column table) or a list of mappings (a table with a
header row: the keys of all rows, in first-seen order). ``prompt_format="markdown"`` renders the
prompt and text details as CommonMark with markdown-it-py, raw HTML disabled: anything a task
or a model wrote is escaped, links get ``rel="noopener noreferrer"``, images are not rendered
(a page loads nothing from elsewhere), and markdown-it's link check refuses ``javascript:`` and
the like. One renderer serves the reviewer app's pages and the Flyte report panel.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .._errors import ConfigError

Details = str | dict[str, Any] | list[dict[str, Any]]
PromptFormat = Literal["text", "markdown"]
PROMPT_FORMATS = ("text", "markdown")
MAX_DETAILS_CHARS = 200_000
MAX_ROWS = 1000
MAX_COLUMNS = 50
_CELL = (str, int, float, bool, type(None))


def check_details(details: object) -> Details | None:
    """``details`` as stored: text, a mapping or a list of mappings of plain values; else
    ``ConfigError`` saying what is accepted."""
    if details is None or isinstance(details, str):
        return details
    if isinstance(details, Mapping):
        table: Details = {str(k): _cell(v, str(k)) for k, v in details.items()}
        if len(table) > MAX_ROWS:
            raise ConfigError(f"details has {len(table)} rows; at most {MAX_ROWS} are shown")
    elif isinstance(details, Sequence) and all(isinstance(r, Mapping) for r in details):
        if not details:
            raise ConfigError("details is an empty list: give rows (mappings), text or None")
        if len(details) > MAX_ROWS:
            raise ConfigError(f"details has {len(details)} rows; at most {MAX_ROWS} are shown")
        table = [{str(k): _cell(v, str(k)) for k, v in row.items()} for row in details]
        if len(_columns(table)) > MAX_COLUMNS:
            raise ConfigError(f"details has more than {MAX_COLUMNS} columns")
    else:
        raise ConfigError(
            "details must be text, a mapping (a two-column table) or a list of mappings (a "
            f"table with a header row), not {type(details).__name__}"
        )
    if len(json.dumps(table, ensure_ascii=False)) > MAX_DETAILS_CHARS:
        raise ConfigError(f"details is longer than {MAX_DETAILS_CHARS:,} characters as JSON")
    return table


DEFAULT_PROMPT = "Please provide a value"  # new_event's; it says nothing about the gate
MAX_HEADING_CHARS = 120


def heading(
    name: str, prompt: str, title: str | None = None, prompt_format: str = "text"
) -> tuple[str, str]:
    """What a gate is called where it is shown (its page, its notifications) and the prompt
    text left under that: ``title=`` if given, else the prompt's first line (a markdown
    ``# Heading`` without its ``#``), else the gate's name when that line says nothing."""
    if title:
        return title, prompt
    first, _, rest = prompt.strip().partition("\n")
    if prompt_format == "markdown":
        first = first.lstrip("#").strip()
    if not first or prompt == DEFAULT_PROMPT or len(first) > MAX_HEADING_CHARS:
        return name, prompt
    return first, rest.strip()


def _cell(value: object, key: str) -> Any:
    if not isinstance(value, _CELL):
        raise ConfigError(
            f"details[{key!r}] is a {type(value).__name__}: table cells are text, numbers, "
            "booleans or None (format anything else as text first)"
        )
    return value


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def markdown_html(text: str) -> str:
    """CommonMark as safe HTML: raw HTML escaped, no images, links opened without a referrer."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer")
        tokens[idx].attrSet("target", "_blank")
        rendered: str = renderer.renderToken(tokens, idx, options, env)
        return rendered

    md.add_render_rule("link_open", link_open)
    rendered: str = md.render(text)
    return rendered


def prompt_html(prompt: str, prompt_format: str) -> str:
    """The prompt as HTML: escaped text keeping its line breaks, or rendered markdown."""
    if prompt_format == "markdown":
        return f'<div class="markdown">{markdown_html(prompt)}</div>'
    return f'<p class="prompt">{html.escape(prompt)}</p>'


def details_html(details: Details | None, prompt_format: str = "text") -> str:
    """The evidence as HTML: a table for mappings, preformatted (or markdown) text."""
    if details is None or details == "":
        return ""
    if isinstance(details, str):
        if prompt_format == "markdown":
            return f'<div class="markdown">{markdown_html(details)}</div>'
        return f"<pre>{html.escape(details)}</pre>"
    if isinstance(details, dict):
        rows = "".join(
            f'<tr><th scope="row">{html.escape(k)}</th><td>{html.escape(_text(v))}</td></tr>'
            for k, v in details.items()
        )
        return f'<div class="table"><table class="pairs"><tbody>{rows}</tbody></table></div>'
    columns = _columns(details)
    head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in details
    )
    return (
        f'<div class="table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def details_text(details: Details | None) -> str:
    """The evidence as plain text (the CLI, the log)."""
    if details is None or isinstance(details, str):
        return details or ""
    if isinstance(details, dict):
        return "\n".join(f"{k}: {_text(v)}" for k, v in details.items())
    columns = _columns(details)
    lines = [" | ".join(columns)]
    lines += [" | ".join(_text(row.get(c)) for c in columns) for row in details]
    return "\n".join(lines)
