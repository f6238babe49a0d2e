#!/usr/bin/env python3
"""The Lambda package's size and the handler's cold-import time, with baselines.

Usage (from the repository root)::

    .venv/bin/python benchmarks/lambda_package.py            # 7 runs per figure
    .venv/bin/python benchmarks/lambda_package.py --runs 15

Size: builds (or reuses) the aarch64/CPython 3.12 package that gets deployed
(infra/build_lambda_package.py, into build/lambda) and prints it against Lambda's limits.

Cold import: an aarch64 package cannot be imported on an x86-64 host, so the same build is
made for this machine (build/lambda-host, and build/lambda-host-pyc precompiled) and
imported the way Lambda does: a fresh ``python -S -I -B`` process with only the package and
the standard library on sys.path, a read-only-like package (``-B``: no byte code written), the
store check going to a moto S3 server on loopback. Each figure is the median of --runs, next
to ``python -c pass`` and ``import fastapi`` measured the same way in the same run. Compare
the ratios, not the milliseconds, with Lambda's.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def _builder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "build_lambda_package", ROOT / "infra" / "build_lambda_package.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time(package: Path | None, statement: str, env: dict[str, str], runs: int) -> float:
    """Median wall time in ms of a fresh isolated interpreter running ``statement``."""
    code = (
        f"import sys; sys.path.insert(0, {str(package)!r}); {statement}" if package else statement
    )
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-I", "-B", "-c", code], env=env, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _print_size(figures: dict[str, Any]) -> None:
    print(f"package {figures['out']} ({figures['platform']}, CPython {figures['python_version']})")
    print(
        f"  {'reused' if figures['reused'] else 'built'}, {figures['files']} files, "
        f"byte code {'precompiled' if figures['bytecode'] else 'not included'}"
    )
    print(
        f"  unzipped {figures['unzipped_bytes'] / MB:6.1f} MB = "
        f"{figures['unzipped_vs_250MB_limit']:.3f} x the 250 MB limit"
    )
    print(
        f"  zipped   {figures['zipped_bytes'] / MB:6.1f} MB = "
        f"{figures['zipped_vs_50MB_limit']:.3f} x the 50 MB direct-upload limit"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    build = _builder()
    build_dir = ROOT / "build"
    _print_size(build.build(build_dir / "lambda", zip_path=build_dir / "lambda.zip", reuse=True))

    host = {
        "platform": f"manylinux2014_{platform.machine()}",
        "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "reuse": True,
    }
    plain = build.build(build_dir / "lambda-host", compile_bytecode=False, **host)
    compiled = build.build(
        build_dir / "lambda-host-pyc",
        zip_path=build_dir / "lambda-host-pyc.zip",
        compile_with=sys.executable,
        **host,
    )
    print(
        f"same build precompiled (here for {host['platform']}/{host['python_version']}): "
        f"{compiled['unzipped_bytes'] / MB:.1f} MB unzipped, "
        f"{compiled['zipped_bytes'] / MB:.1f} MB zipped"
    )

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        address, port = server.get_host_and_port()
        endpoint = f"http://{address}:{port}"
        import boto3

        bucket = f"hitl-bench-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=bucket)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_S3": endpoint,
            "HITL_STORE_URL": f"s3://{bucket}/hitl",
        }
        cold = "import hitl_lambda.handler"
        runs = args.runs
        baseline = _time(None, "pass", env, runs)
        fastapi = _time(Path(compiled["out"]), "import fastapi", env, runs)
        with_pyc = _time(Path(compiled["out"]), cold, env, runs)
        without_pyc = _time(Path(plain["out"]), cold, env, runs)
    finally:
        server.stop()

    print(
        f"cold start: import hitl_lambda.handler (app built, store checked on moto S3), median "
        f"of {runs} fresh `python -S -I -B` processes with only the package and the stdlib, "
        f"{platform.machine()}, Python {platform.python_version()}; the deployed aarch64 "
        "package cannot run here, so compare the ratios:"
    )
    print(f"  python -c pass                    {baseline:7.0f} ms    1.00 x")
    print(
        f"  import fastapi (precompiled)      {fastapi:7.0f} ms  {fastapi / baseline:6.2f} x pass"
    )
    print(
        f"  handler, precompiled package      {with_pyc:7.0f} ms  {with_pyc / baseline:6.2f} x "
        f"pass, {with_pyc / fastapi:5.2f} x fastapi"
    )
    print(
        f"  handler, package without .pyc     {without_pyc:7.0f} ms  "
        f"{without_pyc / baseline:6.2f} x pass, {without_pyc / with_pyc:5.2f} x precompiled"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
