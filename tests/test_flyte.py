"""Flyte 2 integration: the seed's workflow (examples/flyte_workflow.py) run by Flyte locally,
its gate answered through the Lambda handler with real API Gateway v2 events on a moto S3
store, with the link taken from the task report; a killed gate resumes the same event."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from apigw import Handler, apigw_event, form_post_event, invoke, json_post_event, response_json
from apigw import response_text as text_of
from mangum import Mangum

import hitl_sdk as hitl
from hitl_lambda.app import create_app
from hitl_sdk import _config
from hitl_sdk import answers as _answers
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.records import EventRecord, Status
from hitl_sdk.storage.store import Store

flyte = pytest.importorskip("flyte")

pytestmark = pytest.mark.flyte

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "flyte_workflow.py"
APP_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"
LOCAL_RUNS = Path("/tmp/flyte/metadata")  # where Flyte's local mode writes each action's report
POLL = 0.05
PANEL_RE = re.compile(r'<section class="hitl-gate" data-hitl-request="[^"]+">.*?</section>', re.S)


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """examples/flyte_workflow.py, imported once (its TaskEnvironment registers globally)."""
    spec = importlib.util.spec_from_file_location("flyte_workflow", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["flyte_workflow"] = module
    spec.loader.exec_module(module)
    flyte.init()
    return module


@pytest.fixture
def run_name() -> Iterator[str]:
    """A fresh Flyte run name; its local metadata (reports) is removed afterwards."""
    name = f"hitl-test-{uuid.uuid4().hex[:10]}"
    yield name
    shutil.rmtree(LOCAL_RUNS / name, ignore_errors=True)


@pytest.fixture
def s3_store(s3_url: str) -> Store:
    _config.configure(store_url=s3_url, app_url=APP_URL)
    return _config.get_store()


@pytest.fixture
def handler(s3_store: Store) -> Handler:
    """The Lambda handler as deployed (Mangum over the app), on the test's store."""
    return Mangum(create_app(Store(s3_store.url)), lifespan="off")


def run_local(task: Any, run: str, **inputs: Any) -> Any:
    return flyte.with_runcontext(mode="local", name=run).run(task, **inputs)


def panels(run: str) -> list[str]:
    """Every gate panel in every report of the run, unescaped only where HTML requires."""
    found: list[str] = []
    for report in sorted((LOCAL_RUNS / run).glob("*/report.html")):
        try:
            found += PANEL_RE.findall(report.read_text())
        except (OSError, UnicodeDecodeError):  # caught mid-write: the next look sees it whole
            continue
    return found


def wait_for_panel(run: str, state: str, timeout: float = 30.0) -> str:
    """The run's (one) gate panel once its report shows ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = [p for p in panels(run) if f'data-hitl-state="{state}"' in p]
        if shown:
            assert len(shown) == 1, shown
            return shown[0]
        time.sleep(POLL)
    raise AssertionError(f"no {state} gate panel in the reports of run {run}: {panels(run)}")


def form_link(panel: str) -> tuple[str, str, str]:
    """(path, request_id, token) of the form link in a report panel."""
    match = re.search(r'class="hitl-form-link" href="([^"]+)"', panel)
    assert match, panel
    url = urlsplit(html.unescape(match.group(1)))
    assert f"{url.scheme}://{url.netloc}" == APP_URL
    token = parse_qs(url.query)["token"][0]
    request_id = url.path.rsplit("/", 1)[1]
    return url.path, request_id, token


def curl_line(panel: str) -> list[str]:
    match = re.search(r'<pre class="hitl-curl">(.*?)</pre>', panel, re.S)
    assert match, panel
    return shlex.split(html.unescape(match.group(1)))


RELEASE_VALUES = {"bool": "false", "int": "0", "float": "0", "str": "released"}


def release_all(store: Store) -> None:
    """Answer every pending gate in the (per-test) store, so a broken test fails instead of
    leaving its Flyte run waiting out the default hour."""
    for event in store.iter_events():
        if _answers.load(store, event.request_id).status is Status.PENDING:
            value = RELEASE_VALUES[event.data_type]
            _answers.submit(store, event.request_id, value, via="cli", operator="watchdog")


@contextmanager
def beside_run(target: Callable[[], None], store: Store) -> Iterator[list[BaseException]]:
    """Run ``target`` in a thread beside a Flyte run; the errors it raised. If it fails, it
    keeps releasing gates until the run is over, so the test ends and reports the error."""
    errors: list[BaseException] = []
    run_over = threading.Event()

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)
            while not run_over.wait(0.2):
                release_all(store)

    thread = threading.Thread(target=run, name="reviewer", daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        run_over.set()
        thread.join(timeout=30)


def events_of(store: Store, run: str) -> list[EventRecord]:
    return [e for e in store.iter_events() if e.run_id == run]


# -- the seed's workflow, answered through the Lambda ---------------------------------------------


@pytest.mark.parametrize(
    ("channel", "value", "outcome"),
    [("form", "true", "continuing"), ("api", "false", "halted")],
)
def test_workflow_resumes_with_the_answer_given_at_the_report_link(
    example: ModuleType,
    handler: Handler,
    s3_store: Store,
    run_name: str,
    monkeypatch: pytest.MonkeyPatch,
    channel: str,
    value: str,
    outcome: str,
) -> None:
    monkeypatch.setattr(example, "POLL_SECONDS", POLL)
    seen: dict[str, Any] = {}

    def reviewer() -> None:
        panel = wait_for_panel(run_name, "pending")
        path, request_id, token = form_link(panel)
        assert [e.request_id for e in events_of(s3_store, run_name)] == [request_id]
        page = invoke(handler, apigw_event("GET", path, query={"token": token}))
        assert page["statusCode"] == 200, text_of(page)
        assert "Approve for downstream processing?" in text_of(page)
        if channel == "form":
            fields = {"request_id": request_id, "token": token, "value": value}
            answer = invoke(handler, form_post_event(fields))
            assert answer["statusCode"] == 303, text_of(answer)
        else:
            # The report's curl line, run as API Gateway would receive it.
            argv = curl_line(panel)
            assert argv[:3] == ["curl", "-X", "POST"]
            url = urlsplit(argv[3])
            body = argv[argv.index("-d") + 1].replace('"VALUE"', f'"{value}"')
            answer = invoke(handler, json_post_event(body, path=url.path))
            assert answer["statusCode"] == 200, text_of(answer)
            assert response_json(answer)["status"] == "submitted"
        seen["request_id"] = request_id

    with beside_run(reviewer, s3_store) as errors:
        started = time.monotonic()
        run = run_local(example.main, run_name, dataset="s3://demo/data.parquet")
        elapsed = time.monotonic() - started
    assert not errors, errors

    result = run.outputs()[0]
    assert outcome in result, result
    assert elapsed < 20

    # The report now shows the answer, who gave it and through which channel.
    panel = wait_for_panel(run_name, "answered", timeout=5)
    assert seen["request_id"] in panel
    assert f"<code>{value}</code>" in panel and f"(via {channel})" in panel
    assert "Approve for downstream processing?" in panel
    # The event is the run's: its id comes from the Flyte run name and the event name.
    assert seen["request_id"] == EventKeys.for_name(run_name, "review_decision").request_id


# -- a killed gate resumes the same event ---------------------------------------------------------


def test_killed_gate_resumes_same_event_with_answer_given_meanwhile(
    example: ModuleType,
    handler: Handler,
    s3_store: Store,
    run_name: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "HITL_STORE_URL": s3_store.url,
        "HITL_APP_URL": APP_URL,
        "HITL_EXAMPLE_POLL_SECONDS": str(POLL),
    }
    log = tmp_path / "example.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--run-name", run_name],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            panel = wait_for_panel(run_name, "pending")
            assert proc.poll() is None, "the example should still be waiting at its gate"
        finally:
            proc.kill()
            proc.wait(timeout=10)
    path, request_id, old_token = form_link(panel)
    assert f"/form/{request_id}?token={old_token}" in log.read_text()  # printed the link too
    [before] = events_of(s3_store, run_name)
    assert before.request_id == request_id

    # While the task is dead, the reviewer answers with the link sent before the crash.
    fields = {"request_id": request_id, "token": old_token, "value": "true"}
    answer = invoke(handler, form_post_event(fields))
    assert answer["statusCode"] == 303, text_of(answer)

    # The same run's task runs again: it finds the same event and the answer at once.
    monkeypatch.setattr(example, "POLL_SECONDS", 0.5)
    watchdog = threading.Timer(10, release_all, args=(s3_store,))  # a new event would wait
    watchdog.start()
    started = time.monotonic()
    try:
        run = run_local(example.main, run_name, dataset="s3://demo/data.parquet")
    finally:
        watchdog.cancel()
    assert "continuing" in run.outputs()[0]
    assert time.monotonic() - started < 10

    [after] = events_of(s3_store, run_name)
    assert after == before  # same id, same deadline, nothing rewritten
    panel = wait_for_panel(run_name, "answered", timeout=5)
    assert f'data-hitl-request="{request_id}"' in panel
    assert "by link holder" in panel and "(via form)" in panel
    # The gate was closed when the task came back: no fresh link was minted, and the panel
    # shows the answer without a link or curl line that could only be refused.
    assert "hitl-form-link" not in panel and "hitl-curl" not in panel
    assert not [k for k in s3_store.run_keys() if s3_store._list(f"runs/{k}/grants/")]
    page = invoke(handler, apigw_event("GET", path, query={"token": old_token}))
    assert page["statusCode"] == 200, text_of(page)
    state = _answers.load(s3_store, request_id)
    assert state.status is Status.ANSWERED and state.decision is not None
    assert state.decision.value is True


# -- the report: only in report tasks, sync tasks too, escaped, timeouts shown ---------------------

tasks = flyte.TaskEnvironment(name="hitl-test-tasks")


@tasks.task
async def quiet_gate() -> int:
    event = await hitl.new_event.aio("quiet", data_type=int, poll_interval_seconds=POLL)
    value: int = await event.wait.aio()
    return value


@tasks.task(report=True)
def sync_gate() -> int:
    event = hitl.new_event(
        "sync", data_type=int, prompt="<b>How many</b> & why?", poll_interval_seconds=POLL
    )
    value: int = event.wait()
    return value


@tasks.task(report=True)
async def short_gate() -> bool:
    event = await hitl.new_event.aio(
        "short", data_type=bool, timeout_seconds=0.3, poll_interval_seconds=POLL
    )
    value: bool = await event.wait.aio()
    return value


@tasks.task
async def two_gates() -> int:
    return await quiet_gate() + await sync_gate.aio()


def answer_each_gate(store: Store, run: str, values: dict[str, str]) -> Callable[[], None]:
    def answer() -> None:
        pending = dict(values)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                keys = EventKeys.for_name(run, name)
                if store.get_event(keys) is not None:
                    _answers.submit(
                        store, keys.request_id, pending.pop(name), via="cli", operator="ops"
                    )
            time.sleep(POLL)
        assert not pending, f"gates never opened: {pending}"

    return answer


def test_report_panel_only_in_report_tasks_and_from_sync_tasks(
    example: ModuleType, s3_store: Store, run_name: str
) -> None:
    answer = answer_each_gate(s3_store, run_name, {"quiet": "2", "sync": "40"})
    with beside_run(answer, s3_store) as errors:
        run = run_local(two_gates, run_name)
    assert not errors, errors
    assert run.outputs()[0] == 42

    shown = panels(run_name)
    assert len(shown) == 1, shown  # the report=False task's gate is logged, not reported
    [panel] = shown
    assert EventKeys.for_name(run_name, "sync").request_id in panel
    assert "&lt;b&gt;How many&lt;/b&gt; &amp; why?" in panel and "<b>" not in panel
    assert 'data-hitl-state="answered"' in panel and "<code>40</code> by ops" in panel


def test_report_shows_a_timeout(example: ModuleType, s3_store: Store, run_name: str) -> None:
    with pytest.raises(Exception, match="no answer to event 'short'"):
        run_local(short_gate, run_name)
    panel = wait_for_panel(run_name, "timed_out", timeout=5)
    assert EventKeys.for_name(run_name, "short").request_id in panel


# -- flyte stays optional; hitl.env stays harmless ------------------------------------------------


def test_env_is_lazy_and_harmless_in_depends_on() -> None:
    code = """
import sys
import hitl_sdk as hitl
assert "flyte" not in sys.modules, "importing hitl_sdk must not import flyte"
import flyte
from flyte._deploy import plan_deploy
wf = flyte.TaskEnvironment(name="wf", depends_on=[hitl.env])
assert hitl.env is hitl.env
[plan] = plan_deploy(wf)
noop = plan.envs[hitl.env.name]
assert noop.tasks == {} and noop.image is None, noop
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_gates_work_without_flyte_and_env_says_what_to_install() -> None:
    code = """
import sys
sys.modules["flyte"] = None  # as if the Flyte SDK were not installed
import hitl_sdk as hitl
hitl.configure(store_url="memory://no-flyte")
event = hitl.new_event("g", data_type=int, timeout_seconds=0.2, poll_interval_seconds=0.05)
try:
    event.wait()
except hitl.EventTimeout:
    pass
try:
    hitl.env
except ImportError as exc:
    assert "pip install 'hitl-gates[flyte]'" in str(exc), exc
    print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cluster_runs_of_one_name_in_two_domains_get_two_gates(
    s3_store: Store, tmp_path: Path
) -> None:
    """Run names are unique per project and domain only; on a shared bucket the gates differ."""
    from flyte._context import internal_ctx
    from flyte.models import ActionID, RawDataPath, TaskContext
    from flyte.report import Report

    events = []
    for domain in ("development", "production"):
        action = ActionID(name="a0", run_name="nightly", project="ml", domain=domain, org="acme")
        (tmp_path / domain).mkdir()
        # The context Flyte's task runner sets up for an action on a cluster.
        task_context = TaskContext(
            action=action,
            version="v1",
            raw_data_path=RawDataPath(path=str(tmp_path / "raw")),
            output_path=str(tmp_path / domain),
            run_base_dir=str(tmp_path),
            report=Report(name=action.name),
        )
        with internal_ctx().replace_task_context(task_context):
            events.append(hitl.new_event("review_decision", data_type=bool))
    dev, prod = events
    assert dev.request_id != prod.request_id
    assert sorted(e.run_id for e in s3_store.iter_events()) == [
        "acme/ml/development/nightly",
        "acme/ml/production/nightly",
    ]
    # No task function on the stack: the gate still shows in the context's report.
    assert dev.request_id in (tmp_path / "development" / "report.html").read_text()


def test_ctrl_c_stops_the_example_cleanly_and_leaves_the_gate_open(
    run_name: str, tmp_path: Path
) -> None:
    store_url = (tmp_path / "store").as_uri()
    env = {**os.environ, "HITL_STORE_URL": store_url, "HITL_APP_URL": APP_URL}
    env["HITL_EXAMPLE_POLL_SECONDS"] = str(POLL)
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--run-name", run_name],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_panel(run_name, "pending")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C on a terminal sends
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 130, out
    assert "Traceback" not in out, out
    assert f"--run-name {run_name}` resumes it" in out
    [event] = events_of(Store(store_url), run_name)
    assert _answers.load(Store(store_url), event.request_id).status is Status.PENDING
