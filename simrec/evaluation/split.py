"""The temporal split of events ``user_id, sku, action, day`` (:data:`COLUMNS`; read by
:func:`simrec.evaluation.events.load_events`, or a run's window of exported days).

Pure pandas, like the rest of the protocol, so the nightly tuning step
(:mod:`simrec.evaluation.nightly`) runs it inside the Spark job. The split is by day:
everything before ``split_date`` may train, nothing on or after it does (tested: no
leakage); the held-out period is
``[split_date, end_date]``. The per-user split (:func:`per_user_split`) holds out each
user's last events instead; :func:`choose_split` picks between them by one rule
(:data:`MIN_SCORED_USERS`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS = ("user_id", "sku", "action", "day")


#: The two split protocols of ``simrec evaluate``.
PROTOCOLS = ("date", "per-user", "auto")
#: The rule of ``protocol="auto"``: the global date split unless it scores fewer users
#: than this, then the per-user split (defined here once; docs/evaluation.md).
MIN_SCORED_USERS = 1000
#: Events held out per user by the per-user split (its last interaction).
DEFAULT_HOLDOUT_EVENTS = 1


@dataclass(frozen=True)
class Split:
    """Training events ``[train_start, split_date)``, held-out ``[split_date, end_date]``
    (``protocol="date"``), or each user's last ``holdout_events`` events held out
    (``protocol="per-user"``: ``split_date`` is then the day after the newest event)."""

    train: pd.DataFrame
    test: pd.DataFrame
    train_start: dt.date
    split_date: dt.date
    end_date: dt.date
    protocol: str = "date"
    holdout_events: int | None = None

    @property
    def reference_day(self) -> dt.date:
        """The training window's last day: age 0 of the time decay (as a run's end_date)."""
        return self.split_date - dt.timedelta(days=1)

    def describe(self) -> dict:
        return {
            "protocol": self.protocol,
            "holdout_events": self.holdout_events,
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


def per_user_split(
    events: pd.DataFrame, holdout_events: int = DEFAULT_HOLDOUT_EVENTS, seed: int = 0
) -> Split:
    """Hold out each user's last ``holdout_events`` events, train on every other event
    (other users' later events included: the usual leave-last-out).

    "Last" is by day, as everywhere in the protocol (the model and the query know days
    only); events of one day are ordered by a seeded hash of (user, sku, action), not by
    sku, so which same-day item is held out favours no part of the catalogue.
    Users with no more than ``holdout_events`` events are not held out (they train).
    Time decay's age 0 is the newest event's day.
    """
    if holdout_events < 1:
        raise ValueError(f"holdout_events must be >= 1, got {holdout_events}")
    tie = pd.util.hash_pandas_object(
        events[["user_id", "sku", "action"]], index=False, hash_key=f"{seed:016d}"
    ).to_numpy()
    order = np.lexsort((tie, events["day"].to_numpy()))
    users = events["user_id"].to_numpy()[order]
    ordered = pd.Series(users)
    # Position from the end of each user's events in that order: 0 = last.
    from_end = np.empty(len(events), dtype=np.int64)
    from_end[order] = ordered.groupby(ordered, sort=False).cumcount(ascending=False).to_numpy()
    count = events.groupby("user_id", sort=False)["sku"].transform("size").to_numpy()
    in_test = (from_end < holdout_events) & (count > holdout_events)
    if not in_test.any():
        raise ValueError(f"no user has more than {holdout_events} events to hold out")
    days = events["day"].to_numpy().astype("datetime64[D]")
    newest = days.max().astype(dt.date)
    return Split(
        train=events.loc[~in_test].reset_index(drop=True),
        test=events.loc[in_test].reset_index(drop=True),
        train_start=days.min().astype(dt.date),
        split_date=newest + dt.timedelta(days=1),
        end_date=newest,
        protocol="per-user",
        holdout_events=holdout_events,
    )


def scored_users(split: Split) -> int:
    """Users the protocol scores on ``split``: held out with a training history and at
    least one held-out item absent from it (``evaluate.build_protocol``'s eligibility)."""
    return len(eligible(split)[0])


def eligible(split: Split) -> tuple[np.ndarray, pd.DataFrame]:
    """The users :func:`scored_users` counts (sorted) and the relevant ``user_id, sku``
    rows: held-out items the user had not had in training (repeats cannot be shown)."""
    history = split.train[["user_id", "sku"]].drop_duplicates()
    held = split.test[["user_id", "sku"]].drop_duplicates()
    new = held.merge(history, on=["user_id", "sku"], how="left", indicator=True)
    relevant = new.loc[new["_merge"] == "left_only", ["user_id", "sku"]]
    known = pd.Index(history["user_id"].unique())
    eligible = np.sort(relevant["user_id"].unique())
    eligible = eligible[pd.Index(eligible).isin(known)] if len(eligible) else eligible
    return eligible, relevant


def choose_split(
    events: pd.DataFrame,
    protocol: str,
    *,
    holdout_days: int | None = None,
    split_date: dt.date | None = None,
    window_days: int | None = None,
    holdout_events: int = DEFAULT_HOLDOUT_EVENTS,
) -> tuple[Split, str]:
    """The split of ``protocol`` and why it was chosen.

    ``"auto"``: the date split, unless it scores fewer than :data:`MIN_SCORED_USERS`
    users; then the per-user split.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol == "per-user":
        return per_user_split(events, holdout_events), "per-user split requested"
    if holdout_days is None and split_date is None:
        holdout_days = 30
    by_date = temporal_split(
        events, holdout_days=holdout_days, split_date=split_date, window_days=window_days
    )
    if protocol == "date":
        return by_date, "date split requested"
    n = scored_users(by_date)
    if n >= MIN_SCORED_USERS:
        return by_date, f"date split scores {n:,} users (>= {MIN_SCORED_USERS:,})"
    return per_user_split(events, holdout_events), (
        f"date split scores only {n:,} users (< {MIN_SCORED_USERS:,}): per-user split"
    )


#: Items kept by :func:`repeat_heavy`: the shop's most-bought staples.
REPEAT_ITEMS = 150


def repeat_heavy(events: pd.DataFrame, items: int = REPEAT_ITEMS) -> pd.DataFrame:
    """A grocery-like shop from a real log (issue 15.3's repeat-heavy check): the purchases
    of its ``items`` items bought by the most distinct users (ties by sku). A small
    catalogue of staples bought again and again: many later purchases are repeats, and
    the new ones are popular items, where most-popular-unseen is hardest to beat."""
    buys = events.loc[events["action"] == "purchase"]
    top = buys.drop_duplicates(["user_id", "sku"])["sku"].value_counts()
    top = top.sort_index().sort_values(ascending=False, kind="stable").index[:items]
    return buys.loc[buys["sku"].isin(set(top))].reset_index(drop=True)
