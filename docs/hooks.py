"""MkDocs hook: the screenshots the browser tests save (test-artifacts/) copied into the docs'
images before each build, so the pages show the app as the last test run drew it. The
committed copies in docs/images/screens serve a fresh clone that has run no test yet."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHOWN = (
    "form.png",
    "choice-1200.png",
    "choice-390.png",
    "approval-1200.png",
    "approval-390.png",
    "quorum-pending-1200.png",
    "quorum-pending-390.png",
    "inbox-1200.png",
    "inbox-390.png",
    "agent-edit-1200.png",
    "agent-edit-390.png",
)


def on_pre_build(config: Any, **kwargs: Any) -> None:
    target = ROOT / "docs" / "images" / "screens"
    target.mkdir(parents=True, exist_ok=True)
    for name in SHOWN:
        source = ROOT / "test-artifacts" / name
        copy = target / name
        if source.exists() and (not copy.exists() or source.stat().st_mtime > copy.stat().st_mtime):
            shutil.copy2(source, copy)
