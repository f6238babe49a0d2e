"""S3 requests per poll of a pending gate: hitl's store against s3fs's defaults.

Counts the HTTP requests a moto server on loopback receives while ``Store.get_decision``
polls a gate that has no answer yet (the steady state of every waiting task), and while it
reads one that has. The baseline is the same read through an s3fs filesystem with its default
options, measured in the same run. Run: ``.venv/bin/python benchmarks/poll_requests.py``.
"""

from __future__ import annotations

import logging
import os
import uuid

POLLS = 50


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "HTTP/1.1" in text:
            self.requests.append(text.split('"')[1].split(" ")[0])


def main() -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=True)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL_S3=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    import boto3
    from s3fs import S3FileSystem

    from hitl_sdk.storage.keys import EventKeys
    from hitl_sdk.storage.records import DecisionRecord
    from hitl_sdk.storage.store import Store

    counter = _Counter()
    logging.getLogger("werkzeug").addHandler(counter)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    keys = EventKeys.for_name("bench-run", "gate")

    def per_poll(store: Store) -> float:
        counter.requests.clear()
        for _ in range(POLLS):
            store.get_decision(keys)
        return len(counter.requests) / POLLS

    hitl_store = Store(f"s3://{bucket}/hitl")
    baseline = Store(f"s3://{bucket}/hitl", fs=S3FileSystem(skip_instance_cache=True))
    pending = per_poll(hitl_store), per_poll(baseline)
    hitl_store.create_decision(
        DecisionRecord(request_id=keys.request_id, status="answered", value=True, via="api")
    )
    answered = per_poll(hitl_store), per_poll(baseline)
    server.stop()

    print(f"S3 requests per poll ({POLLS} polls each, moto server on loopback)")
    print(f"{'gate':<10} {'hitl':>6} {'s3fs defaults':>14} {'ratio':>7}")
    for label, (ours, base) in (("pending", pending), ("answered", answered)):
        print(f"{label:<10} {ours:>6.2f} {base:>14.2f} {ours / base:>7.2f}")


if __name__ == "__main__":
    main()
