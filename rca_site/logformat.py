"""JSON lines for log shippers (ROOTLINE_LOG_FORMAT=json).

One event is one line, whatever it carries: a traceback or a message with newlines is
escaped inside the JSON string, so Loki, Elasticsearch or journald never split an event
in two. A few lines of our own rather than a dependency: the line has four fields.
"""

import json
import logging
from datetime import UTC, datetime


class JSONFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"}`, plus `exception` (the formatted traceback)
    when the record has one and `stack` when logged with stack_info. `time` is UTC,
    RFC 3339 to the millisecond."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
