"""Ports: what a stage needs from a backend, implemented once for Google Cloud and once
for the embedded default, so the stage logic is shared and tested locally."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from simrec.core.events import REJECT_REASONS
from simrec.core.runs import RunParams
from simrec.sql import Schema


@dataclass(frozen=True)
class ExportResult:
    """What an export read and wrote: exact counts for the manifest.

    ``days``: valid rows per day, only days with at least one row. Every row read is
    accounted for: ``rows_read = rows_valid + rows_rejected + rows_ignored +
    rows_outside``; ``outside`` holds the rows per day before and after the window,
    ``ignored_events`` the rows of each unmapped GA4 event name.
    """

    days: dict[dt.date, int]
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    rejects_uri: str
    timings: dict[str, float] = field(default_factory=dict)
    outside: dict[str, dict[dt.date, int]] = field(
        default_factory=lambda: {"before_window": {}, "after_window": {}}
    )
    ignored_events: dict[str, int] = field(default_factory=dict)

    @property
    def rows_ignored(self) -> int:
        return sum(self.ignored_events.values())

    @property
    def rows_outside(self) -> int:
        return sum(sum(days.values()) for days in self.outside.values())

    @classmethod
    def from_counts(
        cls,
        counts: Iterable[tuple[dt.date | None, str | None, str | None, int]],
        rejects_uri: str,
        timings: dict[str, float] | None = None,
    ) -> ExportResult:
        """Build from ``(dt, reason, event_name, rows)`` groups of the counts query."""
        days: dict[dt.date, int] = {}
        by_reason = dict.fromkeys(REJECT_REASONS, 0)
        outside: dict[str, dict[dt.date, int]] = {"before_window": {}, "after_window": {}}
        ignored: dict[str, int] = {}
        for day, reason, event_name, rows in counts:
            rows = int(rows)
            if reason is None:
                if day is None:
                    raise ValueError("valid rows without a day in the export output")
                days[day] = days.get(day, 0) + rows
            elif reason in by_reason:
                by_reason[reason] += rows
            elif reason in outside and day is not None:
                outside[reason][day] = outside[reason].get(day, 0) + rows
            elif reason == "ignored_event":
                name = str(event_name)
                ignored[name] = ignored.get(name, 0) + rows
            else:
                raise ValueError(f"unknown reason {reason!r} in the export output")
        valid = sum(days.values())
        rejected = sum(by_reason.values())
        result = cls(
            days=dict(sorted((d, n) for d, n in days.items() if n)),
            rows_read=0,
            rows_valid=valid,
            rows_rejected=rejected,
            rejected_by_reason=by_reason,
            rejects_uri=rejects_uri,
            timings=dict(timings or {}),
            outside={k: dict(sorted(v.items())) for k, v in outside.items()},
            ignored_events=dict(sorted(ignored.items())),
        )
        read = valid + rejected + result.rows_ignored + result.rows_outside
        return dataclasses.replace(result, rows_read=read)

    def counts(self) -> dict[str, Any]:
        """The manifest's ``counts``: every row read, by what became of it."""

        def span(days: dict[dt.date, int]) -> dict[str, Any]:
            return {
                "rows": sum(days.values()),
                "first": min(days).isoformat() if days else None,
                "last": max(days).isoformat() if days else None,
            }

        return {
            "rows_read": self.rows_read,
            "rows_valid": self.rows_valid,
            "rows_rejected": self.rows_rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "rows_ignored": self.rows_ignored,
            "ignored_events": dict(self.ignored_events),
            "rows_outside": self.rows_outside,
            "outside_window": {
                "before": span(self.outside["before_window"]),
                "after": span(self.outside["after_window"]),
            },
        }

    def check(self, params: RunParams) -> None:
        """Raise ``ValueError`` unless the counts add up and every day is in the window."""
        problems = []
        accounted = self.rows_valid + self.rows_rejected + self.rows_ignored + self.rows_outside
        if self.rows_read != accounted:
            problems.append("rows_read != rows_valid + rows_rejected + ignored + outside")
        if sum(self.days.values()) != self.rows_valid:
            problems.append("sum of day rows != rows_valid")
        if sum(self.rejected_by_reason.values()) != self.rows_rejected:
            problems.append("sum of rejected_by_reason != rows_rejected")
        if set(self.rejected_by_reason) - set(REJECT_REASONS):
            problems.append("unknown reject reasons")
        outside = [d for d in self.days if not params.start_date <= d <= params.end_date]
        if outside:
            problems.append(f"days outside the window: {outside}")
        if any(d >= params.start_date for d in self.outside.get("before_window", {})) or any(
            d <= params.end_date for d in self.outside.get("after_window", {})
        ):
            problems.append("rows counted outside the window have days inside it")
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
