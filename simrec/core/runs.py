"""A run's parameters and its id, from which every idempotency key derives."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field

from simrec.core import quality
from simrec.core.actions import ActionWeights


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
    """Everything that decides a run's output. Same params -> same ``run_id``."""

    tenant: str
    date: dt.date
    window_days: int = 30
    threshold: float = 0.1
    top_k: int = 100
    seed: int = 42
    max_items_per_user: int = 500
    min_items_per_user: int = 2
    weights: ActionWeights = field(default_factory=ActionWeights)
    # Quality features (simrec.core.quality); the defaults switch them off.
    half_life_days: float = 0.0
    user_weighting: str = "none"
    user_alpha: float = 0.5
    shrinkage: float = 0.0

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
        data = asdict(self)
        data["date"] = self.date.isoformat()
        data["weights"] = self.weights.as_dict()
        return data

    @classmethod
    def from_json(cls, data: dict) -> RunParams:
        data = dict(data)
        data["date"] = dt.date.fromisoformat(data["date"])
        data["weights"] = ActionWeights.from_dict(data.get("weights", {}))
        return cls(**data)

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
