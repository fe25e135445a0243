"""JSON-lines logging for every process.

Each line carries the fields passed in `extra` (tenant, user_id, job_id,
request_id, ...) and those bound to the current task with
`bind_log_context` (the request id of the HTTP request being served, the
job, tenant and user of the sync job being run), so a line logged deep in a
call names its request or job without every caller passing it along.
Callers never pass tokens, API keys or personal records; this module adds
no request data of its own.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "bind_log_context",
    "configure_logging",
    "log_context",
    "reset_log_context",
]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# The bound fields; a value set here is never mutated, only replaced.
_context: ContextVar[Mapping[str, str]] = ContextVar("scim_bridge_log", default={})  # noqa: B039


def bind_log_context(**fields: str) -> Token[Mapping[str, str]]:
    """Add `fields` to every line logged from this task (and tasks it starts)
    until `reset_log_context(token)`; a task's context dies with the task."""
    current = _context.get()
    return _context.set({**current, **fields} if current else fields)


def reset_log_context(token: Token[Mapping[str, str]]) -> None:
    _context.reset(token)


def log_context() -> Mapping[str, str]:
    """The fields bound to the current task (do not mutate)."""
    return _context.get()


class ContextFilter(logging.Filter):
    """Stamps the bound fields onto each record when it is logged, in the
    logging task (a formatter may run later, or on another thread). Fields
    passed in `extra` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                record.__dict__[key] = value
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = _scalar(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _scalar(value: Any) -> object:
    return value if isinstance(value, str | int | float | bool) else str(value)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs full URLs (lookups carry emails) at INFO: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
