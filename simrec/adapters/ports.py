"""Ports: what a stage needs from a backend, implemented once for Google Cloud and once
for the embedded default, so the stage logic is shared and tested locally."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from simrec.core.events import REJECT_REASONS
from simrec.core.runs import RunParams
from simrec.sql import Schema


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: exact counts for the manifest.

    ``days``: valid rows per UTC day, only days with at least one row. Rows outside the
    window are not counted at all; ``rows_read = rows_valid + rows_rejected``.
    """

    days: dict[dt.date, int]
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    rejects_uri: str
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_counts(
        cls,
        counts: Iterable[tuple[dt.date | None, str | None, int]],
        rejects_uri: str,
        timings: dict[str, float] | None = None,
    ) -> ExportResult:
        """Build from ``(dt, reason, rows)`` groups of the export query's output."""
        days: dict[dt.date, int] = {}
        by_reason = dict.fromkeys(REJECT_REASONS, 0)
        for day, reason, rows in counts:
            if reason is None:
                if day is None:
                    raise ValueError("valid rows without a day in the export output")
                days[day] = days.get(day, 0) + int(rows)
            elif reason in by_reason:
                by_reason[reason] += int(rows)
            else:
                raise ValueError(f"unknown reject reason {reason!r} in the export output")
        valid = sum(days.values())
        rejected = sum(by_reason.values())
        return cls(
            days=dict(sorted((d, n) for d, n in days.items() if n)),
            rows_read=valid + rejected,
            rows_valid=valid,
            rows_rejected=rejected,
            rejected_by_reason=by_reason,
            rejects_uri=rejects_uri,
            timings=dict(timings or {}),
        )

    def check(self, params: RunParams) -> None:
        """Raise ``ValueError`` unless the counts add up and every day is in the window."""
        problems = []
        if self.rows_read != self.rows_valid + self.rows_rejected:
            problems.append("rows_read != rows_valid + rows_rejected")
        if sum(self.days.values()) != self.rows_valid:
            problems.append("sum of day rows != rows_valid")
        if sum(self.rejected_by_reason.values()) != self.rows_rejected:
            problems.append("sum of rejected_by_reason != rows_rejected")
        if set(self.rejected_by_reason) - set(REJECT_REASONS):
            problems.append("unknown reject reasons")
        outside = [d for d in self.days if not params.start_date <= d <= params.end_date]
        if outside:
            problems.append(f"days outside the window: {outside}")
        if any(n <= 0 for n in self.days.values()):
            problems.append("a listed day has no rows")
        if problems:
            raise ValueError(f"inconsistent export result: {'; '.join(problems)}")


@runtime_checkable
class Warehouse(Protocol):
    """Runs the export query of one run and writes its outputs under ``data_root``.

    Writes ``exports/<tenant>/dt=YYYY-MM-DD/part-*.parquet`` for every day of the window
    (replacing what was there) and the rejects under the run's folder; never the manifest.
    ``schema`` is ``"plain"`` or ``"ga4"``; ``source`` is a table (cloud) or path (local).
    """

    def export(
        self, params: RunParams, source: str, schema: Schema, data_root: str
    ) -> ExportResult: ...
