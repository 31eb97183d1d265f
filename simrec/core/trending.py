"""Trending items: the one rule, shared by both engines and the model builder.

Per item, the engines sum the (undecayed) action weights of its events in two parts of
the run's window: the *recent* days (the last ``recent_days`` days, from
:func:`split_day` to the window's last day) and the *prior* days before them. Time decay
is not applied: it would shrink the prior part and inflate every item's growth.

The model builder turns those sums into one score per item::

    growth = (recent / recent_days + smoothing) / (prior / prior_days + smoothing)

(daily rates; ``prior / prior_days`` is 0 when the window has no prior days). Only items
whose recent weight is at least ``min_support`` trend, so an item with one event does
not top the list; ``smoothing`` (events a day) keeps items new in the recent days from
an infinite growth and ranks them by their recent rate. Ranked by growth descending,
then recent weight descending, then item index (sku order) ascending. As Algolia's
"trending items", the list is global and filtered by category at request time.

The three parameters are model parameters (``trending_recent_days``,
``trending_min_support``, ``trending_smoothing`` of :class:`~simrec.core.params.ModelParams`,
declared there with their defaults and bounds), so they are settings, CLI flags and
Terraform ``model`` attributes like the others, travel in the run's manifests and change
its run id.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from simrec.core.params import DEFAULTS, ModelParams

#: The default of ``trending_recent_days`` (the helpers' default argument).
RECENT_DAYS = DEFAULTS.trending_recent_days


def split_day(end_date: dt.date, recent_days: int = RECENT_DAYS) -> dt.date:
    """The first recent day: events on or after it are recent (UTC days)."""
    return end_date - dt.timedelta(days=recent_days - 1)


def window_split(window_days: int, recent_days: int = RECENT_DAYS) -> tuple[int, int]:
    """``(recent days, prior days)`` of a window of ``window_days`` days."""
    recent = min(recent_days, window_days)
    return recent, window_days - recent


def window_sums(
    skus: object, weights: np.ndarray, days: object, first_recent_day: dt.date
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sku (sorted), the summed ``weights`` of its recent and of its prior events.

    ``days``: each event's UTC day (``datetime64[D]``-like). The local engine's form of
    the rule; the Spark job sums the same two expressions per item."""
    vocab, codes = np.unique(np.asarray(skus, dtype=object), return_inverse=True)
    recent = np.asarray(days, dtype="datetime64[D]") >= np.datetime64(first_recent_day, "D")
    w = np.asarray(weights, dtype=np.float64)
    n = len(vocab)
    return (
        np.asarray(vocab, dtype=object),
        np.bincount(codes, weights=np.where(recent, w, 0.0), minlength=n),
        np.bincount(codes, weights=np.where(recent, 0.0, w), minlength=n),
    )


def growth(
    recent: np.ndarray,
    prior: np.ndarray,
    recent_days: int,
    prior_days: int,
    smoothing: float = DEFAULTS.trending_smoothing,
) -> np.ndarray:
    """The growth of each item (see the module docstring)."""
    recent_rate = np.asarray(recent, dtype=np.float64) / recent_days
    prior_rate = np.asarray(prior, dtype=np.float64) / prior_days if prior_days else 0.0
    return (recent_rate + smoothing) / (prior_rate + smoothing)


def ranking(
    recent: np.ndarray,
    prior: np.ndarray,
    recent_days: int,
    prior_days: int,
    params: ModelParams = DEFAULTS,
) -> tuple[np.ndarray, np.ndarray]:
    """``(item indices, growth)`` of the trending items, best first: items with
    ``recent >= params.trending_min_support``, by growth desc, recent desc, index asc."""
    recent = np.asarray(recent, dtype=np.float64)
    score = growth(recent, prior, recent_days, prior_days, params.trending_smoothing)
    index = np.arange(len(recent))
    order = np.lexsort((index, -recent, -score))
    order = order[recent[order] >= params.trending_min_support]
    return order.astype(np.int32), score[order]
