"""The SDK against every backend: typed waits, durable re-creation, timeouts, races, retries."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import hitl_sdk as hitl
from hitl_sdk import _config
from hitl_sdk import answers as _answers
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.objects import FsspecObjects
from hitl_sdk.storage.records import DecisionRecord
from hitl_sdk.storage.store import Store


def _answer_soon(store: Store, event: hitl.Event, value: object, delay: float = 0.2) -> None:
    def run() -> None:
        time.sleep(delay)
        _answers.submit(store, event.request_id, value, via="api", token=event.token)

    threading.Thread(target=run, daemon=True).start()


@pytest.mark.parametrize(
    ("data_type", "sent", "expected"),
    [
        (int, "42", 42),
        (float, "0.5", 0.5),
        (str, "looks fine", "looks fine"),
        (bool, "false", False),
    ],
)
def test_wait_returns_the_answer_typed(
    sdk_store: Store, data_type: type, sent: str, expected: object
) -> None:
    event = hitl.new_event("gate", data_type, timeout_seconds=30, poll_interval_seconds=0.05)
    assert event.data_type is data_type
    _answer_soon(sdk_store, event, sent)
    value = event.wait()
    assert value == expected and type(value) is data_type


def test_same_name_in_the_same_run_is_the_same_event(sdk_store: Store) -> None:
    first = hitl.new_event("review", bool, prompt="Ship?", timeout_seconds=60)
    time.sleep(0.05)
    again = hitl.new_event("review", bool, prompt="Ship?", timeout_seconds=9999)
    assert again.request_id == first.request_id
    assert again.deadline == first.deadline  # the original deadline, not a new one
    assert again.timeout_seconds == 60
    state = _answers.load(sdk_store, first.request_id)
    # Both links open the event: the first (digest in the record) and the re-minted one (grant).
    assert _answers.authorize(sdk_store, state, first.token) == "link holder"
    assert _answers.authorize(sdk_store, state, again.token) == "link holder"
    other = hitl.new_event("other", bool)
    assert other.request_id != first.request_id
    with pytest.raises(hitl.InvalidToken):
        _answers.authorize(sdk_store, state, other.token)


def test_same_name_with_another_type_is_refused(sdk_store: Store) -> None:
    hitl.new_event("review", bool)
    with pytest.raises(hitl.ConfigError, match=r"already exists .* with data_type bool, not int"):
        hitl.new_event("review", int)


def test_answered_event_returns_at_once_when_recreated(sdk_store: Store) -> None:
    event = hitl.new_event("review", int, timeout_seconds=60, poll_interval_seconds=30)
    _answers.submit(sdk_store, event.request_id, "7", via="api", token=event.token)
    again = hitl.new_event("review", int, timeout_seconds=60, poll_interval_seconds=30)
    started = time.monotonic()
    assert again.wait() == 7
    assert time.monotonic() - started < 5  # no poll interval slept


def test_other_runs_do_not_share_events(sdk_store: Store) -> None:
    first = hitl.new_event("review", bool)
    _config.configure(run_id="another-run")
    assert hitl.new_event("review", bool).request_id != first.request_id


def test_timeout_raises_and_writes_the_terminal_record(sdk_store: Store) -> None:
    event = hitl.new_event("late", bool, timeout_seconds=0.3, poll_interval_seconds=0.05)
    with pytest.raises(TimeoutError, match="no answer to event 'late'") as caught:
        event.wait()
    assert isinstance(caught.value, hitl.EventTimeout)
    decision = sdk_store.get_decision(EventKeys.parse(event.request_id))
    assert decision is not None and decision.status == "timed_out" and decision.via == "timeout"
    # An answer after that is refused, and the terminal record stays.
    with pytest.raises(hitl.EventExpired, match="no longer takes answers"):
        _answers.submit(sdk_store, event.request_id, "true", via="api", token=event.token)
    kept = sdk_store.get_decision(EventKeys.parse(event.request_id))
    assert kept == decision
    # Waiting again (a restarted task) raises the same way, without a second write.
    with pytest.raises(hitl.EventTimeout):
        hitl.new_event("late", bool, timeout_seconds=0.3).wait()


def test_answer_that_won_the_race_against_the_deadline_is_returned(sdk_store: Store) -> None:
    """The app checked the deadline just before it passed; its write (signed, as the app's
    are) lands first."""
    from hitl_sdk.answers import machine_signer

    event = hitl.new_event("race", int, timeout_seconds=0.2, poll_interval_seconds=10)
    time.sleep(0.3)
    answer = DecisionRecord(request_id=event.request_id, status="answered", value=5, via="form")
    sdk_store.create_decision(machine_signer().sign_decision(answer, event.gate.record.fingerprint))
    assert event.wait() == 5  # the timeout write lost cleanly and the answer is returned
    decision = sdk_store.get_decision(EventKeys.parse(event.request_id))
    assert decision is not None and decision.status == "answered"


def test_human_answer_and_timeout_race_one_wins(sdk_store: Store) -> None:
    """Many gates whose deadline passes while an answer is being written: never both, never lost."""
    outcomes: list[str] = []
    for i in range(6):
        event = hitl.new_event(f"r{i}", int, timeout_seconds=0.25, poll_interval_seconds=0.01)
        result: dict[str, Any] = {}

        def answer(ev: hitl.Event = event, box: dict[str, Any] = result) -> None:
            time.sleep(0.24)
            try:
                _answers.submit(sdk_store, ev.request_id, "1", via="api", token=ev.token)
                box["answer"] = "accepted"
            except hitl.EventExpired:
                box["answer"] = "refused"

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        try:
            waited = f"value {event.wait()}"
        except hitl.EventTimeout:
            waited = "timeout"
        thread.join()
        decision = sdk_store.get_decision(EventKeys.parse(event.request_id))
        assert decision is not None
        if result["answer"] == "accepted":
            assert waited == "value 1" and decision.status == "answered"
        else:
            assert waited == "timeout" and decision.status == "timed_out"
        outcomes.append(waited)
    assert len(outcomes) == 6


def test_named_reviewers_record_who_answered(sdk_store: Store) -> None:
    event = hitl.new_event("review", bool, reviewers=["alice", "bob"])
    assert set(event.links) == {"alice", "bob"}
    bob_token = event.links["bob"].rsplit("token=", 1)[1]
    done = _answers.submit(sdk_store, event.request_id, "yes", via="form", token=bob_token)
    record = done.record
    assert record.answered_by == "bob" and record.value is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"scope": "project"}, "only scope='run'"),
        ({"timeout_seconds": 0}, "timeout_seconds must be a positive number"),
        ({"poll_interval_seconds": -1}, "poll_interval_seconds must be a positive"),
        ({"data_type": list}, "unsupported data_type"),
        ({"reviewers": []}, "reviewers must be a non-empty list"),
        ({"reviewers": ["a", "a"]}, "duplicate names"),
    ],
)
def test_bad_options_are_clear_config_errors(
    sdk_store: Store, kwargs: dict[str, Any], message: str
) -> None:
    options: dict[str, Any] = {"name": "gate", "data_type": bool, **kwargs}
    with pytest.raises(hitl.ConfigError, match=message):
        hitl.new_event(**options)


def test_aio_twins_work_inside_a_running_loop(sdk_store: Store) -> None:
    async def task() -> float:
        event = await hitl.new_event.aio("gate", float, poll_interval_seconds=0.05)
        _answer_soon(sdk_store, event, "2.5")
        ticks = 0

        async def ticker() -> None:  # the loop stays free while we wait
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        value: float = await event.wait.aio()
        tick.cancel()
        assert ticks > 5
        return value

    assert asyncio.run(task()) == 2.5


class FlakyMemoryFS(MemoryFileSystem):
    """Fails reads with a dropped connection now and then, as a real network does."""

    failures = 0

    def cat_file(self, path: str, *args: Any, **kwargs: Any) -> bytes:
        if "decisions" in path and FlakyMemoryFS.failures < 3:
            FlakyMemoryFS.failures += 1
            raise ConnectionResetError("connection reset by peer")
        return bytes(super().cat_file(path, *args, **kwargs))


def test_transient_errors_while_polling_are_retried() -> None:
    FlakyMemoryFS.failures = 0
    fs = FlakyMemoryFS(skip_instance_cache=True)
    _config.configure(store_url=f"memory://flaky-{uuid.uuid4().hex[:6]}", fs=fs, run_id="flaky")
    event = hitl.new_event("gate", bool, poll_interval_seconds=0.02)
    # The answer comes from elsewhere (a store of its own, as the reviewer app's would be):
    # the waiting task's store has to read it, through the flaky reads.
    _answer_soon(Store(_config.get_store().url, fs=fs), event, "true", delay=0.3)
    assert event.wait() is True
    assert FlakyMemoryFS.failures == 3


def test_missing_bucket_fails_at_once(moto_endpoint: str) -> None:
    bucket = f"hitl-nope-{uuid.uuid4().hex[:8]}"
    _config.configure(store_url=f"s3://{bucket}/events")
    started = time.monotonic()
    with pytest.raises(hitl.StoreNotFound, match=f"bucket '{bucket}' does not exist"):
        hitl.new_event("gate", bool)
    assert time.monotonic() - started < 10


def test_new_event_matches_the_flyteplugins_signature() -> None:
    params = inspect.signature(hitl.new_event).parameters
    expected = [
        ("name", inspect.Parameter.empty),
        ("data_type", inspect.Parameter.empty),
        ("scope", "run"),
        ("prompt", "Please provide a value"),
        ("timeout_seconds", 3600),
        ("poll_interval_seconds", 5),
    ]
    assert [(n, params[n].default) for n, _ in expected] == expected
    assert list(inspect.signature(hitl.new_event.aio).parameters) == list(params)


# -- a wait resumed in a new process after a crash -------------------------------------------

WAITER = textwrap.dedent(
    """
    import json, sys
    import hitl_sdk as hitl
    event = hitl.new_event("deploy", int, timeout_seconds=float(sys.argv[1]),
                           poll_interval_seconds=0.05)
    print(json.dumps({"id": event.request_id, "deadline": event.deadline.isoformat(),
                      "token": event.token}), flush=True)
    print(json.dumps({"value": event.wait()}), flush=True)
    """
)


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_wait_resumes_in_a_new_process_after_a_crash(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (tmp_path / "store").as_uri() if backend == "file" else request.getfixturevalue("s3_url")
    env = {**os.environ, "HITL_STORE_URL": url, "HITL_RUN_ID": f"crash-{uuid.uuid4().hex[:6]}"}
    script = tmp_path / "waiter.py"
    script.write_text(WAITER)

    first = subprocess.Popen(
        [sys.executable, str(script), "30"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert first.stdout is not None
    opened = json.loads(first.stdout.readline())
    first.kill()  # the task dies mid-wait
    first.wait(timeout=10)

    store = Store(url)
    _answers.submit(store, opened["id"], "17", via="api", token=opened["token"])

    second = subprocess.run(
        [sys.executable, str(script), "5"], env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0, second.stderr
    reopened, result = (json.loads(line) for line in second.stdout.splitlines())
    assert reopened["id"] == opened["id"]
    assert reopened["deadline"] == opened["deadline"]  # the original deadline is kept
    assert result == {"value": 17}


def test_sdk_import_stays_light() -> None:
    heavy = ("fastapi", "mangum", "flyte", "jinja2", "uvicorn")
    code = f"import sys, hitl_sdk; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_surface_is_deliberate() -> None:
    assert "new_event" in hitl.__all__ and "Event" in hitl.__all__
    for name in hitl.__all__:
        assert hasattr(hitl, name), name
    assert issubclass(hitl.EventTimeout, TimeoutError)
    assert issubclass(hitl.InvalidValue, ValueError)
    assert issubclass(hitl.StorageError, OSError)
    for name in hitl.__all__:
        obj = getattr(hitl, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, hitl.HitlError)


def test_default_store_is_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    store = _config.get_store()
    assert store.url.startswith("file://") and str(tmp_path) in store.url
    assert isinstance(store.objects, FsspecObjects)
    assert isinstance(store.objects.fs, fsspec.implementations.local.LocalFileSystem)


def test_env_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_APP_URL", "https://hitl.example.com/")
    monkeypatch.setenv("HITL_STORE_URL", "memory://from-env")
    monkeypatch.setenv("HITL_RUN_ID", "nightly-42")
    event = hitl.new_event("gate", bool)
    assert event.form_url.startswith("https://hitl.example.com/form/")
    assert event.api_url == "https://hitl.example.com/submit/json"
    assert _config.run_id() == "nightly-42"
    _config.reset()
    monkeypatch.setenv("HITL_APP_URL", "hitl.example.com")
    with pytest.raises(hitl.ConfigError, match="HITL_APP_URL"):
        hitl.new_event("gate", bool)


def test_a_plain_script_shows_the_link_without_configuring_logging(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import hitl_sdk as hitl
        event = hitl.new_event("gate", bool)
        print(event.form_url)
        """
    )
    env = {**os.environ, "HITL_STORE_URL": (tmp_path / "store").as_uri()}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    link = out.stdout.strip()
    assert link.startswith("http://127.0.0.1:8787/form/")
    assert f"gate 'gate' is open; answer it at {link}" in out.stderr
