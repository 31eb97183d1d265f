"""A run's parameters and its id, from which every idempotency key derives."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from simrec.core import quality
from simrec.core.params import ModelParams


def attempt_key(run_key: str, attempt: int) -> str:
    """Idempotency key of a run's ``attempt`` (0 = the first): the run key itself, then
    ``<run key>-retry<n>``. Every job id of a run (BigQuery export, Dataproc request,
    Dataflow job name) derives from this, so a retry never collides with a failed attempt
    and a redelivery of the same attempt finds its job."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    return run_key if attempt == 0 else f"{run_key}-retry{attempt}"


@dataclass(frozen=True)
class RunParams:
    """Everything that decides a run's output. Same params -> same ``run_id``.

    A run is a tenant's window of days (``window_days`` before ``date``) and the model's
    parameters (:class:`~simrec.core.params.ModelParams`, declared once there).
    """

    tenant: str
    date: dt.date
    window_days: int = 30
    model: ModelParams = field(default_factory=ModelParams)

    @property
    def start_date(self) -> dt.date:
        """First day of the window; the window ends the day before ``date``."""
        return self.date - dt.timedelta(days=self.window_days)

    @property
    def end_date(self) -> dt.date:
        return self.date - dt.timedelta(days=1)

    def days(self) -> list[dt.date]:
        return [self.start_date + dt.timedelta(days=i) for i in range(self.window_days)]

    def to_json(self) -> dict:
        """Flat: tenant, date, window_days and the model's fields (the manifests' shape)."""
        return {
            "tenant": self.tenant,
            "date": self.date.isoformat(),
            "window_days": self.window_days,
            **self.model.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict) -> RunParams:
        data = dict(data)
        run = {k: data.pop(k) for k in ("tenant", "date", "window_days") if k in data}
        run["date"] = dt.date.fromisoformat(run["date"])
        return cls(**run, model=ModelParams.from_json(data))

    @property
    def params_hash(self) -> str:
        # Quality features that are off are left out: such runs keep the ids they had
        # before the features existed.
        payload = {
            k: v
            for k, v in self.to_json().items()
            if k not in ("tenant", "date") and not (k in quality.OFF and v == quality.OFF[k])
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def run_id(self) -> str:
        """``<date>-<hash>``: unique per tenant, stable across redeliveries."""
        return f"{self.date.isoformat()}-{self.params_hash}"

    @property
    def key(self) -> str:
        """Globally unique run key, safe for job ids (``[a-z0-9-]``)."""
        tenant = "".join(c if c.isalnum() else "-" for c in self.tenant.lower())
        return f"{tenant}-{self.run_id}"
