"""Running the reviewer app locally under uvicorn, for ``hitl serve`` and ``hitl demo``.

FastAPI and uvicorn come with the ``app`` extra and are imported here only when a command
needs them, so ``import hitl_sdk`` never pulls them in. The listening socket is bound before
uvicorn starts, so a port in use is one clear error instead of a log line from a thread::

    sock = bind("127.0.0.1", 8787)
    with BackgroundApp(build_app(store), sock) as app:   # waits until /health answers
        print(app.url)
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

from .._errors import HitlError
from ..storage.keys import redact_tokens
from ..storage.store import Store

APP_EXTRA = "pip install 'hitl-gates[app]'"
_APP_MODULES = ("fastapi", "starlette", "uvicorn", "mangum", "jinja2", "multipart", "hitl_lambda")


class AppStartError(HitlError, OSError):
    """The reviewer app cannot start here: its extra is missing or the port is taken."""


def build_app(store: Store) -> Any:
    """The reviewer app (``hitl_lambda.app.create_app``) over ``store``."""
    try:
        import uvicorn  # noqa: F401  (checked here so a missing extra is reported up front)

        from hitl_lambda.app import create_app
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in _APP_MODULES:
            raise
        raise AppStartError(
            f"the reviewer app needs the 'app' extra ({missing} is not installed): "
            f"{APP_EXTRA}, or run ./dev demo from a clone of the repository"
        ) from exc
    return create_app(store)


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0 picks a free one), ready to hand to uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AppStartError(
                f"port {port} on {host} is already in use (is another `hitl serve` or "
                "`hitl demo` running?): stop it, or pick another port with --port"
            ) from exc
        raise AppStartError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --host/--port"
        ) from exc
    # Listening now, so the URL printed before uvicorn starts already takes connections
    # (they wait in the backlog until uvicorn accepts them).
    sock.listen()
    return sock


def url_of(sock: socket.socket) -> str:
    """The base URL a browser on this machine uses to reach the app on ``sock``."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RedactTokens(logging.Filter):
    """Replaces link tokens in a log record (uvicorn's access log prints query strings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        return True


def _server(app: Any, log_level: str) -> Any:
    import uvicorn

    # Signals stay with the caller: uvicorn only takes them when it runs on the main thread.
    config = uvicorn.Config(app, log_level=log_level)  # configures uvicorn's loggers now
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
    return uvicorn.Server(config)


def serve_forever(app: Any, sock: socket.socket, log_level: str = "info") -> None:
    """Serve in the foreground until Ctrl-C (uvicorn shuts down gracefully)."""
    _server(app, log_level).run(sockets=[sock])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class BackgroundApp:
    """The app on a daemon thread: ``with`` starts it (until /health answers), then stops it."""

    def __init__(self, app: Any, sock: socket.socket, log_level: str = "warning") -> None:
        self.url = url_of(sock)
        self._sock = sock
        self._server = _server(app, log_level)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="hitl-app", daemon=True
        )

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            if not self._thread.is_alive():
                raise AppStartError(f"the reviewer app stopped while starting on {self.url}")
            if _healthy(self.url):
                return
            time.sleep(0.05)
        self.stop()
        raise AppStartError(f"the reviewer app did not answer {self.url}/health in {timeout:g}s")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> BackgroundApp:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
