"""A Pydantic AI agent whose refund tool waits for a person's approval.

    pip install pydantic-ai-slim      # plus your model provider's extra
    python examples/pydantic_ai_agent.py

Pydantic AI was picked for the example because its slim package installs lightest of the agent
frameworks (pydantic, httpx and OpenTelemetry's API, all of which hitl's stack has already; no
provider SDK unless you ask for one) and it can run without a model service: the
``FunctionModel`` below stands in for an LLM and asks for one tool call. Put your model's name
in ``Agent(...)`` instead. The tool is an ordinary function under ``@hitl.require_approval``:
Pydantic AI reads its signature for the tool's schema, hitl gates every call.
"""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import hitl_sdk as hitl


def planner(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The stand-in model: call ``refund`` once, then report what the tool said."""
    returned = [
        part
        for message in messages
        for part in getattr(message, "parts", [])
        if getattr(part, "part_kind", "") == "tool-return"
    ]
    if not returned:
        arguments = {"order": "A-1001", "amount": 40.0, "api_key": "sk-live-not-for-eyes"}
        return ModelResponse(parts=[ToolCallPart("refund", arguments)])
    return ModelResponse(parts=[TextPart(f"Done: {returned[-1].content}")])


agent = Agent(FunctionModel(planner))


@agent.tool_plain
@hitl.require_approval(prompt="Refund {amount} on order {order}?", poll_interval_seconds=1)
def refund(order: str, amount: float, api_key: str) -> str:
    """Refund an order (the payment service's key is masked on the approval page)."""
    return f"refunded {amount} on {order}"


def main() -> None:
    try:
        print(agent.run_sync("Refund order A-1001, it arrived broken.").output, flush=True)
    except hitl.Rejected as exc:
        print(f"Not refunded: {exc.reason or 'rejected'} ({exc.by})", flush=True)


if __name__ == "__main__":
    main()
