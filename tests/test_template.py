"""template.yaml and infra/ checked against the code, not against a list kept by hand.

- cfn-lint passes on the template.
- The handler the template names imports, and a cold start with exactly the template's
  environment serves ``/health``.
- Every HITL_* variable the app (and the SDK settings it uses) reads is set by the template.
- The HTTP API routes exactly the routes the FastAPI app serves.
- IAM: the S3 requests the code really sends (recorded by a proxy in front of the moto
  server while a task opens, adopts, times out and reads gates and the app serves a
  reviewer) are each allowed by the policy of whoever sent them, every grant in those
  policies is used by some request, and requests the code never needs are denied.
- infra/task-policy.json says the same as the template's task policy; infra/stack-env turns
  a stack's outputs into the SDK's environment.
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
TASK_POLICY = ROOT / "infra" / "task-policy.json"
PREFIX = "hitl"
SIGNING_KEY_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hitl-signing"
# Variables the SDK's settings read that the reviewer app must NOT have set, and why. The
# app reads the store from HITL_STORE_URL; the others mean something only to a task.
# Secrets the function reads from Secrets Manager (HITL_OIDC_SECRETS_ARN), never from its
# environment; outside AWS (hitl serve) they may come as variables.
SECRETS_NOT_IN_ENV = {
    "HITL_OIDC_CLIENT_SECRET",
    "HITL_SESSION_SECRET",
    "HITL_SIGNING_KEY",
    # Slack's: on AWS read from HITL_SLACK_SECRETS_ARN
    "HITL_SLACK_SIGNING_SECRET",
    "HITL_SLACK_BOT_TOKEN",
}
NOT_FOR_THE_FUNCTION = {
    # the run a task belongs to; the app serves every run's gates
    "HITL_RUN_ID",
    # the base URL for links a *task* mints; the app never mints links, and setting it from
    # the template would make the function depend on its own API (a circular reference)
    "HITL_APP_URL",
    # the channels a waiting *task* notifies (secrets of the task's own); the app sends nothing
    "HITL_NOTIFY",
    # the public keys a *task* trusts; the app trusts its own (and publishes them)
    "HITL_VERIFY_KEYS",
    # the Slack channel a *task* posts its gates to, and a stand-in of Slack's API (tests)
    "HITL_SLACK_CHANNEL",
    "HITL_SLACK_API_URL",
}


# -- the template, read as CloudFormation ------------------------------------------------------


def load_template() -> dict[str, Any]:
    from cfnlint.decode import decode

    template, problems = decode(str(TEMPLATE))
    assert not problems, problems
    assert template is not None
    return dict(template)


NO_VALUE = object()


def resolve(node: Any, names: dict[str, str], conditions: dict[str, bool] | None = None) -> Any:
    """Resolve Ref, Fn::GetAtt, Fn::Sub and Fn::If with ``names`` and ``conditions`` (all
    false unless given: the stack's defaults); ``AWS::NoValue`` drops the item. An unknown
    name fails the test."""
    conditions = conditions or {}
    if isinstance(node, list):
        items = [resolve(item, names, conditions) for item in node]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::If"}:
        name, then, otherwise = node["Fn::If"]
        return resolve(then if conditions.get(name, False) else otherwise, names, conditions)
    if node == {"Ref": "AWS::NoValue"}:
        return NO_VALUE
    if set(node) == {"Ref"}:
        return names[node["Ref"]]
    if set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        return names[target if isinstance(target, str) else ".".join(target)]
    if set(node) == {"Fn::Sub"}:
        text, local = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
        scope = {**names, **{k: resolve(v, names, conditions) for k, v in local.items()}}
        return re.sub(r"\$\{([^}!]+)\}", lambda m: scope[m.group(1)], text)
    return {key: resolve(value, names, conditions) for key, value in node.items()}


def stack_names(bucket: str, prefix: str = PREFIX) -> dict[str, str]:
    return {
        "EventsBucket": bucket,
        "EventsBucket.Arn": f"arn:aws:s3:::{bucket}",
        "Prefix": prefix,
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "hitl-test",
        # the parameters' defaults: no sign-in
        **{
            name: str(spec.get("Default", ""))
            for name, spec in load_template()["Parameters"].items()
            if name not in ("Prefix",)
        },
        "OidcSecrets": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hitl-oidc",
        "SlackSecrets": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hitl-slack",
        "SigningKey": SIGNING_KEY_ARN,
    }


def function_properties() -> dict[str, Any]:
    resource = load_template()["Resources"]["HitlFunction"]
    assert resource["Type"] == "AWS::Serverless::Function"
    return dict(resource["Properties"])


def function_policy(bucket: str, *, oidc: bool = False, slack: bool = False) -> dict[str, Any]:
    statements: list[Any] = []
    conditions = {"UseOidc": oidc, "UseSlack": slack}
    for policy in function_properties()["Policies"]:
        # SAM policy templates (S3CrudPolicy, ...) grant whole buckets: inline statements only.
        assert isinstance(policy, dict) and "Statement" in policy, policy
        statements += resolve(policy["Statement"], stack_names(bucket), conditions)
    return {"Version": "2012-10-17", "Statement": statements}


def task_policy_from_template(bucket: str) -> dict[str, Any]:
    resource = load_template()["Resources"]["TaskPolicy"]
    assert resource["Type"] == "AWS::IAM::ManagedPolicy"
    return dict(resolve(resource["Properties"]["PolicyDocument"], stack_names(bucket)))


def task_policy_from_infra(bucket: str, prefix: str = PREFIX) -> dict[str, Any]:
    text = TASK_POLICY.read_text().replace("${Bucket}", bucket).replace("${Prefix}", prefix)
    assert "${" not in text, "infra/task-policy.json has a placeholder other than Bucket/Prefix"
    return dict(json.loads(text))


def template_routes() -> set[tuple[str, str]]:
    routes = set()
    for name, event in function_properties()["Events"].items():
        assert event["Type"] == "HttpApi", f"event {name} is not an HttpApi route"
        props = event["Properties"]
        assert props.get("ApiId") == {"Ref": "HttpApi"}, f"route {name} is not on the HttpApi"
        routes.add((props["Method"].upper(), props["Path"]))
    return routes


# -- a small IAM evaluator: what the policies allow -------------------------------------------


@dataclass(frozen=True)
class Access:
    """One S3 authorization the way IAM sees it."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    why: str = ""

    def ctx(self) -> dict[str, str]:
        return dict(self.context)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str) -> bool:
    # IAM wildcards: * is any run of characters (slashes too), ? is one character.
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _condition_holds(condition: dict[str, Any], ctx: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            present = key in ctx
            values = [str(v) for v in _as_list(wanted)]
            if operator == "Null":
                if (values[0] == "true") != (not present):
                    return False
            elif operator == "StringLike":
                if not present or not any(_like(v, ctx[key]) for v in values):
                    return False
            elif operator == "StringEquals":
                if not present or ctx[key] not in values:
                    return False
            elif operator == "Bool":
                if not present or ctx[key].lower() not in [v.lower() for v in values]:
                    return False
            else:
                raise AssertionError(f"the test's evaluator does not know {operator}")
    return True


def matches(statement: dict[str, Any], access: Access) -> tuple[str, str | None] | None:
    """The (resource pattern, condition value) of ``statement`` that covers ``access``."""
    if not any(_like(a, access.action) for a in _as_list(statement["Action"])):
        return None
    resource = next((r for r in _as_list(statement["Resource"]) if _like(r, access.resource)), None)
    if resource is None:
        return None
    condition = statement.get("Condition", {})
    if not _condition_holds(condition, access.ctx()):
        return None
    used_value = None
    for tests in condition.get("StringLike", {}).values():
        for value in _as_list(tests):
            if any(_like(value, v) for v in access.ctx().values()):
                used_value = value
    return resource, used_value


def denied_by(policy: dict[str, Any], access: Access) -> bool:
    return any(s["Effect"] == "Deny" and matches(s, access) for s in policy["Statement"])


def bucket_policy_of(bucket: str) -> dict[str, Any]:
    resource = load_template()["Resources"]["EventsBucketPolicy"]
    return dict(resolve(resource["Properties"]["PolicyDocument"], stack_names(bucket)))


def allowed(policy: dict[str, Any], access: Access) -> bool:
    statements = policy["Statement"]
    if any(s["Effect"] == "Deny" and matches(s, access) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and matches(s, access) for s in statements)


def grants(policy: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    """Every (Sid, resource, condition value) an Allow statement grants on S3: each must be
    used (the recorders see S3 requests; other services' grants have tests of their own)."""
    found: set[tuple[str, str, str | None]] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", "a Deny in an identity policy hides a wrong grant"
        if not all(str(a).startswith("s3:") for a in _as_list(statement["Action"])):
            continue
        values = [
            v
            for tests in statement.get("Condition", {}).get("StringLike", {}).values()
            for v in _as_list(tests)
        ] or [None]
        for resource in _as_list(statement["Resource"]):
            for value in values:
                found.add((statement["Sid"], resource, value))
    return found


def used_grants(policy: dict[str, Any], accesses: list[Access]) -> set[tuple[str, str, str | None]]:
    used = set()
    for access in accesses:
        for statement in policy["Statement"]:
            hit = matches(statement, access)
            if hit is not None:
                used.add((statement["Sid"], hit[0], hit[1]))
    return used


# -- recording the S3 requests the code sends ---------------------------------------------------


@dataclass
class S3Recorder:
    """An HTTP proxy in front of the moto server that keeps every request it forwards."""

    upstream: str
    requests: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        target = urllib.parse.urlsplit(self.upstream)
        recorded = self.requests

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(str(target.hostname), target.port, timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                upstream = conn.getresponse()
                data = upstream.read()
                conn.close()
                recorded.append((self.command, self.path, dict(self.headers), upstream.status))
                self.send_response(upstream.status)
                for key, value in upstream.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                length_out = upstream.getheader("Content-Length", "0")
                self.send_header(
                    "Content-Length", length_out if self.command == "HEAD" else str(len(data))
                )
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextlib.contextmanager
    def as_endpoint(self) -> Iterator[None]:
        """S3 clients made inside this block send their requests through this recorder."""
        before = os.environ.get("AWS_ENDPOINT_URL_S3")
        os.environ["AWS_ENDPOINT_URL_S3"] = self.url
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("AWS_ENDPOINT_URL_S3", None)
            else:
                os.environ["AWS_ENDPOINT_URL_S3"] = before

    def accesses(self) -> list[Access]:
        """The recorded requests as IAM authorizations (a 404 read also needs ListBucket)."""
        out: list[Access] = []
        for method, raw_path, headers, status in self.requests:
            url = urllib.parse.urlsplit(raw_path)
            bucket, _, key = urllib.parse.unquote(url.path).lstrip("/").partition("/")
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            lower = {k.lower(): v for k, v in headers.items()}
            why = f"{method} {raw_path} -> {status}"
            if not key:
                if method == "GET" and set(query) & {"list-type", "prefix", "delimiter"}:
                    context = (("s3:prefix", query["prefix"]),) if "prefix" in query else ()
                    out.append(Access("s3:ListBucket", f"arn:aws:s3:::{bucket}", context, why))
                    continue
                raise AssertionError(f"unmapped bucket request {why}: extend the test's map")
            arn = f"arn:aws:s3:::{bucket}/{key}"
            if method in ("GET", "HEAD") and not query:
                out.append(Access("s3:GetObject", arn, (), why))
                if status == 404:  # S3 answers 404, not 403, only to who may list the key
                    bucket_arn = f"arn:aws:s3:::{bucket}"
                    out.append(Access("s3:ListBucket", bucket_arn, (("s3:prefix", key),), why))
            elif method == "PUT" and not query and "x-amz-copy-source" not in lower:
                context = (
                    (("s3:if-none-match", lower["if-none-match"]),)
                    if "if-none-match" in lower
                    else ()
                )
                out.append(Access("s3:PutObject", arn, context, why))
            elif method == "DELETE" and not query:
                out.append(Access("s3:DeleteObject", arn, (), why))
            else:
                raise AssertionError(f"unmapped object request {why}: extend the test's map")
        return out


@pytest.fixture
def recorders(moto_endpoint: str) -> Iterator[tuple[S3Recorder, S3Recorder]]:
    """One recording proxy for the task's requests, one for the reviewer app's."""
    task, app = S3Recorder(moto_endpoint), S3Recorder(moto_endpoint)
    yield task, app
    task.close()
    app.close()


def cold_start_env(bucket: str, endpoint: str) -> dict[str, str]:
    """The environment a cold start sees: the template's variables and Lambda's AWS ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=endpoint,
        PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
    )
    variables = function_properties()["Environment"]["Variables"]
    env.update({k: str(v) for k, v in resolve(variables, stack_names(bucket)).items()})
    return env


COLD_START = textwrap.dedent(
    """
    import importlib, json, sys
    module_name, _, attr = sys.argv[1].rpartition(".")
    handler = getattr(importlib.import_module(module_name), attr)
    from apigw import apigw_event, invoke
    response = invoke(handler, apigw_event("GET", "/health"))
    print(json.dumps({"status": response["statusCode"], "body": response.get("body")}))
    """
)


def run_cold_start(bucket: str, endpoint: str) -> dict[str, Any]:
    handler = function_properties()["Handler"]
    result = subprocess.run(
        [sys.executable, "-c", COLD_START, handler],
        env=cold_start_env(bucket, endpoint),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"cold start of {handler} failed:\n{result.stderr[-3000:]}"
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


# -- the tests ---------------------------------------------------------------------------------


def test_cfn_lint_passes() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    assert cfn_lint, "cfn-lint is missing: it comes with the dev extra (pip install -e '.[dev]')"
    result = subprocess.run(
        [cfn_lint, str(TEMPLATE)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_function_settings() -> None:
    props = function_properties()
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "hitl_lambda.handler.handler"
    assert props["CodeUri"] == "build/lambda"
    # sam build runs the Makefile the package build writes; its target names this resource.
    resource = load_template()["Resources"]["HitlFunction"]
    assert resource["Metadata"]["BuildMethod"] == "makefile"
    builder = (ROOT / "infra" / "build_lambda_package.py").read_text()
    assert "build-HitlFunction:" in builder
    assert 128 <= props["MemorySize"] <= 1769  # more than one vCPU buys this app nothing
    assert props["Timeout"] < 30, "API Gateway gives up after 30 s; the function must not"


def test_bucket_is_private_encrypted_versioned_and_expires_records() -> None:
    resources = load_template()["Resources"]
    bucket = resources["EventsBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    expiring = [
        rule
        for rule in bucket["LifecycleConfiguration"]["Rules"]
        if rule.get("ExpirationInDays") == {"Ref": "RetentionDays"}
    ]
    prefixes = {resolve(rule["Prefix"], stack_names("b")) for rule in expiring}
    assert prefixes == {f"{PREFIX}/runs/", f"{PREFIX}/inbox/"}  # records and their index
    assert resources["EventsBucket"]["DeletionPolicy"] == "Retain"

    policy = bucket_policy_of("b")
    assert all(s["Effect"] == "Deny" and s["Principal"] == "*" for s in policy["Statement"])
    plain = (("aws:SecureTransport", "false"),)
    assert denied_by(policy, Access("s3:GetObject", "arn:aws:s3:::b/x", plain))
    assert denied_by(policy, Access("s3:ListBucket", "arn:aws:s3:::b", plain))
    tls = (("aws:SecureTransport", "true"),)
    assert not denied_by(policy, Access("s3:GetObject", "arn:aws:s3:::b/x", tls))
    record = f"arn:aws:s3:::b/{PREFIX}/runs/r/decisions/e.json"
    assert denied_by(policy, Access("s3:PutObject", record, tls))  # an overwrite
    create = (*tls, ("s3:if-none-match", "*"))
    assert not denied_by(policy, Access("s3:PutObject", record, create))
    # Nobody deletes a record either (a delete + re-create would replace an answer);
    # lifecycle expiry is not subject to the bucket policy.
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert denied_by(policy, Access(action, record, tls)), action
        assert denied_by(policy, Access(action, record, create)), action
    # The inbox index likewise: markers are created once, never replaced or removed.
    marker = f"arn:aws:s3:::b/{PREFIX}/inbox/u-a/20260101T000000Z/r.e/x.abc"
    assert denied_by(policy, Access("s3:PutObject", marker, tls))
    assert not denied_by(policy, Access("s3:PutObject", marker, create))
    assert denied_by(policy, Access("s3:DeleteObject", marker, tls))


def test_api_routes_exactly_what_the_app_serves() -> None:
    from fastapi.routing import APIRoute

    from hitl_lambda.app import create_app
    from hitl_lambda.auth import OidcSettings
    from hitl_lambda.slack import SlackApp
    from hitl_sdk.storage.store import Store

    # Every route, the inbox's and Slack's included (sign-in and Slack on); without them the
    # app answers those 404.
    oidc = OidcSettings(
        issuer="https://idp.example.com", client_id="c", client_secret=None, session_secret="s" * 40
    )
    slack = SlackApp("signing-secret", "xoxb-token", "https://slack.com/api/")
    app = create_app(Store(f"memory://routes-{uuid.uuid4().hex[:8]}"), oidc=oidc, slack=slack)
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, APIRoute), (
            f"{route!r} is not an API route: route it in the template"
        )
        served |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    assert served, "the app serves no routes?"
    assert template_routes() == served

    api = load_template()["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert api["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert api["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}


def _environment_reads(path: Path) -> set[str]:
    text = path.read_text()
    names = set(
        re.findall(r"(?:os\.environ|env)\.get\(\s*[\"']([A-Z0-9_]+)[\"']", text)
        + re.findall(r"os\.getenv\(\s*[\"']([A-Z0-9_]+)[\"']", text)
        + re.findall(r"os\.environ\[\s*[\"']([A-Z0-9_]+)[\"']\s*\]", text)
    )
    # a name kept in a module constant: VARIABLE = "HITL_..." then os.environ.get(VARIABLE)
    for constant in re.findall(r"os\.(?:environ\.get|getenv)\(\s*([A-Z_][A-Z0-9_]*)\s*[,)]", text):
        names |= set(re.findall(rf"^{constant}\s*=\s*[\"']([A-Z0-9_]+)[\"']", text, re.M))
    return {n for n in names if n.startswith("HITL_")}


def test_every_variable_the_app_reads_is_set() -> None:
    app_files = sorted((ROOT / "hitl_lambda").rglob("*.py"))
    read_by_app = set().union(*(_environment_reads(p) for p in app_files))
    # The app builds on hitl_sdk; its settings live in _config, but a variable read anywhere
    # in the SDK is one the function may meet.
    sdk_files = sorted((ROOT / "hitl_sdk").rglob("*.py"))
    read_by_settings = set().union(*(_environment_reads(p) for p in sdk_files))
    assert "HITL_STORE_URL" in read_by_app | read_by_settings, "the scan found nothing: fix it"
    assert read_by_settings >= NOT_FOR_THE_FUNCTION, "an exemption no code needs: remove it"

    set_by_template = set(function_properties()["Environment"]["Variables"])
    assert not read_by_app & NOT_FOR_THE_FUNCTION, "the app reads a variable the template omits"
    assert not set_by_template & SECRETS_NOT_IN_ENV, "a secret in the function's environment"
    skipped = NOT_FOR_THE_FUNCTION | SECRETS_NOT_IN_ENV
    assert set_by_template == (read_by_app | read_by_settings) - skipped
    assert set_by_template >= read_by_app - SECRETS_NOT_IN_ENV


def test_cold_start_with_the_templates_environment_serves_health(
    s3_bucket: str, moto_endpoint: str
) -> None:
    response = run_cold_start(s3_bucket, moto_endpoint)
    assert response["status"] == 200, response


def test_policies_cover_exactly_the_requests_the_code_sends(
    s3_bucket: str, recorders: tuple[S3Recorder, S3Recorder]
) -> None:
    from apigw import apigw_event, form_post_event, invoke, json_post_event
    from mangum import Mangum

    import hitl_sdk as hitl
    from hitl_lambda.app import create_app
    from hitl_sdk import _config
    from hitl_sdk.storage import DecisionRecord
    from hitl_sdk.storage.store import Store

    task_rec, app_rec = recorders
    store_url = f"s3://{s3_bucket}/{PREFIX}"

    # The function's cold start, in its own process, with the template's environment.
    assert run_cold_start(s3_bucket, app_rec.url)["status"] == 200
    with app_rec.as_endpoint():  # the store's S3 client is made now, pointed at the recorder
        handler = Mangum(create_app(Store(store_url, for_requests=True)), lifespan="off")

    # A task opens two gates; a restart adopts one (new links become grants).
    _config.configure(store_url=store_url, run_id=f"run-{uuid.uuid4().hex[:6]}")
    with task_rec.as_endpoint():
        _config.get_store()
    answered = hitl.new_event("ship", data_type=bool, timeout_seconds=60, poll_interval_seconds=0.1)
    _config.configure(store_url=store_url)  # the restarted task: a new process, a new store
    with task_rec.as_endpoint():
        _config.get_store()
    adopted = hitl.new_event("ship", data_type=bool, timeout_seconds=60, poll_interval_seconds=0.1)
    # It also sends a reminder before it lapses: the claim is a write under notices/ (the
    # channel, a closed loopback port, fails in the background and is no concern here).
    lapsing = hitl.new_event(
        "late",
        data_type=int,
        timeout_seconds=3,  # its first reminder is due at 0.4 s: time to spare on a busy machine
        poll_interval_seconds=0.2,
        remind_every=0.4,
        notify="json://127.0.0.1:9",
    )
    # Reminders are driven by a waiting task's poll loop: wait on it from now on (a slow
    # machine may reach the end of the reviewer's calls below after its deadline).
    lapsed: list[BaseException] = []

    def wait_lapsing() -> None:
        try:
            lapsing.wait()
        except TimeoutError as exc:
            lapsed.append(exc)

    lapsing_waiter = threading.Thread(target=wait_lapsing, daemon=True)
    lapsing_waiter.start()
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(adopted.form_url).query)["token"][0]
    first = urllib.parse.parse_qs(urllib.parse.urlsplit(answered.form_url).query)["token"][0]

    # A reviewer: health, the form, a wrong value, an answer through a grant, a second answer,
    # the status, an unknown event.
    rid = answered.request_id
    calls = [
        (apigw_event("GET", "/health"), 200),
        (apigw_event("GET", f"/form/{rid}", query={"token": first}), 200),
        (form_post_event({"request_id": rid, "token": token, "value": "maybe"}), 400),
        (json_post_event({"request_id": rid, "token": token, "value": True}), 200),
        (json_post_event({"request_id": rid, "token": first, "value": False}), 409),
        (apigw_event("GET", f"/status/{rid}", query={"token": first}), 200),
        (apigw_event("GET", f"/form/{rid.split('.')[0]}.nope", query={"token": first}), 404),
    ]
    for event, status in calls:
        response = invoke(handler, event)
        assert response["statusCode"] == status, (event["rawPath"], response.get("body"))

    def other_app() -> Any:
        with app_rec.as_endpoint():
            return Mangum(create_app(Store(store_url, for_requests=True)), lifespan="off")

    # A task forges an answer to its own gate (its role may write decisions/, for timeouts):
    # the app sets it aside and writes the reviewer's signed answer to signed/, which the
    # task's role may read and never write; the task believes only that one.
    forged = hitl.new_event("forged", data_type=bool, timeout_seconds=60, poll_interval_seconds=0.1)
    planted = DecisionRecord(request_id=forged.request_id, status="answered", value=True, via="api")
    with task_rec.as_endpoint():
        _config.get_store().create_decision(planted)
    real = json_post_event({"request_id": forged.request_id, "token": forged.token, "value": False})
    assert invoke(handler, real)["statusCode"] == 200
    assert forged.wait() is False
    shown = apigw_event("GET", f"/form/{forged.request_id}", query={"token": forged.token})
    assert invoke(other_app(), shown)["statusCode"] == 200  # an instance that reads signed/

    # The task reads the answer, and writes the timeout of the gate nobody answered.
    assert answered.wait() is True
    lapsing_waiter.join(timeout=30)
    assert lapsed, "the unanswered gate did not time out"
    # A quorum gate: one vote through the app, seen by a second app instance and by the task,
    # which then writes the timeout listing it.
    quorum = hitl.approve.open(
        "both", reviewers=["ann", "ben"], quorum=2, timeout_seconds=2, poll_interval_seconds=0.1
    )
    ann, ben = (
        urllib.parse.parse_qs(urllib.parse.urlsplit(quorum.links[n]).query)["token"][0]
        for n in ("ann", "ben")
    )
    with app_rec.as_endpoint():
        other_instance = Mangum(create_app(Store(store_url, for_requests=True)), lifespan="off")
    vote = json_post_event({"request_id": quorum.request_id, "token": ann, "value": True})
    assert invoke(handler, vote)["statusCode"] == 200
    ben_form = apigw_event("GET", f"/form/{quorum.request_id}", query={"token": ben})
    assert "ann" in invoke(other_instance, ben_form)["body"]
    assert not quorum.wait().approved  # its timeout (fail closed), after reading ann's vote

    bucket_policy = bucket_policy_of(s3_bucket)
    for who, recorder, policy in (
        ("task role (TaskPolicy)", task_rec, task_policy_from_template(s3_bucket)),
        ("function role", app_rec, function_policy(s3_bucket)),
    ):
        accesses = recorder.accesses()
        assert accesses, f"nothing recorded for the {who}"
        denied = [
            a.why + f" needs {a.action} {a.resource} {a.ctx()}"
            for a in accesses
            if not allowed(policy, a)
        ]
        assert not denied, f"the {who} policy would deny:\n" + "\n".join(denied)
        refused = [a.why for a in accesses if denied_by(bucket_policy, a)]
        assert not refused, "the bucket policy would refuse:\n" + "\n".join(refused)
        unused = grants(policy) - used_grants(policy, accesses)
        assert not unused, f"the {who} policy grants what the code never uses: {unused}"


def test_the_inbox_policy_covers_what_signed_in_reviewers_send(
    s3_bucket: str, recorders: tuple[S3Recorder, S3Recorder]
) -> None:
    """With sign-in on (UseOidc), the function lists inboxes, answers a gate from one and marks
    it closed: each request allowed, and each inbox grant used."""
    import re as _re

    from apigw import apigw_event, form_post_event, invoke
    from mangum import Mangum
    from oidc import OidcProvider
    from test_inbox import SECRET, cookie_value, header, set_cookies, with_cookies

    import hitl_sdk as hitl
    from hitl_lambda.app import create_app
    from hitl_lambda.auth import OidcSettings
    from hitl_sdk import _config
    from hitl_sdk.storage.store import Store

    _, app_rec = recorders
    store_url = f"s3://{s3_bucket}/{PREFIX}"
    _config.configure(store_url=store_url, run_id=f"inbox-{uuid.uuid4().hex[:6]}")
    gate = hitl.new_event("ship", bool, reviewers=["alice@example.com"])
    with OidcProvider() as issuer:
        issuer.user("alice@example.com")
        settings = OidcSettings.from_env(
            {
                "HITL_OIDC_ISSUER": issuer.url,
                "HITL_OIDC_CLIENT_ID": "hitl",
                "HITL_OIDC_CLIENT_SECRET": "client-secret",
                "HITL_SESSION_SECRET": SECRET,
                "HITL_OIDC_REDIRECT_URI": "https://app.example/auth/callback",
            }
        )
        with app_rec.as_endpoint():
            app = Mangum(
                create_app(Store(store_url, for_requests=True), oidc=settings), lifespan="off"
            )
        started = invoke(app, apigw_event("GET", "/login"))
        back = urllib.parse.urlsplit(
            issuer.authorize(header(started, "location") or "", "alice@example.com")
        )
        login = cookie_value(set_cookies(started)["hitl_login"])
        done = invoke(
            app, with_cookies(apigw_event("GET", back.path, query=back.query), hitl_login=login)
        )
        assert done["statusCode"] == 303, done["body"][-600:]
        session = cookie_value(set_cookies(done)["hitl_session"])
    page = invoke(app, with_cookies(apigw_event("GET", "/inbox"), hitl_session=session))
    assert page["statusCode"] == 200 and "ship" in page["body"]
    form = invoke(
        app,
        with_cookies(apigw_event("GET", f"/inbox/gate/{gate.request_id}"), hitl_session=session),
    )
    csrf = _re.search(r'name="csrf" value="([0-9a-f]+)"', form["body"])
    assert csrf is not None
    answer = form_post_event(
        {"request_id": gate.request_id, "value": "true", "csrf": csrf.group(1)},
        path=f"/inbox/gate/{gate.request_id}",
    )
    assert invoke(app, with_cookies(answer, hitl_session=session))["statusCode"] == 303

    policy = function_policy(s3_bucket, oidc=True)
    accesses = app_rec.accesses()
    denied = [a.why for a in accesses if not allowed(policy, a)]
    assert not denied, "the function policy (sign-in on) would deny:\n" + "\n".join(denied)
    used = {sid for sid, _, _ in used_grants(policy, accesses)}
    assert {"ListInbox", "MarkInboxClosed"} <= used, used
    assert not {"ListInbox", "MarkInboxClosed"} & {
        s["Sid"] for s in function_policy(s3_bucket)["Statement"]
    }, "inbox grants without sign-in"


def test_the_slack_policy_covers_what_a_click_sends(
    s3_bucket: str, recorders: tuple[S3Recorder, S3Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Slack on (UseSlack), a reviewer's click: the function reads the gate, claims the
    signed request once, reads the messages to update and writes the answer; each request
    allowed, each Slack grant used, none of them granted without Slack."""
    from apigw import apigw_event, invoke
    from mangum import Mangum
    from slack_standin import BOT_TOKEN, SIGNING_SECRET, SlackStandIn, click, signed

    import hitl_sdk as hitl
    from hitl_lambda.app import create_app
    from hitl_lambda.slack import SlackApp
    from hitl_sdk import _config
    from hitl_sdk.chat import APPROVE
    from hitl_sdk.storage.store import Store

    _, app_rec = recorders
    standin = SlackStandIn({"UBOB": "bob@example.com"})
    try:
        monkeypatch.setenv("HITL_SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("HITL_SLACK_CHANNEL", "CREVIEW")
        monkeypatch.setenv("HITL_SLACK_API_URL", standin.url)
        store_url = f"s3://{s3_bucket}/{PREFIX}"
        _config.configure(store_url=store_url, run_id=f"slack-{uuid.uuid4().hex[:6]}")
        gate = hitl.approve.open("ship", "Ship?", reviewers=["bob@example.com"])
        posted = standin.called("chat.postMessage")[0]
        with app_rec.as_endpoint():
            slack = SlackApp(SIGNING_SECRET, BOT_TOKEN, standin.url)
            app = Mangum(
                create_app(Store(store_url, for_requests=True), slack=slack), lifespan="off"
            )
        body, headers = signed(click("UBOB", APPROVE, gate.request_id, posted["channel"], "1.0"))
        event = apigw_event(
            "POST", "/slack/interactivity", body=body, headers=headers, base64=True, sample="form"
        )
        assert invoke(app, event)["statusCode"] == 200
        assert standin.called("chat.update"), "the messages were not updated"
    finally:
        standin.close()

    policy = function_policy(s3_bucket, slack=True)
    accesses = app_rec.accesses()
    denied = [a.why for a in accesses if not allowed(policy, a)]
    assert not denied, "the function policy (Slack on) would deny:\n" + "\n".join(denied)
    used = {sid for sid, _, _ in used_grants(policy, accesses)}
    slack_grants = {"ReadSlackMessages", "ClaimSlackRequests"}
    assert slack_grants <= used, used
    assert not slack_grants & {s["Sid"] for s in function_policy(s3_bucket)["Statement"]}


NEVER = {
    # action, key under the prefix (or a bucket-level prefix), context
    "overwrite a decision": ("s3:PutObject", "runs/r/decisions/e.json", ()),
    "delete anything": ("s3:DeleteObject", "runs/r/decisions/e.json", ()),
    "read outside the prefix": ("s3:GetObject", "../other/runs/r/events/e.json", ()),
    "write outside the prefix": (
        "s3:PutObject",
        "../other/runs/r/decisions/e.json",
        (("s3:if-none-match", "*"),),
    ),
    "list the whole bucket": ("s3:ListBucket", None, ()),
    "list another prefix": ("s3:ListBucket", None, (("s3:prefix", "other/"),)),
    "change the bucket": ("s3:PutBucketPolicy", None, ()),
}


@pytest.mark.parametrize("who", ["function", "task", "task-json"])
@pytest.mark.parametrize("what", sorted(NEVER))
def test_policies_deny_what_no_code_needs(who: str, what: str) -> None:
    bucket = "hitl-bucket"
    policy = {
        "function": function_policy,
        "task": task_policy_from_template,
        "task-json": task_policy_from_infra,
    }[who](bucket)
    action, key, context = NEVER[what]
    resource = f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{PREFIX}/{key}"
    resource = resource.replace(f"/{PREFIX}/../", "/")
    assert not allowed(policy, Access(action, resource, context)), what


def test_only_the_function_reaches_the_signing_key_and_the_second_slot() -> None:
    fn, task, task_json = (
        function_policy("b"),
        task_policy_from_template("b"),
        task_policy_from_infra("b"),
    )
    read_key = Access("secretsmanager:GetSecretValue", SIGNING_KEY_ARN)
    assert allowed(fn, read_key)
    for policy in (task, task_json):
        assert not allowed(policy, read_key)
        assert not any(
            not str(a).startswith("s3:")
            for st in policy["Statement"]
            for a in _as_list(st["Action"])
        ), "the task's role reaches beyond S3"
    create = (("s3:if-none-match", "*"),)
    signed = f"arn:aws:s3:::b/{PREFIX}/runs/r/signed/e.json"
    assert allowed(fn, Access("s3:PutObject", signed, create))
    for policy in (task, task_json):
        assert not allowed(policy, Access("s3:PutObject", signed, create))
        assert allowed(policy, Access("s3:GetObject", signed))
        for kind in ("votes", "signed"):
            key = f"arn:aws:s3:::b/{PREFIX}/runs/r/{kind}/e/v.json"
            assert not allowed(policy, Access("s3:PutObject", key, create)), kind
    secret = load_template()["Resources"]["SigningKey"]["Properties"]["GenerateSecretString"]
    assert secret["GenerateStringKey"] == "seed" and secret["PasswordLength"] >= 32
    env = function_properties()["Environment"]["Variables"]
    assert env["HITL_SIGNING_SECRET_ARN"] == {"Ref": "SigningKey"}


def test_function_cannot_create_events_or_grants_and_task_cannot_read_grants() -> None:
    fn, task = function_policy("b"), task_policy_from_template("b")
    create = (("s3:if-none-match", "*"),)
    for kind in ("events", "grants"):
        assert not allowed(
            fn, Access("s3:PutObject", f"arn:aws:s3:::b/{PREFIX}/runs/r/{kind}/e", create)
        )
    assert not allowed(
        task, Access("s3:GetObject", f"arn:aws:s3:::b/{PREFIX}/runs/r/grants/e/d.json")
    )


def test_task_policy_json_matches_the_template() -> None:
    data = json.loads(TASK_POLICY.read_text())
    assert data["Version"] == "2012-10-17"
    for statement in data["Statement"]:
        assert {"Sid", "Effect", "Action", "Resource"} <= set(statement)
    assert task_policy_from_infra("some-bucket", PREFIX) == task_policy_from_template("some-bucket")


# -- infra/stack-env ---------------------------------------------------------------------------

STACK_ENV = ROOT / "infra" / "stack-env"
OUTPUTS_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {
        "ApiUrl": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com"},
        "StoreUrl": {"Value": "s3://hitl-events-xyz/hitl"},
        "BucketName": {"Value": "hitl-events-xyz"},
    },
}


def _stack_env(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HITL_")}
    env["AWS_ENDPOINT_URL"] = endpoint
    return subprocess.run(
        [sys.executable, str(STACK_ENV), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_stack_env_prints_the_sdk_settings_from_the_stack_outputs(moto_endpoint: str) -> None:
    import boto3

    name = f"hitl-{uuid.uuid4().hex[:8]}"
    boto3.client("cloudformation", endpoint_url=moto_endpoint).create_stack(
        StackName=name, TemplateBody=json.dumps(OUTPUTS_TEMPLATE)
    )
    result = _stack_env(name, endpoint=moto_endpoint)
    assert result.returncode == 0, result.stderr
    exported = subprocess.run(
        ["bash", "-c", f'{result.stdout}\nprintf "%s\\n" "$HITL_STORE_URL" "$HITL_APP_URL"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert exported == [
        "s3://hitl-events-xyz/hitl",
        "https://abc123.execute-api.us-east-1.amazonaws.com",
    ]


def test_stack_env_names_a_missing_stack(moto_endpoint: str) -> None:
    result = _stack_env("no-such-stack", endpoint=moto_endpoint)
    assert result.returncode != 0
    assert "no-such-stack" in result.stderr and "sam deploy" in result.stderr
    assert result.stdout == ""


# -- infra/teardown.py -------------------------------------------------------------------------

TEARDOWN = ROOT / "infra" / "teardown.py"


def _stack_with_bucket(endpoint: str) -> tuple[str, str]:
    """A stack whose BucketName output names a versioned bucket holding two versions."""
    import boto3

    name, bucket = f"hitl-{uuid.uuid4().hex[:8]}", f"hitl-events-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/runs/r/events/e.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/runs/r/events/e.json", Body=b"{ }")
    outputs = {"BucketName": {"Value": bucket}}
    body = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}
    boto3.client("cloudformation", endpoint_url=endpoint).create_stack(
        StackName=name, TemplateBody=json.dumps(body)
    )
    return name, bucket


def _teardown(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    return subprocess.run(
        [sys.executable, str(TEARDOWN), *args], env=env, capture_output=True, text=True, timeout=60
    )


def _bucket_exists(endpoint: str, bucket: str) -> bool:
    import boto3

    names = boto3.client("s3", endpoint_url=endpoint).list_buckets()["Buckets"]
    return bucket in {b["Name"] for b in names}


def test_teardown_keeps_the_bucket_unless_purged(moto_endpoint: str) -> None:
    stack, bucket = _stack_with_bucket(moto_endpoint)
    result = _teardown(stack, endpoint=moto_endpoint)
    assert result.returncode == 0, result.stderr
    assert f"bucket {bucket} kept" in result.stdout
    assert _bucket_exists(moto_endpoint, bucket)

    again = _teardown(stack, "--purge", endpoint=moto_endpoint)  # the stack is gone now
    assert again.returncode != 0 and "--bucket" in again.stderr

    purged = _teardown(stack, "--purge", "--yes", "--bucket", bucket, endpoint=moto_endpoint)
    assert purged.returncode == 0, purged.stderr
    assert "with 2 object versions" in purged.stdout
    assert not _bucket_exists(moto_endpoint, bucket)


def test_teardown_purge_asks_for_the_bucket_name(moto_endpoint: str) -> None:
    stack, bucket = _stack_with_bucket(moto_endpoint)
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint}
    result = subprocess.run(
        [sys.executable, str(TEARDOWN), stack, "--purge"],
        env=env,
        input="wrong-name\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "nothing deleted" in result.stderr
    assert _bucket_exists(moto_endpoint, bucket)


@pytest.mark.parametrize("who", ["function", "task", "task-json"])
def test_policies_are_valid_iam_documents(who: str, moto_endpoint: str) -> None:
    import boto3

    policy = {
        "function": function_policy,
        "task": task_policy_from_template,
        "task-json": task_policy_from_infra,
    }[who]("hitl-bucket")
    iam = boto3.client("iam", endpoint_url=moto_endpoint)
    # moto validates the grammar (versions, actions, ARNs, condition blocks) like IAM does.
    iam.create_policy(PolicyName=f"{who}-{uuid.uuid4().hex[:8]}", PolicyDocument=json.dumps(policy))


def test_snapstart_is_a_parameter_off_by_default() -> None:
    template = load_template()
    parameter = template["Parameters"]["SnapStart"]
    assert parameter["Default"] == "off" and set(parameter["AllowedValues"]) == {"on", "off"}
    props = function_properties()
    # SnapStart applies to published versions: the API must invoke the alias of one.
    assert props["AutoPublishAlias"] == "live"
    apply_on = template["Resources"]["HitlFunction"]["Properties"]["SnapStart"]["ApplyOn"]
    assert apply_on == {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}


RESTORE = textwrap.dedent(
    """
    import json, os
    import snapshot_restore_py as runtime_hooks
    import hitl_lambda.handler as function
    from apigw import apigw_event, invoke
    from hitl_sdk.storage import EventKeys

    assert [f.__name__ for f in runtime_hooks.AFTER_RESTORE] == ["renew_store_client"]
    before = function.app.state.store.objects.client
    os.environ["AWS_ACCESS_KEY_ID"] = "RESTOREDKEY"  # what a restored instance is given
    for hook in runtime_hooks.AFTER_RESTORE:
        hook()
    assert function.app.state.store.objects.client is not before
    unknown = EventKeys.for_name("restored", "gate").request_id
    status = apigw_event("GET", f"/status/{unknown}", query={"token": "A" * 32})
    response = invoke(function.handler, status)
    print(json.dumps({"status": response["statusCode"]}))
    """
)


def test_after_a_snapstart_restore_the_app_uses_a_new_client_with_new_credentials(
    s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    # Lambda's Python runtime provides snapshot_restore_py; this stand-in records the hooks
    # the handler registers so the test can run them the way a restore does.
    (tmp_path / "snapshot_restore_py.py").write_text(
        "AFTER_RESTORE = []\n"
        "def register_after_restore(fn, *args, **kwargs):\n"
        "    AFTER_RESTORE.append(fn)\n"
        "    return fn\n"
    )
    recorder = S3Recorder(moto_endpoint)
    try:
        env = cold_start_env(s3_bucket, recorder.url)
        env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
        result = subprocess.run(
            [sys.executable, "-c", RESTORE],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"status": 404}
        signed = [
            h.get("Authorization", h.get("authorization", "")) for _, _, h, _ in recorder.requests
        ]
        assert "Credential=testing/" in signed[0]  # the cold start's check
        assert "Credential=RESTOREDKEY/" in signed[-1]  # the request after the restore
    finally:
        recorder.close()
