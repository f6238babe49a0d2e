#!/usr/bin/env python3
"""Build the Lambda package for the reviewer app without Docker.

Usage (from the repository root)::

    python infra/build_lambda_package.py            # -> build/lambda (CodeUri) + build/lambda.zip
    python infra/build_lambda_package.py --reuse    # skip the build if nothing changed
    python infra/build_lambda_package.py --platform manylinux2014_x86_64 --python-version 3.11 \
        --out build/lambda-host                     # a copy the host can import (smoke tests)

What goes in: the runtime dependencies of ``hitl-gates[app]`` minus uvicorn (Lambda runs the app
through Mangum, not a server), downloaded by pip as binary wheels for the target
(``manylinux2014_aarch64``, CPython 3.12 by default), plus the ``hitl_sdk`` and ``hitl_lambda``
sources (templates and static files included, tests excluded).

What comes out: byte code caches of the wheels, their tests and C sources, console scripts
and every botocore service model except S3's, STS's and Secrets Manager's (the function talks
to those only; that is 90% of botocore's size). botocore itself stays: aiobotocore pins an
exact botocore, so the Lambda runtime's own will not do.

When an interpreter of the target version is on PATH (``python3.12``), every module is then
precompiled (``unchecked-hash``), because Lambda's read-only /var/task would make each cold
start compile everything again.

The output directory also gets a two-line ``Makefile`` so ``sam build`` (makefile builder)
copies the prebuilt package as is: no python3.12 on PATH and no container needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("hitl_sdk", "hitl_lambda")
# Installed by `hitl-gates[app]` but never imported by the function.
NOT_ON_LAMBDA = {"uvicorn"}
# botocore service models the function needs: S3 (the store), STS (credential providers) and
# Secrets Manager (its signing key, and the inbox's sign-in secrets).
BOTOCORE_SERVICES = {"s3", "sts", "secretsmanager"}
# Files no import reads: byte code (Lambda's file system is read-only, so it would never be
# written either; see the benchmark for the cold-import cost) and C/Cython sources of wheels.
SOURCE_ONLY = ("*.pyc", "*.pyx", "*.pxd", "*.c", "*.h")
LIMIT_UNZIPPED = 250 * 1024 * 1024  # Lambda: unzipped function + layers
LIMIT_ZIPPED = 50 * 1024 * 1024  # Lambda: zipped direct upload
SAM_MAKEFILE = """\
# Written by infra/build_lambda_package.py: `sam build` copies this prebuilt package as is.
build-HitlFunction:
\tcp -R . "$(ARTIFACTS_DIR)"
\trm -f "$(ARTIFACTS_DIR)/Makefile" "$(ARTIFACTS_DIR)/.build-stamp"
"""


def _load_toml(path: Path) -> dict[str, object]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pip vendors a TOML reader
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    with path.open("rb") as f:
        return tomllib.load(f)


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if match is None:
        raise SystemExit(f"cannot read the requirement {requirement!r} in pyproject.toml")
    return match.group(0).lower().replace("_", "-")


def requirements() -> list[str]:
    """The function's runtime requirements, read from pyproject.toml (never copied by hand)."""
    project = _load_toml(ROOT / "pyproject.toml")["project"]
    assert isinstance(project, dict)
    wanted = list(project["dependencies"]) + list(project["optional-dependencies"]["app"])
    return [r for r in wanted if _name(r) not in NOT_ON_LAMBDA]


def _source_files() -> list[Path]:
    files: list[Path] = []
    for package in PROJECT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and not _excluded_source(path.relative_to(ROOT)):
                files.append(path)
    return files


def _excluded_source(rel: Path) -> bool:
    parts = rel.parts
    return (
        "__pycache__" in parts
        or "tests" in parts
        or "templates_compiled" in parts
        or rel.suffix == ".pyc"
        or rel.name.startswith("test_")
    )


def stamp(platform: str, python_version: str) -> str:
    """A digest of everything the package is made from: change any of it and --reuse rebuilds."""
    digest = hashlib.sha256()
    digest.update(f"{platform} {python_version}\n".encode())
    digest.update("\n".join(requirements()).encode())
    digest.update(Path(__file__).read_bytes())
    for path in _source_files():
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _pip_install(target: Path, platform: str, python_version: str) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform",
        platform,
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "--target",
        str(target),
        *requirements(),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(
            "pip could not fetch the function's dependencies for "
            f"{platform}/cp{python_version} (is PyPI reachable?):\n{result.stderr.strip()}"
        )


def _prune(target: Path) -> None:
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache)
    for pattern in SOURCE_ONLY:
        for path in target.rglob(pattern):
            path.unlink()
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them
    for tests in [*target.glob("*/tests"), *target.glob("*/test")]:  # a library's own tests
        if tests.is_dir():
            shutil.rmtree(tests)
    data = target / "botocore" / "data"
    if data.is_dir():
        for service in data.iterdir():
            if service.is_dir() and service.name not in BOTOCORE_SERVICES:
                shutil.rmtree(service)


def _compiler(python_version: str, given: str | None) -> str | None:
    """An interpreter of the target version to precompile with, if this machine has one."""
    found = given or shutil.which(f"python{python_version}")
    if found is None:
        return None
    probe = subprocess.run(
        [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    if probe.returncode == 0 and probe.stdout.strip() == python_version:
        return found
    if given is not None:
        raise SystemExit(f"--compile-with {given} is not a working Python {python_version}")
    return None


def _precompile(target: Path, python: str) -> None:
    # /var/task is read-only: without byte code every cold start compiles every module again.
    # unchecked-hash: the zip's 2-second timestamps must not make the caches look stale.
    subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(target),
        ],
        check=True,
        capture_output=True,
    )


def _copy_sources(target: Path) -> None:
    for path in _source_files():
        dest = target / path.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def _compile_templates(target: Path) -> None:
    """The app's templates compiled to Python modules (hitl_lambda/templates_compiled), so a
    cold start loads them instead of compiling them; see hitl_lambda/pages.py."""
    out = target / "hitl_lambda" / "templates_compiled"
    code = "import sys; from hitl_lambda.pages import compile_templates as c; c(sys.argv[1])"
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        print(
            "build_lambda_package: templates not precompiled (run the build with the project's "
            f"virtualenv, where hitl-gates[app] is installed): {result.stderr.strip()[-300:]}",
            file=sys.stderr,
        )


def package_files(out: Path) -> list[Path]:
    """The files that go into the function (the build's own bookkeeping left out)."""
    return sorted(
        p
        for p in out.rglob("*")
        if p.is_file() and p.relative_to(out).as_posix() not in ("Makefile", ".build-stamp")
    )


def write_zip(out: Path, zip_path: Path) -> int:
    """Zip the package as Lambda receives it (deterministic order); returns its size."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in package_files(out):
            zf.write(path, path.relative_to(out).as_posix())
    return zip_path.stat().st_size


def build(
    out: Path,
    *,
    platform: str = "manylinux2014_aarch64",
    python_version: str = "3.12",
    zip_path: Path | None = None,
    reuse: bool = False,
    compile_bytecode: bool = True,
    compile_with: str | None = None,
) -> dict[str, object]:
    """Build (or reuse) the package in ``out``; returns its figures."""
    want = stamp(platform, python_version) + f" bytecode={compile_bytecode}"
    stamp_file = out / ".build-stamp"
    reused = reuse and stamp_file.is_file() and stamp_file.read_text() == want
    if not reused:
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _pip_install(staging, platform, python_version)
        _prune(staging)
        _copy_sources(staging)
        _compile_templates(staging)
        compiler = _compiler(python_version, compile_with) if compile_bytecode else None
        if compiler is not None:
            _precompile(staging, compiler)
        elif compile_bytecode:
            print(
                f"build_lambda_package: no Python {python_version} found to precompile with, so "
                "the package has no byte code and every cold start compiles it (about 2.5 x "
                f"slower, see benchmarks/lambda_package.py). Put python{python_version} on PATH "
                "or pass --compile-with /path/to/python" + python_version + ".",
                file=sys.stderr,
            )
        (staging / "Makefile").write_text(SAM_MAKEFILE)
        (staging / ".build-stamp").write_text(want)
        # Swap in the finished build only: an interrupted build never leaves a half package.
        shutil.rmtree(out, ignore_errors=True)
        os.replace(staging, out)
    files = package_files(out)
    unzipped = sum(p.stat().st_size for p in files)
    figures: dict[str, object] = {
        "out": str(out),
        "platform": platform,
        "python_version": python_version,
        "reused": reused,
        "files": len(files),
        "bytecode": any(p.suffix == ".pyc" for p in files),
        "unzipped_bytes": unzipped,
        "unzipped_vs_250MB_limit": round(unzipped / LIMIT_UNZIPPED, 4),
    }
    if zip_path is not None:
        if not (
            reused and zip_path.is_file() and zip_path.stat().st_mtime >= stamp_file.stat().st_mtime
        ):
            write_zip(out, zip_path)
        zipped = zip_path.stat().st_size
        figures.update(
            zip=str(zip_path),
            zipped_bytes=zipped,
            zipped_vs_50MB_limit=round(zipped / LIMIT_ZIPPED, 4),
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lambda")
    parser.add_argument("--zip", type=Path, default=ROOT / "build" / "lambda.zip")
    parser.add_argument("--no-zip", action="store_true", help="skip writing the zip")
    parser.add_argument("--platform", default="manylinux2014_aarch64")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--reuse", action="store_true", help="keep a build whose inputs match")
    parser.add_argument("--compile-with", help="the Python <version> to precompile with")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="skip precompiling (done only when python<version> is on PATH)",
    )
    args = parser.parse_args(argv)
    figures = build(
        args.out.resolve(),
        platform=args.platform,
        python_version=args.python_version,
        zip_path=None if args.no_zip else args.zip.resolve(),
        reuse=args.reuse,
        compile_bytecode=not args.no_bytecode,
        compile_with=args.compile_with,
    )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
