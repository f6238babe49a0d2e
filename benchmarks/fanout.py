"""Fan-out: N gates waiting in one run, on a moto S3 server in a process of its own.

For N = 100, 1,000 and 10,000 (10,000 polls every 5 s), while nobody answers: S3 requests per
cycle, CPU per cycle of this process (the waiting task), its share of a core, the cycle
period against the nominal poll interval and peak RSS; then every gate is answered and the
time from the last answer until ``wait_all`` returns is measured.

The baseline, measured in the same run on the same gates, is per-gate polling (what each
``wait()`` did before the shared poller): one GET per gate per cycle. The ratio is hitl's
requests per cycle over the baseline's.

Run: ``.venv/bin/python benchmarks/fanout.py [N ...]``
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SIZES = {100: 1.0, 1000: 1.0, 10_000: 5.0}  # gates -> poll interval (s)
WINDOW_CYCLES = 4
BASELINE_SAMPLE = 1000


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return proc, f"http://127.0.0.1:{port}"


def requests_in(log: Path, start: int) -> tuple[int, dict[str, int]]:
    text = log.read_bytes()[start:].decode(errors="replace")
    kinds = {"LIST": 0, "GET": 0, "PUT": 0}
    for line in text.splitlines():  # werkzeug colours 4xx lines: match past the escape codes
        if "GET /" in line and "list-type=2" in line:
            kinds["LIST"] += 1
        elif "GET /" in line:
            kinds["GET"] += 1
        elif "PUT /" in line:
            kinds["PUT"] += 1
    return len(log.read_bytes()), kinds


def bench(n: int, poll: float, store_url: str, log: Path) -> dict[str, float]:
    import hitl_sdk as hitl
    from hitl_sdk import _config
    from hitl_sdk import answers as _answers
    from hitl_sdk._poller import poller
    from hitl_sdk.storage.keys import EventKeys

    _config.configure(store_url=store_url, run_id=f"fan-{n}-{uuid.uuid4().hex[:6]}")

    def gate(i: int) -> hitl.Event[int]:
        return hitl.new_event(f"g{i}", int, timeout_seconds=3600, poll_interval_seconds=poll)

    begun = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        gates = list(pool.map(gate, range(n)))
    store = _config.get_store()

    created = time.monotonic()
    phases = {"create_s": created - begun}
    # Baseline: per-gate polling (every wait() polling its own gate), one cycle of it. Above
    # BASELINE_SAMPLE gates, a cycle over that many of them, scaled to N (it is linear: one
    # GET per gate), so the 10,000 row does not spend minutes proving it.
    sample = gates[:BASELINE_SAMPLE]
    offset, _ = requests_in(log, 0)
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda g: store.get_decision(EventKeys.parse(g.request_id)), sample))
    baseline_seconds = (time.monotonic() - started) * n / len(sample)
    time.sleep(0.5)  # the server's log lines of that cycle
    offset, base_kinds = requests_in(log, offset)
    baseline_per_cycle = sum(base_kinds.values()) * n / len(sample)
    phases["baseline_s"] = time.monotonic() - started

    results: list[int] = []
    waiter = threading.Thread(target=lambda: results.extend(hitl.wait_all(gates)), daemon=True)
    waiter.start()
    while poller().watching() < n:  # registering is not measured
        time.sleep(0.01)
    start = poller().lists
    while poller().lists < start + 1:  # nor the cycle it wakes
        time.sleep(0.01)
    first = poller().lists
    offset, _ = requests_in(log, offset)
    cpu, wall = time.process_time(), time.monotonic()
    while poller().lists < first + WINDOW_CYCLES:
        time.sleep(0.005)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    offset, kinds = requests_in(log, offset)
    cycles = poller().lists - first

    answering = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda ig: _answers.submit(
                    store, ig[1].request_id, str(ig[0]), via="cli", operator="bench"
                ),
                enumerate(gates),
            )
        )
    last_answer = time.monotonic()
    phases["answer_s"] = last_answer - answering
    waiter.join()
    returned = time.monotonic() - last_answer
    print(f"  N={n}: " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()), file=sys.stderr)
    assert results == list(range(n)), "wait_all returned the wrong answers"
    return {
        "n": n,
        "poll": poll,
        "per_cycle": sum(kinds.values()) / cycles,
        "gets_per_cycle": kinds["GET"] / cycles,
        "baseline_per_cycle": baseline_per_cycle,
        "baseline_cycle_s": baseline_seconds,
        "cpu_ms": 1000 * cpu / cycles,
        "core": cpu / wall,
        "period": (wall / cycles) / poll,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "returned_s": returned,
    }


def main() -> None:
    logging.disable(logging.INFO)  # the SDK's "gate is open" line per gate
    sizes = [int(a) for a in sys.argv[1:]] or list(SIZES)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    log = Path(tempfile.mkdtemp()) / "moto.log"
    moto, endpoint = start_moto(log)
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    try:
        import boto3

        for _ in range(100):
            try:
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="fanout")
                break
            except Exception:
                time.sleep(0.1)
        rows = [bench(n, SIZES.get(n, 1.0), "s3://fanout/hitl", log) for n in sizes]
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    print(
        f"{'gates':>6} {'poll s':>6} {'req/cycle':>9} {'GETs':>5} {'baseline':>8} "
        f"{'CPU ms/cycle':>12} {'core':>5} {'period/nominal':>14} {'RSS MB':>7} "
        f"{'last answer->all s':>18} {'ratio':>7}"
    )
    for r in rows:
        print(
            f"{r['n']:>6.0f} {r['poll']:>6.1f} {r['per_cycle']:>9.2f} {r['gets_per_cycle']:>5.1f} "
            f"{r['baseline_per_cycle']:>8.0f} {r['cpu_ms']:>12.1f} {r['core']:>5.3f} "
            f"{r['period']:>14.2f} {r['rss_mb']:>7.0f} {r['returned_s']:>18.2f} "
            f"{r['per_cycle'] / r['baseline_per_cycle']:>7.4f}"
        )
    print("goals:")
    for r in rows:
        n = int(r["n"])
        limits = [
            (
                f"N={n}: requests per cycle <= {1 + n / 1000:g} (1 + N/1000)",
                r["per_cycle"],
                1 + n / 1000,
            ),
            (
                f"N={n}: waiting CPU <= {0.05 if n >= 10_000 else 0.2:g} cores",
                r["core"],
                0.05 if n >= 10_000 else 0.2,
            ),
        ]
        for name, figure, limit in limits:
            verdict = "met" if figure <= limit else "NOT met"
            print(f"  {name:48} {figure:8.3f} (limit {limit:g}) {verdict}")
        print(f"  N={n}: peak RSS {r['rss_mb']:.0f} MB (reported)")


if __name__ == "__main__":
    main()
