"""The Lambda package build (infra/build_lambda_package.py), run for real.

pip downloads the wheels once; later runs come from pip's cache. Select or skip these tests
with ``-m package`` / ``-m "not package"``.

- The aarch64/CPython 3.12 package holds the handler, the project's packages and every
  module the handler imports, compiled for aarch64; no tests, no uvicorn; under the limits.
- The same build for this machine's platform, imported with nothing but the package and the
  standard library on sys.path, cold-starts against the moto S3 server and serves requests:
  what the build prunes (botocore's other service models, C sources) is really not needed.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.package

_spec = importlib.util.spec_from_file_location(
    "build_lambda_package", ROOT / "infra" / "build_lambda_package.py"
)
assert _spec is not None and _spec.loader is not None
build_lambda_package = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_lambda_package)

EM_AARCH64, EM_X86_64 = 183, 62  # ELF e_machine


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


def top_level_names(package: Path) -> set[str]:
    names = set()
    for entry in package.iterdir():
        if entry.name.endswith((".dist-info", ".data")) or entry.name in ("Makefile",):
            continue
        names.add(entry.name.split(".")[0] if entry.is_file() else entry.name)
    return names


@pytest.fixture(scope="module")
def aarch64(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("pkg") / "lambda"
    figures: dict[str, Any] = build_lambda_package.build(
        out, zip_path=out.with_suffix(".zip"), compile_bytecode=False
    )
    return figures


@pytest.fixture(scope="module")
def host_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if platform.machine() not in ("x86_64", "aarch64") or sys.platform != "linux":
        pytest.skip("the smoke test builds for this machine: linux x86_64 or aarch64 only")
    out = tmp_path_factory.mktemp("pkg-host") / "lambda"
    build_lambda_package.build(
        out,
        platform=f"manylinux2014_{platform.machine()}",
        python_version=f"{sys.version_info[0]}.{sys.version_info[1]}",
        compile_bytecode=False,
    )
    return out


def test_package_holds_the_handler_and_its_packages(aarch64: dict[str, Any]) -> None:
    out = Path(aarch64["out"])
    assert (out / "hitl_lambda" / "handler.py").is_file()
    assert (out / "hitl_lambda" / "app.py").is_file()
    assert (out / "hitl_sdk" / "storage" / "store.py").is_file()
    assert list((out / "hitl_lambda" / "templates").glob("*.html")), "the pages' templates"
    names = top_level_names(out)
    for needed in (
        "fastapi",
        "starlette",
        "mangum",
        "pydantic",
        "pydantic_core",
        "jinja2",
        "multipart",
        "botocore",
        "fsspec",
        "platformdirs",
    ):
        assert needed in names, needed
    assert "uvicorn" not in names, "Lambda runs the app through Mangum, not uvicorn"
    for unused in ("s3fs", "aiobotocore", "aiohttp"):  # s3:// is served by botocore directly
        assert unused not in names, unused
    assert "Makefile" in {p.name for p in out.iterdir()}, "sam build's makefile builder"


def test_package_is_built_for_aarch64_cpython_312(aarch64: dict[str, Any]) -> None:
    out = Path(aarch64["out"])
    shared = sorted(out.rglob("*.so"))
    assert any(p.parent.name == "pydantic_core" for p in shared)
    for library in shared:
        assert elf_machine(library) == EM_AARCH64, f"{library} is not aarch64"
        if "cpython-" in library.name:
            assert "cpython-312-aarch64-linux-gnu" in library.name, library.name


def test_package_leaves_out_what_the_function_never_imports(aarch64: dict[str, Any]) -> None:
    out = Path(aarch64["out"])
    files = [p.relative_to(out) for p in build_lambda_package.package_files(out)]
    assert not [
        f
        for f in files
        if "tests" in f.parts or (f.name.startswith("test_") and f.parts[0].startswith("hitl"))
    ]
    assert not [f for f in files if f.suffix in (".pyc", ".c", ".pyx", ".h")]
    assert not [f for f in files if "__pycache__" in f.parts]
    services = {p.name for p in (out / "botocore" / "data").iterdir() if p.is_dir()}
    assert services == build_lambda_package.BOTOCORE_SERVICES


def test_package_brings_a_botocore_that_writes_exclusively(aarch64: dict[str, Any]) -> None:
    # The package ships its own botocore (the runtime's may be older): PutObject must know
    # If-None-Match, or every answer would be written without the write-once guard.
    import gzip

    out = Path(aarch64["out"])
    (dist,) = out.glob("botocore-*.dist-info")
    version = next(
        line.split(":", 1)[1].strip()
        for line in (dist / "METADATA").read_text().splitlines()
        if line.startswith("Version:")
    )
    assert tuple(int(p) for p in version.split(".")[:3]) >= (1, 35, 36), version
    (model,) = (out / "botocore" / "data" / "s3").glob("*/service-2.json*")
    raw = model.read_bytes()
    text = gzip.decompress(raw) if model.suffix == ".gz" else raw
    shapes = json.loads(text)["shapes"]
    assert "IfNoneMatch" in shapes["PutObjectRequest"]["members"]


def test_package_size_is_within_lambda_limits(aarch64: dict[str, Any]) -> None:
    assert aarch64["unzipped_bytes"] < build_lambda_package.LIMIT_UNZIPPED
    assert aarch64["zipped_bytes"] < build_lambda_package.LIMIT_ZIPPED
    # Measured 30 MB / 8.4 MB: a regression to, say, all of botocore's models shows here.
    assert aarch64["unzipped_bytes"] < 60 * 1024 * 1024


def test_package_holds_every_module_the_handler_imports(aarch64: dict[str, Any]) -> None:
    # Import the handler here (the host's venv) and list where each module came from.
    # Modules the interpreter loads before any import (site's .pth hooks) are not the app's.
    script = textwrap.dedent(
        """
        import json, sys, sysconfig
        before = set(sys.modules)
        import hitl_lambda.handler
        stdlib = sysconfig.get_paths()["stdlib"]
        found = set()
        for name, module in list(sys.modules.items()):
            if name in before:
                continue
            origin = getattr(module, "__file__", None) or ""
            if (origin and not origin.startswith(stdlib)) or "site-packages" in origin:
                found.add(name.split(".")[0])
        print(json.dumps(sorted(found)))
        """
    )
    env = {"HITL_STORE_URL": f"memory://pkg-{uuid.uuid4().hex[:8]}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # urllib3, aiohttp and fsspec try `from backports import zstd` and do without: the
    # host venv happens to have the namespace; the package needs none (the smoke test shows).
    imported = set(json.loads(result.stdout)) - {"__main__", "backports"}
    missing = imported - top_level_names(Path(aarch64["out"]))
    assert not missing, f"the handler imports {missing}, which the package lacks"


SMOKE = textwrap.dedent(
    """
    import json, sys
    package, tests = sys.argv[1], sys.argv[2]
    sys.path[:0] = [package, tests]
    from hitl_lambda.handler import handler
    from apigw import apigw_event, invoke
    import hitl_lambda, botocore
    assert hitl_lambda.__file__.startswith(package), hitl_lambda.__file__
    assert botocore.__file__.startswith(package), botocore.__file__
    health = invoke(handler, apigw_event("GET", "/health"))["statusCode"]
    unknown = apigw_event("GET", "/status/abc.def", query={"token": "x"})
    out = [health, invoke(handler, unknown)["statusCode"],
           len([m for m in sys.modules if m.split(".")[0] == "uvicorn"])]
    print(json.dumps(out))
    """
)


def test_package_cold_starts_and_serves_with_nothing_else_on_the_path(
    host_package: Path, s3_bucket: str, moto_endpoint: str
) -> None:
    env = {
        "HITL_STORE_URL": f"s3://{s3_bucket}/hitl",
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PATH": "/usr/bin:/bin",
    }
    # -S -I: no site-packages, no PYTHONPATH: only the package and the standard library.
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", SMOKE, str(host_package), str(ROOT / "tests")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    health, unknown, uvicorn_modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert health == 200
    assert unknown == 404  # read through the pruned botocore: a missing event, not an error
    assert uvicorn_modules == 0


def test_reuse_skips_an_unchanged_build(aarch64: dict[str, Any]) -> None:
    out = Path(aarch64["out"])
    # (Twice: a source edited since the fixture's build rightly makes the first one rebuild.)
    build_lambda_package.build(out, compile_bytecode=False, reuse=True)
    again = build_lambda_package.build(out, compile_bytecode=False, reuse=True)
    assert again["reused"] is True
    assert again["files"] == len(build_lambda_package.package_files(out))


def test_precompiling_with_the_wrong_python_is_refused() -> None:
    wrong = "3.9" if sys.version_info[:2] != (3, 9) else "3.8"
    with pytest.raises(SystemExit, match="--compile-with"):
        build_lambda_package._compiler(wrong, sys.executable)
