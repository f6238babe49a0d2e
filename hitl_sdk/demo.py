"""The example pipeline from the ``flyteplugins-hitl`` docs, in plain Python (no Flyte).

An automated analysis flags anomalies, a review gate asks a person whether to go on, and the
pipeline ends "approved" or "rejected". ``hitl demo`` runs it with the reviewer app started
in the background; with the app already running elsewhere (``hitl serve``) run it directly::

    python -m hitl_sdk.demo          # prints the form link, waits, prints the outcome

The steps are separate functions so the CLI can show each one as it happens.
"""

from __future__ import annotations

from typing import Any, Literal

from ._event import Event
from ._opening import new_event

DATASET = "s3://my-bucket/data.parquet"
GATE_NAME = "review_decision"

Outcome = Literal["approved", "rejected"]
MESSAGES: dict[Outcome, str] = {
    "approved": "Processing approved — continuing pipeline.",
    "rejected": "Processing rejected by reviewer — pipeline halted.",
}


def analyze_data(dataset: str = DATASET) -> dict[str, Any]:
    """The automated step: a stand-in analysis that finds something a person should check."""
    return {
        "dataset": dataset,
        "row_count": 142857,
        "anomalies_detected": 3,
        "confidence": 0.87,
    }


def summary(analysis: dict[str, Any]) -> str:
    return (
        f"{analysis['anomalies_detected']} anomalies in {analysis['row_count']:,} rows of "
        f"{analysis['dataset']} (confidence {analysis['confidence']:.0%})"
    )


def request_human_review(
    analysis: dict[str, Any],
    *,
    timeout_seconds: float = 3600,
    poll_interval_seconds: float = 1,
) -> Event[bool]:
    """Open the review gate: a bool answer, true to approve. ``event.wait()`` gives it."""
    return new_event(
        GATE_NAME,
        data_type=bool,
        scope="run",
        prompt=(
            f"Analysis found {analysis['anomalies_detected']} anomalies "
            f"with {analysis['confidence']:.0%} confidence. "
            "Approve for downstream processing? (true/false)"
        ),
        timeout_seconds=timeout_seconds,
        poll_interval_seconds=poll_interval_seconds,
        details=f"Automated analysis: {summary(analysis)}.",
    )


def decide(approved: bool) -> Outcome:
    return "approved" if approved else "rejected"


def run(dataset: str = DATASET) -> Outcome:
    """The whole pipeline, blocking until the gate is answered (or ``EventTimeout``)."""
    analysis = analyze_data(dataset)
    event = request_human_review(analysis)
    print(f"Review gate open; answer it at {event.form_url}", flush=True)
    outcome = decide(event.wait())
    print(MESSAGES[outcome])
    return outcome


if __name__ == "__main__":
    run()
