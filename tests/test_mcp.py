"""``hitl mcp``: the MCP server, driven by the ``mcp`` SDK's own client over stdio and HTTP.

Everything is real: the server is ``hitl mcp`` in a process of its own (the SDK's stdio client
starts it; ``--http`` serves streamable HTTP on loopback), the store a local folder, the
reviewer app ``hitl serve``'s app on loopback in this process, and the link reaches the
reviewer through a JSON webhook (``HITL_NOTIFY``), never through the tool's output.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from deployment import Deployment

pytest.importorskip("mcp")

from mcp import Client

TOOLS = {"ask_human", "request_approval", "gate_status", "cancel_gate"}


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    if isinstance(data, dict) and set(data) == {"result"}:
        data = data["result"]
    assert isinstance(data, dict), result
    return data


def test_over_stdio_an_approval_answered_in_the_app_returns_approved(
    deployment: Deployment,
) -> None:
    async def agent() -> tuple[set[str], dict[str, Any], str]:
        async with Client(deployment.stdio(), read_timeout_seconds=60) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            reviewer = threading.Thread(
                target=lambda: deployment.answer({"approved": True, "reason": None}),
                daemon=True,
            )
            reviewer.start()
            result = await client.call_tool(
                "request_approval",
                {"action": "Delete the staging database", "evidence": {"rows": "1,204"}},
            )
            reviewer.join(timeout=30)
            return tools, structured(result), json.dumps(result.model_dump(mode="json"))

    tools, answer, raw = asyncio.run(agent())
    assert tools >= TOOLS
    assert answer["approved"] is True and answer["status"] == "answered"
    # The agent never sees a reviewer's link or token.
    (_, token), *_ = deployment.links()
    assert token not in raw and "token=" not in raw


def test_a_handle_survives_the_server_process(deployment: Deployment) -> None:
    async def open_gate() -> str:
        async with Client(deployment.stdio(), read_timeout_seconds=60) as client:
            result = await client.call_tool(
                "ask_human",
                {"question": "How many replicas?", "answer_type": "integer", "wait": False},
            )
            opened = structured(result)
            assert opened["status"] == "pending" and "token" not in json.dumps(opened)
            # The open gates, and this one, as resources.
            listed = await client.read_resource("hitl://gates/open")
            gates = json.loads(listed.contents[0].text)
            assert [g["request_id"] for g in gates] == [opened["gate"]]
            one = await client.read_resource(f"hitl://gates/{opened['gate']}")
            assert json.loads(one.contents[0].text)["prompt"] == "How many replicas?"
            return str(opened["gate"])

    gate = asyncio.run(open_gate())  # the server process ends with its client
    assert deployment.answer(3) == 200

    async def poll() -> dict[str, Any]:
        async with Client(deployment.stdio(), read_timeout_seconds=60) as client:
            return structured(await client.call_tool("gate_status", {"gate": gate}))

    status = asyncio.run(poll())  # a new process answers for the gate
    assert status["status"] == "answered" and status["answer"] == 3


def test_cancelling_closes_the_gate_and_bad_arguments_are_mcp_errors(
    deployment: Deployment,
) -> None:
    async def agent() -> tuple[dict[str, Any], list[Any]]:
        async with Client(deployment.stdio(), read_timeout_seconds=60) as client:
            opened = structured(
                await client.call_tool("ask_human", {"question": "Which region?", "wait": False})
            )
            cancelled = structured(
                await client.call_tool(
                    "cancel_gate", {"gate": opened["gate"], "reason": "the agent moved on"}
                )
            )
            bad = [
                await client.call_tool("ask_human", {"question": "Pick", "answer_type": "choice"}),
                await client.call_tool("ask_human", {"question": "?", "timeout_seconds": "soon"}),
                await client.call_tool("gate_status", {"gate": "no-such-gate.nope"}),
                await client.call_tool(
                    "ask_human",
                    {"question": "?", "answer_type": "json", "schema": {"type": "array"}},
                ),
            ]
            return cancelled, bad

    cancelled, bad = asyncio.run(agent())
    assert cancelled["status"] == "cancelled"
    assert deployment.answer("eu-west-1") in (409, 410)  # the link says it was cancelled
    for result in bad:
        assert result.is_error
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert "Traceback" not in text and text
    assert "choices" in bad[0].content[0].text
    assert "no gate" in bad[2].content[0].text


def test_over_streamable_http(deployment: Deployment) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "hitl_sdk.cli", "mcp", "--http", "--port", str(port)],
        env={**os.environ, **deployment.env},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, server.stderr and server.stderr.read()
                assert time.monotonic() < deadline, "hitl mcp --http did not start"
                time.sleep(0.1)

        async def agent() -> tuple[set[str], dict[str, Any]]:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                opened = structured(
                    await client.call_tool(
                        "ask_human",
                        {"question": "Ship it?", "answer_type": "yes_no", "wait": False},
                    )
                )
                await asyncio.to_thread(deployment.answer, True)
                status = await client.call_tool(
                    "gate_status", {"gate": opened["gate"], "wait_seconds": 20}
                )
                return tools, structured(status)

        tools, status = asyncio.run(agent())
        assert tools >= TOOLS
        assert status["status"] == "answered" and status["answer"] is True
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_progress_while_a_question_waits(deployment: Deployment) -> None:
    async def agent() -> tuple[dict[str, Any], list[tuple[float, float | None, str | None]]]:
        seen: list[tuple[float, float | None, str | None]] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            seen.append((done, total, message))

        async with Client(deployment.stdio(), read_timeout_seconds=60) as client:
            reviewer = threading.Thread(
                target=lambda: (time.sleep(2.0), deployment.answer("blue")), daemon=True
            )
            reviewer.start()
            result = await client.call_tool(
                "ask_human",
                {"question": "Which colour?", "timeout_seconds": 60},
                progress_callback=progress,
            )
            reviewer.join(timeout=30)
            return structured(result), seen

    answer, seen = asyncio.run(agent())
    assert answer["answer"] == "blue"
    assert seen and seen[0][1] == 60 and "waiting for a person" in str(seen[0][2])
