"""A TCP proxy in front of the S3 server that delays each request by a fixed time and counts
requests by method, using no CPU while it waits (asyncio sleeps).

Real S3 answers in 10-30 ms; moto on loopback in well under a millisecond, and on the same two
cores as everything else, which hides what hitl's side-by-side reads gain. Benchmarks put one
proxy in front of moto per client they measure::

    with LatencyProxy("http://127.0.0.1:5000", delay=0.015) as proxy:
        os.environ["AWS_ENDPOINT_URL_S3"] = proxy.url
        ...
        proxy.counts      # {"GET": 12, "PUT": 3, "LIST": 4}

A request is the first chunk a client sends after a pause (the rest of a body follows within
microseconds); it waits ``delay`` before it is forwarded, and the reply comes straight back.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from types import TracebackType
from urllib.parse import urlsplit

NEW_REQUEST_GAP = 0.002  # seconds of silence that end one request and start the next
METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")


class LatencyProxy:
    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self.url = ""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()

    def _count(self, chunk: bytes) -> None:
        if not chunk.startswith(METHODS):
            return
        line = chunk.split(b"\r\n", 1)[0]
        kind = "LIST" if b"list-type=2" in line else line.split(b" ", 1)[0].decode()
        with self._lock:
            self.counts[kind] += 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return

        async def requests() -> None:
            last = -1.0
            while data := await reader.read(65536):
                now = self._loop.time()
                if now - last > NEW_REQUEST_GAP:
                    self._count(data)
                    if self.delay:
                        await asyncio.sleep(self.delay)
                last = self._loop.time()
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def replies() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await asyncio.gather(requests(), replies())
        except (ConnectionError, OSError, asyncio.CancelledError):  # cancelled: shutting down
            writer.close()

    def reset(self) -> Counter[str]:
        """The counts so far, and start again from zero."""
        with self._lock:
            counted, self.counts = self.counts, Counter()
        return counted

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
        self._thread.join(timeout=5)

    async def _stop(self) -> None:
        """Every connection's task cancelled and finished, then the loop stopped."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop.stop()
