"""Load: the reviewer app under uvicorn (`hitl serve`) on loopback over the moto server.

1,000 gates; 2,000 answers from 50 concurrent clients (two different answers per gate, in
random order); two waiting processes, one of them killed mid-run and restarted. Every gate
ends with exactly one decision, every second answer gets 409, no 5xx, and the waiters return
exactly the decisions: nothing lost, nothing doubled.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

import hitl_sdk as hitl
from hitl_sdk import _config
from hitl_sdk.storage.keys import EventKeys

pytestmark = pytest.mark.load

GATES = int(os.environ.get("HITL_LOAD_GATES", "1000"))
CLIENTS = 50
WAITERS = 2

WAITER = textwrap.dedent(
    """
    import json, sys
    import hitl_sdk as hitl
    first, last = int(sys.argv[1]), int(sys.argv[2])
    for i in range(first, last):
        event = hitl.new_event(f"g{i}", int, prompt=f"Gate {i}?", timeout_seconds=900,
                               poll_interval_seconds=0.5)
        print(json.dumps({"name": event.name, "value": event.wait()}), flush=True)
    """
)


def post(url: str, payload: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


class Waiter:
    """A waiting process for gates [first, last): its printed results, read on a thread."""

    def __init__(self, first: int, last: int, env: dict[str, str], script: Path) -> None:
        self.results: dict[str, int] = {}
        self.doubled: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(first), str(last)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            row = json.loads(line)
            if row["name"] in self.results and self.results[row["name"]] != row["value"]:
                self.doubled.append(row["name"])
            self.results[row["name"]] = row["value"]

    def finish(self, timeout: float) -> None:
        self.proc.wait(timeout=timeout)
        self._thread.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        self.proc.kill()
        self.finish(timeout=10)


@pytest.fixture
def moto_process(tmp_path: Path) -> Iterator[str]:
    """A moto server in a process of its own: the 50 clients here would starve an in-process
    one of the GIL. Its endpoint; a fresh bucket ``load`` in it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        limit = time.monotonic() + 60
        while time.monotonic() < limit:
            try:
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="load")
                break
            except Exception:
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_thousand_gates_two_thousand_answers_fifty_clients_and_a_killed_waiter(
    moto_process: str, tmp_path: Path, summary: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    moto_endpoint = moto_process
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    s3_url = "s3://load/hitl"
    run_id = f"load-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "HITL_STORE_URL": s3_url,
        "HITL_RUN_ID": run_id,
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
    }
    # The server's output goes to a file: a pipe nobody drains would stall its access log.
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "hitl_sdk.cli", "serve", "--port", "0"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    waiters: list[Waiter] = []
    try:
        app_url = None
        limit = time.monotonic() + 60
        while app_url is None and time.monotonic() < limit and server.poll() is None:
            app_url = re.search(r"on (http://\S+) over", log.read_text())
            time.sleep(0.05)
        assert app_url is not None, log.read_text()
        env["HITL_APP_URL"] = app_url.group(1)
        _config.configure(store_url=s3_url, app_url=app_url.group(1), run_id=run_id)

        def open_gate(i: int) -> hitl.Event[int]:
            return hitl.new_event(f"g{i}", int, prompt=f"Gate {i}?", timeout_seconds=900)

        with ThreadPoolExecutor(16) as pool:
            events = list(pool.map(open_gate, range(GATES)))

        script = tmp_path / "waiter.py"
        script.write_text(WAITER)
        share = GATES // WAITERS
        waiters = [Waiter(w * share, (w + 1) * share, env, script) for w in range(WAITERS)]

        # Both answers of half the gates race each other in the first pass, with one answer to
        # every other gate; the second pass brings the rest (each of them a 409).
        rng = random.Random(7)
        first_pass = [(e, i) for i, e in enumerate(events)]
        first_pass += [(e, 100_000 + i) for i, e in enumerate(events) if i % 2 == 0]
        second_pass = [(e, 100_000 + i) for i, e in enumerate(events) if i % 2 == 1]
        rng.shuffle(first_pass)
        rng.shuffle(second_pass)
        statuses: dict[str, list[tuple[int, int]]] = {e.request_id: [] for e in events}
        api = f"{app_url.group(1)}/submit/json"

        def send(item: tuple[hitl.Event[int], int]) -> None:
            event, value = item
            status = post(
                api, {"request_id": event.request_id, "token": event.token, "value": value}
            )
            statuses[event.request_id].append((status, value))

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(send, first_pass))
            # Mid-run: kill the first waiter once it has returned some gates, then restart it.
            limit = time.monotonic() + 120
            while len(waiters[0].results) < 50 and time.monotonic() < limit:
                time.sleep(0.2)
            before_kill = dict(waiters[0].results)
            waiters[0].kill()
            waiters[0] = Waiter(0, share, env, script)
            list(pool.map(send, second_pass))

        for waiter in waiters:
            waiter.finish(timeout=300)
    finally:
        for waiter in waiters:
            if waiter.proc.poll() is None:
                waiter.kill()
        server.terminate()
        server.wait(timeout=30)

    codes = Counter(status for rows in statuses.values() for status, _ in rows)
    store = _config.get_store()
    decisions = {}
    for event in events:
        decision = store.get_decision(EventKeys.parse(event.request_id))
        assert decision is not None, event.name
        decisions[event.name] = decision.value
    winners = {e.name: [v for s, v in statuses[e.request_id] if s == 200] for e in events}
    returned = {name: value for w in waiters for name, value in w.results.items()}
    lost = sum(1 for e in events if e.name not in returned)
    doubled = sum(len(w.doubled) for w in waiters) + sum(
        1 for name, value in before_kill.items() if returned.get(name) != value
    )
    summary(
        f"load: gates={GATES} answers={sum(codes.values())} clients={CLIENTS} 200s={codes[200]} "
        f"409s={codes[409]} 5xx={sum(n for c, n in codes.items() if c >= 500)} "
        f"waiters_killed=1 lost={lost} doubled={doubled} seconds={time.monotonic() - started:.0f}"
    )
    assert all(len(values) == 1 for values in winners.values()), "each gate: one 200"
    assert {name: values[0] for name, values in winners.items()} == decisions
    assert codes == Counter({200: GATES, 409: GATES}), codes
    assert returned == decisions
    assert (lost, doubled) == (0, 0)
