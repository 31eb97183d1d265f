"""simrec.logs: every logger writes Cloud Logging's structured JSON, one line a record."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import subprocess
import sys

import pytest

from simrec import deploy_contract, logs
from simrec.stages.decisions import Decision


def _read(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_decision_is_one_line_with_its_fields_at_the_top(log_buffer) -> None:
    Decision("export", "launched", run_id="r1", ids={"attempt": 0}).log()
    Decision("export", deploy_contract.FAILED_ACTION, reason="boom").log()
    ok, failed = _read(log_buffer)
    assert ok[logs.SEVERITY] == "INFO" and ok[logs.MESSAGE] == "export: launched"
    assert (ok[deploy_contract.STAGE_FIELD], ok[deploy_contract.ACTION_FIELD]) == (
        "export", "launched")  # fmt: skip
    assert ok[deploy_contract.RUN_ID_FIELD] == "r1" and ok["ids"] == {"attempt": 0}
    assert failed[logs.SEVERITY] == deploy_contract.FAILED_SEVERITY
    assert failed["reason"] == "boom" and "run_id" not in failed  # empty fields left out


def test_special_fields_have_the_documented_shapes(log_buffer) -> None:
    before = dt.datetime.now(dt.UTC)
    logging.getLogger("simrec.serving.api").warning("tenant %r: %s", "t1", "no model")
    [line] = _read(log_buffer)
    assert line[logs.MESSAGE] == "tenant 't1': no model" and line[logs.SEVERITY] == "WARNING"
    assert line[logs.TIME].endswith("Z")  # RFC 3339, UTC
    when = dt.datetime.fromisoformat(line[logs.TIME])
    assert before - dt.timedelta(seconds=1) <= when <= dt.datetime.now(dt.UTC)
    # LogEntrySourceLocation: file, line (int64 as a JSON string), function.
    assert line[logs.SOURCE_LOCATION] == {
        "file": __file__, "line": line[logs.SOURCE_LOCATION]["line"],
        "function": "test_special_fields_have_the_documented_shapes"}  # fmt: skip
    assert int(line[logs.SOURCE_LOCATION]["line"]) > 0
    assert line["logger"] == "simrec.serving.api"


def test_an_exception_keeps_its_traceback_in_the_message(log_buffer) -> None:
    try:
        raise KeyError("sku")
    except KeyError:
        logging.getLogger("simrec.publishing").exception("publishing failed")
    [line] = _read(log_buffer)
    assert line[logs.SEVERITY] == "ERROR"
    first, *rest = line[logs.MESSAGE].splitlines()
    assert first == "publishing failed" and rest[0].startswith("Traceback")
    assert rest[-1] == "KeyError: 'sku'"


def test_levels_decisions_from_info_everything_else_from_warning(log_buffer) -> None:
    logging.getLogger("apache_beam.runners").info("progress")
    logging.getLogger("simrec.publishing").info("detail")
    logging.getLogger("py4j").warning("gateway slow")
    Decision("cluster", "ignored").log()
    messages = [line[logs.MESSAGE] for line in _read(log_buffer)]
    assert messages == ["gateway slow", "cluster: ignored"]


def test_configure_keeps_one_handler_and_its_stream(log_buffer) -> None:
    logs.configure()  # an entry point's call after a test chose the stream
    logs.configure()
    mine = [h for h in logging.getLogger().handlers if isinstance(h, logs._Handler)]
    assert len(mine) == 1
    logging.getLogger("simrec.x").error("still here")
    assert _read(log_buffer)[-1][logs.MESSAGE] == "still here"


@pytest.mark.parametrize(("level", "severity"), [
    (logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (25, "INFO"),
    (logging.WARNING, "WARNING"), (logging.ERROR, "ERROR"), (logging.CRITICAL, "CRITICAL"),
    (99, "CRITICAL"), (1, "DEBUG")])  # fmt: skip
def test_severity_is_a_cloud_logging_severity(level: int, severity: str) -> None:
    assert logs.severity(level) == severity


def test_gunicorn_error_lines_are_cloud_logging_json() -> None:
    """gunicorn configured with the serving options logs its errors in the one format."""
    code = (
        "from gunicorn.config import Config\nfrom gunicorn.glogging import Logger\n"
        "from simrec.config import Settings\nfrom simrec.serving import server\n"
        "cfg = Config()\n"
        "for k, v in server.gunicorn_options(Settings(), '127.0.0.1', 0, 1, 1).items():\n"
        "    cfg.set(k, v)\n"
        "log = Logger(cfg)\nlog.info('booting')\nlog.critical('WORKER TIMEOUT (pid:%s)', 7)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    [line] = [json.loads(x) for x in proc.stderr.splitlines()]  # INFO is below the level
    assert line[logs.SEVERITY] == "CRITICAL" and line[logs.MESSAGE] == "WORKER TIMEOUT (pid:7)"
    assert line["logger"] == "gunicorn.error" and proc.stdout == ""
