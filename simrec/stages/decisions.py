"""What a handler decided about one event: logged as one JSON line, returned to callers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from simrec import logs
from simrec.deploy_contract import FAILED_ACTION, FAILED_SEVERITY
from simrec.deploy_contract import JOB_GAVE_UP_ALERT as JOB_GAVE_UP_ALERT  # re-exported

#: The level a failed decision is logged at: the one whose severity the alert selects.
FAILED_LEVEL = logging.getLevelNamesMapping()[FAILED_SEVERITY]

Action = Literal["ignored", "skipped", "launched", "exported", "succeeded", "resumed", "failed"]


@dataclass(frozen=True)
class Decision:
    stage: str
    action: Action
    reason: str = ""
    run_id: str = ""
    tenant: str = ""
    ids: dict[str, Any] = field(default_factory=dict)
    alert: str = ""  # set on a line that must page someone (see JOB_GAVE_UP_ALERT)

    def log(self) -> Decision:
        fields = {k: v for k, v in asdict(self).items() if v not in ("", {}, None)}
        level = FAILED_LEVEL if self.action == FAILED_ACTION else logging.INFO
        logs.get_logger(logs.DECISIONS_LOGGER).log(
            level, f"{self.stage}: {self.action}", extra={logs.FIELDS: fields}
        )
        return self


#: What a launch's outcome means for the handler's decision: a cloud launch returns once
#: the job is started; a local one once it has run to the end.
LAUNCH_ACTIONS = {"exists": "skipped", "started": "launched", "succeeded": "succeeded"}


def guarded(stage: str, work: Callable[[], Decision]) -> Decision:
    """Run a handler's work; log exactly one line for its outcome.

    A malformed event is logged and dropped (a retry cannot fix it); any other failure is
    logged and re-raised so the platform retries the delivery (handlers are idempotent).
    """
    from simrec.stages.cloudevents import BadEvent

    try:
        decision = work()
    except BadEvent as exc:
        return Decision(stage, "failed", reason=f"bad event: {exc}").log()
    except Exception as exc:
        Decision(stage, "failed", reason=f"{type(exc).__name__}: {exc}").log()
        raise
    return decision.log()
