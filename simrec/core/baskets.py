"""Frequently bought together (issue 16.1): the basket rule both engines apply.

A basket is one user's events with the same grouping value: the export's ``order_id``
or ``session_id`` (``ModelParams.basket_key``), or the event's UTC day. An event without
a value for the key falls back to its day, so a shop without order ids still gets
co-purchases of the same day. The bought-together model is the matrix rule and the
cosine top-K of the related-items model over a basket x item matrix: rows are baskets
instead of users (``basket_ids`` stands in for the user id), and the actions
``basket_actions`` leaves out weigh 0 (``ModelParams.basket``), so they make no cell.
"""

from __future__ import annotations

import numpy as np

from simrec.core import layout

#: Joins a basket id's parts (a character no id or day contains in practice).
SEPARATOR = "\x1f"
#: Prefixes of the grouping value: the key's value, or the day it fell back to.
KEY_PREFIX = "k:"
DAY_PREFIX = "d:"


def basket_ids(
    user_ids: object, keys: object | None, days: object
) -> tuple[np.ndarray, np.ndarray]:
    """Per event, its basket id ``user SEP k:<key>`` or ``user SEP d:<YYYY-MM-DD>``, and
    whether it fell back to the day (``keys`` None: every event does).

    ``days``: each event's UTC day (``datetime64[D]``-like). The Spark job builds the
    same strings (``spark_similarity.basket_events``).
    """
    import pandas as pd  # the engines' extra: the run summary imports this module too

    users = pd.Series(user_ids, copy=False).astype(object).to_numpy()
    day = DAY_PREFIX + pd.Series(np.asarray(days, dtype="datetime64[D]")).dt.strftime("%Y-%m-%d")
    if keys is None:
        missing = np.ones(len(users), dtype=bool)
        group = day
    else:
        key = pd.Series(keys, copy=False).reset_index(drop=True)
        missing = key.isna().to_numpy()
        group = (KEY_PREFIX + key.astype(object).where(~missing, "")).where(~missing, day)
    ids = users + SEPARATOR + group.to_numpy(dtype=object)
    return np.asarray(ids, dtype=object), missing


def key_column(basket_key: str) -> str | None:
    """The export column of a ``basket_key`` (None: ``day``, no column)."""
    return layout.BASKET_KEY_COLUMNS[basket_key]


def summary(basket_key: str, basket_actions: str, events: int, fell_back: int,
            baskets: int, neighbor_rows: int) -> dict[str, object]:  # fmt: skip
    """The similarity manifest's ``bought_together`` entry (the run summary prints it):
    ``grouped_by`` is ``day`` when no event of the basket actions had the key."""
    grouped_by = "day" if events and fell_back == events else basket_key
    return {
        "basket_key": basket_key,
        "basket_actions": basket_actions,
        "grouped_by": grouped_by,
        "events": int(events),
        "events_without_key": int(fell_back) if basket_key != "day" else 0,
        "baskets": int(baskets),
        "neighbor_rows": int(neighbor_rows),
    }


def describe(entry: dict[str, object]) -> str:
    """One line of the run summary for a manifest's ``bought_together`` entry."""
    key = entry["basket_key"]
    if not entry["events"]:
        return f"bought together: no events of its actions ({entry['basket_actions']})"
    text = (f"bought together: {entry['baskets']:,} baskets ({entry['basket_actions']}) by "
            f"{entry['grouped_by']}, {entry['neighbor_rows']:,} items with neighbors")
    if entry["grouped_by"] != key:
        text += f"; no {key} id on any event: fell back to day (user and UTC day)"
    elif entry["events_without_key"]:
        text += f"; {entry['events_without_key']:,} events without a {key} id grouped by day"
    return text
