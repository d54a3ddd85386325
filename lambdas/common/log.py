"""Structured JSON logs with the Lambda request id, configured once at import."""
from __future__ import annotations

import contextvars
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what CloudWatch Logs Insights can query."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _CurrentStdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at emit time (the runtime's, a worker's pipe, a test's capture)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _configure() -> logging.Logger:
    logger = logging.getLogger("scones.lambdas")
    handler = _CurrentStdoutHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the Lambda runtime's root handler would log each line twice
    return logger


logger = _configure()


def log(message: str, **fields: Any) -> None:
    logger.info(message, extra={"fields": fields})


def lambda_entrypoint(handler: Callable[[dict, Any], dict]) -> Callable[[dict, Any], dict]:
    """Tag every log line of one invocation with its request id; log named failures once."""

    @functools.wraps(handler)
    def wrapper(event: dict, context: Any) -> dict:
        token = _request_id.set(getattr(context, "aws_request_id", None))
        try:
            return handler(event, context)
        except Exception as error:
            logger.error(str(error), extra={"fields": {"error": type(error).__name__}})
            raise
        finally:
            _request_id.reset(token)

    return wrapper
