"""A plain-Python agent loop whose risky tools wait for a person's approval.

    python examples/agent_loop.py

The "model" here is a fixed plan of tool calls (swap in your LLM's tool calls). ``lookup`` is
safe and runs at once; ``charge`` and ``send_email`` are gated by ``@hitl.require_approval``:
each call opens an approval gate showing the call and its arguments (the card number masked),
prints where to answer (or notifies HITL_NOTIFY's channels), and waits. Approved, the tool
runs; rejected, the loop hears why and carries on. Run ``hitl serve`` to answer in a browser,
or ``hitl respond <id> approve`` / ``reject --reason ...`` from another terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hitl_sdk as hitl


def lookup(customer: str) -> str:
    return f"{customer}: 2 orders, last one damaged in transit"


@hitl.require_approval(
    prompt="Charge {customer} {amount_cents} cents?", redact=["card"], poll_interval_seconds=1
)
def charge(customer: str, amount_cents: int, card: str) -> str:
    return f"charged {customer} {amount_cents} cents"


@hitl.require_approval(prompt="Send this email to {to}?", poll_interval_seconds=1)
def send_email(to: str, subject: str, body: str) -> str:
    return f"emailed {to}: {subject}"


TOOLS: dict[str, Callable[..., str]] = {
    "lookup": lookup,
    "charge": charge,
    "send_email": send_email,
}
PLAN: list[tuple[str, dict[str, Any]]] = [
    ("lookup", {"customer": "ada@example.com"}),
    ("charge", {"customer": "ada@example.com", "amount_cents": 1299, "card": "4242424242424242"}),
    ("send_email", {"to": "ada@example.com", "subject": "Your replacement", "body": "On its way."}),
]


def main() -> None:
    for name, arguments in PLAN:
        try:
            result = TOOLS[name](**arguments)
        except hitl.Rejected as exc:  # the agent learns why, and does not retry blindly
            result = f"not done ({exc.by}: {exc.reason or 'rejected'})"
        print(f"{name}: {result}", flush=True)


if __name__ == "__main__":
    main()
