"""The read-only tools an investigator (the signal scan, the Claude agents) uses.

    result = await call(TOOLS["query_logs"], context, {"query": '{service="checkout"}'})

Every tool goes through `base.call`: validated input, guardrails, errors as results,
redaction and the token budget. LOG_TOOLS and METRIC_TOOLS are what the logs and metrics
analysts get; every agent gets the alert context.
"""

from investigations.tools import context, logs, metrics
from investigations.tools.base import Tool, ToolContext, ToolResult, call
from investigations.tools.context import build_context

CONTEXT_TOOLS = context.TOOLS
LOG_TOOLS = logs.TOOLS
METRIC_TOOLS = metrics.TOOLS
TOOLS = {tool.name: tool for tool in [*CONTEXT_TOOLS, *LOG_TOOLS, *METRIC_TOOLS]}

__all__ = [
    "CONTEXT_TOOLS",
    "LOG_TOOLS",
    "METRIC_TOOLS",
    "TOOLS",
    "Tool",
    "ToolContext",
    "ToolResult",
    "build_context",
    "call",
]
