"""The S3 server the benchmarks run against: moto, served with HTTP keep-alive.

``python -m moto.server`` serves through werkzeug's development server, which closes every
connection after one reply, so a client opens a new TCP connection per request. Real S3 keeps
connections open, and hitl's clients reuse them (a pool of them per store). Here moto's WSGI
application runs under uvicorn, which keeps connections open as S3 does::

    with s3_server(env) as url:        # http://127.0.0.1:PORT
        ...
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

SERVE = """
import sys, uvicorn
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), interface="wsgi", log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def s3_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """A moto S3 server in a process of its own, for the ``with`` block; its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
