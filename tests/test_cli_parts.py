"""The CLI's parts on their own: the progress line, table rendering, and the demo's HTTP answer
against the real reviewer app served from a background thread."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import hitl_sdk as hitl
from hitl_sdk import _config
from hitl_sdk.cli.local import post_answer
from hitl_sdk.cli.progress import wait_with_progress
from hitl_sdk.cli.server import AppStartError, BackgroundApp, bind, build_app
from hitl_sdk.cli.table import clip, format_duration, render_table
from hitl_sdk.storage.records import utcnow
from hitl_sdk.storage.store import Store


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"


# -- progress ----------------------------------------------------------------------------------


def test_progress_draws_a_spinner_and_time_left_on_a_terminal() -> None:
    screen = Terminal()
    deadline = utcnow() + timedelta(seconds=125)
    result = wait_with_progress(
        lambda: time.sleep(0.5) or 42, deadline=deadline, label="waiting", stream=screen
    )
    assert result == 42
    frames = screen.getvalue().split("\r\x1b[K")
    assert frames[0] == "" and frames[-1] == ""  # each redraw clears the line; so does the end
    drawn = frames[1:-1]
    assert len(drawn) >= 2
    assert all(line[2:] in ("waiting (2m 05s left)", "waiting (2m 04s left)") for line in drawn)
    assert len({line[0] for line in drawn}) >= 2  # the spinner turns


def test_progress_is_silent_off_a_terminal() -> None:
    log = io.StringIO()
    deadline = utcnow() + timedelta(seconds=60)
    assert wait_with_progress(lambda: time.sleep(0.2) or "ok", deadline=deadline, label="x",
                              stream=log) == "ok"  # fmt: skip
    assert log.getvalue() == ""


def test_progress_hands_back_the_callers_exception_and_says_deadline_reached() -> None:
    screen = Terminal()

    def late() -> None:
        time.sleep(0.25)
        raise hitl.EventTimeout("no answer")

    with pytest.raises(hitl.EventTimeout, match="no answer"):
        wait_with_progress(late, deadline=utcnow(), label="waiting", stream=screen)
    assert "waiting (deadline reached)" in screen.getvalue()


def test_progress_runs_the_call_off_the_main_thread() -> None:
    seen: list[str] = []
    wait_with_progress(
        lambda: seen.append(threading.current_thread().name),
        deadline=utcnow(),
        label="x",
        stream=io.StringIO(),
    )
    assert seen == ["hitl-wait"]


# -- tables ------------------------------------------------------------------------------------


def test_render_table_aligns_and_clips() -> None:
    lines = render_table(
        ["ID", "PROMPT"],
        [["a.b", "short"], ["longer.id", "a prompt that goes on\nand on and on"]],
        [None, 12],
    )
    assert lines == [
        "ID         PROMPT",
        "a.b        short",
        "longer.id  a prompt th…",
    ]


def test_render_table_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError):
        render_table(["A", "B"], [["only one"]])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.9, "59s"), (60, "1m 00s"), (3599, "59m 59s"), (3600, "1h 00m"),
     (90061, "1d 01h"), (-5, "0s")],
)  # fmt: skip
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_clip_keeps_short_text_and_flattens_whitespace() -> None:
    assert clip("a\n  b", 10) == "a b"
    assert clip("abcdef", 4) == "abc…"


# -- the demo's HTTP answer, against the real app ----------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[BackgroundApp]:
    store_url = (tmp_path / "store").as_uri()
    with BackgroundApp(build_app(Store(store_url)), bind("127.0.0.1", 0)) as app:
        _config.configure(store_url=store_url, app_url=app.url, run_id="parts")
        yield app


def test_post_answer_goes_through_the_json_api(served: BackgroundApp) -> None:
    event = hitl.new_event("ship_it", data_type=bool, poll_interval_seconds=0.05)
    reply = post_answer(event, "true")
    assert (reply["status"], reply["value"], reply["via"]) == ("submitted", True, "api")
    assert event.wait() is True


def test_post_answer_maps_refusals_to_the_error_tree(served: BackgroundApp) -> None:
    event = hitl.new_event("count", data_type=int)
    with pytest.raises(hitl.InvalidValue, match=r"refused the answer 'many' \(400\): expected int"):
        post_answer(event, "many")
    post_answer(event, "3")
    with pytest.raises(hitl.AlreadyAnswered, match=r"\(409\).*the first answer stands"):
        post_answer(event, "4")


def test_background_app_stops_and_frees_its_port(tmp_path: Path) -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = build_app(Store((tmp_path / "s").as_uri()))
    busy = f"port {port} on 127.0.0.1 is already in use"
    with BackgroundApp(app, sock), pytest.raises(AppStartError, match=busy):
        bind("127.0.0.1", port)
    bind("127.0.0.1", port).close()  # free again once stopped
