"""A run's parameters and its id, from which every idempotency key derives."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from simrec.core.params import HASH_NEUTRAL, ModelParams

#: RunParams fields that control how a run is carried out and never change its run id hash.
RUN_CONTROL: tuple[str, ...] = ("attempt", "publish")
_ATTEMPT_SUFFIX = "-a"


def attempt_id(night_id: str, attempt: int) -> str:
    """The one idempotency key rule: a night's id plus its attempt (attempt 0 keeps the
    plain id, so first runs keep the ids they always had)."""
    return night_id if attempt == 0 else f"{night_id}{_ATTEMPT_SUFFIX}{attempt}"


def parse_attempt(run_id: str, night_id: str) -> int | None:
    """The attempt ``run_id`` is of ``night_id`` (inverse of ``attempt_id``), else None."""
    if run_id == night_id:
        return 0
    prefix = f"{night_id}{_ATTEMPT_SUFFIX}"
    rest = run_id[len(prefix):] if run_id.startswith(prefix) else ""
    return int(rest) if rest.isdigit() and not rest.startswith("0") else None


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
    # How the run is carried out, not what it computes (left out of the params hash):
    # ``attempt`` > 0 is a forced recomputation of the night, written beside the earlier
    # attempts (see attempt_id); ``publish`` asks to move LATEST to it even when it is
    # older than the served model (simrec.publishing).
    attempt: int = 0
    publish: bool = False

    def __post_init__(self) -> None:
        if self.attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {self.attempt}")

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
        """Flat: tenant, date, window_days, attempt, publish and the model's fields (the
        manifests' shape)."""
        return {
            "tenant": self.tenant,
            "date": self.date.isoformat(),
            "window_days": self.window_days,
            "attempt": self.attempt,
            "publish": self.publish,
            **self.model.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict) -> RunParams:
        data = dict(data)
        run = {
            k: data.pop(k)
            for k in ("tenant", "date", "window_days", *RUN_CONTROL)
            if k in data
        }
        run["date"] = dt.date.fromisoformat(run["date"])
        return cls(**run, model=ModelParams.from_json(data))

    @property
    def params_hash(self) -> str:
        # Parameters at the value runs had before they existed (quality features off,
        # trending at its defaults) are left out: such runs keep the ids they had.
        payload = {
            k: v
            for k, v in self.to_json().items()
            if k not in ("tenant", "date", *RUN_CONTROL)
            and not (k in HASH_NEUTRAL and v == HASH_NEUTRAL[k])
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def night_id(self) -> str:
        """``<date>-<hash>``: the night and parameters, the same for every attempt."""
        return f"{self.date.isoformat()}-{self.params_hash}"

    @property
    def run_id(self) -> str:
        """``<date>-<hash>`` (attempt 0) or ``<date>-<hash>-a<n>``: names this attempt's
        manifests, similarity output and model version; stable across redeliveries."""
        return attempt_id(self.night_id, self.attempt)

    @property
    def key(self) -> str:
        """Globally unique run key, safe for job ids (``[a-z0-9-]``): tenant + run id +
        attempt, so a forced rerun gets new BigQuery, Dataproc and Dataflow ids."""
        tenant = "".join(c if c.isalnum() else "-" for c in self.tenant.lower())
        return f"{tenant}-{self.run_id}"
