"""Reading events for evaluation and the temporal split.

Events: ``user_id, sku, action`` and either ``ts`` (a timestamp; its UTC day is used) or
``date`` (``YYYY-MM-DD``), in CSV, CSV.gz or Parquet (a file, folder or glob), read with
DuckDB. The split is by day: everything before ``split_date`` may train, nothing on or
after it does (tested: no leakage); the held-out period is ``[split_date, end_date]``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from simrec.adapters.warehouse_local import _expand, _list
from simrec.core.actions import ACTIONS

COLUMNS = ("user_id", "sku", "action", "day")


def load_events(path: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Events as ``user_id, sku, action, day`` (``datetime64[s]`` day, UTC), sorted by day.

    Rows without a user, a sku, a known action or a time are dropped and counted in the
    returned ``{"rows": .., "dropped": ..}``.
    """
    files = [f for f in _expand(path, "*") if f.lower().endswith((".csv", ".csv.gz", ".parquet"))]
    if not files:
        raise FileNotFoundError(f"no .csv, .csv.gz or .parquet events in {path}")
    parquet = all(f.lower().endswith(".parquet") for f in files)
    if not parquet and any(f.lower().endswith(".parquet") for f in files):
        raise ValueError(f"events source {path} mixes CSV and Parquet files")
    source = (
        f"read_parquet({_list(files)}, union_by_name = true)"
        if parquet
        else f"read_csv({_list(files)}, header = true, all_varchar = true, union_by_name = true)"
    )
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        names = {r[0].lower() for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        missing = {"user_id", "sku", "action"} - names
        if missing or not ({"ts", "date"} & names):
            raise ValueError(
                f"events need columns user_id, sku, action and ts or date; {path} has "
                f"{', '.join(sorted(names))}"
            )
        if "ts" in names:
            day = "CAST(TRY_CAST(ts AS TIMESTAMPTZ) AS DATE)"
        else:
            day = "TRY_CAST(date AS DATE)"
        sql = f"""
            SELECT CAST(user_id AS VARCHAR) AS user_id, CAST(sku AS VARCHAR) AS sku,
                   LOWER(CAST(action AS VARCHAR)) AS action, {day} AS day
            FROM {source}
        """
        df = con.execute(f"SELECT * FROM ({sql}) ORDER BY day").df()
    finally:
        con.close()
    rows = len(df)
    ok = (
        df["user_id"].notna()
        & df["sku"].notna()
        & (df["sku"].str.len() > 0)
        & df["action"].isin(list(ACTIONS))
        & df["day"].notna()
    )
    df = df.loc[ok].reset_index(drop=True)
    df["day"] = pd.to_datetime(df["day"]).astype("datetime64[s]")
    for c in ("user_id", "sku", "action"):
        df[c] = df[c].astype(object)
    if df.empty:
        raise ValueError(f"no valid events in {path}")
    return df[list(COLUMNS)], {"rows": rows, "dropped": int(rows - len(df))}


@dataclass(frozen=True)
class Split:
    """Training events ``[train_start, split_date)``, held-out ``[split_date, end_date]``."""

    train: pd.DataFrame
    test: pd.DataFrame
    train_start: dt.date
    split_date: dt.date
    end_date: dt.date

    @property
    def reference_day(self) -> dt.date:
        """The training window's last day: age 0 of the time decay (as a run's end_date)."""
        return self.split_date - dt.timedelta(days=1)

    def describe(self) -> dict:
        return {
            "train_start": self.train_start.isoformat(),
            "split_date": self.split_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "train_events": int(len(self.train)),
            "test_events": int(len(self.test)),
            "train_users": int(self.train["user_id"].nunique()),
            "test_users": int(self.test["user_id"].nunique()),
        }


def _day(value: dt.date) -> np.datetime64:
    return np.datetime64(value, "D")


def temporal_split(
    events: pd.DataFrame,
    *,
    holdout_days: int | None = None,
    split_date: dt.date | None = None,
    window_days: int | None = None,
    end_date: dt.date | None = None,
) -> Split:
    """Hold out the last ``holdout_days`` days (or everything from ``split_date``).

    Training uses the ``window_days`` days before the split (all of them when None), as a
    nightly run on ``split_date`` would. ``end_date`` (default: the newest event's day)
    ends the held-out period.
    """
    if (holdout_days is None) == (split_date is None):
        raise ValueError("give exactly one of holdout_days and split_date")
    days = events["day"].to_numpy().astype("datetime64[D]")
    newest = days.max().astype(dt.date)
    end = end_date or newest
    if holdout_days is not None:
        if holdout_days < 1:
            raise ValueError(f"holdout_days must be >= 1, got {holdout_days}")
        split_date = end - dt.timedelta(days=holdout_days - 1)
    assert split_date is not None
    if window_days is not None and window_days < 1:
        raise ValueError(f"window_days must be >= 1, got {window_days}")
    oldest = days.min().astype(dt.date)
    start = oldest if window_days is None else max(oldest, split_date - dt.timedelta(window_days))
    in_train = (days >= _day(start)) & (days < _day(split_date))
    in_test = (days >= _day(split_date)) & (days <= _day(end))
    if not in_train.any():
        raise ValueError(f"no training events before the split date {split_date}")
    if not in_test.any():
        raise ValueError(f"no held-out events from {split_date} to {end}")
    return Split(
        train=events.loc[in_train].reset_index(drop=True),
        test=events.loc[in_test].reset_index(drop=True),
        train_start=start,
        split_date=split_date,
        end_date=end,
    )


def validation_split(events: pd.DataFrame, test: Split, window_days: int | None = None) -> Split:
    """The same protocol one held-out period earlier: for tuning without the test period."""
    length = (test.end_date - test.split_date).days + 1
    before = events.loc[events["day"].to_numpy().astype("datetime64[D]") < _day(test.split_date)]
    return temporal_split(
        before,
        holdout_days=length,
        window_days=window_days,
        end_date=test.split_date - dt.timedelta(days=1),
    )
