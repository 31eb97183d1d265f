"""Top-k recommendation metrics: stateless functions, one definition each.

Inputs follow Microsoft Recommenders' convention, with the column names injected:

* ``rating_true``: the relevant items, one row per (user, item) (duplicates ignored). Its
  users are the evaluated users ``U``: a user with no recommendation counts as zero.
* ``rating_pred``: the recommendations, one row per (user, item) with ``col_rank`` = 1 for
  the best; only ranks ``<= k`` count. Users not in ``rating_true`` are ignored.

Notation: ``R_u`` = relevant items of user ``u``; ``rel_u(r)`` = 1 when the item at rank
``r`` of ``u`` is in ``R_u``, else 0; ``hits_u = sum_{r<=k} rel_u(r)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

USER, ITEM, RANK = "user_id", "sku", "rank"


def _relevant(rating_true: pd.DataFrame, col_user: str, col_item: str) -> pd.DataFrame:
    if rating_true.empty:
        raise ValueError("rating_true is empty: no user to evaluate")
    return rating_true[[col_user, col_item]].drop_duplicates()


def _catalog_items(catalog: pd.Series | np.ndarray | list) -> pd.Index:
    items = pd.Index(pd.unique(pd.Series(catalog)))
    if len(items) == 0:
        raise ValueError("catalog is empty")
    return items


def _per_user(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> pd.DataFrame:
    """Each evaluated user's term of every mean metric (index: the users of ``rating_true``,
    sorted). The mean of a column over the users is the metric: the one definition."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    true = _relevant(rating_true, col_user, col_item)
    n_rel = true.groupby(col_user, sort=False).size().sort_index()  # |R_u|
    # the relevant recommendations at rank <= k
    pred = rating_pred.loc[rating_pred[col_rank] <= k, [col_user, col_item, col_rank]]
    pred = pred.drop_duplicates([col_user, col_item])
    hits = pred.merge(true, on=[col_user, col_item], how="inner")[[col_user, col_rank]]
    hits = hits.sort_values([col_user, col_rank], kind="stable")
    user = hits[col_user].to_numpy()
    rank = hits[col_rank].to_numpy(dtype=np.float64)
    # hits_u
    n_hits = pd.Series(1.0, index=user).groupby(level=0).sum()
    # DCG_u / IDCG_u
    dcg = pd.Series(1.0 / np.log2(rank + 1.0), index=user).groupby(level=0).sum()
    ideal_cum = np.cumsum(1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64)))
    idcg = pd.Series(ideal_cum[np.minimum(n_rel.to_numpy(), k) - 1], index=n_rel.index)
    # AP_u: precision at each hit's rank, over min(k, |R_u|)
    nth_hit = hits.groupby(col_user, sort=False).cumcount().to_numpy() + 1
    ap = pd.Series(nth_hit / rank, index=user).groupby(level=0).sum()
    found = n_hits.reindex(n_rel.index, fill_value=0.0)
    return pd.DataFrame(
        {
            "hit_rate": (found > 0).astype(np.float64),
            "precision": found / k,
            "recall": found / n_rel,
            "ndcg": dcg.reindex(n_rel.index, fill_value=0.0) / idcg,
            "map": ap.reindex(n_rel.index, fill_value=0.0) / np.minimum(n_rel, k),
        },
        index=n_rel.index,
    )


def _user_mean(column: str, doc: str) -> Callable[..., float]:
    """The public metric over :func:`_per_user`'s ``column``: its mean over the users
    (``columns``: ``col_user`` / ``col_item`` / ``col_rank``)."""

    def metric(
        rating_true: pd.DataFrame, rating_pred: pd.DataFrame, k: int = 10, **columns: str
    ) -> float:
        return float(_per_user(rating_true, rating_pred, k, **columns)[column].mean())

    metric.__name__ = metric.__qualname__ = f"{column}_at_k"
    metric.__doc__ = doc
    return metric


hit_rate_at_k = _user_mean(
    "hit_rate",
    """Share of users with at least one relevant item in their top k.

    ``HR@k = (1/|U|) sum_u [hits_u > 0]``
    """,
)
precision_at_k = _user_mean(
    "precision",
    """Relevant share of the k slots (a shorter list still has k slots).

    ``P@k = (1/|U|) sum_u hits_u / k``
    """,
)
recall_at_k = _user_mean(
    "recall",
    """Share of each user's relevant items found in the top k.

    ``R@k = (1/|U|) sum_u hits_u / |R_u|``
    """,
)
ndcg_at_k = _user_mean(
    "ndcg",
    """Normalised discounted cumulative gain with binary relevance.

    ``DCG_u = sum_{r<=k} rel_u(r) / log2(r + 1)``,
    ``IDCG_u = sum_{r=1}^{min(k, |R_u|)} 1 / log2(r + 1)``,
    ``NDCG@k = (1/|U|) sum_u DCG_u / IDCG_u``
    """,
)
map_at_k = _user_mean(
    "map",
    """Mean average precision, normalised by the most hits a top k can hold.

    ``AP_u = (1/min(k, |R_u|)) sum_{r<=k} rel_u(r) * P_u@r`` with
    ``P_u@r = (hits among ranks 1..r) / r``; ``MAP@k = (1/|U|) sum_u AP_u``
    """,
)


def catalog_coverage(
    rating_pred: pd.DataFrame,
    catalog: pd.Series | np.ndarray | list,
    k: int = 10,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> float:
    """Share of the catalog recommended to at least one user in a top k.

    ``coverage@k = |{items at rank <= k for some user} ∩ C| / |C|``, ``C`` = catalog
    (here: the items of the training period).
    """
    items = _catalog_items(catalog)
    shown = pd.unique(rating_pred.loc[rating_pred[col_rank] <= k, col_item])
    return float(items.isin(shown).sum() / len(items))


def mean_popularity(
    rating_pred: pd.DataFrame,
    popularity: pd.Series,
    k: int = 10,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> float:
    """Mean popularity of the recommended items: lower means less obvious recommendations.

    ``pop(i)`` = share of training users who interacted with ``i`` (``popularity``, a
    Series indexed by item; unknown items count 0);
    ``meanpop@k = mean over all (user, item) with rank <= k of pop(item)``; NaN if none.
    """
    shown = rating_pred.loc[rating_pred[col_rank] <= k, col_item]
    if shown.empty:
        return float("nan")
    return float(popularity.reindex(shown.to_numpy()).fillna(0.0).mean())


METRICS = ("hit_rate", "precision", "recall", "ndcg", "map", "coverage", "mean_popularity")
#: The metrics that are means over users of a per-user term (:func:`_per_user`).
USER_MEAN_METRICS = ("hit_rate", "precision", "recall", "ndcg", "map")
#: Bootstrap defaults: resamples of the evaluated users and the interval's level.
RESAMPLES = 1000
LEVEL = 0.95
#: Metrics without a bootstrap interval over users: coverage is a property of the union of
#: the lists, not a mean over users; a resample holds ~63% distinct users, so its coverage
#: is biased low and its percentile interval would not even hold the estimate.
NO_INTERVAL = ("coverage",)


@dataclass(frozen=True)
class UserScores:
    """What every metric needs per evaluated user, so that a resample of the users (a
    weight per user: how often it was drawn) gives every metric without re-ranking.

    ``terms``: the per-user terms of :data:`USER_MEAN_METRICS` (users x 5);
    ``pop_sum`` / ``pop_count``: summed popularity and number of the user's shown items;
    ``shown``: users x catalog indicator of the items shown at rank <= k.
    """

    users: pd.Index
    terms: np.ndarray
    pop_sum: np.ndarray
    pop_count: np.ndarray
    shown: sp.csr_matrix

    def under(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric but :data:`NO_INTERVAL`'s under each row of ``weights``
        (resamples x users: how often each user was drawn)."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        total = w.sum(axis=1)
        means = (w @ self.terms) / total[:, None]
        out = {name: means[:, j] for j, name in enumerate(USER_MEAN_METRICS)}
        count = w @ self.pop_count
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean_popularity"] = np.where(count > 0, (w @ self.pop_sum) / count, np.nan)
        return out

    def point(self) -> dict[str, float]:
        """Every metric on the evaluated users (each drawn once)."""
        point = {k: float(v[0]) for k, v in self.under(np.ones((1, len(self.users)))).items()}
        point["coverage"] = float((np.diff(self.shown.tocsc().indptr) > 0).sum()
                                  / self.shown.shape[1])  # fmt: skip
        return {name: point[name] for name in METRICS}


def user_scores(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    catalog: pd.Series | np.ndarray | list,
    popularity: pd.Series,
    k: int = 10,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> UserScores:
    """The per-user ingredients of every metric above (users of ``rating_true``, sorted)."""
    terms = _per_user(rating_true, rating_pred, k, col_user, col_item, col_rank)
    users = terms.index
    pred = rating_pred.loc[
        rating_pred[col_user].isin(users) & (rating_pred[col_rank] <= k), [col_user, col_item]
    ]
    row = users.get_indexer(pred[col_user])
    pop = popularity.reindex(pred[col_item].to_numpy()).fillna(0.0).to_numpy(dtype=np.float64)
    items = _catalog_items(catalog)
    col = items.get_indexer(pred[col_item])
    in_catalog = col >= 0
    shown = sp.csr_matrix(
        (np.ones(int(in_catalog.sum())), (row[in_catalog], col[in_catalog])),
        shape=(len(users), len(items)),
    )
    shown.data[:] = 1.0  # a (user, item) listed twice is still one item shown
    return UserScores(
        users=users,
        terms=terms[list(USER_MEAN_METRICS)].to_numpy(dtype=np.float64),
        pop_sum=np.bincount(row, weights=pop, minlength=len(users)),
        pop_count=np.bincount(row, minlength=len(users)).astype(np.float64),
        shown=shown,
    )


def resample_weights(n_users: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Draw counts of a bootstrap over users: ``resamples`` x ``n_users``, each row a
    sample of ``n_users`` users with replacement (seeded: the same draws for every model,
    which makes the comparison of two models paired)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=resamples).astype(
        np.float32
    )


def _interval(values: np.ndarray, level: float) -> list[float | None]:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return [None, None]
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def confidence_intervals(
    scores: UserScores, weights: np.ndarray, level: float = LEVEL
) -> dict[str, list[float | None]]:
    """Percentile bootstrap interval ``[low, high]`` of every metric (``[None, None]``
    for :data:`NO_INTERVAL`)."""
    under = scores.under(weights)
    return {
        name: [None, None] if name in NO_INTERVAL else _interval(under[name], level)
        for name in METRICS
    }


def paired_difference(
    a: UserScores, b: UserScores, weights: np.ndarray, level: float = LEVEL
) -> dict[str, dict[str, float | None]]:
    """Metric of ``a`` minus metric of ``b`` on the same users, with the percentile
    interval of the difference over the same resamples (paired bootstrap)."""
    if not a.users.equals(b.users):
        raise ValueError("a paired comparison needs the same evaluated users")
    point_a, point_b = a.point(), b.point()
    under_a, under_b = a.under(weights), b.under(weights)
    out: dict[str, dict[str, float | None]] = {}
    for name in METRICS:
        low, high = (
            (None, None) if name in NO_INTERVAL
            else _interval(under_a[name] - under_b[name], level)
        )
        out[name] = {"difference": point_a[name] - point_b[name], "low": low, "high": high}
    return out


def interval_side(low: float | None, high: float | None) -> str | None:
    """Where an interval of a difference lies: ``"above 0"``, ``"below 0"``,
    ``"across 0"`` (no difference shown), or None without an interval."""
    if low is None or high is None:
        return None
    return "above 0" if low > 0 else "below 0" if high < 0 else "across 0"

