"""Scripted model turns shared by the agent tests (bench/scripted_messages.py)."""

import scripted_messages as scripted

from tests.factories import REPORT

# The server tells agents apart by these words in the first line of their system prompts.
LEAD, LOGS, METRICS = "lead investigator", "logs analyst", "metrics analyst"


def full_script():
    return scripted.Script(
        {
            LEAD: [
                scripted.tool_uses(
                    [
                        ("investigate_logs", {"question": "Which service errors first?"}),
                        ("investigate_metrics", {"question": "What saturated?"}),
                    ],
                    text="Two questions at once.",
                ),
                scripted.tool_use("submit_report", REPORT),
            ],
            LOGS: [
                scripted.tool_use("log_patterns", {"selector": '{namespace="production"}'}),
                scripted.text("payment-api refuses connections to orders-db from 03:49 [step 6]."),
            ],
            METRICS: [
                scripted.tool_use("discover_metrics", {"selector": '{namespace="production"}'}),
                scripted.text("No metrics store configured [step 7]."),
            ],
        },
    )
