"""The bytes under the store: read, exclusive create and list, on one of two backends.

``S3Objects`` serves ``s3://`` with botocore directly (the client boto3 wraps): a GET is a
GetObject, an exclusive create is a PutObject with ``If-None-Match: *``, a listing is one
ListObjectsV2 per 1,000 keys. It imports in a fraction of the time s3fs (aiobotocore, aiohttp)
takes, which is most of the reviewer app's cold start on Lambda.

``FsspecObjects`` serves ``file://``, ``memory://`` and any fsspec filesystem a user passes to
``Store(url, fs=...)`` (an s3fs one included).

Both speak Python's errors to ``Store``: ``FileNotFoundError`` (a missing bucket says
``NoSuchBucket``), ``FileExistsError`` (an exclusive create refused), ``PermissionError``,
``TimeoutError`` and other ``OSError``\\s for what a retry may fix. ``Store`` turns them into
hitl's own error tree.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import fsspec

T = TypeVar("T")

_FALLBACK_CREATE_LOCK = threading.Lock()

# botocore settings. A store that serves requests (the reviewer app, `hitl respond`): a person
# is waiting, so each attempt is bounded and there are 2 in all. A waiting task: patient.
REQUEST_S3_CONFIG: dict[str, Any] = {
    "connect_timeout": 2,
    "read_timeout": 3,
    "retries": {"max_attempts": 2, "mode": "standard"},
}
TASK_S3_CONFIG: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 30,
    "retries": {"max_attempts": 6, "mode": "standard"},
}
# The shared poller reads up to 16 decisions at once; the app reads 2.
MAX_POOL_CONNECTIONS = 32


class Objects(Protocol):
    """What ``Store`` needs of a backend. ``timeout`` (seconds) bounds one call, if given."""

    def renew(self) -> None:
        """Drop connections and credentials held from before (a SnapStart restore)."""

    def read(self, path: str, timeout: float | None = None) -> bytes | None:
        """The object's bytes, or ``None`` if there is none (a missing bucket raises)."""

    def create(self, path: str, data: bytes, timeout: float | None = None) -> None:
        """Write ``data`` unless the object exists (then ``FileExistsError``); atomic."""

    def names(
        self,
        path: str,
        timeout: float | None = None,
        *,
        deep: bool = False,
        start_after: str | None = None,
    ) -> list[str]:
        """The full names directly under the folder ``path`` (a missing one lists empty);
        ``deep``: every object's name at any depth below it, and no folders; ``start_after``
        (a full name): only names that sort after it."""


class S3Objects:
    """``s3://`` over one botocore S3 client (thread-safe, shared by the store's users)."""

    def __init__(self, *, for_requests: bool = False) -> None:
        from botocore.config import Config

        settings = {**(REQUEST_S3_CONFIG if for_requests else TASK_S3_CONFIG)}
        if "request_checksum_calculation" in Config.OPTION_DEFAULTS:  # botocore 1.36+
            # No CRC32 of every body, sent and checked: records are small, signed JSON over
            # TLS, and the checksums cost more CPU than the rest of a PUT's preparation.
            settings["request_checksum_calculation"] = "when_required"
            settings["response_checksum_validation"] = "when_required"
        # hitl builds every request's parameters itself: botocore's check of them is skipped.
        self._config = Config(
            **settings, max_pool_connections=MAX_POOL_CONNECTIONS, parameter_validation=False
        )
        self.client: Any = None
        self.renew()
        self._bounded: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def renew(self) -> None:
        """A new client: the settings of this moment (AWS_ENDPOINT_URL_S3, credentials and
        region variables) read again, new connections. A session of its own each time, so no
        global default session is shared."""
        import botocore.session

        session = botocore.session.get_session()
        session.register_component("response_parser_factory", _parser_factory())
        self.client = session.create_client("s3", config=self._config)
        _lighter(self.client)

    def read(self, path: str, timeout: float | None = None) -> bytes | None:
        bucket, key = _split(path)
        try:
            reply = self._run(lambda: self.client.get_object(Bucket=bucket, Key=key), timeout)
            return bytes(reply["Body"].read())
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise _translated(exc, path) from exc

    def create(self, path: str, data: bytes, timeout: float | None = None) -> None:
        bucket, key = _split(path)

        def put() -> None:
            self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                IfNoneMatch="*",
                ContentType="application/json",
            )

        try:
            self._run(put, timeout)
        except Exception as exc:
            raise _translated(exc, path) from exc

    def names(
        self,
        path: str,
        timeout: float | None = None,
        *,
        deep: bool = False,
        start_after: str | None = None,
    ) -> list[str]:
        bucket, key = _split(path)
        prefix = f"{key}/" if key else ""
        found: list[str] = []
        ask: dict[str, str] = {"Bucket": bucket, "Prefix": prefix}
        if not deep:
            ask["Delimiter"] = "/"
        if start_after is not None:
            ask["StartAfter"] = _split(start_after)[1]
        try:
            while True:  # one request a page of 1,000
                page = self._run(lambda ask=ask: self.client.list_objects_v2(**ask), timeout)
                found += (f"{bucket}/{c['Key']}" for c in page.get("Contents", ()))
                found += (f"{bucket}/{p['Prefix']}" for p in page.get("CommonPrefixes", ()))
                if not page.get("IsTruncated"):
                    return found
                ask = {**ask, "ContinuationToken": page["NextContinuationToken"]}
        except Exception as exc:
            raise _translated(exc, path) from exc

    def _run(self, call: Any, timeout: float | None) -> Any:
        """``call()``, given up on (``TimeoutError``) after ``timeout`` seconds if one is set.

        botocore cannot cancel a request in flight, so a bounded call runs on a helper thread
        and is abandoned at the deadline; its own timeouts end it soon after."""
        if timeout is None:
            return call()
        with self._lock:
            if self._bounded is None:
                self._bounded = ThreadPoolExecutor(
                    max_workers=MAX_POOL_CONNECTIONS, thread_name_prefix="hitl-s3"
                )
        future = self._bounded.submit(call)
        try:
            return future.result(timeout=max(timeout, 0.0))
        except FutureTimeout:
            raise TimeoutError(f"no reply from S3 within {timeout:.1f}s") from None


def _parser_factory() -> Any:
    """botocore's response parsers, with savings for the two replies hitl reads most, both
    read by the waiting task in every cycle with answers arriving. A listing's success is read
    for its keys only: botocore's modelled parser spends about 29 ms of CPU on 1,000 keys
    (every field of every object), this one under 1 ms. An object's success is its body: the
    modelled parser reads some 40 headers hitl never uses. No timestamp S3 sends is parsed
    (records carry their own). Errors, and every other operation, parse as botocore parses
    them."""
    from botocore.parsers import ResponseParserFactory

    class Parsers(ResponseParserFactory):  # type: ignore[misc]
        def create_parser(self, protocol_name: str) -> Any:
            parser = super().create_parser(protocol_name)
            return _ReadsParser(parser) if protocol_name == "rest-xml" else parser

    factory = Parsers()
    factory.set_parser_defaults(timestamp_parser=str)
    return factory


def _lighter(client: Any) -> None:
    """Two per-request costs of botocore that buy hitl nothing, taken off ``client``: the user
    agent string built and rebuilt for every request (it is built once, for the client), and
    the second full XML parse of a listing that looks for an error inside a 200 reply (a
    listing is checked by its closing tag instead: a cut-off or error body lacks it and is
    retried as botocore would retry it)."""
    from botocore import handlers

    events = client.meta.events
    creator: Any = getattr(client, "_user_agent_creator", None)
    rebuild = getattr(creator, "rebuild_and_replace_user_agent_handler", None)
    to_string = getattr(creator, "to_string", None)
    if rebuild is not None and to_string is not None:
        events.unregister("request-created.s3", rebuild)
        user_agent = to_string()
        creator.to_string = lambda: user_agent
    check = getattr(handlers, "_handle_200_error", None)
    if check is None:
        return
    events.unregister("before-parse.s3.*", check)

    def check_200(operation_model: Any, response_dict: Any, **kwargs: Any) -> None:
        if operation_model.name != "ListObjectsV2":
            check(operation_model, response_dict, **kwargs)
        elif (
            response_dict
            and response_dict.get("status_code") == 200
            and not bytes(response_dict.get("body") or b"").rstrip().endswith(_LISTING_END)
        ):
            response_dict["status_code"] = 500

    events.register_first("before-parse.s3.*", check_200)


_ERROR_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
_LISTING_END = b"</ListBucketResult>"
_LISTING_KEY = re.compile(rb"<Key>([^<]*)</Key>")
_LISTING_PREFIX = re.compile(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>")
_LISTING_FIELD = re.compile(
    rb"<(IsTruncated|NextContinuationToken|EncodingType|KeyCount)>([^<]*)</\1>"
)


def _text(raw: bytes) -> str:
    text = raw.decode()
    return html.unescape(text) if "&" in text else text


class _ReadsParser:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def parse(self, response: dict[str, Any], shape: Any) -> Any:
        status = response["status_code"]
        if shape is not None and shape.name == "GetObjectOutput" and status == 404:
            # A missing object: read often (a gate's decision before anyone answers).
            parsed: dict[str, Any] | None = self._missing(response["body"])
            if parsed is None:
                return self._inner.parse(response, shape)
        elif shape is None or status >= 300:
            return self._inner.parse(response, shape)
        elif shape.name == "GetObjectOutput":
            parsed = {"Body": response["body"]}
        elif shape.name == "ListObjectsV2Output":
            parsed = self._listing(response["body"])
        else:
            return self._inner.parse(response, shape)
        headers = response["headers"]
        parsed["ResponseMetadata"] = {
            "HTTPStatusCode": response["status_code"],
            "HTTPHeaders": {k.lower(): v for k, v in headers.items()},
            "RequestId": headers.get("x-amz-request-id", ""),
        }
        return parsed

    @staticmethod
    def _missing(body: bytes) -> dict[str, Any] | None:
        """S3's 404 error document, as botocore's error parser reads it (None: not one)."""
        code = _ERROR_CODE.search(body)
        if code is None:
            return None
        message = _ERROR_MESSAGE.search(body)
        text = _text(message.group(1)) if message else ""
        return {"Error": {"Code": _text(code.group(1)), "Message": text}}

    @staticmethod
    def _listing(body: bytes) -> dict[str, Any]:
        """The keys, folders and paging of a ListBucketResult (checked whole by its closing
        tag before it gets here). Only ``Contents`` hold a ``Key`` element, and a folder is
        the ``Prefix`` inside ``CommonPrefixes``; every other field is ignored."""
        parsed: dict[str, Any] = {}
        # The top-level fields come before the first Contents/CommonPrefixes or after the
        # last; none of them is nested, so a search of the whole body finds each once.
        for name, value in _LISTING_FIELD.findall(body):
            field_name = name.decode()
            if field_name == "IsTruncated":
                parsed[field_name] = value.strip() == b"true"
            elif field_name == "KeyCount":
                parsed[field_name] = int(value or 0)
            else:
                parsed[field_name] = _text(value)
        contents = [{"Key": _text(k)} for k in _LISTING_KEY.findall(body)]
        prefixes = [{"Prefix": _text(p)} for p in _LISTING_PREFIX.findall(body)]
        if contents:
            parsed["Contents"] = contents
        if prefixes:
            parsed["CommonPrefixes"] = prefixes
        return parsed


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key.rstrip("/")


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _translated(exc: Exception, path: str) -> Exception:
    """A botocore error as the Python error ``Store`` understands."""
    code = _code(exc)
    if not code:
        return exc  # a connection error or timeout: botocore's own, judged transient by Store
    if code == "NoSuchBucket":
        return FileNotFoundError(f"NoSuchBucket: the bucket of {path} does not exist")
    if code in ("PreconditionFailed", "412"):
        return FileExistsError(path)
    if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId"):
        return PermissionError(f"{code} for {path}")
    if code in ("NoSuchKey", "404"):
        return FileNotFoundError(path)
    return OSError(f"{code} from S3 for {path}: {exc}")


class FsspecObjects:
    """Any fsspec filesystem: ``file://`` (hard-link create), ``memory://``, a user's own."""

    def __init__(self, fs: fsspec.AbstractFileSystem) -> None:
        from fsspec.asyn import AsyncFileSystem
        from fsspec.implementations.local import LocalFileSystem

        self.fs = fs
        self._local = isinstance(fs, LocalFileSystem)
        self._async = isinstance(fs, AsyncFileSystem)
        self._s3 = "s3" in fs.protocol

    def renew(self) -> None:
        """Nothing held: fsspec filesystems reconnect on their own."""

    def _kw(self, timeout: float | None) -> dict[str, float]:
        # fsspec's sync() cancels an async call when its timeout runs out.
        return {"timeout": timeout} if timeout is not None and self._async else {}

    def read(self, path: str, timeout: float | None = None) -> bytes | None:
        try:
            return bytes(self.fs.cat_file(path, **self._kw(timeout)))
        except FileNotFoundError as exc:
            if is_missing_bucket(exc):
                raise
            return None

    def create(self, path: str, data: bytes, timeout: float | None = None) -> None:
        if self._local:
            _link_create(path, data)
        elif self._s3:  # s3fs: If-None-Match: *, atomic on S3
            self.fs.pipe_file(path, data, mode="create", **self._kw(timeout))
        else:
            # memory:// and other single-process filesystems: a lock makes check-then-write safe.
            with _FALLBACK_CREATE_LOCK:
                if self.fs.exists(path):
                    raise FileExistsError(path)
                self.fs.pipe_file(path, data)

    def names(
        self,
        path: str,
        timeout: float | None = None,
        *,
        deep: bool = False,
        start_after: str | None = None,
    ) -> list[str]:
        kw = self._kw(timeout)
        try:
            if deep:
                found = [str(e) for e in self.fs.find(path, **kw)]
                after = start_after.lstrip("/") if start_after is not None else None
                return [e for e in found if after is None or e.lstrip("/") > after]
            lsdir = getattr(self.fs, "_lsdir", None)
            if self._s3 and lsdir is not None:
                # s3fs's public ls lists the parent too when a prefix is empty: one LIST only.
                from fsspec.asyn import sync

                return [str(e["name"]) for e in sync(self.fs.loop, lsdir, path, **kw)]
            return [str(e) for e in self.fs.ls(path, detail=False, **kw)]
        except NotADirectoryError:  # a stray file where a folder was expected
            return []
        except FileNotFoundError as exc:
            if is_missing_bucket(exc):
                raise
            return []


def is_missing_bucket(exc: BaseException) -> bool:
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
