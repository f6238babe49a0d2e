"""A small fault-injecting HTTP proxy on loopback, in front of the moto S3 server.

Each request is forwarded to the upstream (moto) unless the policy says otherwise::

    with FaultProxy(moto_endpoint, policy) as proxy:     # proxy.url: http://127.0.0.1:PORT
        ...

A policy is ``policy(method, path) -> Fault | None``:

- ``Fault("slowdown")``   answer S3's 503 SlowDown at once, forward nothing
- ``Fault("drop")``       close the connection without an answer, forward nothing
- ``Fault("delay", s)``   wait ``s`` seconds, then forward
- ``Fault("lost_reply")`` forward (the write happens upstream), then close without an answer
- ``Fault("truncate")``   forward, then answer with the first half of the reply's body only
  (its status and a content-length that matches the half: a reply cut off mid-stream)

Counters (``requests``, ``faults``) feed the suite's summary line. Bounded: it only ever
listens on 127.0.0.1, and stops with the ``with`` block.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass(frozen=True)
class Fault:
    kind: str
    seconds: float = 0.0


Policy = Callable[[str, str], "Fault | None"]


class FaultProxy:
    def __init__(self, upstream: str, policy: Policy) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.policy = policy
        self.requests = 0
        self.faults: Counter[str] = Counter()
        #: every request seen, as (method, path with query)
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._count(self.command, self.path)
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.seconds)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "slowdown":
                    self.send_response(503)
                    self.send_header("content-type", "application/xml")
                    self.send_header("content-length", str(len(SLOWDOWN)))
                    self.end_headers()
                    self.wfile.write(SLOWDOWN)
                    return
                status, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                if fault is not None and fault.kind == "lost_reply":
                    self.close_connection = True  # the write landed; its reply never comes
                    return
                if fault is not None and fault.kind == "truncate":
                    data = data[: len(data) // 2]
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up on a cut-off reply

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _count(self, method: str, path: str) -> Fault | None:
        fault = self.policy(method, path)
        with self._lock:
            self.requests += 1
            self.seen.append((method, path))
            if fault is not None:
                self.faults[fault.kind] += 1
        return fault

    def _forward(
        self, method: str, path: str, headers: object, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            items = [(k, v) for k, v in headers.items() if k.lower() != "connection"]  # type: ignore[attr-defined]
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in items:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = b"" if method == "HEAD" else response.read()
            return response.status, response.getheaders(), data
        finally:
            conn.close()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
