"""One logging setup for every simrec process: JSON lines in Cloud Logging's format.

Stages, the serving app, the Beam load pipeline, the Spark driver and the functions all
log through the standard library's :mod:`logging`; :func:`configure` (called once by each
entry point) puts one handler on the root logger that writes each record as one JSON
line to stderr. Cloud Run, Cloud Functions, Dataflow and Dataproc's agents read such a
line as a structured entry (https://cloud.google.com/logging/docs/structured-logging):
the special fields below become the LogEntry's own fields, every other key a
``jsonPayload`` field, so the alert filters Terraform builds from
:mod:`simrec.deploy_contract` select on ``jsonPayload.<field>``.

Fields of a line: ``severity``, ``message`` and ``time`` (RFC 3339 UTC), the record's
``logging.googleapis.com/sourceLocation`` (file, line, function), ``logger``, and the
caller's fields given as ``extra={FIELDS: {...}}``. An exception's traceback is appended
to ``message``, where Error Reporting looks for it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

#: ``extra`` key of a record's jsonPayload fields (the name google-cloud-logging's own
#: handlers read, so a record means the same to them).
FIELDS = "json_fields"
#: Special JSON fields of a structured line (Cloud Logging's documented names).
SEVERITY, MESSAGE, TIME = "severity", "message", "time"
SOURCE_LOCATION = "logging.googleapis.com/sourceLocation"
#: The handlers' decisions are logged from INFO up (one line per event), everything
#: else (simrec's other loggers, Beam's, py4j's) from WARNING up, as before.
DECISIONS_LOGGER = "simrec.decisions"
DECISIONS_LEVEL, LEVEL = logging.INFO, logging.WARNING
#: Cloud Logging's LogSeverity of each standard level.
_SEVERITIES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
               logging.ERROR: "ERROR", logging.CRITICAL: "CRITICAL"}  # fmt: skip


def severity(levelno: int) -> str:
    """The LogSeverity of a level: the highest standard level at or below it."""
    return _SEVERITIES[max((n for n in _SEVERITIES if n <= levelno), default=logging.DEBUG)]


class CloudLoggingFormatter(logging.Formatter):
    """A record as one JSON line of Cloud Logging's structured format."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        line: dict[str, Any] = dict(getattr(record, FIELDS, None) or {})
        line.update({
            SEVERITY: severity(record.levelno),
            MESSAGE: message,
            TIME: dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat()
                  .replace("+00:00", "Z"),
            SOURCE_LOCATION: {"file": record.pathname, "line": str(record.lineno),
                              "function": record.funcName},
            "logger": record.name,
        })  # fmt: skip
        return json.dumps(line, sort_keys=True, default=str)


class _Handler(logging.StreamHandler):
    """The one simrec handler; without a stream it writes to whatever ``sys.stderr`` is
    at the time (pytest and the demo swap it)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.fixed = stream
        self.setFormatter(CloudLoggingFormatter())

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return self.fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self.fixed = value


def configure(stream: TextIO | None = None) -> None:
    """Send every log record as Cloud Logging JSON to ``stream``, or if none is given to
    stderr unless an earlier call chose another stream.

    Idempotent: the root logger keeps exactly one simrec handler; handlers others added
    (pytest's) stay.
    """
    root = logging.getLogger()
    handler = _handler()
    if handler is None:
        handler = _Handler()
        root.addHandler(handler)
        root.setLevel(LEVEL)
        logging.getLogger(DECISIONS_LOGGER).setLevel(DECISIONS_LEVEL)
    if stream is not None:
        handler.fixed = None if stream is sys.stderr else stream


def _handler() -> _Handler | None:
    return next((h for h in logging.getLogger().handlers if isinstance(h, _Handler)), None)


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error log (worker timeouts, boot failures)
    through the one handler too, so those lines carry their severity. Its access log,
    opt-in, keeps gunicorn's own line format on stdout."""
    return {
        "root": {"level": logging.getLevelName(LEVEL), "handlers": ["simrec"]},
        "loggers": {"gunicorn.error": {"level": logging.getLevelName(LEVEL), "handlers": [],
                                       "propagate": True}},
        "handlers": {"simrec": {"()": f"{__name__}._Handler"}},
    }  # fmt: skip


@contextmanager
def redirected(path: str) -> Iterator[TextIO]:
    """Send the JSON lines to a file (appending) for the duration, then back to stderr."""
    with open(path, "a") as stream:
        configure(stream)
        try:
            yield stream
        finally:
            configure(sys.stderr)


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, configuring logging first if no entry point did (code
    run by a host that configured nothing still logs in the one format)."""
    if _handler() is None:
        configure()
    return logging.getLogger(name)
