"""The ``hitl`` command line through its real entry points.

``main(argv)`` is called in-process for the store commands (fast, output via capsys); the
console script runs in a subprocess for help, ``demo`` and ``serve``, and on S3 through the
moto server with ``--endpoint-url``. Subprocesses get a temp store and data dir, a free port
(``--port 0`` or a port proved busy), timeouts, and are killed if a test fails.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import pty
import queue
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hitl_sdk as hitl
from hitl_sdk import _config
from hitl_sdk.answers import submit
from hitl_sdk.cli import main
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.store import Store

HITL_SCRIPT = Path(sys.executable).with_name("hitl")
HITL = [str(HITL_SCRIPT)] if HITL_SCRIPT.exists() else [sys.executable, "-m", "hitl_sdk.cli"]
TIMEOUT = 60


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return (tmp_path / "store").as_uri()


@pytest.fixture
def env(tmp_path: Path, store_uri: str) -> dict[str, str]:
    """A subprocess environment that can only touch this test's temp folders."""
    env = dict(os.environ)
    env.update(HITL_STORE_URL=store_uri, XDG_DATA_HOME=str(tmp_path / "data"))
    env.pop("HITL_APP_URL", None)
    env.pop("HITL_RUN_ID", None)
    return env


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HITL, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


class Lines:
    """A running subprocess whose stdout lines are read on a thread, so reads can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def until(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        limit = time.monotonic() + timeout
        while (left := limit - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found
        stderr = (
            self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        )
        raise AssertionError(f"no line matching {pattern!r} in {self.seen!r}; stderr: {stderr}")


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Lines:
        proc = subprocess.Popen(
            [*HITL, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return Lines(proc)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def parse_table(out: str) -> list[dict[str, str]]:
    """The rows of an aligned table, each cut at its header's column starts."""
    header, *rows = out.splitlines()
    labels = re.findall(r"\S+(?: \S+)*", header)  # labels are one space apart inside
    starts = [header.index(label) for label in labels]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [
        {label: row[a:b].strip() for label, (a, b) in zip(labels, bounds, strict=True)}
        for row in rows
    ]


def open_gate(store_uri: str, name: str, data_type: type, **options: Any) -> hitl.Event:
    _config.configure(store_url=store_uri, run_id=options.pop("run_id", "cli-test"))
    return hitl.new_event(name, data_type=data_type, **options)


def decision_of(store_uri: str, request_id: str) -> Any:
    return Store(store_uri).get_decision(EventKeys.parse(request_id))


@pytest.fixture
def busy() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# -- help and usage ----------------------------------------------------------------------------


def test_help_names_every_command_and_exit_code(env: dict[str, str]) -> None:
    result = run("--help", env=env)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "demo", "list", "show", "respond", "cancel", "audit", "keys"):
        assert command in result.stdout
    codes = dict(re.findall(r"^  (\d+) +(.+)$", result.stdout, re.MULTILINE))
    assert codes["3"] == "no event with that id"
    assert codes["4"] == "the value is not of the event's type"
    assert codes["5"].startswith("the event was already answered")
    assert list(codes) == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "130"]


def test_no_command_prints_the_help(env: dict[str, str]) -> None:
    result = run(env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == run("--help", env=env).stdout
    assert result.stdout.startswith("usage: hitl")


def test_a_bad_store_url_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "list", "--store", "ftp://somewhere")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "store URL 'ftp://somewhere' is not supported: use s3://bucket/prefix" in err


def test_importing_the_sdk_and_cli_never_imports_the_app_stack(env: dict[str, str]) -> None:
    code = (
        "import sys, hitl_sdk, hitl_sdk.cli, hitl_sdk.demo\n"
        "loaded = {'fastapi', 'uvicorn', 'mangum', 'starlette', 'hitl_lambda'} & set(sys.modules)\n"
        "print(sorted(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.stdout.strip() == "[]", result.stderr


# -- hitl list ---------------------------------------------------------------------------------


def test_list_shows_pending_events_newest_first(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    older = open_gate(store_uri, "count_rows", int, prompt="How many rows look wrong?")
    newer = open_gate(store_uri, "ship_it", bool, prompt="Ship the model?")
    answered = open_gate(store_uri, "note", str, prompt="Any note?")
    submit(Store(store_uri), answered.request_id, "fine", via="sdk", operator="bob")
    expired = open_gate(store_uri, "too_late", float, prompt="Score?", timeout_seconds=0.01)
    time.sleep(0.05)

    code, out, err = cli(capsys, "list", "--store", store_uri)

    assert (code, err) == (0, "")
    rows = parse_table(out)
    assert list(rows[0]) == ["ID", "NAME", "TYPE", "STATE", "CREATED (UTC)", "LEFT", "PROMPT"]
    assert [row["ID"] for row in rows] == [newer.request_id, older.request_id]
    assert [row["TYPE"] for row in rows] == ["bool", "int"]
    assert rows[0]["NAME"] == "ship_it" and rows[0]["PROMPT"] == "Ship the model?"
    assert {row["STATE"] for row in rows} == {"pending"}
    assert re.fullmatch(r"59m \d\ds", rows[1]["LEFT"])  # time left on a one-hour gate
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows[1]["CREATED (UTC)"])
    assert expired.request_id not in out and answered.request_id not in out


def test_list_all_shows_every_state_and_the_answers(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    pending = open_gate(store_uri, "ship_it", bool)
    answered = open_gate(store_uri, "count", int)
    submit(Store(store_uri), answered.request_id, "42", via="sdk", operator="bob")
    expired = open_gate(store_uri, "too_late", float, timeout_seconds=0.01)
    time.sleep(0.05)

    code, out, _ = cli(capsys, "list", "--all", "--store", store_uri)

    assert code == 0
    rows = {row["ID"]: row for row in parse_table(out)}
    assert set(rows) == {pending.request_id, answered.request_id, expired.request_id}
    shown = {rid: (row["STATE"], row["ANSWER"]) for rid, row in rows.items()}
    assert shown == {
        pending.request_id: ("pending", "-"),
        answered.request_id: ("answered", "42"),
        expired.request_id: ("expired", "-"),
    }
    assert rows[answered.request_id]["LEFT"] == "-"


def test_list_json_is_machine_readable(capsys: pytest.CaptureFixture[str], store_uri: str) -> None:
    event = open_gate(store_uri, "ship_it", bool, prompt="Ship?")
    code, out, _ = cli(capsys, "list", "--json", "--store", store_uri)
    assert code == 0
    [item] = json.loads(out)
    assert item["request_id"] == event.request_id
    assert (item["status"], item["data_type"], item["prompt"]) == ("pending", "bool", "Ship?")
    assert item["decision"] is None


def test_list_on_an_empty_store_says_so_on_stderr(
    capsys: pytest.CaptureFixture[str], store_uri: str, tmp_path: Path
) -> None:
    (tmp_path / "store").mkdir()  # an empty store (a missing folder is an error: papercuts)
    code, out, err = cli(capsys, "list", "--store", store_uri)
    assert (code, out) == (0, "")
    assert f"no pending events (hitl list --all shows every state) in {store_uri}" in err


def test_list_defaults_to_the_store_under_the_user_data_dir(
    env: dict[str, str], tmp_path: Path
) -> None:
    del env["HITL_STORE_URL"]
    result = run("list", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "hitl" / "store").as_uri() in result.stderr


# -- hitl show ---------------------------------------------------------------------------------


def test_show_a_pending_event(capsys: pytest.CaptureFixture[str], store_uri: str) -> None:
    event = open_gate(
        store_uri, "ship_it", bool, prompt="Ship it?", details="3 anomalies", reviewers=["alice"]
    )
    code, out, err = cli(capsys, "show", event.request_id, "--store", store_uri)
    assert (code, err) == (0, "")
    fields = dict(line.split(":", 1) for line in out.splitlines())
    fields = {label: value.strip() for label, value in fields.items()}
    assert fields["id"] == event.request_id
    assert fields["name"] == "ship_it"
    assert re.fullmatch(r"pending \(59m \d\ds left\)", fields["state"])
    assert fields["type"] == "bool: Approve (true) or reject (false)."
    assert (fields["prompt"], fields["details"]) == ("Ship it?", "3 anomalies")
    assert fields["links"].startswith("1 issued (for alice)")
    assert "cannot be shown again" in fields["links"]
    assert event.token not in out  # only digests are stored; nothing can leak a link
    assert fields["answer"] == "none yet"


def test_show_an_answered_event_says_who_when_how(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    event = open_gate(store_uri, "count", int)
    submit(Store(store_uri), event.request_id, "7", via="cli", operator="carol", comment="ok")
    code, out, _ = cli(capsys, "show", event.request_id, "--store", store_uri)
    assert code == 0
    fields = {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}
    assert fields["state"] == "answered"
    assert (fields["answer"], fields["by"], fields["via"], fields["comment"]) == (
        "7",
        "carol",
        "cli",
        "ok",
    )
    assert fields["at"].endswith("UTC")


def test_show_an_expired_event(capsys: pytest.CaptureFixture[str], store_uri: str) -> None:
    event = open_gate(store_uri, "too_late", bool, timeout_seconds=0.01)
    time.sleep(0.05)
    code, out, _ = cli(capsys, "show", event.request_id, "--store", store_uri)
    assert code == 0
    fields = {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}
    assert fields["state"] == "expired"
    assert fields["answer"] == "none: the deadline passed with no answer"
    assert fields["deadline"].endswith("UTC (timeout 0.01s)")


def test_show_json(capsys: pytest.CaptureFixture[str], store_uri: str) -> None:
    event = open_gate(store_uri, "count", int)
    submit(Store(store_uri), event.request_id, "7", via="cli", operator="carol")
    code, out, _ = cli(capsys, "show", "--json", event.request_id, "--store", store_uri)
    assert code == 0
    shown = json.loads(out)
    assert shown["status"] == "answered"
    assert (shown["decision"]["value"], shown["decision"]["answered_by"]) == (7, "carol")


@pytest.mark.parametrize("bad_id", ["nope.nope", "../../etc/passwd", "no-dot"])
def test_show_an_unknown_id(
    capsys: pytest.CaptureFixture[str], store_uri: str, bad_id: str, tmp_path: Path
) -> None:
    (tmp_path / "store").mkdir()
    code, out, err = cli(capsys, "show", bad_id, "--store", store_uri)
    assert (code, out) == (3, "")
    assert err == f"hitl show: error: no event with id {bad_id!r} in {store_uri}\n"


# -- hitl respond ------------------------------------------------------------------------------


def test_respond_answers_through_the_write_once_path(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    event = open_gate(store_uri, "ship_it", bool, poll_interval_seconds=0.05)
    code, out, err = cli(
        capsys,
        "respond",
        event.request_id,
        "yes",
        "--comment",
        "looks fine",
        "--as",
        "dana",
        "--store",
        store_uri,
    )
    assert (code, err) == (0, "")
    assert out.startswith(f"answered {event.request_id}: true (by dana via cli at ")
    record = decision_of(store_uri, event.request_id)
    assert (record.value, record.answered_by, record.via, record.comment) == (
        True,
        "dana",
        "cli",
        "looks fine",
    )
    assert event.wait() is True  # the waiting task gets the typed value


def test_respond_names_the_os_user_by_default(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    event = open_gate(store_uri, "count", int)
    code, _, _ = cli(capsys, "respond", event.request_id, "12", "--store", store_uri)
    assert code == 0
    assert decision_of(store_uri, event.request_id).answered_by == getpass.getuser()


def test_respond_takes_a_negative_number_as_the_value(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    event = open_gate(store_uri, "offset", int)
    code, out, _ = cli(capsys, "respond", event.request_id, "-7", "--store", store_uri)
    assert code == 0 and f"answered {event.request_id}: -7 " in out
    assert decision_of(store_uri, event.request_id).value == -7


@pytest.mark.parametrize(
    ("data_type", "value", "message"),
    [
        (
            bool,
            "ture",
            "expected bool (true or false; yes/no, y/n, on/off, 1/0 also work), got 'ture'",
        ),
        (int, "1.5", "expected int (a whole number such as 42), got '1.5'"),
        (float, "nan", "expected float (a finite number such as 0.75), got 'nan'"),
    ],
)
def test_respond_refuses_a_bad_value_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], store_uri: str, data_type: type, value: str, message: str
) -> None:
    event = open_gate(store_uri, "gate", data_type)
    code, out, err = cli(capsys, "respond", event.request_id, value, "--store", store_uri)
    assert (code, out) == (4, "")
    assert err == f"hitl respond: error: {message}\n"
    assert decision_of(store_uri, event.request_id) is None


def test_respond_twice_keeps_the_first_answer(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    event = open_gate(store_uri, "ship_it", bool)
    assert cli(capsys, "respond", event.request_id, "false", "--store", store_uri)[0] == 0
    code, out, err = cli(capsys, "respond", event.request_id, "true", "--store", store_uri)
    assert (code, out) == (5, "")
    assert "was already answered by" in err and "the first answer stands" in err
    assert decision_of(store_uri, event.request_id).value is False


def test_respond_after_the_deadline_is_refused(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    event = open_gate(store_uri, "ship_it", bool, timeout_seconds=0.01)
    time.sleep(0.05)
    code, out, err = cli(capsys, "respond", event.request_id, "true", "--store", store_uri)
    assert (code, out) == (6, "")
    assert "expired at" in err and "no longer takes answers" in err
    assert decision_of(store_uri, event.request_id) is None


def test_respond_to_an_unknown_id(
    capsys: pytest.CaptureFixture[str], store_uri: str, tmp_path: Path
) -> None:
    (tmp_path / "store").mkdir()
    code, out, err = cli(capsys, "respond", "run-1.gate-2", "true", "--store", store_uri)
    expected = f"hitl respond: error: no event with id 'run-1.gate-2' in {store_uri}\n"
    assert (code, out, err) == (3, "", expected)


def test_respond_as_nobody_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    event = open_gate(store_uri, "ship_it", bool)
    code, _, err = cli(capsys, "respond", event.request_id, "1", "--as", " ", "--store", store_uri)
    assert code == 2 and "--as needs a name" in err
    assert decision_of(store_uri, event.request_id) is None


def test_respond_on_s3_through_the_console_script(
    s3_url: str, moto_endpoint: str, env: dict[str, str]
) -> None:
    event = open_gate(s3_url, "ship_it", bool, poll_interval_seconds=0.05)
    env.pop("AWS_ENDPOINT_URL_S3", None)  # the option alone must point s3fs at moto
    result = run(
        "respond", event.request_id, "true", "--store", s3_url, "--endpoint-url", moto_endpoint,
        "--as", "erin", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"answered {event.request_id}: true (by erin via cli" in result.stdout
    # The operator's machine signed it; the task trusts that key only when told to.
    with pytest.raises(hitl.UnverifiedRecord, match="not trusted"):
        event.wait()
    operator_key = run("keys", env=env).stdout.split()[0]
    _config.configure(verify_keys=[operator_key])
    assert event.wait() is True


def test_list_and_show_on_s3(
    capsys: pytest.CaptureFixture[str], s3_url: str, moto_endpoint: str
) -> None:
    event = open_gate(s3_url, "ship_it", bool, prompt="Ship it?")
    code, out, err = cli(capsys, "list", "--store", s3_url)
    assert (code, err) == (0, "")
    assert [row["ID"] for row in parse_table(out)] == [event.request_id]
    code, out, _ = cli(capsys, "show", event.request_id, "--store", s3_url)
    assert code == 0 and "prompt:   Ship it?" in out


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["show", "run-1.gate-2"],
        ["respond", "run-1.gate-2", "true"],
        ["serve", "--port", "0"],
        ["demo", "--port", "0"],
    ],
)
def test_a_missing_bucket_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], moto_endpoint: str, command: list[str]
) -> None:
    code, out, err = cli(capsys, *command, "--store", "s3://no-such-b/hitl")
    assert (code, out) == (7, "")
    assert "bucket 'no-such-b' does not exist" in err and err.count("\n") == 1


# -- hitl demo ---------------------------------------------------------------------------------


def _demo_result(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    found = re.search(
        r"open the form:\s+(http://127\.0\.0\.1:\d+/form/(\S+)\?token=\S+)", result.stdout
    )
    assert found, result.stdout + result.stderr
    return found.group(1), found.group(2)


@pytest.mark.parametrize(("answer", "outcome"), [("true", "approved"), ("no", "rejected")])
def test_demo_answers_itself_through_the_http_api(
    env: dict[str, str], store_uri: str, answer: str, outcome: str
) -> None:
    result = run("demo", "--answer", answer, "--port", "0", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith(f"[3/3] outcome: {outcome}. ")
    assert "[1/3] automated analysis: 3 anomalies in 142,857 rows" in result.stdout
    assert "curl -sS -X POST http://127.0.0.1:" in result.stdout
    _, request_id = _demo_result(result)
    record = decision_of(store_uri, request_id)
    assert (record.via, record.value) == ("api", answer == "true")
    assert "\r" not in result.stdout  # no spinner when stdout is not a terminal


def test_demo_waits_for_an_answer_sent_with_its_curl_line(spawn: Any, store_uri: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    demo = spawn("demo", "--port", "0")
    demo.until(r"open the form:")
    curl = demo.until(r"or use the API: (curl .*)").group(1)
    request_id = demo.until(r"or the CLI:\s+\S*hitl respond (\S+) true").group(1)
    answered = subprocess.run(
        curl.replace('"value": true', '"value": false'),
        shell=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert json.loads(answered.stdout)["status"] == "submitted", answered
    demo.until(r"\[3/3\] outcome: rejected\. Processing rejected by reviewer")
    assert demo.proc.wait(timeout=TIMEOUT) == 0
    assert decision_of(store_uri, request_id).value is False


def test_demo_form_link_opens_the_form_and_its_hitl_respond_line_answers_it(
    spawn: Any, store_uri: str, env: dict[str, str]
) -> None:
    demo = spawn("demo", "--port", "0")
    link = demo.until(r"open the form:\s+(\S+)").group(1)
    with urllib.request.urlopen(link, timeout=10) as response:
        page = response.read().decode()
    assert response.status == 200
    assert "Approve for downstream processing?" in page
    suggested = demo.until(r"or the CLI:\s+(\S*hitl respond (\S+) true)$")
    command, request_id = suggested.group(1), suggested.group(2)
    answered = subprocess.run(
        shlex.split(command), env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert answered.stdout.startswith(f"answered {request_id}: true (by "), answered.stderr
    demo.until(r"\[3/3\] outcome: approved\. Processing approved")
    assert demo.proc.wait(timeout=TIMEOUT) == 0
    assert decision_of(store_uri, request_id).via == "cli"


def test_demo_on_a_terminal_shows_a_spinner_and_time_left_then_times_out(
    env: dict[str, str],
) -> None:
    main_fd, tty_fd = pty.openpty()
    proc = subprocess.Popen(
        [*HITL, "demo", "--port", "0", "--timeout", "1.5"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=tty_fd,
        stderr=subprocess.PIPE,
    )
    os.close(tty_fd)
    try:
        chunks = []
        limit = time.monotonic() + TIMEOUT
        with contextlib.suppress(OSError):  # EIO once the child closes the terminal
            while select.select([main_fd], [], [], max(0, limit - time.monotonic()))[0]:
                if not (chunk := os.read(main_fd, 4096)):
                    break
                chunks.append(chunk)
        assert proc.wait(timeout=TIMEOUT) == 6
    finally:
        os.close(main_fd)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    screen = b"".join(chunks).decode()
    assert re.search(r"\r\x1b\[K. waiting for the reviewer \(1s left\)", screen)
    assert "\r\x1b[K[3/3] outcome: timed out. no answer to event 'review_decision'" in screen


def test_demo_refuses_a_bad_answer_before_opening_anything(
    capsys: pytest.CaptureFixture[str], store_uri: str
) -> None:
    code, out, err = cli(capsys, "demo", "--answer", "maybe", "--port", "0", "--store", store_uri)
    assert (code, out) == (4, "")
    assert err == (
        "hitl demo: error: --answer 'maybe': expected bool (true or false; yes/no, y/n, "
        "on/off, 1/0 also work), got 'maybe'\n"
    )
    assert list(Store(store_uri).iter_events()) == []


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_a_busy_port_names_the_port_and_the_option(
    capsys: pytest.CaptureFixture[str], store_uri: str, busy: int, command: str
) -> None:
    code, out, err = cli(capsys, command, "--port", str(busy), "--store", store_uri)
    assert (code, out) == (8, "")
    assert f"port {busy} on 127.0.0.1 is already in use" in err
    assert "pick another port with --port" in err


def test_missing_app_extra_says_what_to_install(
    capsys: pytest.CaptureFixture[str], store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what a missing package looks like
    code, _, err = cli(capsys, "serve", "--port", "0", "--store", store_uri)
    assert code == 8
    assert "needs the 'app' extra (uvicorn is not installed): pip install 'hitl-gates[app]'" in err


# -- hitl serve --------------------------------------------------------------------------------


def test_serve_answers_health_and_a_form_then_stops_on_ctrl_c(spawn: Any, store_uri: str) -> None:
    server = spawn("serve", "--port", "0")
    url = server.until(r"reviewer app on (http://127\.0\.0\.1:\d+) over store (\S+)")
    base, served_store = url.group(1), url.group(2)
    assert served_store == store_uri
    with urllib.request.urlopen(f"{base}/health", timeout=10) as response:
        assert json.load(response) == {"status": "ok"}
    _config.configure(app_url=base)
    event = open_gate(store_uri, "ship_it", bool, prompt="Ship the <b>model</b>?")
    assert event.form_url.startswith(f"{base}/form/")
    with urllib.request.urlopen(event.form_url, timeout=10) as response:
        page = response.read().decode()
    assert "Ship the &lt;b&gt;model&lt;/b&gt;?" in page
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=TIMEOUT) == 0
