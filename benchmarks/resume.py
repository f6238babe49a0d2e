"""Resuming when the answers arrive: N gates waiting (poll 1 s), N answers over 20 s through the
reviewer app's JSON API, and how soon each ``wait()`` returns, side by side with a bare poller
that makes one LIST per cycle and reads nothing else.

Every part runs in a process of its own: moto (the S3 server, with keep-alive as S3 has:
``s3server``), ``hitl serve`` (the app that
takes the answers), the waiting task (hitl: ``as_completed`` over its N gates), the bare LIST
poller (over the same gates' decisions) and this driver, which posts the answers at a steady
rate. Each S3 client goes through a proxy of ``latency_proxy`` that counts its requests and,
with ``--latency MS``, delays each one as real S3 would.

Printed: resume time (answer accepted -> wait() returned) median and p95, last answer -> all
returned, the waiting process's CPU while answers arrive (its share of a core), and its S3
requests per answer; the bare poller's the same way; the ratios; each goal met or not.

Run: ``.venv/bin/python benchmarks/resume.py [--n 1000] [--seconds 20] [--latency 15]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_proxy import LatencyProxy
from s3server import free_port, s3_server, wait_for

SEED = "the resume benchmark's signing secret, 32+ characters"
POLL = 1.0

WAITER = """
import json, os, sys, time, logging
logging.disable(logging.INFO)
import hitl_sdk as hitl
mode, n, ready, go, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
hitl.configure(run_id=os.environ["BENCH_RUN"])
gates = [hitl.new_event(f"g{i}", bool, timeout_seconds=3600, poll_interval_seconds=%(poll)s)
         for i in range(n)]
with open(ready, "w") as f:
    json.dump([[g.request_id, g.token] for g in gates], f)
if mode == "open":  # the bare poller's trial: the gates are open, someone else watches
    sys.exit()
while not os.path.exists(go):
    time.sleep(0.005)
cpu = time.process_time()
returned = {}
for gate in hitl.as_completed(gates):
    gate.wait()
    returned[gate.request_id] = time.time()
cpu = time.process_time() - cpu
with open(out, "w") as f:
    json.dump({"returned": returned, "cpu": cpu}, f)
"""

BARE = """
import json, os, sys, time
import botocore.session
bucket, prefix, n, go, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
client = botocore.session.get_session().create_client("s3")
seen = {}
while not os.path.exists(go):
    time.sleep(0.005)
cpu = time.process_time()
while len(seen) < n:
    started = time.monotonic()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        now = time.time()  # when this page arrived
        for item in page.get("Contents", ()):
            seen.setdefault(item["Key"], now)
    time.sleep(max(0.0, %(poll)s - (time.monotonic() - started)))
cpu = time.process_time() - cpu
with open(out, "w") as f:
    json.dump({"seen": seen, "cpu": cpu}, f)
"""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def run(n: int, seconds: float, latency_ms: float) -> dict[str, Any]:
    """Both trials against one moto and one app: the bare poller's, then hitl's."""
    from hitl_sdk.answers import Signer

    work = Path(tempfile.mkdtemp(prefix="hitl-resume-"))
    stack = contextlib.ExitStack()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env = {**os.environ, "XDG_DATA_HOME": str(work / "data")}
    procs: list[subprocess.Popen[bytes]] = []
    delay = latency_ms / 1000
    try:
        moto_url = stack.enter_context(s3_server(env))
        import botocore.session

        bucket = f"resume-{uuid.uuid4().hex[:8]}"
        botocore.session.get_session().create_client(
            "s3", endpoint_url=moto_url, region_name="us-east-1"
        ).create_bucket(Bucket=bucket)
        signer = Signer.from_seed(SEED)
        with LatencyProxy(moto_url, delay) as to_app, LatencyProxy(moto_url, delay) as to_task:
            app_port = free_port()
            app_env = {**env, "AWS_ENDPOINT_URL_S3": to_app.url, "HITL_SIGNING_KEY": SEED}
            app = subprocess.Popen(
                [sys.executable, "-m", "hitl_sdk.cli", "serve", "--port", str(app_port),
                 "--store", f"s3://{bucket}/hitl"],
                env=app_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(app)
            app_url = f"http://127.0.0.1:{app_port}"
            wait_for(f"{app_url}/health")
            trial_env = {
                **env,
                "AWS_ENDPOINT_URL_S3": to_task.url,
                "HITL_STORE_URL": f"s3://{bucket}/hitl",
                "HITL_APP_URL": app_url,
                "HITL_VERIFY_KEYS": signer.public.text,
                "HITL_INBOX": "off",
            }
            trials = {
                side: trial(side, n, seconds, work / side, trial_env, bucket, app_url, to_task)
                for side in ("bare", "hitl")
            }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
        stack.close()
    hitl, bare = trials["hitl"], trials["bare"]
    return {
        "n": n,
        "latency_ms": latency_ms,
        "hitl_median": statistics.median(hitl["resume"]),
        "hitl_p95": p95(hitl["resume"]),
        "bare_median": statistics.median(bare["resume"]),
        "bare_p95": p95(bare["resume"]),
        "hitl_all": hitl["all"],
        "bare_all": bare["all"],
        "hitl_core": hitl["core"],
        "bare_core": bare["core"],
        "gets_per_answer": hitl["requests"].get("GET", 0) / n,
        "puts_per_answer": hitl["requests"].get("PUT", 0) / n,
        "lists": hitl["requests"].get("LIST", 0),
    }


def trial(
    side: str,
    n: int,
    seconds: float,
    work: Path,
    env: dict[str, str],
    bucket: str,
    app_url: str,
    to_task: LatencyProxy,
) -> dict[str, Any]:
    """N gates opened, one watcher (hitl's waiting task or the bare poller) polling from ``go``,
    N answers posted from one poll interval after ``go``: each watcher meets the answers at the
    same phase of its cycle, and alone (moto serves one request at a time)."""
    from hitl_sdk.storage import EventKeys

    work.mkdir(parents=True)
    ready, go, out = work / "ready.json", work / "go", work / "out.json"
    (work / "waiter.py").write_text(WAITER % {"poll": POLL})
    (work / "bare.py").write_text(BARE % {"poll": POLL})
    mode = "wait" if side == "hitl" else "open"
    waiter = subprocess.Popen(
        [sys.executable, str(work / "waiter.py"), mode, str(n), str(ready), str(go), str(out)],
        env={**env, "BENCH_RUN": f"resume-{side}-{uuid.uuid4().hex[:6]}"},
    )  # fmt: skip
    watcher = waiter
    try:
        while not ready.exists():
            if waiter.poll() is not None and not ready.exists():
                raise SystemExit("the waiting process died while opening its gates")
            time.sleep(0.1)
        time.sleep(0.2)
        gates = json.loads(ready.read_text())
        prefix = f"hitl/runs/{EventKeys.parse(gates[0][0]).run_key}/decisions/"
        if side == "bare":
            waiter.wait(timeout=60)
            watcher = subprocess.Popen(
                [sys.executable, str(work / "bare.py"), bucket, prefix, str(n), str(go),
                 str(out)],
                env=env,
            )  # fmt: skip
            time.sleep(2.0)  # started and importing done
        to_task.reset()
        go.touch()
        time.sleep(POLL)
        answered: dict[str, float] = {}
        lock = threading.Lock()

        def answer(item: tuple[int, list[str]]) -> None:
            index, (request_id, token) = item
            time.sleep(max(0.0, started + index * seconds / n - time.monotonic()))
            body = json.dumps({"request_id": request_id, "token": token, "value": True})
            request = urllib.request.Request(
                f"{app_url}/submit/json",
                data=body.encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                assert reply.status == 200
            with lock:
                answered[request_id] = time.time()

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(answer, enumerate(gates)))
        answering = time.monotonic() - started
        watcher.wait(timeout=120)
        requests = to_task.reset()
    finally:
        for proc in (waiter, watcher):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    done = json.loads(out.read_text())
    if side == "hitl":
        at = done["returned"]
    else:
        at = {
            rid: done["seen"][f"{prefix}{EventKeys.parse(rid).event_key}.json"] for rid, _ in gates
        }
    last = max(answered.values())
    wall = answering + max(max(at.values()), last) - last
    return {
        "resume": [at[rid] - answered[rid] for rid in answered],
        "all": max(at.values()) - last,
        "core": done["cpu"] / wall,
        "requests": requests,
    }


def report(r: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    """Print one run's figures; the goals as (name, figure, limit, met)."""
    print(
        f"N={r['n']}, poll {POLL:g} s, answers over the run, S3 latency added: "
        f"{r['latency_ms']:g} ms"
    )
    print(f"  {'':22} {'hitl':>8} {'bare LIST':>10} {'ratio':>7}")
    rows = [
        ("resume median (s)", r["hitl_median"], r["bare_median"]),
        ("resume p95 (s)", r["hitl_p95"], r["bare_p95"]),
        ("last answer -> all (s)", r["hitl_all"], r["bare_all"]),
        ("waiting CPU (cores)", r["hitl_core"], r["bare_core"]),
    ]
    for label, h, b in rows:
        print(f"  {label:22} {h:8.3f} {b:10.3f} {h / b:7.2f}")
    print(
        f"  waiting process S3 requests per answer: {r['gets_per_answer']:.2f} GET, "
        f"{r['puts_per_answer']:.2f} PUT ({r['lists']} LISTs in all)"
    )
    return [
        ("resume p95 <= poll + 0.5 s", r["hitl_p95"], POLL + 0.5, r["hitl_p95"] <= POLL + 0.5),
        (
            "resume p95 <= 1.3x bare",
            r["hitl_p95"] / r["bare_p95"],
            1.3,
            r["hitl_p95"] <= 1.3 * r["bare_p95"],
        ),
        (
            "last answer -> all <= 1.3x bare",
            r["hitl_all"] / r["bare_all"],
            1.3,
            r["hitl_all"] <= 1.3 * r["bare_all"],
        ),
        (
            "waiting CPU <= 2x bare",
            r["hitl_core"] / r["bare_core"],
            2.0,
            r["hitl_core"] <= 2 * r["bare_core"],
        ),
        (
            "S3 requests per answer: 1 GET, no PUT (no inbox)",
            r["gets_per_answer"] + r["puts_per_answer"],
            1.0,
            r["gets_per_answer"] <= 1.05 and r["puts_per_answer"] == 0,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--latency", type=float, nargs="*", default=[0.0, 15.0], help="ms added per request"
    )
    args = parser.parse_args()
    goals = []
    for latency in args.latency:
        result = run(args.n, args.seconds, latency)
        for name, figure, limit, met in report(result):
            goals.append((f"{name} [{latency:g} ms]", figure, limit, met))
    print("goals:")
    for name, figure, limit, met in goals:
        print(f"  {name:55} {figure:8.3f} (limit {limit:g}) {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
