"""The agents' front door: gate any tool call behind a person (``require_approval``,
``approve_call``) and an MCP server (``hitl mcp``: ``agents.mcp_server``)."""

from .approval import approve_call, require_approval

__all__ = ["approve_call", "require_approval"]
