"""The one storage seam: an fsspec filesystem plus a root URL, speaking hitl's records.

``s3://bucket/prefix`` (s3fs), ``file:///path`` and ``memory://`` are the same code path.
Backend errors are translated here into the tree in ``_errors``; nothing above this module
sees a botocore or OS error.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote

import fsspec
from fsspec.asyn import AsyncFileSystem, sync
from fsspec.implementations.local import LocalFileSystem
from pydantic import ValidationError

from ._errors import (
    ConfigError,
    CorruptRecord,
    KeyExists,
    StoreAccessDenied,
    StoreNotFound,
    TransientStorageError,
)
from ._keys import KEY_PART_RE, REQUEST_ID_RE, EventKeys, decisions_prefix, run_prefix
from ._models import DecisionRecord, EventRecord, GrantRecord, _Record

R = TypeVar("R", bound=_Record)
T = TypeVar("T")

SCHEMES = ("s3", "file", "memory")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_FALLBACK_CREATE_LOCK = threading.Lock()
_TRANSIENT_MODULES = ("botocore", "aiobotocore", "aiohttp", "urllib3")
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hitl_store_deadline", default=None
)
# botocore settings of a store that serves requests: each attempt is bounded, 2 in all.
REQUEST_S3_CONFIG = {
    "connect_timeout": 2,
    "read_timeout": 3,
    "retries": {"max_attempts": 2, "mode": "standard"},
}


def _unsupported(url: object, why: str) -> ConfigError:
    return ConfigError(
        f"store URL {url!r} is not supported: use s3://bucket/prefix, file:///absolute/path or "
        "memory://name (set HITL_STORE_URL or configure()); an absolute folder path such as "
        f"/data/hitl works too, and this is {why}"
    )


def normalize_store_url(url: object) -> str:
    """The one rule for store URLs, shared by the SDK, the CLI and the app: the canonical URL
    for ``url``, or ``ConfigError`` saying what a good one looks like.

    ``s3://bucket/prefix``, ``file:///absolute/path``, ``memory://name`` and a plain absolute
    folder path (``/data/hitl``, ``~/hitl``; it becomes a ``file://`` URL) are accepted.
    Relative paths are refused everywhere: what they mean would depend on where a task runs.

    >>> normalize_store_url("/tmp/hitl store/")
    'file:///tmp/hitl%20store'
    """
    if not isinstance(url, str) or not url.strip():
        raise _unsupported(url, "empty")
    text = url.strip()
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.is_absolute():
            raise _unsupported(url, "a relative path or a malformed URL")
        return Path(os.path.normpath(path)).as_uri()
    scheme, _, rest = text.partition("://")
    if scheme not in SCHEMES:
        raise _unsupported(url, f"an unknown scheme, {scheme!r}")
    if scheme == "file":
        if not rest.startswith("/"):
            raise _unsupported(
                url, "a file URL without an absolute path (file:///path has 3 slashes)"
            )
        return Path(os.path.normpath(unquote(rest))).as_uri()
    root = rest.strip("/")
    if scheme == "s3":
        bucket, _, prefix = root.partition("/")
        if not bucket:
            raise ConfigError(f"store URL {url!r} names no bucket: use s3://bucket/prefix")
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise ConfigError(
                f"store URL {url!r}: {bucket!r} is not a valid S3 bucket name (3-63 "
                "characters: lowercase letters, digits, dots and hyphens)"
            )
        parts = prefix.split("/") if prefix else []
        if any(part in ("", ".", "..") for part in parts):
            raise ConfigError(
                f"store URL {url!r}: the prefix {prefix!r} has an empty, '.' or '..' part"
            )
    return f"{scheme}://{root}"


def parse_store_url(url: str) -> tuple[str, str]:
    """Split a store URL (after ``normalize_store_url``) into scheme and root."""
    scheme, _, rest = normalize_store_url(url).partition("://")
    root = unquote(rest) if scheme == "file" else rest
    return scheme, root.strip("/")


class Store:
    """Reads and writes hitl records under one root URL.

    >>> store = Store("memory://hitl-doc")
    >>> store.get_event(EventKeys.for_name("run", "gate")) is None
    True
    """

    def __init__(
        self,
        url: str,
        fs: fsspec.AbstractFileSystem | None = None,
        *,
        for_requests: bool = False,
    ) -> None:
        """``for_requests``: this store serves HTTP requests (the reviewer app), so an S3
        client built here retries little and times out soon; see ``deadline``."""
        self.url = normalize_store_url(url)
        scheme, root = parse_store_url(self.url)
        self.bucket = root.split("/", 1)[0] if scheme == "s3" else None
        if fs is None:
            fs = _default_fs(scheme, for_requests)
        self.fs = fs
        # Nothing is created here: a read-only command never makes a folder. Writes make the
        # folders they need (see _link_create).
        self._root = ("/" + root) if scheme in ("file", "memory") else root

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- records ---------------------------------------------------------------------------

    def create_event(self, record: EventRecord) -> None:
        self._create(EventKeys.parse(record.request_id).event, record)

    def get_event(self, keys: EventKeys) -> EventRecord | None:
        return self._get(keys.event, EventRecord)

    def create_decision(self, record: DecisionRecord) -> None:
        self._create(EventKeys.parse(record.request_id).decision, record)

    def get_decision(self, keys: EventKeys) -> DecisionRecord | None:
        return self._get(keys.decision, DecisionRecord)

    def create_grant(self, digest: str, record: GrantRecord) -> None:
        self._create(EventKeys.parse(record.request_id).grant(digest), record)

    def get_grant(self, keys: EventKeys, digest: str) -> GrantRecord | None:
        return self._get(keys.grant(digest), GrantRecord)

    def decided_ids(self, run_key: str) -> set[str]:
        """Request ids of a run's decided events, from one LIST of the run's decisions."""
        names = self._list(decisions_prefix(run_key))
        return {f"{run_key}.{name.removesuffix('.json')}" for name in names}

    def run_keys(self) -> list[str]:
        """Every run key in the store, sorted (one LIST of ``runs/``, a page per 1,000); stray
        keys that are no run's (``runs/README.txt``) are passed over."""
        return [name for name in self._list("runs/") if KEY_PART_RE.fullmatch(name)]

    def event_ids(self, run_key: str) -> list[str]:
        """The request ids of one run's events, sorted (one LIST); keys that are not an
        event's (a stray file) are passed over."""
        names = self._list(f"{run_prefix(run_key)}/events/")
        ids = (
            f"{run_key}.{name.removesuffix('.json')}" for name in names if name.endswith(".json")
        )
        return [i for i in ids if REQUEST_ID_RE.fullmatch(i)]

    def iter_events(self, skipped: list[str] | None = None) -> Iterator[EventRecord]:
        """Every event record in the store (for operators' listings, not for hot paths).

        An object that holds no valid record (truncated, or not ours) is passed over and its
        key appended to ``skipped``: one bad object never hides the others.
        """
        for run_key in self.run_keys():
            for request_id in self.event_ids(run_key):
                try:
                    record = self.get_event(EventKeys.parse(request_id))
                except CorruptRecord as exc:
                    if skipped is not None:
                        skipped.append(exc.key)
                    continue
                if record is not None:
                    yield record

    def check(self) -> None:
        """Fail now, with a clear message, if the root cannot be reached."""
        # Reading a key that never exists needs only the rights the app and tasks have anyway
        # (GetObject + ListBucket on the prefix) and tells a missing bucket from denied access.
        path = self._path("runs/.hitl-check")
        self._call("check", path, lambda **kw: _cat_or_none(self.fs, path, **kw))

    # -- bytes ------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _get(self, key: str, model: type[R]) -> R | None:
        path = self._path(key)
        data = self._call("read", path, lambda **kw: _cat_or_none(self.fs, path, **kw))
        if data is None:
            return None
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            raise CorruptRecord(
                key, f"{self.url}/{key} holds no valid {model.__name__} record: {exc}"
            ) from exc

    def _create(self, key: str, record: _Record) -> None:
        """Exclusive create. Refused because the object exists: read it back, and if it is
        this very write (same ``write_id``: the first attempt landed, its reply was lost, a
        retry was refused) that is success; otherwise ``KeyExists``."""
        path = self._path(key)
        data = record.to_bytes()
        try:
            self._call("create", path, lambda **kw: self._exclusive_create(path, data, **kw))
        except KeyExists as exc:
            try:
                existing = self._get(key, type(record))
            except CorruptRecord:
                existing = None
            if existing is None or existing.write_id != record.write_id:
                exc.existing = existing  # the caller needs not read it again
                raise

    def _list(self, prefix: str) -> list[str]:
        path = self._path(prefix).rstrip("/")

        def names(**kw: float) -> list[str]:
            try:
                entries = self._ls(path, **kw)
            except NotADirectoryError:  # a stray file where a folder was expected
                return []
            except FileNotFoundError as exc:
                if _is_missing_bucket(exc):
                    raise
                return []
            names = (str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)
            return sorted(n for n in names if not n.startswith("."))  # skip in-flight temp files

        return self._call("list", path, names)

    def _ls(self, path: str, **kw: float) -> list[str]:
        """The names under ``path``. On S3 exactly one LIST a page: s3fs's public ``ls`` lists
        the parent as well when a prefix is empty (as a run's decisions/ is while it waits),
        which would double the cost of every idle poll."""
        lsdir = getattr(self.fs, "_lsdir", None)
        if "s3" in self.fs.protocol and lsdir is not None:
            entries = sync(self.fs.loop, lsdir, path, **kw)
            return [str(e["name"]) for e in entries]
        return [str(e) for e in self.fs.ls(path, detail=False, **kw)]

    def _exclusive_create(self, path: str, data: bytes, **kw: float) -> None:
        if isinstance(self.fs, LocalFileSystem):
            _link_create(path, data)
        elif "s3" in self.fs.protocol:
            self.fs.pipe_file(path, data, mode="create", **kw)  # If-None-Match: *, atomic on S3
        else:
            # memory:// and other single-process filesystems: a lock makes check-then-write safe.
            with _FALLBACK_CREATE_LOCK:
                if self.fs.exists(path):
                    raise FileExistsError(path)
                self.fs.pipe_file(path, data)

    def _call(self, op: str, path: str, fn: Callable[..., T]) -> T:
        limit = _DEADLINE.get()
        kw: dict[str, float] = {}
        if limit is not None:
            left = limit - time.monotonic()
            if left <= 0:
                raise TransientStorageError(f"no time left to {op} {path} in this request")
            if isinstance(self.fs, AsyncFileSystem):
                kw["timeout"] = left  # fsspec's sync() cancels the call when it runs out
        try:
            return fn(**kw)
        except FileExistsError as exc:
            raise KeyExists(f"{path} already exists") from exc
        except FileNotFoundError as exc:
            if self.bucket is not None and (_is_missing_bucket(exc) or op in ("create", "check")):
                raise StoreNotFound(
                    f"bucket {self.bucket!r} does not exist (store {self.url}). Create it "
                    f"(aws s3 mb s3://{self.bucket}), deploy the stack in infra/, or set "
                    "HITL_STORE_URL to an existing bucket."
                ) from exc
            raise StoreNotFound(f"{path} cannot be reached: {exc}") from exc
        except PermissionError as exc:
            raise StoreAccessDenied(
                f"access denied while trying to {op} {path}: the AWS credentials in use lack "
                "permission. Grant the policy in infra/ to this role, or check AWS_PROFILE."
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise TransientStorageError(f"could not {op} {path}: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in _TRANSIENT_MODULES:
                raise TransientStorageError(f"could not {op} {path}: {exc}") from exc
            raise


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Within this block (this thread or task, and threads it hands work to with a copied
    context), every storage call must finish ``seconds`` from now: past that it raises
    ``TransientStorageError`` instead of starting, and an S3 call in flight is cancelled.

    The reviewer app sets one per request from the Lambda's remaining time, so its 503
    arrives before the function is stopped.
    """
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _default_fs(scheme: str, for_requests: bool = False) -> fsspec.AbstractFileSystem:
    if scheme == "s3":
        # s3fs by name, not fsspec.filesystem("s3"): flyte.init() re-registers "s3" to an
        # obstore filesystem, which rejects s3fs options and is not what exclusive create
        # was built on (s3fs sends If-None-Match: *).
        from s3fs import S3FileSystem

        # max_concurrency=1: records are tiny; above 1, s3fs sends HEAD (+ LIST when the key is
        # missing) before every GET to size a parallel download, tripling the cost of a poll.
        # skip_instance_cache: each store builds its own client from the settings of its time
        # (AWS_ENDPOINT_URL_S3 and the rest); fsspec would otherwise hand back a cached one.
        common: dict[str, object] = {
            "use_listings_cache": False,
            "max_concurrency": 1,
            "skip_instance_cache": True,
        }
        if not for_requests:
            fs: fsspec.AbstractFileSystem = S3FileSystem(**common)
            return fs
        # A person is waiting for the page: one retry at most, short timeouts. (s3fs's own
        # retry loop would otherwise wrap botocore's, for minutes on a dead network.)
        quick = S3FileSystem(**common, config_kwargs=REQUEST_S3_CONFIG)
        quick.retries = 1  # a class attribute in s3fs, not an argument
        return quick
    return fsspec.filesystem(scheme)


def _cat_or_none(fs: fsspec.AbstractFileSystem, path: str, **kw: float) -> bytes | None:
    try:
        return bytes(fs.cat_file(path, **kw))
    except FileNotFoundError as exc:
        if _is_missing_bucket(exc):
            raise
        return None


def _is_missing_bucket(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__!r} {exc.__context__!r}"
    return "NoSuchBucket" in text or "bucket does not exist" in text


def _link_create(path: str, data: bytes) -> None:
    """Exclusive create on a local folder: write a temp file, then hard-link it into place.

    ``os.link`` fails atomically when the target exists, so of two racing writers exactly one
    wins and the loser's bytes never touch the winner's file.
    """
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
