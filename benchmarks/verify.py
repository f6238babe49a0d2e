"""What believing a decision costs: ``wait()`` verifies every person's answer before it returns
it. Measured per decision, against the baseline of reading the record at all (pydantic parsing
the stored JSON, which every wait already pays), in the same run:

- a single reviewer's signed answer (one Ed25519 signature over canonical JSON);
- a quorum decision of 3 votes written by the waiting task (each vote's signature, the rule
  recomputed, no earlier vote left out);
- signing one answer in the reviewer app.

Run: ``.venv/bin/python benchmarks/verify.py [--n 2000]``. Goal: under 1 ms per decision.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import timedelta


def per_call(fn: Callable[[], object], n: int) -> float:
    fn()  # warm: imports and caches
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n

    from hitl_sdk._planning import question_fingerprint
    from hitl_sdk.answers import Keyring, Signer, check_decision, tally
    from hitl_sdk.answers.quorum import decision_for
    from hitl_sdk.storage import (
        DecisionRecord,
        EventKeys,
        EventRecord,
        QuorumRule,
        VoteRecord,
        utcnow,
    )

    signer = Signer.from_seed("a benchmark's signing secret, 32+ characters")
    keys = Keyring([signer.public])
    now = utcnow()
    ids = EventKeys.for_name("bench", "gate")

    def event(quorum: QuorumRule | None = None) -> EventRecord:
        fingerprint = question_fingerprint("approval", "Ship?", None)
        reviewers = {f"d{i}": name for i, name in enumerate(("alice", "bob", "carol"))}
        return EventRecord(
            request_id=ids.request_id,
            run_id="bench",
            name="gate",
            data_type="approval",
            prompt="Ship?",
            created_at=now,
            deadline=now + timedelta(hours=1),
            timeout_seconds=3600,
            poll_interval_seconds=5,
            token_digests=reviewers,
            quorum=quorum,
            fingerprint=fingerprint,
        )

    single = event()
    answer = signer.sign_decision(
        DecisionRecord(
            request_id=ids.request_id,
            status="answered",
            value={"approved": True, "reason": None},
            answered_by="alice",
            via="form",
        ),
        single.fingerprint,
    )
    stored = answer.to_bytes()

    gated = event(QuorumRule(approvals=3))
    votes = [
        signer.sign_vote(
            VoteRecord(request_id=ids.request_id, reviewer=who, approved=True, via="form"),
            gated.fingerprint,
        )
        for who in ("alice", "bob", "carol")
    ]
    quorum = decision_for(gated, tally(gated, votes))  # unsigned: the waiting task wrote it
    quorum_stored = quorum.to_bytes()

    def parse(data: bytes) -> Callable[[], object]:
        return lambda: DecisionRecord.model_validate_json(data)

    baseline = per_call(parse(stored), n)
    verify = per_call(lambda: check_decision(single, answer, keys, now), n)
    assert check_decision(single, answer, keys, now) is None
    quorum_base = per_call(parse(quorum_stored), n)
    quorum_verify = per_call(lambda: check_decision(gated, quorum, keys, now, votes), n)
    assert check_decision(gated, quorum, keys, now, votes) is None
    sign = per_call(lambda: signer.sign_decision(answer, single.fingerprint), n)

    print(f"per decision, {n} runs each (baseline: parsing the stored record, paid anyway)")
    print(f"  read a decision (baseline)        {baseline * 1e6:8.1f} us")
    print(
        f"  verify a signed answer            {verify * 1e6:8.1f} us   "
        f"{verify / baseline:5.1f}x the baseline   goal < 1 ms: "
        f"{'met' if verify < 1e-3 else 'NOT met'}"
    )
    print(f"  read a quorum decision (baseline) {quorum_base * 1e6:8.1f} us")
    print(
        f"  verify a 3-vote quorum decision   {quorum_verify * 1e6:8.1f} us   "
        f"{quorum_verify / quorum_base:5.1f}x the baseline   goal < 1 ms: "
        f"{'met' if quorum_verify < 1e-3 else 'NOT met'}"
    )
    print(f"  sign an answer (the app)          {sign * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
