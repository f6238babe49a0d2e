"""Evidence beside the question: ``details=`` as text, a mapping or a list of mappings, and
``prompt_format="markdown"``, in the reviewer's page (through the Lambda handler) and in the
Flyte report panel; everything a task wrote stays inert."""

from __future__ import annotations

from typing import Any

import pytest
from apigw import apigw_event, invoke, response_text

import hitl_sdk as hitl
from hitl_sdk.flyte import report as _flyte
from hitl_sdk.storage.store import Store

XSS = "<script>alert(1)</script>"


def page_of(handler: Any, event: hitl.Event[Any]) -> str:
    query = {"token": event.token}
    resp = invoke(handler, apigw_event("GET", f"/form/{event.request_id}", query=query))
    assert resp["statusCode"] == 200
    return response_text(resp)


def test_a_mapping_is_a_two_column_table(s3_store: Store, handler: Any) -> None:
    event = hitl.new_event(
        "metrics", bool, prompt="Ship it?", details={"p95 latency": "212 ms", "errors": 3, XSS: XSS}
    )
    for html in (page_of(handler, event), _flyte.panel_html(event)):
        assert '<table class="pairs">' in html
        assert '<th scope="row">p95 latency</th><td>212 ms</td>' in html
        assert "<td>3</td>" in html
        assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_list_of_mappings_is_a_table_with_a_header_row(s3_store: Store, handler: Any) -> None:
    rows = [
        {"table": "orders", "rows": 1204551, "ok": True},
        {"table": "refunds", "rows": 88, "note": "late"},
    ]
    event = hitl.new_event("loads", bool, details=rows)
    html = page_of(handler, event)
    header = '<th scope="col">table</th><th scope="col">rows</th><th scope="col">ok</th>'
    assert header + '<th scope="col">note</th>' in html
    assert "<td>refunds</td><td>88</td><td></td><td>late</td>" in html
    assert "<td>yes</td>" in html  # a boolean reads as yes/no


def test_markdown_renders_without_raw_html_scripts_images_or_referrers(
    s3_store: Store, handler: Any
) -> None:
    prompt = (
        "# Release 1.4\n\nThe **canary** is green; see [the dashboard](https://grafana.example/d/1)."
        f"\n\n{XSS}\n\n![tracker](https://evil.example/pixel.png)\n\n[click](javascript:alert(1))"
    )
    event = hitl.new_event(
        "md", bool, prompt=prompt, prompt_format="markdown", details="- one\n- `two`"
    )
    for html in (page_of(handler, event), _flyte.panel_html(event)):
        assert "<strong>canary</strong>" in html
        assert 'href="https://grafana.example/d/1"' in html
        assert 'rel="noopener noreferrer"' in html
        assert XSS not in html and "&lt;script&gt;" in html
        assert "<img" not in html  # nothing loads from elsewhere
        assert 'href="javascript:' not in html
        assert "<li>one</li>" in html and "<code>two</code>" in html
    # A markdown heading line becomes the page's heading.
    assert "<h1>Release 1.4</h1>" in page_of(handler, event)


def test_plain_prompts_stay_plain_text(s3_store: Store, handler: Any) -> None:
    event = hitl.new_event("plain", bool, prompt="Deploy?\n**not bold**", details="a\n<b>b</b>")
    html = page_of(handler, event)
    assert "**not bold**" in html and "<strong>" not in html
    assert "<pre>a\n&lt;b&gt;b&lt;/b&gt;</pre>" in html


@pytest.mark.parametrize(
    "details",
    [{"nested": {"a": 1}}, [{"ok": 1}, "not a row"], [], {"x": [1, 2]}, 42, {"s": {1, 2}}],
)
def test_details_that_cannot_be_shown_are_refused(s3_store: Store, details: Any) -> None:
    with pytest.raises(hitl.ConfigError, match="details"):
        hitl.new_event("bad", bool, details=details)


def test_prompt_format_is_checked(s3_store: Store) -> None:
    with pytest.raises(hitl.ConfigError, match="prompt_format"):
        hitl.new_event("bad", bool, prompt_format="html")  # type: ignore[arg-type]


def test_changing_the_evidence_table_is_another_question(s3_store: Store) -> None:
    hitl.new_event("q", bool, details={"rows": 1})
    with pytest.raises(hitl.QuestionChanged):
        hitl.new_event("q", bool, details={"rows": 2})
