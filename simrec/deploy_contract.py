"""Names the code and Terraform must agree on, in one place.

The handlers log with these field names and values, the Dataflow launcher names its jobs
and staging folders with them, and Terraform builds its log filters, alert conditions and
lifecycle rules from ``terraform/contract.json``, which is generated from this module
(``python -m simrec.deploy_contract --write``; tests/cloud/test_alert_filters.py fails while the
file is stale). ``terraform/model.json``, generated the same way, holds the model
parameters' defaults and bounds as ``simrec.config.Settings`` validates them (it takes them
from ``simrec.core.params``): Terraform's ``model`` variable (terraform/model.tf) is checked
against them at plan time instead of restating them.
"""

from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path
from typing import Any

#: jsonPayload field holding a handler's decision (simrec.stages.decisions.Decision.action).
ACTION_FIELD = "action"
#: jsonPayload field naming the pipeline stage (Decision.stage).
STAGE_FIELD = "stage"
#: jsonPayload field of the run id (Decision.run_id).
RUN_ID_FIELD = "run_id"
#: The decision a handler logs (at severity ERROR) when it failed on an event.
FAILED_ACTION = "failed"
#: Severity of a failed decision's log line.
FAILED_SEVERITY = "ERROR"
#: jsonPayload field set on a line that must page someone (Decision.alert).
ALERT_FIELD = "alert"
#: Decision.stage of a launched job's end (simrec.stages.jobs.STAGE), whichever function
#: logs it: a failed attempt that is retried pages nobody, the gave-up line pages.
JOB_END_STAGE = "job_events"
#: Decision.alert of the line that gives a run up after its job's last attempt failed.
JOB_GAVE_UP_ALERT = "simrec-job-gave-up"
#: Every Dataflow load job is named ``<prefix><run key>``; the failure alert matches it.
DATAFLOW_JOB_PREFIX = "simrec-load-"
#: Folders of the staging bucket the Flex Template launch uses (temp_location and
#: staging_location); both expire by the staging bucket's lifecycle rule.
DATAFLOW_TEMP_DIR = "tmp"
DATAFLOW_STAGING_DIR = "staging"

CONTRACT_FILE = Path(__file__).resolve().parents[1] / "terraform" / "contract.json"
MODEL_FILE = CONTRACT_FILE.with_name("model.json")


def model_rules() -> dict[str, dict[str, Any]]:
    """Default and bounds of each model setting, as ``Settings`` validates it.

    ``gt`` is an exclusive lower bound (a value must be above it); ``rule`` is the sentence
    Terraform's plan-time error shows; ``choices`` is set for a
    setting that takes one of fixed strings, ``whole`` for an integer one.
    """
    from simrec.config import MODEL_SETTINGS, Settings

    rules: dict[str, dict[str, Any]] = {}
    for name in MODEL_SETTINGS:
        info = Settings.model_fields[name]
        choices = list(typing.get_args(info.annotation)) or None
        ge = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
        le = next((m.le for m in info.metadata if hasattr(m, "le")), None)
        gt = next((m.gt for m in info.metadata if hasattr(m, "gt")), None)
        whole = info.annotation is int
        if choices:
            rule = "one of " + ", ".join(choices)
        else:
            kind = "a whole number" if whole else "a number"
            low = f"> {gt:g}" if gt is not None else f">= {ge:g}"
            rule = f"{kind} in [{ge:g}, {le:g}]" if le is not None else f"{kind} {low}"
        rules[name] = {"default": info.default, "ge": ge, "gt": gt, "le": le, "whole": whole,
                       "choices": choices, "rule": rule}  # fmt: skip
    return rules


def contract() -> dict[str, Any]:
    """What Terraform reads (terraform/contract.json)."""
    return {
        "action_field": ACTION_FIELD,
        "stage_field": STAGE_FIELD,
        "run_id_field": RUN_ID_FIELD,
        "failed_action": FAILED_ACTION,
        "failed_severity": FAILED_SEVERITY,
        "alert_field": ALERT_FIELD,
        "job_end_stage": JOB_END_STAGE,
        "job_gave_up_alert": JOB_GAVE_UP_ALERT,
        "dataflow_job_prefix": DATAFLOW_JOB_PREFIX,
        "dataflow_temp_dir": DATAFLOW_TEMP_DIR,
        "dataflow_staging_dir": DATAFLOW_STAGING_DIR,
    }


def render(data: dict[str, Any] | None = None) -> str:
    """A generated file's text (the contract unless ``data`` is given)."""
    return json.dumps(contract() if data is None else data, indent=2, sort_keys=True) + "\n"


#: Each generated file and what it holds.
GENERATED = {CONTRACT_FILE: contract, MODEL_FILE: model_rules}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print or write terraform/contract.json and terraform/model.json."
    )
    parser.add_argument("--write", action="store_true", help="write both files")
    args = parser.parse_args(argv)
    for path, make in GENERATED.items():
        if args.write:
            path.write_text(render(make()))
        else:
            print(f"# {path.name}\n{render(make())}", end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
