"""The offline evaluation protocol: one temporal split, every model scored the same way.

Protocol (docs/evaluation.md):

1. **Split** (:mod:`simrec.evaluation.split`): train on the ``window_days`` days before
   ``split_date``, hold out ``[split_date, end_date]``; or (per-user split) hold out each
   user's last events and train on the rest. ``split.choose_split`` holds the rule that
   picks the per-user split when the date split scores too few users.
2. **Model**: the matrix rule (``simrec.core.matrix.build_matrix``) and the single-machine
   engine (``simrec.core.similarity.cosine_topk``) on the training events, exactly as a
   nightly run on ``split_date`` would (time decay's age 0 is the day before the split),
   put into a ``ModelSnapshot`` whose vocabulary is every training item.
3. **Query** of a held-out user, as a shop page would send it: the user's last
   ``query_items`` distinct training-period items (most recent day first, ties by sku),
   each weighted like serving weights an item listed under each action the user took on
   it: the sum of the weights of its distinct actions (browsed + purchase = 0.5 + 6).
4. **Recommendations**: the serving kernel (``simrec.core.scoring``), top ``k``, with the
   user's whole training-period history excluded; when the kernel finds nothing, the
   most popular training items (serving's fallback without categories).
5. **Relevant items**: what the user interacted with in the held-out period and had not in
   the training period (re-interactions cannot be recommended: they are excluded).
6. **Users evaluated**: held-out users with a training-period history and at least one
   relevant item; ``max_users`` draws a seeded sample of them (reported).

The peers (:mod:`simrec.evaluation.peers`) are scored on the same users and relevant
items; every model's metrics get seeded bootstrap intervals over the users, and the
configured model is compared with the best peer by a paired bootstrap
(:mod:`simrec.evaluation.metrics`).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simrec.core import quality, scoring
from simrec.core.actions import ActionWeights
from simrec.core.matrix import action_weights
from simrec.core.params import ModelParams
from simrec.core.recommender import Recommender
from simrec.core.similarity import fit_similarities
from simrec.core.snapshot import ModelSnapshot
from simrec.evaluation import metrics, peers
from simrec.evaluation import split as split_module
from simrec.evaluation.split import Split

DEFAULT_THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.5)
DEFAULT_QUERY_ITEMS = 20
#: Action weightings compared in every run (besides the configured one).
WEIGHTINGS: dict[str, ActionWeights] = {
    "binary (1/1/1)": ActionWeights(1.0, 1.0, 1.0),
    "original (0.5/2/6)": ActionWeights(0.5, 2.0, 6.0),
    "purchase-heavy (0.1/1/10)": ActionWeights(0.1, 1.0, 10.0),
    "purchase only (0/0/1)": ActionWeights(0.0, 0.0, 1.0),
}
SCORE_BINS = 20

Progress = Callable[[str], None]


@dataclass
class FittedModel:
    snapshot: ModelSnapshot
    emitted_pairs: int
    pairs: int
    gamma: float
    fit_s: float
    counts: dict[str, int]


def fit(train: pd.DataFrame, config: ModelParams, reference_day: dt.date) -> FittedModel:
    """The nightly run on the training events -> a serving snapshot over every item."""
    t0 = time.perf_counter()
    m, topk = fit_similarities(
        train["user_id"],
        train["sku"],
        train["action"],
        config,
        days=train["day"].to_numpy() if config.half_life_days > 0 else None,
        reference_day=reference_day,
    )
    vocab = m.item_skus
    col = np.searchsorted(vocab, m.skus)  # matrix column -> vocabulary index
    per_row = np.zeros(len(vocab), dtype=np.int64)
    per_row[col] = np.diff(topk.indptr)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    snapshot = ModelSnapshot(
        skus=[str(s) for s in vocab],
        indptr=indptr,
        indices=col[topk.neighbors],
        scores=topk.scores,
        users=topk.users,
        popularity=m.item_users.astype(np.float64),
        metadata={"config": config.to_json()},
    )
    return FittedModel(
        snapshot=snapshot,
        emitted_pairs=topk.emitted_pairs,
        pairs=topk.pairs,
        gamma=topk.gamma,
        fit_s=time.perf_counter() - t0,
        counts=m.counts,
    )


@dataclass
class Queries:
    """Per evaluated user: query items/weights (vocabulary indices) and excluded items."""

    users: np.ndarray  # str
    items: list[np.ndarray]  # int32 per user
    item_actions: list[np.ndarray]  # int8 bit set per query item: 1 browsed, 2 basket, 4 purchase
    excluded: list[np.ndarray]  # int32 per user: the whole training-period history

    def weights(self, w: ActionWeights) -> list[np.ndarray]:
        """Query weights under the action weights ``w`` (sum over each item's actions)."""
        table = np.array(
            [
                sum(v for bit, v in zip((1, 2, 4), (w.browsed, w.basket, w.purchase), strict=True)
                    if mask & bit)
                for mask in range(8)
            ],
            dtype=np.float64,
        )
        return [table[a] for a in self.item_actions]


_ACTION_BIT = {"browsed": 1, "basket": 2, "purchase": 4}


def _split_by_user(codes: np.ndarray, values: np.ndarray, n_users: int) -> list[np.ndarray]:
    """``values`` (sorted by ``codes``) cut into one array per user code 0..n-1."""
    bounds = np.searchsorted(codes, np.arange(n_users + 1))
    return [values[bounds[i] : bounds[i + 1]] for i in range(n_users)]


def build_protocol(
    split: Split,
    vocab: np.ndarray,
    query_items: int = DEFAULT_QUERY_ITEMS,
    max_users: int | None = None,
    seed: int = 0,
) -> tuple[Queries, pd.DataFrame, dict[str, Any]]:
    """Queries and relevant items of the evaluated users (steps 3, 5, 6 of the protocol)."""
    if query_items < 1:
        raise ValueError(f"query_items must be >= 1, got {query_items}")
    train, test = split.train, split.test
    eligible, relevant = split_module.eligible(split)
    known = set(train["user_id"].unique())
    held_users = test["user_id"].unique()
    info = {
        "protocol": split.protocol,
        "held_out_users": int(len(held_users)),
        "cold_users": int(sum(1 for u in held_users if u not in known)),
        "users_only_repeats": int(
            len(set(held_users) & known) - len(eligible)
        ),
        "eligible_users": int(len(eligible)),
        "query_items": int(query_items),
        "max_users": max_users,
        "sample_seed": seed,
    }
    if len(eligible) == 0:
        raise ValueError("no held-out user has both a training history and a new item")
    if max_users is not None and len(eligible) > max_users:
        rng = np.random.default_rng(seed)
        eligible = np.sort(rng.choice(eligible, size=max_users, replace=False))
    info["users_evaluated"] = int(len(eligible))
    info["sampled"] = bool(info["users_evaluated"] < info["eligible_users"])
    relevant = relevant.loc[relevant["user_id"].isin(eligible)].reset_index(drop=True)

    h = train.loc[train["user_id"].isin(eligible), ["user_id", "sku", "action", "day"]]
    h = h.assign(bit=h["action"].map(_ACTION_BIT).astype(np.int8))
    # Distinct actions' bits summed = their bit set; the item's most recent day.
    bits = h.drop_duplicates(["user_id", "sku", "action"]).groupby(["user_id", "sku"])["bit"]
    last = h.groupby(["user_id", "sku"])["day"].max()
    per_item = pd.DataFrame({"bits": bits.sum(), "last": last}).reset_index()
    user_code = pd.Index(eligible).get_indexer(per_item["user_id"])
    item_code = pd.Index(vocab).get_indexer(per_item["sku"])
    if (item_code < 0).any():
        raise AssertionError("a training item is missing from the model vocabulary")
    per_item = per_item.assign(u=user_code, i=item_code)
    # Whole history (excluded), sorted by user.
    by_user = per_item.sort_values(["u", "i"], kind="stable")
    excluded = _split_by_user(
        by_user["u"].to_numpy(), by_user["i"].to_numpy().astype(np.int32), len(eligible)
    )
    # Query: the last query_items items, most recent first, ties by sku (= index).
    recent = per_item.sort_values(["u", "last", "i"], ascending=[True, False, True])
    rank = recent.groupby("u", sort=False).cumcount().to_numpy()
    recent = recent.loc[rank < query_items]
    codes = recent["u"].to_numpy()
    items = _split_by_user(codes, recent["i"].to_numpy().astype(np.int32), len(eligible))
    bits = _split_by_user(codes, recent["bits"].to_numpy().astype(np.int8), len(eligible))
    return Queries(eligible, items, bits, excluded), relevant, info


def recommend(
    fitted: FittedModel, queries: Queries, weights: ActionWeights, k: int, fill: bool = False
) -> tuple[pd.DataFrame, int]:
    """Top-k per user with the serving recommender (``simrec.core.recommender``, its
    popularity fallback included, without categories or because).

    With ``fill`` (``ModelParams.popularity_fill``), slots the kernel leaves empty are
    filled with the most popular unseen items not already listed (scored below every
    item-item score). Serving does not fill yet: an evaluation lever.
    Returns ``(user_id, sku, rank, score)`` rows and the number of fallback users.
    """
    snap = fitted.snapshot
    recommender = Recommender(snap)
    order = scoring.popularity_order(snap.popularity) if fill else None
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    fallback = 0
    for u, (q, w, x) in enumerate(
        zip(queries.items, queries.weights(weights), queries.excluded, strict=True)
    ):
        rec = recommender.recommend(
            scoring.Query(q, w), k, exclude=x.tolist(), exclude_query=False, because_k=0
        )
        fallback += rec.fallback
        ids, got = rec.items, rec.scores
        if fill and rec.ranked and not rec.fallback and len(ids) < k:
            ids, got = _fill(ids, got, x, order, k)
        if ids:
            users.append(np.full(len(ids), u, dtype=np.int64))
            items.append(np.asarray(ids, dtype=np.int64))
            scores.append(np.asarray(got, dtype=np.float64))
    return _frame(queries, snap.skus, users, items, scores), fallback


def _fill(
    ids: list[int], got: list[float], excluded: np.ndarray, order: np.ndarray, k: int
) -> tuple[list[int], list[float]]:
    """``ids`` padded to ``k`` with the most popular items neither excluded nor listed,
    scored in popularity order below the lowest item-item score (``popularity_fill``)."""
    listed = np.concatenate([excluded, np.asarray(ids, dtype=excluded.dtype)])
    top = order[: k + len(listed)]
    top = top[~np.isin(top, listed)][: k - len(ids)]
    pad = min(got) * (1.0 - np.arange(1, len(top) + 1) / (len(top) + 1))
    return [*ids, *top.tolist()], [*got, *pad.tolist()]


def _frame(queries: Queries, skus, users, items, scores) -> pd.DataFrame:
    """Recommendation rows from per-user arrays (user code, vocabulary index, score)."""
    if not users:
        return pd.DataFrame({"user_id": [], "sku": [], "rank": [], "score": []})
    u = np.concatenate(users)
    i = np.concatenate(items)
    start = np.searchsorted(u, u, side="left")
    skus = np.asarray(skus, dtype=object)
    return pd.DataFrame(
        {
            "user_id": queries.users[u],
            "sku": skus[i],
            "rank": np.arange(len(u)) - start + 1,
            "score": np.concatenate(scores),
        }
    )


class Evaluator:
    """One split, one set of users and queries; models are fitted once per config."""

    def __init__(
        self,
        split: Split,
        k: int = 10,
        query_items: int = DEFAULT_QUERY_ITEMS,
        max_users: int | None = None,
        seed: int = 0,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.split = split
        self.k = k
        self.seed = seed
        vocab = np.sort(split.train["sku"].unique().astype(object))
        self.queries, self.relevant, self.info = build_protocol(
            split, vocab, query_items, max_users, seed
        )
        train = split.train
        # Catalog and popularity of the metrics: items and share of users of training.
        self.catalog = vocab
        pop = train[["user_id", "sku"]].drop_duplicates().groupby("sku").size()
        self.popularity = pop / train["user_id"].nunique()
        self._fitted: dict[ModelParams, FittedModel] = {}
        #: Per-user scores of each model evaluated (config or peer name): the bootstrap's input.
        self.scores: dict[ModelParams | str, metrics.UserScores] = {}
        self._resamples: np.ndarray | None = None
        self._peer_matrix: dict[ActionWeights, tuple[Any, np.ndarray]] = {}

    def fitted(self, config: ModelParams) -> FittedModel:
        if config not in self._fitted:
            self._fitted[config] = fit(self.split.train, config, self.split.reference_day)
        return self._fitted[config]

    def measure(self, recs: pd.DataFrame, key: ModelParams | str) -> dict[str, float]:
        """Every metric of ``recs``; their per-user scores are kept under ``key``."""
        scores = metrics.user_scores(
            self.relevant, recs, self.catalog, self.popularity, self.k
        )
        self.scores[key] = scores
        return scores.point()

    @property
    def resamples(self) -> np.ndarray:
        """The bootstrap's draws over the evaluated users: the same for every model."""
        if self._resamples is None:
            self._resamples = metrics.resample_weights(
                len(self.queries.users), metrics.RESAMPLES, self.seed
            )
        return self._resamples

    def intervals(self, key: ModelParams | str) -> dict[str, list[float | None]]:
        """Bootstrap interval of every metric of an evaluated model."""
        return metrics.confidence_intervals(self.scores[key], self.resamples)

    def compare(self, key: ModelParams | str, other: ModelParams | str) -> dict[str, Any]:
        """Paired bootstrap of every metric: ``key``'s minus ``other``'s."""
        return metrics.paired_difference(self.scores[key], self.scores[other], self.resamples)

    def evaluate(self, config: ModelParams) -> dict[str, Any]:
        fitted = self.fitted(config)
        t0 = time.perf_counter()
        recs, fallback = recommend(
            fitted, self.queries, config.weights, self.k, bool(config.popularity_fill)
        )
        return {
            "config": config.to_json(),
            "metrics": self.measure(recs, config),
            "emitted_pairs": fitted.emitted_pairs,
            "pairs": fitted.pairs,
            "gamma": None if math.isinf(fitted.gamma) else fitted.gamma,
            "fit_s": round(fitted.fit_s, 3),
            "recommend_s": round(time.perf_counter() - t0, 3),
            "fallback_users": fallback,
        }

    def peer_matrix(self, weights: ActionWeights) -> tuple[Any, np.ndarray]:
        """The peers' training matrix under ``weights`` and the evaluated users' rows."""
        if weights not in self._peer_matrix:
            matrix, users = peers.training_matrix(self.split.train, self.catalog, weights)
            self._peer_matrix[weights] = (matrix, users.get_indexer(self.queries.users))
        return self._peer_matrix[weights]

    def evaluate_peer(self, peer: peers.Peer, weights: ActionWeights) -> dict[str, Any]:
        """A peer fitted on the training matrix, recommending to the evaluated users."""
        matrix, rows = self.peer_matrix(weights)
        t0 = time.perf_counter()
        peer.fit(matrix)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids, scores = peer.recommend(rows, matrix[rows], self.k)
        keep = ids >= 0
        users = [np.full(int(n), u, dtype=np.int64) for u, n in enumerate(keep.sum(axis=1))]
        recs = _frame(self.queries, self.catalog, users, [ids[keep]], [scores[keep]])
        return {
            "config": None,
            "metrics": self.measure(recs, peer.name),
            "fit_s": round(fit_s, 3),
            "recommend_s": round(time.perf_counter() - t0, 3),
        }


def _histogram(scores: np.ndarray) -> list[int]:
    counts, _ = np.histogram(scores, bins=SCORE_BINS, range=(0.0, 1.0))
    return counts.astype(int).tolist()


def run_evaluation(
    split: Split,
    config: ModelParams,
    *,
    k: int = 10,
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    query_items: int = DEFAULT_QUERY_ITEMS,
    max_users: int | None = None,
    seed: int = 0,
    engine: str = "local",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every comparison of the issue on one split; the JSON of ``evaluation.json``.

    With ``config.tune_holdout_days``, the nightly tuning step (simrec.evaluation.nightly,
    for ``engine``) runs on the training events as a run on the split date would, and its
    choice is scored as model ``tuned``; ``tuning`` holds its record and, on the test
    split, the tuned minus the configured model (paired bootstrap)."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    ev = Evaluator(split, k, query_items, max_users, seed)
    say(f"{ev.info['users_evaluated']:,} users evaluated")
    models: dict[str, dict[str, Any]] = {}
    keys: dict[str, ModelParams | str] = {}
    skipped: dict[str, str] = {}
    for peer in peers.default_peers(seed):
        if isinstance(peer, peers.SkippedPeer):
            skipped[peer.name] = peer.reason
            continue
        say(f"peer {peer.name}")
        models[peer.name] = {"kind": "peer", **ev.evaluate_peer(peer, config.weights)}
        keys[peer.name] = peer.name
        if peer.name == "popularity":
            say("exact cosine")
            models["cosine"] = {"kind": "peer", **ev.evaluate(config.plain())}
            keys["cosine"] = config.plain()
    say("configured model")
    models["configured"] = {"kind": "configured", **ev.evaluate(config)}
    keys["configured"] = config
    tuning = None
    if config.tune_holdout_days:
        from simrec.evaluation import nightly

        say("nightly tuning on the training days")
        tuned, tuning = nightly.tune(split.train, config, split.reference_day, engine)
        models["tuned"] = {"kind": "tuned", **ev.evaluate(tuned)}
        keys["tuned"] = tuned

    sweep = []
    for t in sorted({float(t) for t in thresholds}):
        say(f"DIMSUM threshold {t:g}")
        r = ev.evaluate(config.replace(threshold=t))
        sweep.append({"threshold": t, **r})
        models[f"dimsum t={t:g}"] = {"kind": "threshold sweep", **r}
        keys[f"dimsum t={t:g}"] = config.replace(threshold=t)

    weightings = [{"name": "configured", "weights": config.weights.as_dict(),
                   **ev.evaluate(config)}]
    for name, w in WEIGHTINGS.items():
        say(f"weighting {name}")
        r = ev.evaluate(config.replace(weights=w))
        weightings.append({"name": name, "weights": w.as_dict(), **r})

    features = []
    plain = config.plain()
    on = {
        "time decay": {"half_life_days": config.half_life_days or 30.0},
        "user weighting": {
            "user_weighting": config.user_weighting if config.user_weighting != "none" else "log",
            "user_alpha": config.user_alpha,
        },
        "shrinkage": {"shrinkage": config.shrinkage or 10.0},
    }
    for name, changes in on.items():
        say(f"feature {name}")
        off = {key: quality.OFF[key] for key in changes}
        features.append({"feature": name, "variant": "cosine + feature",
                         **ev.evaluate(plain.replace(**changes))})
        features.append({"feature": name, "variant": "configured - feature",
                         **ev.evaluate(config.replace(**off))})

    say("bootstrap intervals")
    for name, key in keys.items():
        models[name]["intervals"] = ev.intervals(key)
    best = max((n for n, m in models.items() if m["kind"] == "peer"),
               key=lambda n: models[n]["metrics"]["ndcg"])  # fmt: skip
    comparison = {
        "model": "configured",
        "best_peer": best,
        "by": "ndcg",
        "resamples": metrics.RESAMPLES,
        "level": metrics.LEVEL,
        "seed": seed,
        "differences": ev.compare(config, keys[best]),
    }
    if tuning is not None:
        tuning["test_vs_configured"] = ev.compare(keys["tuned"], config)["ndcg"]

    distribution = {
        "bins": np.linspace(0.0, 1.0, SCORE_BINS + 1).round(4).tolist(),
        "cosine": _histogram(ev.fitted(config.plain()).snapshot.scores),
        "configured": _histogram(ev.fitted(config).snapshot.scores),
    }
    return {
        "k": k,
        "split": split.describe(),
        "protocol": ev.info,
        "config": config.to_json(),
        "models": models,
        "skipped_peers": skipped,
        "comparison": comparison,
        "tuning": tuning,
        "thresholds": sweep,
        "weightings": weightings,
        "features": features,
        "score_distribution": distribution,
        "timings": {"total_s": round(time.perf_counter() - t0, 2)},
    }


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model (name, metrics, emitted pairs): the printed and HTML table."""
    rows = []
    for name, model in result["models"].items():
        pairs = model.get("emitted_pairs")
        rows.append({"model": name, **model["metrics"], "emitted_pairs": pairs})
    return rows


__all__ = [
    "DEFAULT_THRESHOLDS",
    "Evaluator",
    "FittedModel",
    "Queries",
    "action_weights",
    "build_protocol",
    "fit",
    "recommend",
    "run_evaluation",
    "summary_rows",
]
