#!/usr/bin/env python3
"""The reviewer app's cold start and warm requests, against a bare FastAPI + Mangum + boto3 app.

Usage (from the repository root)::

    .venv/bin/python benchmarks/app_speed.py              # 11 cold pairs, 200 warm requests
    .venv/bin/python benchmarks/app_speed.py --pairs 21 --warm 400

Both apps run from the Lambda package built for this host (infra/build_lambda_package.py,
into build/lambda-host-pyc, precompiled), in fresh ``python -S -I -B`` interpreters that see
only the package and the standard library, with S3 on a moto server on loopback. The
baseline (build/bare-app) is the smallest app that does the same job badly: a FastAPI route
that reads one object with a boto3 client made at import (boto3 is added next to the package
for it), and a route that writes one.

Cold start: spawn -> import the handler -> the first ``GET /form/<id>?token=...`` of an event
the SDK created (an API Gateway v2 event through Mangum) -> 200. Pairs run interleaved, the
order alternating; the figure is the median over the pairs, and the ratio hitl / bare.

Warm, for each ``--latency`` (ms added to every S3 request by ``latency_proxy``; real S3
answers in 10-30 ms): in one process per app, after its cold start, --warm of each through the
handler: the first form GET of a gate the process never read, the form's POST after the form
was shown (the reviewer's path), and a JSON answer POST to a gate never read; the bare app's
GET reads one object and its POSTs write one. Wall time (median, p95) and CPU per request
(``process_time`` over the handler: Lambda bills it), ratios hitl / bare, each goal met or not.

S3 is moto served with keep-alive (``s3server``), as real S3 keeps connections open.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BARE = ROOT / "build" / "bare-app"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lambda_package import _builder  # noqa: E402  (the one loader of the build script)

BARE_APP = '''\
"""The baseline: FastAPI + Mangum + a boto3 client, one S3 request per route."""
import json
import os

import boto3
from fastapi import FastAPI, Request
from mangum import Mangum
from starlette.responses import HTMLResponse

BUCKET = os.environ["BENCH_BUCKET"]
KEY = os.environ["BENCH_KEY"]
s3 = boto3.client("s3")
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/form/{request_id}", response_class=HTMLResponse)
def form(request_id: str, token: str = "") -> str:
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    return "<p>" + record["prompt"] + "</p>"


@app.post("/submit/json")
async def submit(request: Request) -> dict:
    body = await request.json()
    key = "bare/" + body["request_id"] + ".json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body).encode())
    return {"status": "submitted"}


handler = Mangum(app, lifespan="off")
'''

# Runs in the fresh interpreter: import, then the requests; prints one JSON line of timings.
CHILD = """
import json, os, sys, time
start = time.perf_counter()
sys.path[:0] = json.loads(os.environ["BENCH_PATH"])
import importlib
module = importlib.import_module(os.environ["BENCH_MODULE"])
imported = time.perf_counter()

class Context:
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self):
        return 30000

with open(os.environ["BENCH_EVENTS"]) as f:
    events = json.load(f)
first = module.handler(events["first"], Context())
served = time.perf_counter()
assert first["statusCode"] == 200, first
out = {"import_ms": (imported - start) * 1000, "first_ms": (served - imported) * 1000}
for kind in ("gets", "posts", "api_posts"):
    times, cpu = [], []
    for before, event in events.get(kind, []):
        if before is not None:  # untimed: what a reviewer did first (opened the form)
            assert module.handler(before, Context())["statusCode"] == 200
        t, c = time.perf_counter(), time.process_time()
        reply = module.handler(event, Context())
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        assert reply["statusCode"] in (200, 303), reply
    out[kind] = times
    out[kind + "_cpu"] = cpu
sys.stdout.write(json.dumps(out) + "\\n")
sys.stdout.flush()
os._exit(0)
"""


def host_package() -> Path:
    """The function's package for this machine, precompiled; reused when nothing changed."""
    figures = _builder().build(
        ROOT / "build" / "lambda-host-pyc",
        platform=f"manylinux2014_{platform.machine()}",
        python_version=f"{sys.version_info[0]}.{sys.version_info[1]}",
        compile_with=sys.executable,
        reuse=True,
    )
    return Path(str(figures["out"]))


def bare_app(package: Path) -> Path:
    """build/bare-app: the baseline module plus boto3 (matching the package's botocore)."""
    import botocore

    versions = {
        p.name.removesuffix(".dist-info").split("-")[1]
        for p in package.glob("botocore-*.dist-info")
        if "-" in p.name
    }
    version = versions.pop() if versions else botocore.__version__
    stamp = BARE / f".boto3-{version}"
    if not stamp.exists():
        BARE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "--no-deps", "--no-compile", "--target", str(BARE / "lib"),
             f"boto3=={version}", "s3transfer"],
            check=True,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
             str(BARE / "lib")],
            check=True, capture_output=True,
        )  # fmt: skip
        stamp.touch()
    (BARE / "bare_app.py").write_text(BARE_APP)
    return BARE


def run_child(env: dict[str, str], module: str, path: list[Path], **events: Any) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(events, f)
    child_env = {
        **env,
        "BENCH_MODULE": module,
        "BENCH_PATH": json.dumps([str(p) for p in path]),
        "BENCH_EVENTS": f.name,
    }
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-S", "-I", "-B", "-c", CHILD],
        env=child_env,
        check=True,
        capture_output=True,
        text=True,
    )
    wall = (time.perf_counter() - started) * 1000
    os.unlink(f.name)
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["wall_ms"] = wall
    return figures


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=11, help="cold-start pairs (>= 9)")
    parser.add_argument("--warm", type=int, default=200, help="warm requests of each kind")
    parser.add_argument(
        "--latency", type=float, nargs="*", default=[0.0, 15.0], help="ms added per S3 request"
    )
    args = parser.parse_args(argv)

    from apigw import apigw_event, form_post_event, json_post_event
    from latency_proxy import LatencyProxy
    from s3server import s3_server

    package = host_package()
    bare = bare_app(package)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    with s3_server(dict(os.environ)) as endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
        import boto3

        import hitl_sdk as hitl
        from hitl_sdk import _config
        from hitl_sdk.storage.keys import EventKeys

        bucket = f"hitl-bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        store_url = f"s3://{bucket}/hitl"
        _config.configure(store_url=store_url, run_id=f"bench-{uuid.uuid4().hex[:6]}")
        logging.disable(logging.INFO)  # the SDK's "gate is open" lines
        gate = hitl.new_event("deploy", bool, prompt="Ship it?")
        first = apigw_event("GET", f"/form/{gate.request_id}", query={"token": gate.token})
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "HITL_STORE_URL": store_url,
            "BENCH_BUCKET": bucket,
            "BENCH_KEY": f"hitl/{EventKeys.parse(gate.request_id).event}",
        }
        apps = {
            "hitl": ("hitl_lambda.handler", [package]),
            "bare": ("bare_app", [bare, bare / "lib", package]),
        }

        cold: dict[str, list[dict[str, Any]]] = {"hitl": [], "bare": []}
        env = {**base_env, "AWS_ENDPOINT_URL_S3": endpoint}
        for pair in range(args.pairs):
            order = ["hitl", "bare"] if pair % 2 == 0 else ["bare", "hitl"]
            for name in order:
                module, path = apps[name]
                cold[name].append(run_child(env, module, path, first=first))

        def form(g: Any) -> dict[str, Any]:
            return apigw_event("GET", f"/form/{g.request_id}", query={"token": g.token})

        def form_post(g: Any) -> dict[str, Any]:
            fields = {"request_id": g.request_id, "token": g.token, "value": "true"}
            return form_post_event(fields)

        def api_post(g: Any) -> dict[str, Any]:
            return json_post_event({"request_id": g.request_id, "token": g.token, "value": True})

        warm: dict[float, dict[str, dict[str, Any]]] = {}
        for latency in args.latency:
            gates = [hitl.new_event(f"w{latency:g}-{i}", bool) for i in range(3 * args.warm)]
            seen, reviewed, api_only = (
                gates[k * args.warm : (k + 1) * args.warm] for k in range(3)
            )
            bare_get = first
            bare_post = json_post_event({"request_id": "r", "token": "x", "value": True})
            workloads = {
                "hitl": {
                    # The first view of a gate this container never read.
                    "gets": [(None, form(g)) for g in seen],
                    # A reviewer opens the form, then answers: the form's POST is timed.
                    "posts": [(form(g), form_post(g)) for g in reviewed],
                    # An API client answering a gate this container has never read.
                    "api_posts": [(None, api_post(g)) for g in api_only],
                },
                "bare": {
                    "gets": [(None, bare_get)] * args.warm,
                    "posts": [(None, bare_post)] * args.warm,
                    "api_posts": [(None, bare_post)] * args.warm,
                },
            }
            warm[latency] = {}
            with LatencyProxy(endpoint, latency / 1000) as proxy:
                env = {**base_env, "AWS_ENDPOINT_URL_S3": proxy.url}
                for name in ("hitl", "bare"):
                    module, path = apps[name]
                    warm[latency][name] = run_child(
                        env, module, path, first=first, **workloads[name]
                    )

    def med(name: str, field: str) -> float:
        return statistics.median(run[field] for run in cold[name])

    print(
        f"cold start: spawn -> import handler -> first GET /form 200, fresh `python -S -I -B` "
        f"over the host-built Lambda package ({platform.machine()}, Python "
        f"{platform.python_version()}), S3 on moto; median of {args.pairs} interleaved pairs"
    )
    print(f"  {'':6} {'total':>9} {'import':>9} {'1st GET':>9}")
    for name in ("bare", "hitl"):
        print(
            f"  {name:6} {med(name, 'wall_ms'):7.0f}ms {med(name, 'import_ms'):7.0f}ms "
            f"{med(name, 'first_ms'):7.1f}ms"
        )
    cold_ratio = med("hitl", "wall_ms") / med("bare", "wall_ms")
    goals: list[tuple[str, float, float]] = [("cold start <= 1.10x bare", cold_ratio, 1.10)]
    rows = (
        ("gets", "first form GET", "one GET"),
        ("posts", "form POST", "one PUT"),
        ("api_posts", "API POST", "one PUT"),
    )
    wall_limits = {"gets": 1.15, "posts": 1.15, "api_posts": 2.1}
    cpu_limits = {"gets": 1.4, "api_posts": 1.4}
    for latency, runs in warm.items():
        print(
            f"warm, through the handler, {args.warm} of each, S3 latency added: {latency:g} ms "
            "(hitl vs the bare app's one request)"
        )
        print(
            f"  {'':15} {'hitl median':>11} {'bare':>7} {'ratio':>6}   "
            f"{'hitl p95':>8} {'bare':>7}   {'CPU hitl':>8} {'bare':>7} {'ratio':>6}"
        )
        for kind, label, _ in rows:
            h, b = runs["hitl"], runs["bare"]
            hm, bm = statistics.median(h[kind]), statistics.median(b[kind])
            hc, bc = statistics.median(h[kind + "_cpu"]), statistics.median(b[kind + "_cpu"])
            print(
                f"  {label:15} {hm:9.2f}ms {bm:5.2f}ms {hm / bm:6.2f}   {p95(h[kind]):6.2f}ms "
                f"{p95(b[kind]):5.2f}ms   {hc:6.2f}ms {bc:5.2f}ms {hc / bc:6.2f}"
            )
            if latency == 15.0:
                goals.append(
                    (f"{label} <= {wall_limits[kind]}x bare [15 ms]", hm / bm, wall_limits[kind])
                )
            if kind in cpu_limits:
                goals.append(
                    (
                        f"{label} CPU <= {cpu_limits[kind]}x bare [{latency:g} ms]",
                        hc / bc,
                        cpu_limits[kind],
                    )
                )
    if 0.0 in warm:
        print(
            "  at 0 ms, moto (one Python process on the same cores) serves hitl's two reads one\n"
            "  after the other and answers each in well under a millisecond, so the app's own CPU\n"
            "  and the second read show in full; with S3's latency the reads overlap and the\n"
            "  round trip dominates, as on AWS"
        )
    print("goals:")
    for name, figure, limit in goals:
        print(
            f"  {name:48} {figure:6.2f} (limit {limit:g}) {'met' if figure <= limit else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
