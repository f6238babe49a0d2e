"""What every ``hitl`` command shares: exit codes, printing, and opening the store."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from .. import _config
from .._errors import (
    AlreadyAnswered,
    ConfigError,
    EventCancelled,
    EventExpired,
    EventNotFound,
    EventTimeout,
    HitlError,
    InvalidValue,
    NotAllowed,
    StorageError,
    UnverifiedRecord,
)
from ..storage import Store, normalize_store_url
from .server import AppStartError
from .table import printable


class AuditFailed(HitlError):
    """``hitl audit`` found a person's answer that does not count."""


# First match wins, so subclasses come before their bases.
EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    (ConfigError, 2, "bad usage or configuration (store URL, option)"),
    (EventNotFound, 3, "no event with that id"),
    (InvalidValue, 4, "the value is not of the event's type"),
    (AlreadyAnswered, 5, "the event was already answered; the first answer stands"),
    (EventExpired, 6, "the gate is closed: it expired, timed out or was cancelled"),
    (EventCancelled, 6, ""),
    (EventTimeout, 6, ""),
    (
        NotAllowed,
        10,
        "not allowed: not a reviewer of this gate, or the requester approving their own request",
    ),
    (UnverifiedRecord, 9, ""),
    (StorageError, 7, "the store cannot be reached (missing bucket, access denied, network)"),
    (AppStartError, 8, "the reviewer app cannot start (port in use, 'app' extra missing)"),
    (
        AuditFailed,
        9,
        "a person's answer does not count: unsigned, forged, signed by a key not "
        "trusted, or bound to another question (hitl audit lists them)",
    ),
    (HitlError, 1, "any other error"),
)
EXIT_INTERRUPTED = 130

_MEANINGS = sorted({code: m for _, code, m in EXIT_CODES if m}.items())
_EPILOG = "exit codes:\n" + "\n".join(
    f"  {code:<3}  {meaning}"
    for code, meaning in [(0, "success"), *_MEANINGS, (EXIT_INTERRUPTED, "interrupted (Ctrl-C)")]
)


def exit_code(exc: BaseException) -> int:
    return next(code for cls, code, _ in EXIT_CODES if isinstance(exc, cls))


def say(text: str = "") -> None:
    # Flushed at once: a waiting demo must show its link even when stdout is a pipe. What a
    # task or a reviewer wrote may hold terminal escapes: printed inert.
    print(printable(text), flush=True)


def complain(text: str) -> None:
    print(printable(text), file=sys.stderr, flush=True)


# -- the store ---------------------------------------------------------------------------------


def store_url(args: argparse.Namespace) -> str:
    """The store URL from ``--store`` (a URL or an absolute folder path), else the SDK's
    settings; the same rule as the SDK's (``normalize_store_url``)."""
    given: str | None = args.store
    return normalize_store_url(given if given is not None else _config.settings().store_url)


def missing_folder(store: Store) -> Path | None:
    """The folder of a local store that does not exist (a mistyped ``--store``), else None.
    Reading commands say so instead of reading it as an empty store; they never create it."""
    if not store.url.startswith("file://"):
        return None
    folder = Path(url2pathname(urlsplit(store.url).path))
    return None if folder.is_dir() else folder


def open_store(args: argparse.Namespace, *, for_requests: bool = False) -> Store:
    if args.endpoint_url:
        # The standard variable boto3 and s3fs both honour; hitl adds no setting of its own.
        os.environ["AWS_ENDPOINT_URL_S3"] = args.endpoint_url
    url = store_url(args)
    try:
        return Store(url, for_requests=for_requests)
    except HitlError:
        raise
    except OSError as exc:  # a local folder that cannot be created
        raise StorageError(f"cannot open store {url}: {exc}") from exc


def probe(store: Store) -> None:
    """Fail now, with the store's own clear message, if it cannot be read (missing bucket)."""
    store.check()


def program() -> str:
    """How to run this command again: ``hitl`` if that is on PATH, else the script's path."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if script is None or script.name != "hitl":
        return "hitl"
    on_path = shutil.which("hitl")
    return "hitl" if on_path and Path(on_path).resolve() == script else str(script)


def store_flag(args: argparse.Namespace) -> str:
    """The store options to repeat in a suggested command, as they were given."""
    flags = f" --store {shlex.quote(store_url(args))}" if args.store else ""
    if args.endpoint_url:
        flags += f" --endpoint-url {shlex.quote(args.endpoint_url)}"
    return flags
