"""The one storage seam: a root URL over a byte backend (``_objects``), speaking hitl's records.

``s3://bucket/prefix`` (botocore), ``file:///path``, ``memory://`` and any fsspec filesystem
passed in share this code: records, exclusive create, listings, deadlines. Backend errors are
translated here into the tree in ``_errors``; nothing above this module sees a botocore or OS
error.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote

from pydantic import ValidationError

from .._errors import (
    ConfigError,
    CorruptRecord,
    KeyExists,
    StoreAccessDenied,
    StoreNotFound,
    TransientStorageError,
)
from .keys import (
    KEY_PART_RE,
    REQUEST_ID_RE,
    EventKeys,
    decisions_prefix,
    run_prefix,
    votes_prefix,
)
from .objects import REQUEST_S3_CONFIG, FsspecObjects, Objects, S3Objects, is_missing_bucket
from .records import DecisionRecord, EventRecord, GrantRecord, NoticeRecord, VoteRecord, _Record

if TYPE_CHECKING:
    import fsspec

__all__ = ["REQUEST_S3_CONFIG", "Store", "deadline", "normalize_store_url", "parse_store_url"]

R = TypeVar("R", bound=_Record)
KNOWN_BYTES = 32 * 1024 * 1024  # records remembered per store (they never change once written)
T = TypeVar("T")

SCHEMES = ("s3", "file", "memory")
# hitl's own keys below the prefix take at most about 470 bytes (an inbox marker's): S3 allows
# 1,024 in all.
MAX_PREFIX_BYTES = 500
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TRANSIENT_MODULES = ("botocore", "aiobotocore", "aiohttp", "urllib3")
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hitl_store_deadline", default=None
)


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
        if len(prefix.encode()) > MAX_PREFIX_BYTES:
            raise ConfigError(
                f"store URL {url[:80]!r}...: the prefix is {len(prefix.encode())} bytes; at most "
                f"{MAX_PREFIX_BYTES} leave room for hitl's keys within S3's 1,024-byte limit"
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
        """``fs``: an fsspec filesystem to use instead of the default backend of the URL's
        scheme (botocore for ``s3://``, fsspec's own for ``file://`` and ``memory://``).
        ``for_requests``: this store serves HTTP requests (the reviewer app), so an S3 client
        built here retries little and times out soon; see ``deadline``."""
        self.url = normalize_store_url(url)
        scheme, root = parse_store_url(self.url)
        self.bucket = root.split("/", 1)[0] if scheme == "s3" else None
        self.objects: Objects
        if fs is not None:
            self.objects = FsspecObjects(fs)
        elif scheme == "s3":
            self.objects = S3Objects(for_requests=for_requests)
        else:
            import fsspec

            self.objects = FsspecObjects(fsspec.filesystem(scheme))
        # Nothing is created here: a read-only command never makes a folder. Writes make the
        # folders they need (see _link_create).
        self._root = ("/" + root) if scheme in ("file", "memory") else root
        # Records are write-once and never rewritten, so one read (or our own write) of a key
        # holds for good: later reads come from here. Absence is never remembered.
        self._known: OrderedDict[str, tuple[_Record, int]] = OrderedDict()
        self._known_bytes = 0
        self._known_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- records ---------------------------------------------------------------------------

    def create_event(self, record: EventRecord) -> None:
        self._create(EventKeys.parse(record.request_id).event, record)

    def get_event(self, keys: EventKeys) -> EventRecord | None:
        return self._get(keys.event, EventRecord)

    def renew(self) -> None:
        """New connections and credentials for the backend (after a SnapStart restore)."""
        self.objects.renew()

    def knows_event(self, keys: EventKeys) -> bool:
        """Whether ``get_event`` would answer without a request (read or written before)."""
        with self._known_lock:
            return keys.event in self._known

    def create_decision(self, record: DecisionRecord) -> None:
        self._create(EventKeys.parse(record.request_id).decision, record)

    def get_decision(self, keys: EventKeys) -> DecisionRecord | None:
        return self._get(keys.decision, DecisionRecord)

    def create_signed_decision(self, record: DecisionRecord) -> None:
        """The gate's second slot (see ``EventKeys.signed_decision``); ``KeyExists`` if taken."""
        self._create(EventKeys.parse(record.request_id).signed_decision, record)

    def get_signed_decision(self, keys: EventKeys) -> DecisionRecord | None:
        return self._get(keys.signed_decision, DecisionRecord)

    def create_notice(self, record: NoticeRecord) -> bool:
        """Claim a reminder/escalation: True if this call wrote it (so it is ours to send).
        At most once: a claim whose reply was lost reads as someone else's (nothing is read
        back), so a reminder may be skipped, never sent twice."""
        try:
            self._create(
                EventKeys.parse(record.request_id).notice(record.name), record, read_back=False
            )
        except KeyExists:
            return False
        return True

    def get_notice(self, request_id: str, name: str) -> NoticeRecord | None:
        """A notice record of the gate (``None`` if there is none)."""
        return self._get(EventKeys.parse(request_id).notice(name), NoticeRecord)

    def create_grant(self, digest: str, record: GrantRecord) -> None:
        self._create(EventKeys.parse(record.request_id).grant(digest), record)

    def get_grant(self, keys: EventKeys, digest: str) -> GrantRecord | None:
        return self._get(keys.grant(digest), GrantRecord)

    def create_vote(self, record: VoteRecord) -> None:
        """A reviewer's vote; ``KeyExists`` (with ``existing``) if they voted before."""
        self._create(EventKeys.parse(record.request_id).vote(record.reviewer), record)

    def vote_names(self, keys: EventKeys) -> list[str]:
        """The names of a quorum gate's vote objects (one LIST)."""
        return self._list(keys.votes)

    def get_vote(self, keys: EventKeys, name: str) -> VoteRecord | None:
        """A vote by its object's name (from ``vote_names`` / ``run_vote_names``)."""
        return self._get(f"{keys.votes}{name}", VoteRecord)

    def run_vote_names(self, run_key: str) -> dict[str, list[str]]:
        """Every vote of a run, from one LIST (a page per 1,000): event key -> vote names."""
        found: dict[str, list[str]] = {}
        for rest in self._list_below(votes_prefix(run_key)):
            parts = rest.split("/")
            if len(parts) != 2 or not KEY_PART_RE.fullmatch(parts[0]):
                continue  # not <event-key>/<vote> right under votes/: a stray object
            if parts[1].endswith(".json") and not parts[1].startswith("."):
                found.setdefault(parts[0], []).append(parts[1])
        return found

    def create_marker(self, key: str) -> None:
        """An empty index object (the inbox's), written once; ``KeyExists`` if it is there."""
        path = self._path(key)
        self._call("create", path, lambda timeout: self.objects.create(path, b"", timeout))

    def index_names(self, folder: str, *, start_after: str) -> list[str]:
        """Every object below ``folder`` whose key sorts after ``start_after`` (both relative
        to the root), as paths relative to the folder: one LIST a page of 1,000."""
        return self._list_below(folder, start_after)

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
        self._call("check", path, lambda timeout: self.objects.read(path, timeout))

    # -- bytes ------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _get(self, key: str, model: type[R]) -> R | None:
        with self._known_lock:
            known = self._known.get(key)
            if known is not None:
                self._known.move_to_end(key)
        if known is not None and isinstance(known[0], model):
            return known[0]
        path = self._path(key)
        data = self._call("read", path, lambda timeout: self.objects.read(path, timeout))
        if data is None:
            return None
        try:
            record = model.model_validate_json(data)
        except ValidationError as exc:
            raise CorruptRecord(
                key, f"{self.url}/{key} holds no valid {model.__name__} record: {exc}"
            ) from exc
        self._remember(key, record, len(data))
        return record

    def _remember(self, key: str, record: _Record, size: int) -> None:
        if size > KNOWN_BYTES // 16:
            return  # a record with large details: read it again rather than crowd out others
        with self._known_lock:
            if key in self._known:
                return
            self._known[key] = (record, size)
            self._known_bytes += size
            while self._known_bytes > KNOWN_BYTES:
                _, (_, dropped) = self._known.popitem(last=False)
                self._known_bytes -= dropped

    def _create(self, key: str, record: _Record, *, read_back: bool = True) -> None:
        """Exclusive create. Refused because the object exists: read it back, and if it is
        this very write (same ``write_id``: the first attempt landed, its reply was lost, a
        retry was refused) that is success; otherwise ``KeyExists``. ``read_back=False``:
        any refusal is ``KeyExists`` (nothing is read)."""
        path = self._path(key)
        data = record.to_bytes()
        try:
            self._call("create", path, lambda timeout: self.objects.create(path, data, timeout))
        except KeyExists as exc:
            if not read_back:
                raise
            try:
                existing = self._get(key, type(record))
            except CorruptRecord:
                existing = None
            if existing is None or existing.write_id != record.write_id:
                exc.existing = existing  # the caller needs not read it again
                raise
            return
        self._remember(key, record, len(data))

    def _list(self, prefix: str) -> list[str]:
        path = self._path(prefix).rstrip("/")

        def names(timeout: float | None) -> list[str]:
            entries = self.objects.names(path, timeout)
            names = (e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
            return sorted(n for n in names if not n.startswith("."))  # skip in-flight temp files

        return self._call("list", path, names)

    def _list_below(self, prefix: str, start_after: str | None = None) -> list[str]:
        """Every object at any depth below ``prefix`` (whose key sorts after ``start_after``,
        if given), as paths relative to it: one LIST a page of 1,000."""
        root = self._path(prefix).rstrip("/")
        after = self._path(start_after) if start_after is not None else None

        def names(timeout: float | None) -> list[str]:
            return self.objects.names(root, timeout, deep=True, start_after=after)

        cut = len(root.strip("/")) + 1
        return [e.strip("/")[cut:] for e in self._call("list", root, names)]

    def _call(self, op: str, path: str, fn: Callable[[float | None], T]) -> T:
        limit = _DEADLINE.get()
        left: float | None = None
        if limit is not None:
            left = limit - time.monotonic()
            if left <= 0:
                raise TransientStorageError(f"no time left to {op} {path} in this request")
        try:
            return fn(left)
        except FileExistsError as exc:
            raise KeyExists(f"{path} already exists") from exc
        except FileNotFoundError as exc:
            if self.bucket is not None and (is_missing_bucket(exc) or op in ("create", "check")):
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
