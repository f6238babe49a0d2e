"""API Gateway HTTP API (payload v2.0) events for calling a Lambda handler in tests.

The samples under ``tests/events/`` have the shape API Gateway sends; the builders copy one
and set the method, path, query, headers and body, keeping everything else as captured::

    from apigw import apigw_event, invoke, json_post_event, response_json  # tests/ is on sys.path

    resp = invoke(handler, apigw_event("GET", "/form/abc.def", query={"token": token}))
    assert resp["statusCode"] == 200

``invoke`` runs the (Mangum) handler in a plain thread with its own event loop, the way
Lambda calls it, so it also works from async tests and from many threads at once.
"""

from __future__ import annotations

import asyncio
import base64 as b64
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

EVENTS = Path(__file__).parent / "events"
SAMPLES = {
    "get": "http_api_v2_get_form.json",
    "form": "http_api_v2_post_form.json",
    "json": "http_api_v2_post_json.json",
}

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def load_sample(kind: str) -> dict[str, Any]:
    """A fresh copy of one captured sample: ``"get"``, ``"form"`` or ``"json"``."""
    data: dict[str, Any] = json.loads((EVENTS / SAMPLES[kind]).read_text())
    return data


def apigw_event(
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | str | None = None,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    base64: bool = False,
    sample: str | None = None,
) -> dict[str, Any]:
    """An HTTP API v2 event for ``method path``, built from a captured sample.

    ``query`` is a mapping (encoded for you) or a raw query string. ``body`` is sent as text,
    or base64-encoded with ``isBase64Encoded: true`` when ``base64`` is set (API Gateway does
    that for form posts). ``headers`` are merged over the sample's (names lowercased; a value
    of ``""`` removes a header). ``sample`` picks the template; by default GET uses the
    browser GET, POST with a JSON body the curl sample, any other POST the form sample.
    """
    method = method.upper()
    extra = {k.lower(): v for k, v in (headers or {}).items()}
    if sample is None:
        if method == "GET":
            sample = "get"
        elif "json" in extra.get("content-type", "json" if _looks_json(body) else ""):
            sample = "json"
        else:
            sample = "form"
    event = copy.deepcopy(load_sample(sample))

    raw_query = query if isinstance(query, str) else urlencode(dict(query or {}))
    event["rawPath"] = path
    event["rawQueryString"] = raw_query
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        # v2 joins repeated parameters with commas, like headers
        params[key] = f"{params[key]},{value}" if key in params else value
    if params:
        event["queryStringParameters"] = params
    else:
        event.pop("queryStringParameters", None)

    context = event["requestContext"]
    context["http"]["method"] = method
    context["http"]["path"] = path
    context["requestId"] = uuid.uuid4().hex[:14] + "="
    now = datetime.now(timezone.utc)
    context["time"] = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    context["timeEpoch"] = int(now.timestamp() * 1000)

    merged = {k.lower(): v for k, v in event.get("headers", {}).items()}
    merged.update(extra)
    data = body.encode() if isinstance(body, str) else body
    if data is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
        merged.pop("content-length", None)
        if method == "GET":
            merged.pop("content-type", None)
    else:
        event["body"] = b64.b64encode(data).decode() if base64 else data.decode()
        event["isBase64Encoded"] = base64
        if "content-length" not in extra:
            merged["content-length"] = str(len(data))
    event["headers"] = {k: v for k, v in merged.items() if v != ""}
    return event


def _looks_json(body: bytes | str | None) -> bool:
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    return text is not None and text.lstrip()[:1] in ("{", "[")


def form_post_event(
    fields: Mapping[str, str] | Sequence[tuple[str, str]],
    *,
    path: str = "/submit",
    base64: bool = True,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The browser's urlencoded form POST (base64 body by default, as API Gateway sends it).
    ``fields`` may be pairs, for a name sent more than once (a multi-select's checkboxes)."""
    merged = {"content-type": "application/x-www-form-urlencoded", **(headers or {})}
    body = urlencode(list(fields.items()) if isinstance(fields, Mapping) else list(fields))
    return apigw_event("POST", path, body=body, headers=merged, base64=base64, sample="form")


def json_post_event(
    payload: object,
    *,
    path: str = "/submit/json",
    headers: Mapping[str, str] | None = None,
    base64: bool = False,
) -> dict[str, Any]:
    """A JSON POST as curl sends it; ``payload`` is serialised unless it is already text."""
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    merged = {"content-type": "application/json", **(headers or {})}
    return apigw_event("POST", path, body=body, headers=merged, base64=base64, sample="json")


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers commonly read."""

    function_name: str = "hitl-reviewer"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:hitl-reviewer"
    memory_limit_in_mb: int = 256
    aws_request_id: str = ""
    log_group_name: str = "/aws/lambda/hitl-reviewer"
    log_stream_name: str = "2026/11/25/[$LATEST]0123456789abcdef"

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self._deadline = time.monotonic() + 30

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def invoke(handler: Handler, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Call ``handler(event, context)`` in a fresh thread with its own event loop.

    Mangum drives the app with ``run_until_complete`` on the calling thread's loop, so it must
    never run inside a running loop; a thread per call is what Lambda's runtime gives it too.
    Exceptions from the handler are re-raised here.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            outcome["response"] = handler(event, context or LambdaContext())
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=run, name="lambda-invoke")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    response: dict[str, Any] = outcome["response"]
    return response


def response_body(response: Mapping[str, Any]) -> bytes:
    body = response.get("body") or ""
    return b64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()


def response_text(response: Mapping[str, Any]) -> str:
    return response_body(response).decode()


def response_json(response: Mapping[str, Any]) -> Any:
    return json.loads(response_body(response))


def header(response: Mapping[str, Any], name: str) -> str | None:
    """A response header by case-insensitive name (v2 responses carry a flat dict)."""
    wanted = name.lower()
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == wanted:
            return str(value)
    return None


def follow(
    handler: Handler, response: dict[str, Any], context: Any = None, posted_to: str = "/submit"
) -> dict[str, Any]:
    """Where a browser goes after the form's POST: its 303 ``Location`` (relative to the
    ``/submit`` it came from, stage prefix included) fetched with a GET; other responses as
    they are."""
    if response["statusCode"] != 303:
        return response
    location = header(response, "location") or ""
    target = urlsplit(urljoin(f"https://h{posted_to}", location))
    return invoke(handler, apigw_event("GET", target.path, query=target.query), context)
