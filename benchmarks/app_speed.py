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

Warm: in one process per app, after its cold start, --warm form GETs and --warm JSON answer
POSTs (each to a gate of its own) through the handler; the bare app's GET reads one object and
its POST writes one. Median and p95 per request, ratio hitl / bare.
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
    times = []
    for before, event in events.get(kind, []):
        if before is not None:  # untimed: what a reviewer did first (opened the form)
            assert module.handler(before, Context())["statusCode"] == 200
        t = time.perf_counter()
        reply = module.handler(event, Context())
        times.append((time.perf_counter() - t) * 1000)
        assert reply["statusCode"] == 200, reply
    out[kind] = times
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
    parser.add_argument("--warm", type=int, default=200, help="warm GETs and POSTs per app")
    args = parser.parse_args(argv)

    from apigw import apigw_event, json_post_event
    from moto.server import ThreadedMotoServer

    package = host_package()
    bare = bare_app(package)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_ENDPOINT_URL_S3=endpoint,
        )
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
        answers = [hitl.new_event(f"a{i}", bool) for i in range(2 * args.warm)]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_S3": endpoint,
            "HITL_STORE_URL": store_url,
            "BENCH_BUCKET": bucket,
            "BENCH_KEY": f"hitl/{EventKeys.parse(gate.request_id).event}",
        }
        first = apigw_event("GET", f"/form/{gate.request_id}", query={"token": gate.token})
        apps = {
            "hitl": ("hitl_lambda.handler", [package]),
            "bare": ("bare_app", [bare, bare / "lib", package]),
        }

        cold: dict[str, list[dict[str, Any]]] = {"hitl": [], "bare": []}
        for pair in range(args.pairs):
            order = ["hitl", "bare"] if pair % 2 == 0 else ["bare", "hitl"]
            for name in order:
                module, path = apps[name]
                cold[name].append(run_child(env, module, path, first=first))

        def post(i: int, gate: Any) -> dict[str, Any]:
            payload = {"request_id": gate.request_id, "token": gate.token, "value": True}
            return json_post_event(payload)

        def form(gate: Any) -> dict[str, Any]:
            return apigw_event("GET", f"/form/{gate.request_id}", query={"token": gate.token})

        reviewed, api_only = answers[: args.warm], answers[args.warm :]
        bare_post = json_post_event({"request_id": "r", "token": "x", "value": True})
        workloads = {
            "hitl": {
                "gets": [(None, first)] * args.warm,
                # A reviewer opens the form, then answers: the POST is what is timed.
                "posts": [(form(g), post(i, g)) for i, g in enumerate(reviewed)],
                # An API client answering a gate this container has never read.
                "api_posts": [(None, post(i, g)) for i, g in enumerate(api_only)],
            },
            "bare": {
                "gets": [(None, first)] * args.warm,
                "posts": [(None, bare_post)] * args.warm,
                "api_posts": [(None, bare_post)] * args.warm,
            },
        }
        warm: dict[str, dict[str, Any]] = {}
        for name in ("hitl", "bare"):
            module, path = apps[name]
            warm[name] = run_child(env, module, path, first=first, **workloads[name])
    finally:
        server.stop()

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
    print(
        f"warm, through the handler, {args.warm} of each: form GETs; answer POSTs after the "
        "form was shown (the reviewer's path); JSON answer POSTs to gates never read before"
    )
    print(f"  {'':6} {'':9} {'median':>9} {'p95':>9}")
    rows = (("gets", "form GET"), ("posts", "POST"), ("api_posts", "API POST"))
    for kind, label in rows:
        for name in ("bare", "hitl"):
            t = warm[name][kind]
            print(f"  {name:6} {label:9} {statistics.median(t):7.2f}ms {p95(t):7.2f}ms")

    def ratio(kind: str) -> str:
        h, b = warm["hitl"][kind], warm["bare"][kind]
        return (
            f"median {statistics.median(h) / statistics.median(b):.2f}x p95 {p95(h) / p95(b):.2f}x"
        )

    cold_ratio = med("hitl", "wall_ms") / med("bare", "wall_ms")
    print(
        f"ratio hitl/bare: cold start {cold_ratio:.2f}x (goal <= 1.10x); "
        f"warm (goal <= 1.3x): form GET {ratio('gets')}; POST {ratio('posts')}; "
        f"API POST to an unread gate {ratio('api_posts')} (2 sequential requests vs 1)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
