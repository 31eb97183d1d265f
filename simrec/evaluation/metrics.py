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

import numpy as np
import pandas as pd

USER, ITEM, RANK = "user_id", "sku", "rank"


def _relevant(rating_true: pd.DataFrame, col_user: str, col_item: str) -> pd.DataFrame:
    if rating_true.empty:
        raise ValueError("rating_true is empty: no user to evaluate")
    return rating_true[[col_user, col_item]].drop_duplicates()


def _hits(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int,
    col_user: str,
    col_item: str,
    col_rank: str,
) -> tuple[pd.DataFrame, pd.Series]:
    """Rows (user, rank) of relevant recommendations at rank <= k; |R_u| per user."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    true = _relevant(rating_true, col_user, col_item)
    n_rel = true.groupby(col_user, sort=False).size()
    pred = rating_pred.loc[rating_pred[col_rank] <= k, [col_user, col_item, col_rank]]
    pred = pred.drop_duplicates([col_user, col_item])
    hits = pred.merge(true, on=[col_user, col_item], how="inner")
    return hits[[col_user, col_rank]], n_rel


def hit_rate_at_k(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int = 10,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> float:
    """Share of users with at least one relevant item in their top k.

    ``HR@k = (1/|U|) sum_u [hits_u > 0]``
    """
    hits, n_rel = _hits(rating_true, rating_pred, k, col_user, col_item, col_rank)
    return float(hits[col_user].nunique() / len(n_rel))


def precision_at_k(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int = 10,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> float:
    """Relevant share of the k slots (a shorter list still has k slots).

    ``P@k = (1/|U|) sum_u hits_u / k``
    """
    hits, n_rel = _hits(rating_true, rating_pred, k, col_user, col_item, col_rank)
    return float(len(hits) / (k * len(n_rel)))


def recall_at_k(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int = 10,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> float:
    """Share of each user's relevant items found in the top k.

    ``R@k = (1/|U|) sum_u hits_u / |R_u|``
    """
    hits, n_rel = _hits(rating_true, rating_pred, k, col_user, col_item, col_rank)
    per_user = hits.groupby(col_user, sort=False).size()
    return float((per_user / n_rel.reindex(per_user.index)).sum() / len(n_rel))


def ndcg_at_k(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int = 10,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> float:
    """Normalised discounted cumulative gain with binary relevance.

    ``DCG_u = sum_{r<=k} rel_u(r) / log2(r + 1)``,
    ``IDCG_u = sum_{r=1}^{min(k, |R_u|)} 1 / log2(r + 1)``,
    ``NDCG@k = (1/|U|) sum_u DCG_u / IDCG_u``
    """
    hits, n_rel = _hits(rating_true, rating_pred, k, col_user, col_item, col_rank)
    gain = 1.0 / np.log2(hits[col_rank].to_numpy(dtype=np.float64) + 1.0)
    dcg = pd.Series(gain, index=hits[col_user].to_numpy()).groupby(level=0, sort=False).sum()
    ideal_cum = np.cumsum(1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64)))
    idcg = pd.Series(ideal_cum[np.minimum(n_rel.to_numpy(), k) - 1], index=n_rel.index)
    return float((dcg / idcg.reindex(dcg.index)).sum() / len(n_rel))


def map_at_k(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int = 10,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> float:
    """Mean average precision, normalised by the most hits a top k can hold.

    ``AP_u = (1/min(k, |R_u|)) sum_{r<=k} rel_u(r) * P_u@r`` with
    ``P_u@r = (hits among ranks 1..r) / r``; ``MAP@k = (1/|U|) sum_u AP_u``
    """
    hits, n_rel = _hits(rating_true, rating_pred, k, col_user, col_item, col_rank)
    hits = hits.sort_values([col_user, col_rank], kind="stable")
    nth_hit = hits.groupby(col_user, sort=False).cumcount().to_numpy() + 1
    prec = pd.Series(nth_hit / hits[col_rank].to_numpy(), index=hits[col_user].to_numpy())
    ap = prec.groupby(level=0, sort=False).sum()
    denom = np.minimum(n_rel.reindex(ap.index).to_numpy(), k)
    return float((ap / denom).sum() / len(n_rel))


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
    items = pd.Index(pd.unique(pd.Series(catalog)))
    if len(items) == 0:
        raise ValueError("catalog is empty")
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


def all_metrics(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    catalog: pd.Series | np.ndarray | list,
    popularity: pd.Series,
    k: int = 10,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
) -> dict[str, float]:
    """Every metric above at ``k``, keyed as in :data:`METRICS`."""
    args = (rating_true, rating_pred, k, col_user, col_item, col_rank)
    pred = rating_pred.loc[rating_pred[col_user].isin(rating_true[col_user])]
    return {
        "hit_rate": hit_rate_at_k(*args),
        "precision": precision_at_k(*args),
        "recall": recall_at_k(*args),
        "ndcg": ndcg_at_k(*args),
        "map": map_at_k(*args),
        "coverage": catalog_coverage(pred, catalog, k, col_item, col_rank),
        "mean_popularity": mean_popularity(pred, popularity, k, col_item, col_rank),
    }
