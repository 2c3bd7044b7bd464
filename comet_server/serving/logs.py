"""The JSON log format (``--log-format json``): one object per line, for log shippers.

An access line's fields come named (``client``, ``method``, ``path``, ``status``,
``bytes``, ``duration_ms``, ``parked_ms``, ``delivered``: the responder attaches them
to the record as ``access``); any other record gives its message.  Strings are
JSON-escaped, so no value can split a line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def use_json_logs() -> None:
    """Give the handlers of the server's loggers (and the root's) the JSON format."""
    for name in ("comet_server", ""):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JsonFormatter())
