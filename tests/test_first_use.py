"""What a new user meets in the first ten minutes (issue 10), through the public surface.

The distribution's own name, links that say where they are served, personal links named in
the log, re-opening a closed gate, one rule for store URLs, answers as typed, a typed public
API (checked by mypy on a snippet), and the CLI's help and id prefixes.
"""

from __future__ import annotations

import inspect
import logging
import os
import pydoc
import re
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib
from apigw import apigw_event, invoke, json_post_event, response_json

import hitl_sdk as hitl
from hitl_sdk import _config
from hitl_sdk import _console as _announce
from hitl_sdk.cli import main
from hitl_sdk.storage.keys import EventKeys
from hitl_sdk.storage.store import Store, normalize_store_url

ROOT = Path(__file__).resolve().parent.parent
DIST = "hitl-gates"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="hitl")
    yield caplog


@pytest.fixture
def file_store(tmp_path: Path) -> str:
    url = (tmp_path / "store").as_uri()
    _config.configure(store_url=url, run_id=f"first-{uuid.uuid4().hex[:8]}")
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the distribution's name ---------------------------------------------------------------------


def test_the_distribution_has_its_own_name_and_gives_the_hitl_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DIST
    assert project["license"] == "Apache-2.0"  # an SPDX string: no setuptools banner
    assert project["scripts"] == {"hitl": "hitl_sdk.cli:main"}
    from importlib.metadata import distribution

    assert distribution(DIST).entry_points.select(group="console_scripts", name="hitl")


def test_no_install_line_names_the_stranger_on_pypi() -> None:
    texts = {
        path: path.read_text()
        for path in [
            ROOT / "README.md",
            ROOT / "examples" / "flyte_workflow.py",
            ROOT / "infra" / "build_lambda_package.py",
            *(ROOT / "hitl_sdk").glob("*.py"),
        ]
    }
    for path, text in texts.items():
        assert not re.search(r"""(pip install|with_pip_packages\()\W*hitl\b(?!-gates)""", text), (
            path
        )
    assert "pip install 'hitl-gates[app]'" in texts[ROOT / "README.md"]
    assert (
        'with_pip_packages("hitl-gates[flyte]")' in texts[ROOT / "examples" / "flyte_workflow.py"]
    )


@pytest.mark.package
def test_the_built_wheel_installs_the_hitl_command(tmp_path: Path) -> None:
    """Build the wheel, install it (no deps: they are in this venv), run `hitl --help`."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith("hitl_gates-")
    # --target, not --prefix: pip would uninstall this venv's editable install first.
    target = tmp_path / "target"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    script = target / "bin" / "hitl"
    assert script.exists()
    assert list(target.glob("hitl_gates-*.dist-info"))
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [str(script), "--help"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: hitl")
    where = subprocess.run(
        [str(script), "list", "--json", "--store", str(tmp_path / "s")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (where.returncode, where.stdout.strip()) == (0, "[]"), where.stderr


# -- links that lead somewhere -------------------------------------------------------------------


def test_a_link_to_a_local_app_that_is_not_running_says_how_to_serve_it(
    file_store: str, logs: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    _config.configure(app_url=f"http://127.0.0.1:{port}")
    event = hitl.new_event("first", bool)
    lines = [r.getMessage() for r in logs.records]
    assert any(event.form_url in line for line in lines)
    (hint,) = [line for line in lines if "nothing answers" in line]
    assert f"http://127.0.0.1:{port}" in hint
    assert f"`hitl serve --port {port} --store {file_store}`" in hint
    logs.clear()
    hitl.new_event("second", bool)  # said once, not per gate
    assert not [r for r in logs.records if "nothing answers" in r.getMessage()]


def test_a_link_to_a_running_local_app_gets_no_hint(
    file_store: str, logs: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        _config.configure(app_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
        hitl.new_event("served", bool)
    assert not [r for r in logs.records if "nothing answers" in r.getMessage()]


def test_the_default_store_and_port_give_the_plain_serve_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = (tmp_path / "d").as_uri()
    monkeypatch.setattr(_config, "default_store_url", lambda: default)
    monkeypatch.setattr(_announce, "_listening", lambda host, port: False)  # 8787 may be taken
    hint = _announce.local_app_hint("http://127.0.0.1:8787/form/x?token=y", default)
    assert hint is not None and "run `hitl serve` in another terminal" in hint
    memory = _announce.local_app_hint("http://localhost:8787/form/x", "memory://m")
    assert memory is not None and "memory:// store lives in this process only" in memory


def test_a_remote_app_url_is_never_probed() -> None:
    assert (
        _announce.local_app_hint("https://abc.execute-api.eu-west-1.amazonaws.com/f", "x") is None
    )


def test_the_readme_quick_start_says_where_the_link_is_served_before_the_link() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start") :]
    assert quick.index("hitl serve") < quick.index("event.form_url")


# -- personal links in logs -----------------------------------------------------------------------


def test_each_personal_link_is_logged_on_a_line_naming_its_reviewer(
    file_store: str, logs: pytest.LogCaptureFixture
) -> None:
    event = hitl.new_event("pair", bool, reviewers=["alice", "bob"])
    lines = [r.getMessage() for r in logs.records]
    for reviewer, link in event.links.items():
        (line,) = [line for line in lines if link in line]
        assert reviewer in line
        other = "bob" if reviewer == "alice" else "alice"
        assert other not in line


# -- re-opening a closed gate ---------------------------------------------------------------------


def test_reopening_an_answered_gate_says_so_and_mints_nothing(
    file_store: str, logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    first = hitl.new_event("closed", int)
    hitl_store = Store(file_store)
    from hitl_sdk.answers import submit

    submit(hitl_store, first.request_id, "7", via="cli", operator="carol")
    logs.clear()
    again = hitl.new_event("closed", int)
    assert again.request_id == first.request_id
    assert again.closed and again.links == {} and again.token == ""
    lines = [r.getMessage() for r in logs.records]
    assert any("already closed: answered by carol at" in line for line in lines), lines
    assert not any("token=" in line or "is open" in line for line in lines), lines
    grants = Path(file_store.removeprefix("file://")) / "runs"
    assert not list(grants.glob("*/grants/**/*.json"))
    assert again.wait() == 7
    code, out, _ = cli(capsys, "show", first.request_id, "--store", file_store)
    assert code == 0 and "hitl respond" not in out
    assert "no longer take answers" in out


def test_reopening_a_timed_out_gate_says_it_timed_out(
    file_store: str, logs: pytest.LogCaptureFixture
) -> None:
    first = hitl.new_event("late", bool, timeout_seconds=0.05, poll_interval_seconds=0.01)
    with pytest.raises(hitl.EventTimeout):
        first.wait()
    logs.clear()
    again = hitl.new_event("late", bool, timeout_seconds=0.05)
    assert again.closed
    assert any("already closed: timed out" in r.getMessage() for r in logs.records)
    with pytest.raises(hitl.EventTimeout):
        again.wait()


def test_reopening_a_cancelled_gate_says_it_was_cancelled(
    file_store: str, logs: pytest.LogCaptureFixture
) -> None:
    hitl.new_event("dropped", bool).cancel("superseded", by="ops")
    logs.clear()
    again = hitl.new_event("dropped", bool)
    assert again.closed
    said = [r.getMessage() for r in logs.records if "already closed" in r.getMessage()]
    assert said and "cancelled by ops" in said[0] and "superseded" in said[0], said
    assert "timed out" not in said[0]
    with pytest.raises(hitl.EventCancelled):
        again.wait()


def test_reopening_an_open_gate_still_mints_a_fresh_link(file_store: str) -> None:
    first = hitl.new_event("open", bool)
    again = hitl.new_event("open", bool)
    assert not again.closed and again.token and again.token != first.token


# -- one rule for store URLs ----------------------------------------------------------------------

BAD_URLS = ["s3:/oops", "file://relative", "relative/folder", "ftp://x", "s3://", "s3://UPPER/x"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_store_url_is_refused_by_the_sdk(url: str) -> None:
    with pytest.raises(hitl.ConfigError, match=r"store URL|bucket"):
        hitl.configure(store_url=url)


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_store_url_is_refused_by_the_cli_and_creates_nothing(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["list"], ["show", "a.b"]):
        code, out, err = cli(capsys, *command, "--store", url)
        assert (code, out) == (2, ""), err
        assert "store URL" in err or "bucket" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_store_url_stops_the_app_at_cold_start(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hitl_lambda.app import create_app

    monkeypatch.setenv("HITL_STORE_URL", url)
    with pytest.raises(hitl.ConfigError):
        create_app()


def test_an_absolute_folder_path_is_accepted_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "plain store"
    hitl.configure(store_url=str(folder), run_id="plain")
    event = hitl.new_event("plain", bool)
    assert _config.get_store().url == folder.as_uri()
    code, out, _ = cli(capsys, "show", event.request_id, "--store", str(folder))
    assert code == 0 and "pending" in out
    from hitl_lambda.app import create_app

    monkeypatch.setenv("HITL_STORE_URL", str(folder))
    assert create_app().state.store.url == folder.as_uri()


def test_store_urls_have_one_canonical_form() -> None:
    assert normalize_store_url("/tmp/a/../b/") == "file:///tmp/b"
    assert normalize_store_url("file:///tmp/b/") == "file:///tmp/b"
    assert normalize_store_url("s3://bucket/pre/fix/") == "s3://bucket/pre/fix"
    assert normalize_store_url("memory://name") == "memory://name"


def test_read_only_commands_never_create_the_store_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "never"
    code, _, err = cli(capsys, "list", "--store", str(missing))
    assert code == 0 and f"the folder {missing} does not exist" in err
    code, _, _ = cli(capsys, "show", "run-x.gate-y", "--store", str(missing))
    assert code == 3
    assert not missing.exists()


# -- answers as typed -----------------------------------------------------------------------------


def test_form_text_arrives_with_plain_line_ends(handler: Any) -> None:
    event = hitl.new_event("notes", str)
    body = f"request_id={event.request_id}&token={event.token}&value=one%0D%0Atwo%0D%0A"
    resp = invoke(handler, apigw_event("POST", "/submit", body=body, base64=True))
    assert resp["statusCode"] in (200, 303), resp
    assert event.wait() == "one\ntwo\n"


@pytest.mark.parametrize("empty", ["", "   ", "\r\n"])
def test_an_empty_text_answer_is_refused_on_every_channel(
    handler: Any, capsys: pytest.CaptureFixture[str], empty: str
) -> None:
    event = hitl.new_event(f"text-{len(empty)}", str)
    resp = invoke(
        handler,
        json_post_event({"request_id": event.request_id, "token": event.token, "value": empty}),
    )
    assert resp["statusCode"] == 400
    assert "empty answer" in response_json(resp)["detail"]
    store_url = _config.get_store().url
    code, _, err = cli(capsys, "respond", event.request_id, empty, "--store", store_url)
    assert code == 4 and "empty answer" in err
    assert _config.get_store().get_decision(EventKeys.parse(event.request_id)) is None


def test_the_bool_rule_is_the_same_in_the_code_the_message_and_the_readme(
    file_store: str,
) -> None:
    from hitl_sdk.answers.codecs import BOOL_WORDS

    codec = hitl_codec("bool")
    for word in ("true", "yes", "y", "on", "1"):
        assert codec.parse(word) is True
    for word in ("false", "no", "n", "off", "0"):
        assert codec.parse(word) is False
    with pytest.raises(hitl.InvalidValue) as info:
        codec.parse("ture")
    assert BOOL_WORDS in str(info.value)
    assert BOOL_WORDS in (ROOT / "docs" / "tutorial.md").read_text()


def hitl_codec(name: str) -> Any:
    from hitl_sdk.answers.codecs import scalar_codec

    return scalar_codec(name)


# -- a typed public API ---------------------------------------------------------------------------


def test_new_event_and_wait_show_their_real_signatures_and_docs() -> None:
    params = inspect.signature(hitl.new_event).parameters
    assert list(params)[:6] == [
        "name",
        "data_type",
        "scope",
        "prompt",
        "timeout_seconds",
        "poll_interval_seconds",
    ]
    assert list(inspect.signature(hitl.new_event.aio).parameters) == list(params)
    text = pydoc.render_doc(hitl.new_event)
    assert "timeout_seconds" in text and "Example" in text and "_Twin" not in text


def test_wait_shows_its_docs(file_store: str) -> None:
    event = hitl.new_event("documented", bool)
    text = pydoc.render_doc(event.wait)
    assert "EventTimeout" in text and "wait.aio" in text
    assert inspect.signature(event.wait).parameters == {}


def test_argument_errors_name_the_public_call(file_store: str) -> None:
    with pytest.raises(
        TypeError, match=r"^new_event\(\) got an unexpected keyword argument 'timeout'"
    ):
        hitl.new_event("x", bool, timeout=5)  # type: ignore[call-overload]
    event = hitl.new_event("y", bool)
    with pytest.raises(TypeError, match=r"^wait\(\) takes 1 positional argument"):
        event.wait(5)  # type: ignore[call-arg]


@pytest.mark.asyncio
async def test_the_aio_twin_names_itself_too(file_store: str) -> None:
    with pytest.raises(TypeError, match=r"^new_event\.aio\(\) got an unexpected keyword"):
        await hitl.new_event.aio("x", bool, timout_seconds=5)  # type: ignore[call-overload]


TYPED_SNIPPET = """
import hitl_sdk as hitl
from typing_extensions import assert_type

async def flow() -> None:
    gate = hitl.new_event("ok", bool)
    assert_type(gate, hitl.Event[bool])
    assert_type(gate.wait(), bool)
    assert_type(await gate.wait.aio(), bool)
    count = await hitl.new_event.aio("n", int)
    assert_type(await count.wait.aio(), int)
    assert_type(hitl.new_event("f", float).wait(), float)
    hitl.new_event("bad", bool, timeout=5)
"""


def test_mypy_types_wait_by_data_type_and_catches_a_misspelled_keyword(tmp_path: Path) -> None:
    snippet = tmp_path / "typed_snippet.py"
    snippet.write_text(textwrap.dedent(TYPED_SNIPPET))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    # Every assert_type holds; the only errors are about the misspelled keyword's line.
    assert errors, result.stdout
    assert all("typed_snippet.py:13:" in line for line in errors), result.stdout
    assert any('Unexpected keyword argument "timeout"' in line for line in errors), errors


# -- the CLI --------------------------------------------------------------------------------------


def test_the_exit_code_table_is_in_the_main_help_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "exit codes:" in top and "130" in top
    for command in ("serve", "demo", "list", "show", "respond"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        sub = capsys.readouterr().out
        assert "no event with that id" not in sub and "130" not in sub, command


def test_show_and_respond_take_a_unique_prefix_of_an_id(
    file_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a = hitl.new_event("alpha", int)
    b = hitl.new_event("beta", int)
    run_key = EventKeys.parse(a.request_id).run_key
    prefix_a = a.request_id[: len(run_key) + 3]
    code, out, _ = cli(capsys, "show", prefix_a, "--store", file_store)
    assert code == 0 and a.request_id in out
    code, out, _ = cli(
        capsys, "respond", b.request_id[: len(run_key) + 3], "5", "--store", file_store
    )
    assert code == 0 and b.request_id in out
    assert b.wait() == 5
    code, _, err = cli(capsys, "show", run_key[:6], "--store", file_store)
    assert code == 3 and "is the start of 2 event ids" in err
    assert a.request_id in err and b.request_id in err


def test_the_readme_quick_start_as_written_ends_with_a_link_that_opens_a_form(
    tmp_path: Path,
) -> None:
    """`hitl serve` in one process, the README's snippet copied as written in another."""
    import json
    import urllib.parse
    import urllib.request

    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start") :]
    snippet = re.search(r"```python\n(.*?)```", quick, re.DOTALL)
    assert snippet is not None
    (tmp_path / "quick.py").write_text(snippet.group(1))
    env = {
        **os.environ,
        "HITL_STORE_URL": (tmp_path / "store").as_uri(),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PYTHONUNBUFFERED": "1",  # a terminal shows the printed link at once; a pipe would not
    }
    hitl_cmd = [sys.executable, "-m", "hitl_sdk.cli"]
    server = subprocess.Popen(
        [*hitl_cmd, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True
    )
    task = None
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        app_url = re.search(r"on (http://\S+) over", first)
        assert app_url is not None, first
        env["HITL_APP_URL"] = app_url.group(1)
        task = subprocess.Popen(
            [sys.executable, str(tmp_path / "quick.py")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert task.stdout is not None
        link = task.stdout.readline().strip()
        assert link.startswith(app_url.group(1) + "/form/"), (
            link,
            task.poll() and task.communicate(),
        )
        with urllib.request.urlopen(link, timeout=30) as page:
            assert page.status == 200
            assert "Approve for downstream processing?" in page.read().decode()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
        request_id = urllib.parse.urlsplit(link).path.rsplit("/", 1)[-1]
        body = json.dumps({"request_id": request_id, "token": query["token"][0], "value": True})
        post = urllib.request.Request(
            f"{app_url.group(1)}/submit/json",
            data=body.encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=30) as answer:
            assert answer.status == 200
        out, err = task.communicate(timeout=60)
        assert (task.returncode, out.strip()) == (0, "approved"), err
        assert "nothing answers" not in err  # the app was up: no hint
    finally:
        for proc in (server, task):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (server.stdout, task and task.stdout, task and task.stderr):
            if stream:
                stream.close()
