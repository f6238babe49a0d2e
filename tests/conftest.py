"""Shared fixtures: a real moto S3 server on loopback, and fresh stores on every backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# CPython 3.11.7 can fail compile() run on two threads at once ("AST constructor recursion depth
# mismatch"): pytest compiles (rewrites) modules on the main thread while a test's background
# thread (the poller, the app's workers) imports a module for the first time. Import up front
# what those threads would otherwise import lazily.
import hypothesis  # noqa: F401  (the plugin imports it again at the end of the run)
import pytest

import hitl_lambda.app
import hitl_lambda.inbox
import hitl_lambda.signin  # noqa: F401
import hitl_sdk._console
import hitl_sdk._notify
import hitl_sdk._opening
import hitl_sdk.flyte  # noqa: F401
from hitl_sdk import _config
from hitl_sdk.storage.store import Store

# Credentials and region for moto, set before anything builds a boto3/s3fs client.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("HITL_STORE_URL", None)
os.environ.pop("HITL_APP_URL", None)
os.environ.pop("HITL_RUN_ID", None)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1; AWS_ENDPOINT_URL_S3 points boto3 and s3fs at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    yield endpoint
    os.environ.pop("AWS_ENDPOINT_URL_S3", None)
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket on the moto server; its name."""
    import boto3

    name = f"hitl-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_url(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/hitl"


@pytest.fixture(params=["memory", "file", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One fresh store root per backend: the same tests run on all three."""
    if request.param == "memory":
        return f"memory://hitl-{uuid.uuid4().hex[:12]}"
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    return str(request.getfixturevalue("s3_url"))


@pytest.fixture
def store(store_url: str) -> Store:
    return Store(store_url)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Each test starts from the environment, with no configure() left by another test."""
    _config.reset()
    yield
    _config.reset()


@pytest.fixture
def sdk_store(store_url: str) -> Store:
    """The SDK configured on a fresh store of each backend, with a run id of its own."""
    _config.configure(store_url=store_url, run_id=f"test-{uuid.uuid4().hex[:8]}")
    return _config.get_store()


@pytest.fixture
def s3_store(s3_url: str) -> Store:
    """The SDK configured on a fresh moto bucket, with a run id of its own."""
    _config.configure(store_url=s3_url, run_id=f"app-{uuid.uuid4().hex[:8]}")
    return _config.get_store()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Any]:
    """A store folder, the reviewer app over it, a webhook for the links (tests/deployment.py)."""
    from deployment import Deployment

    deployed = Deployment(tmp_path)
    yield deployed
    deployed.close()


@pytest.fixture
def handler(s3_store: Store) -> Any:
    """What ``hitl_lambda.handler`` builds at cold start, over this test's bucket."""
    from mangum import Mangum

    from hitl_lambda.app import create_app

    return Mangum(create_app(s3_store), lifespan="off")


# -- suite summaries: one line per suite (faults, load, fuzz), printed after the test run -----

SUMMARY_LINES: list[str] = []


@pytest.fixture
def summary() -> Any:
    """``summary("faults: requests=.. ...")`` adds a line to the run's closing summary."""
    return SUMMARY_LINES.append


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY_LINES:
        terminalreporter.section("hitl suites")
        for line in SUMMARY_LINES:
            terminalreporter.write_line(line)
