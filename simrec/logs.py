"""Structured JSON logs in Cloud Logging's format: one line per decision.

Cloud Logging reads ``severity`` and ``message`` from a JSON line on stdout/stderr; the
other keys become ``jsonPayload`` fields, so runs are searchable by run id and stage.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import structlog

_configured = False


_SEVERITY = {"warn": "WARNING", "exception": "ERROR", "msg": "INFO"}


def _cloud_logging_fields(_, method_name: str, event_dict: dict) -> dict:
    event_dict["severity"] = _SEVERITY.get(method_name, method_name.upper())
    event_dict["message"] = event_dict.pop("event", "")
    return event_dict


def configure(stream=None) -> None:
    """Configure structlog once; JSON lines to ``stream`` (stderr by default)."""
    global _configured
    if _configured and stream is None:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            _cloud_logging_fields,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configured = True


@contextmanager
def redirected(path: str) -> Iterator[TextIO]:
    """Send the JSON lines to a file (appending) for the duration, then back to stderr."""
    with open(path, "a") as stream:
        configure(stream)
        try:
            yield stream
        finally:
            configure(sys.stderr)


def get_logger(**fields) -> structlog.typing.FilteringBoundLogger:
    configure()
    return structlog.get_logger().bind(**fields)
