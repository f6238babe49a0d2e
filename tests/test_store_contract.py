"""One contract, every backend: memory, a local folder, a moto S3 server through the default
botocore backend, and the same server through an s3fs filesystem passed in, run the same tests."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from hitl_sdk import ConfigError, KeyExists, StoreNotFound
from hitl_sdk.storage.keys import EventKeys, run_key
from hitl_sdk.storage.records import DecisionRecord, EventRecord, GrantRecord, utcnow
from hitl_sdk.storage.store import Store


@pytest.fixture(params=["memory", "file", "s3", "s3fs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return Store(f"memory://hitl-{uuid.uuid4().hex[:12]}")
    if request.param == "file":
        return Store((tmp_path / "store").as_uri())
    url = str(request.getfixturevalue("s3_url"))
    if request.param == "s3":
        return Store(url)
    from s3fs import S3FileSystem

    return Store(url, fs=S3FileSystem(skip_instance_cache=True, use_listings_cache=False))


def _event(run: str = "run-1", name: str = "gate") -> EventRecord:
    keys = EventKeys.for_name(run, name)
    now = utcnow()
    return EventRecord(
        request_id=keys.request_id,
        run_id=run,
        name=name,
        data_type="bool",
        prompt="Approve?",
        created_at=now,
        deadline=now + timedelta(hours=1),
        timeout_seconds=3600,
        poll_interval_seconds=5,
        token_digests={"ab" * 32: ""},
    )


def _answer(record: EventRecord, value: object = True, by: str = "alice") -> DecisionRecord:
    return DecisionRecord(
        request_id=record.request_id, status="answered", value=value, answered_by=by, via="api"
    )


def test_round_trip(store: Store) -> None:
    record = _event()
    keys = EventKeys.parse(record.request_id)
    store.create_event(record)
    assert store.get_event(keys) == record
    answer = _answer(record)
    store.create_decision(answer)
    assert store.get_decision(keys) == answer
    grant = GrantRecord(request_id=record.request_id, reviewer="bob")
    store.create_grant("cd" * 32, grant)
    assert store.get_grant(keys, "cd" * 32) == grant


def test_missing_keys_read_as_none(store: Store) -> None:
    keys = EventKeys.for_name("no-such-run", "nothing")
    assert store.get_event(keys) is None
    assert store.get_decision(keys) is None
    assert store.get_grant(keys, "00" * 32) is None
    assert store.decided_ids(keys.run_key) == set()
    assert list(store.iter_events()) == []


def test_the_same_write_again_is_its_own_success_not_a_conflict(store: Store) -> None:
    """A retry of a write whose reply was lost finds its own write_id: success, unchanged."""
    record = _event()
    store.create_event(record)
    store.create_event(record)  # the retry: same record, same write_id
    answer = _answer(record, True, "alice")
    store.create_decision(answer)
    store.create_decision(answer)
    with pytest.raises(KeyExists):  # another write of the same content is another writer
        store.create_decision(answer.model_copy(update={"write_id": "someone-else"}))
    kept = store.get_decision(EventKeys.parse(record.request_id))
    assert kept == answer


def test_exclusive_create_refuses_the_second_write(store: Store) -> None:
    record = _event()
    store.create_event(record)
    store.create_decision(_answer(record, True, "alice"))
    with pytest.raises(KeyExists):
        store.create_decision(_answer(record, False, "mallory"))
    with pytest.raises(KeyExists):
        store.create_event(record.model_copy(update={"prompt": "overwritten?", "write_id": "x"}))
    keys = EventKeys.parse(record.request_id)
    kept = store.get_decision(keys)
    assert kept is not None and kept.value is True and kept.answered_by == "alice"
    event = store.get_event(keys)
    assert event is not None and event.prompt == "Approve?"


def test_listing_a_runs_answers(store: Store) -> None:
    events = [_event("run-a", f"gate-{i}") for i in range(5)]
    other = _event("run-b", "gate-0")
    for record in [*events, other]:
        store.create_event(record)
    for record in events[:3]:
        store.create_decision(_answer(record))
    store.create_decision(_answer(other))
    assert store.decided_ids(run_key("run-a")) == {r.request_id for r in events[:3]}
    assert store.decided_ids(run_key("run-b")) == {other.request_id}
    assert {e.request_id for e in store.iter_events()} == {r.request_id for r in [*events, other]}


def test_two_concurrent_writers_exactly_one_wins(store: Store) -> None:
    record = _event()
    store.create_event(record)
    barrier = threading.Barrier(8)
    wins: list[str] = []
    losses: list[str] = []

    def write(who: str) -> None:
        barrier.wait()
        try:
            store.create_decision(_answer(record, who == "w0", who))
            wins.append(who)
        except KeyExists:
            losses.append(who)

    threads = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    kept = store.get_decision(EventKeys.parse(record.request_id))
    assert kept is not None and kept.answered_by == wins[0]


def test_corrupt_record_is_a_clear_storage_error(store: Store) -> None:
    record = _event()
    keys = EventKeys.parse(record.request_id)
    path = store._path(keys.event)
    store.objects.create(path, b"{not json")
    with pytest.raises(Exception, match="holds no valid EventRecord"):
        store.get_event(keys)


def test_missing_bucket_names_the_bucket_and_the_fix(moto_endpoint: str) -> None:
    bucket = f"hitl-missing-{uuid.uuid4().hex[:8]}"
    store = Store(f"s3://{bucket}/prefix")
    for action in (
        store.check,
        lambda: store.get_event(EventKeys.for_name("r", "n")),
        lambda: store.create_event(_event()),
    ):
        with pytest.raises(StoreNotFound, match=f"bucket '{bucket}' does not exist.*aws s3 mb"):
            action()


@pytest.mark.parametrize(
    "url", ["", "bucket/prefix", "http://example.com/x", "s3://", "gs://bucket", "s3:/bucket"]
)
def test_malformed_store_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="store URL"):
        Store(url)


def test_request_ids_never_carry_a_path() -> None:
    keys = EventKeys.for_name("../../etc", "../passwd")
    assert "/" not in keys.request_id and ".." not in keys.request_id
    assert EventKeys.parse(keys.request_id) == keys
    for bad in ["../x.y", "a/b.c", "a.b/c", "a%2Fb.c", "s3://bucket/x.y", "a..b", "A.b", "a.", ""]:
        with pytest.raises(LookupError):
            EventKeys.parse(bad)


def test_check_passes_on_a_reachable_empty_store(store: Store) -> None:
    store.check()  # an empty prefix of an existing bucket is fine


# -- S3 listings, read by hitl's own listing parser --------------------------------------------

ODD_NAMES = [
    "a&b",
    "a<b>c",
    "with space",
    "plus+sign",
    'quote"d',
    "it's",
    "ünïcödé-名前",
    "per%20cent",
    "semi;colon=eq",
    "amp&amp;",
]


def _botocore_listing(bucket: str, prefix: str, delimiter: str | None = None) -> list[str]:
    """The same listing read by botocore's own parser (the reference)."""
    import boto3

    paginator = boto3.client("s3").get_paginator("list_objects_v2")
    found: list[str] = []
    ask = {"Bucket": bucket, "Prefix": prefix, **({"Delimiter": delimiter} if delimiter else {})}
    for page in paginator.paginate(**ask):
        found += (f"{bucket}/{c['Key']}" for c in page.get("Contents", ()))
        found += (f"{bucket}/{p['Prefix']}" for p in page.get("CommonPrefixes", ()))
    return found


def test_s3_listings_page_past_1000_keys_and_keep_every_odd_name(s3_bucket: str) -> None:
    import boto3

    from hitl_sdk.storage.objects import S3Objects

    client = boto3.client("s3")
    keys = [f"many/k{i:04d}" for i in range(1003)]
    keys += [f"many/{name}" for name in ODD_NAMES]
    keys += [f"many/{name}/inside" for name in ODD_NAMES[:4]] + ["many/dir/x", "many/dir/y"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=s3_bucket, Key=k, Body=b"{}"), keys))

    objects = S3Objects()
    deep = objects.names(f"{s3_bucket}/many", deep=True)
    assert sorted(deep) == sorted(f"{s3_bucket}/{k}" for k in keys)
    assert sorted(deep) == sorted(_botocore_listing(s3_bucket, "many/"))

    shallow = objects.names(f"{s3_bucket}/many")
    assert sorted(shallow) == sorted(_botocore_listing(s3_bucket, "many/", "/"))
    assert f"{s3_bucket}/many/dir/" in shallow and f"{s3_bucket}/many/a&b/" in shallow
    assert f"{s3_bucket}/many/dir/x" not in shallow

    after = objects.names(f"{s3_bucket}/many", deep=True, start_after=f"{s3_bucket}/many/k0999")
    assert sorted(after) == sorted(f"{s3_bucket}/{k}" for k in keys if k > "many/k0999")


def test_a_listing_cut_off_mid_reply_is_retried_not_believed(
    s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200 listing whose body stops early (a dropped connection behind a proxy) is not read
    as a shorter listing: it is retried, and the full listing is what comes back."""
    import boto3
    from faultproxy import Fault, FaultProxy

    from hitl_sdk.storage.objects import S3Objects

    client = boto3.client("s3")
    keys = [f"cut/k{i:03d}" for i in range(40)]
    for key in keys:
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"{}")
    lists = []

    def policy(method: str, path: str) -> Fault | None:
        if method == "GET" and "list-type=2" in path:
            lists.append(path)
            return Fault("truncate") if len(lists) == 1 else None
        return None

    with FaultProxy(moto_endpoint, policy) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        found = S3Objects().names(f"{s3_bucket}/cut", deep=True)
    assert sorted(found) == sorted(f"{s3_bucket}/{k}" for k in keys)
    assert len(lists) == 2 and proxy.faults["truncate"] == 1
