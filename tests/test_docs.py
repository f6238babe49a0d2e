"""The documentation: the site builds with no broken link or reference, every Python snippet
in README.md and docs/ type-checks against hitl as it is (mypy), and the README stays short
and points at pages that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def snippets() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in re.finditer(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            code = textwrap.dedent(match.group(2))
            found.append((f"{page.relative_to(ROOT)}:{line}", code))
    return found


def test_every_python_snippet_type_checks(tmp_path: Path) -> None:
    found = snippets()
    assert len(found) >= 10, "the scan found too few snippets: fix it"
    names = {}
    for n, (where, code) in enumerate(found):
        path = tmp_path / f"snippet_{n:03d}.py"
        path.write_text(code)
        names[path.name] = where
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary",
         "--follow-imports=silent", "--python-version", "3.11", "."],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )  # fmt: skip
    errors = [
        re.sub(r"^(snippet_\d+\.py)", lambda m: names[m.group(1)], line)
        for line in result.stdout.splitlines()
        if line.strip()
    ]
    assert not errors, "snippets that do not type-check:\n" + "\n".join(errors)


def test_the_readme_is_short_and_its_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / target).exists(), target
    # What newcomers tripped on: a file that is not in the repository.
    for page in PAGES:
        assert "DESIGN.md" not in page.read_text(), f"{page} cites DESIGN.md"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # Two clicks from the navigation: these pages answer these questions.
    nav = (ROOT / "mkdocs.yml").read_text()
    for page, must in {
        "how-to/quorum.md": "quorum=2",
        "reference/configuration.md": "HITL_INBOX_UNNAMED",
        "how-to/aws.md": "s3:PutObject",
        "reference/errors.md": "| 5 |",
    }.items():
        assert page in nav, page
        assert must in (ROOT / "docs" / page).read_text(), (page, must)
