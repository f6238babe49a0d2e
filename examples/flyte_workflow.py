"""The flyteplugins-hitl workflow from Flyte's docs, on hitl: one import changed.

``analyze_data`` finds anomalies, ``request_human_review`` pauses at a gate until a person
answers, ``main`` continues or halts on the answer. Compared with the plugin's version, the
import is ``hitl_sdk`` and ``depends_on=[hitl.env]`` is gone (it still works if left in).

Run it locally (the gate's link is printed; the report of ``request_human_review`` holds it
too, with a ready curl line)::

    python examples/flyte_workflow.py                  # waits for an answer at the link
    python examples/flyte_workflow.py --answer true    # answers itself, runs unattended

Answer through the reviewer app (``hitl serve``, or the deployed Lambda: set
``HITL_APP_URL``) or with ``hitl respond ID true``. Where the gate lives comes from
``HITL_STORE_URL`` (default: a local folder), as for any hitl gate.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

import flyte
import flyte.report

import hitl_sdk as hitl

# How often the gate looks for an answer; the plugin's default is 5 s (tests use less).
POLL_SECONDS = float(os.environ.get("HITL_EXAMPLE_POLL_SECONDS", "5"))

env = flyte.TaskEnvironment(
    name="hitl-workflow",
    image=flyte.Image.from_debian_base(name="hitl").with_pip_packages("hitl-gates[flyte]"),
    resources=flyte.Resources(cpu="1", memory="512Mi"),
)


@env.task(report=True)
async def analyze_data(dataset: str) -> dict:
    """Automated task that produces a result requiring human review."""
    result = {
        "dataset": dataset,
        "row_count": 142857,
        "anomalies_detected": 3,
        "confidence": 0.87,
    }
    await flyte.report.replace.aio(
        f"Analysis complete: {result['anomalies_detected']} anomalies detected "
        f"(confidence: {result['confidence']:.0%})"
    )
    await flyte.report.flush.aio()
    return result


@env.task(report=True)
async def request_human_review(analysis: dict) -> bool:
    """Pause and ask a human whether to proceed with the flagged records."""
    event = await hitl.new_event.aio(
        "review_decision",
        data_type=bool,
        scope="run",
        prompt=(
            f"Analysis found {analysis['anomalies_detected']} anomalies "
            f"with {analysis['confidence']:.0%} confidence. "
            "Approve for downstream processing? (true/false)"
        ),
        poll_interval_seconds=POLL_SECONDS,
    )
    approved: bool = await event.wait.aio()
    return approved


@env.task(report=True)
async def main(dataset: str = "s3://my-bucket/data.parquet") -> str:
    analysis = await analyze_data(dataset=dataset)

    approved = await request_human_review(analysis=analysis)

    if approved:
        return "Processing approved — continuing pipeline."
    else:
        return "Processing rejected by reviewer — pipeline halted."


def _answer_when_open(value: str, run_name: str) -> None:
    """Answer this run's gate as an operator with store access would (``hitl respond``)."""
    from hitl_sdk import _config
    from hitl_sdk import answers as _answers
    from hitl_sdk.storage.keys import EventKeys
    from hitl_sdk.storage.records import Status

    keys = EventKeys.for_name(run_name, "review_decision")
    store = _config.get_store()
    for _ in range(600):
        if store.get_event(keys) is not None:
            if _answers.load(store, keys.request_id).status is Status.PENDING:
                _answers.submit(store, keys.request_id, value, via="cli", operator="example")
            return
        time.sleep(0.1)


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="s3://my-bucket/data.parquet")
    parser.add_argument("--run-name", help="a fixed run name: run it again to resume its gate")
    parser.add_argument("--answer", help="answer the gate yourself with this value (true/false)")
    args = parser.parse_args()
    logging.basicConfig(format="%(message)s")
    logging.getLogger("hitl").setLevel(logging.INFO)  # prints the gate's link

    flyte.init()
    run_name = args.run_name or f"hitl-example-{int(time.time())}"
    if args.answer is not None:
        threading.Thread(
            target=_answer_when_open, args=(args.answer, run_name), daemon=True
        ).start()

    # Ctrl-C is a stop asked for, not a crash (like `hitl demo`): say so and leave at once,
    # before Flyte's runner logs the interrupted task. The gate stays open; running the
    # example again with the same --run-name picks it up, with any answer given meanwhile.
    def stop(signum: int, frame: object) -> None:
        print(
            f"\nstopped. The gate stays open until its deadline: `hitl list` shows it; "
            f"`python {sys.argv[0]} --run-name {run_name}` resumes it.",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        os._exit(130)

    signal.signal(signal.SIGINT, stop)
    run = flyte.with_runcontext(mode="local", name=run_name).run(main, dataset=args.dataset)
    print(run.outputs()[0])


if __name__ == "__main__":
    _cli()
