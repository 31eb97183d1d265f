"""The model's parameters: every one declared once, with its product default and bounds.

``ModelParams`` is what decides a model from a window of events (the matrix rule, the
sampling and the quality features). Settings (``SIMREC_*``), the nightly request, the CLI
flags, the run id hash, the Spark job and the evaluation all derive from it, so a default
or a bound changes here and nowhere else (as SAR declares every parameter once).

Defaults are the product's, chosen by offline evaluation (docs/evaluation.md):
down-weighting of very active users and shrinkage beat plain cosine on both shared
datasets; time decay did not (off). Capping cells at their median (``cell_cap_percentile``)
raised NDCG@10 on Online Retail and the generated M shop; the DIMSUM threshold is the
highest that kept NDCG@10 within 2% of exact on both shared datasets and M
(docs/scaling.md). :meth:`ModelParams.plain` is exact cosine without
the quality features, the baseline every evaluation compares against.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from simrec.core import quality
from simrec.core.actions import ACTIONS, ActionWeights


@dataclass(frozen=True)
class Bounds:
    """A numeric parameter's documented range (``None``: unbounded on that side)."""

    ge: float | None = None
    le: float | None = None
    description: str = ""
    #: Exclusive lower bound (a value must be above it), for a parameter 0 breaks.
    gt: float | None = None


#: Range and meaning of each numeric parameter; Settings builds its fields from these.
BOUNDS: dict[str, Bounds] = {
    "threshold": Bounds(0, 1, "DIMSUM similarity threshold; 0 computes exact cosine."),
    "top_k": Bounds(1, 1000, "Neighbors kept per item."),
    "seed": Bounds(0, None, "Seed of DIMSUM sampling."),
    "max_items_per_user": Bounds(1, None, "Heavy users keep only their highest-valued items."),
    "min_items_per_user": Bounds(1, None, "Users with fewer distinct items are left out."),
    "half_life_days": Bounds(
        0, 3650, "Time decay: an event's weight halves every this many days before the run; "
        "0 = off."
    ),
    "user_alpha": Bounds(0, 2, "Exponent of user_weighting='power'."),
    "shrinkage": Bounds(
        0, None, "Similarity shrinkage sim*n/(n+shrinkage), n = users behind the pair; 0 = off."
    ),
    "cell_cap_percentile": Bounds(
        0, 100, "Cell values (summed action weights) are capped at this percentile of the "
        "matrix's cells and divided by it, so one heavy repeat count does not dominate its "
        "item; 0 = off (raw sums)."
    ),
    # Levers measured by bench/quality_levers.py (docs/evaluation.md); all off by default.
    "asymmetric_alpha": Bounds(
        0, 1, "Asymmetric cosine: sim(i, j) = dot / (n_i^a n_j^(1-a)), n = the item's squared "
        "norm; 0.5 = cosine (off)."
    ),
    "bm25_b": Bounds(
        0, 1, "BM25-style user weighting: cell x -> x (k1+1) / (k1 (1-b+b n/avg n) + x), "
        "n = the user's items; 0 = off."
    ),
    "bm25_k1": Bounds(0, None, "k1 of bm25_b's saturation (implicit's default 1.2)."),
    "popularity_discount": Bounds(
        0, 2, "Neighbor popularity discount: sim(i, j) / users(j)^d (as Personalize SIMS); "
        "0 = off."
    ),
    "popularity_fill": Bounds(
        0, 1, "1 = top-k slots item-item evidence leaves empty are filled with the most "
        "popular unseen items; 0 = off (popular items only when there is no evidence)."
    ),
    # The trending rule (simrec.core.trending), computed in the same nightly run.
    "trending_recent_days": Bounds(
        1, 3650, "Trending: days at the end of the run's window that count as recent."
    ),
    "trending_min_support": Bounds(
        0, None, "Trending: least (weighted) recent events for an item to trend."
    ),
    "trending_smoothing": Bounds(
        None, None, "Trending: added to both daily rates (weighted events a day), so an "
        "item new in the recent days has a finite growth.", gt=0,
    ),
    "tune_holdout_days": Bounds(
        0, 60, "Per-shop tuning (simrec.evaluation.nightly): the run holds out its window's "
        "last N days, picks the best of a small grid of quality settings on them by "
        "NDCG@10, then trains on the whole window with it; 0 = off."
    ),
}
#: The trending parameters, named ``trending_<name>`` among the model's.
TRENDING: tuple[str, ...] = tuple(n for n in BOUNDS if n.startswith("trending_"))
#: Frequently bought together (issue 16.1): the grouping key that makes a basket. A
#: basket is one user's events with the same key value: ``order`` (the export's
#: ``order_id``: plain ``order_id`` column, GA4 ``transaction_id``), ``session`` (the
#: export's ``session_id``: plain ``session_id`` column, GA4 ``ga_session_id``) or ``day``
#: (the UTC day of the event). An event without a value for the key falls back to its day.
BASKET_KEYS: tuple[str, ...] = ("order", "session", "day")
#: Which events a basket holds: ``strict`` only purchases (co-purchases); ``relaxed``
#: every action whose default weight is at least the basket's (add to cart, wishlist,
#: checkout and purchase: co-baskets), browsing left out as no intent to buy.
BASKET_ACTIONS: dict[str, tuple[str, ...]] = {
    "strict": ("purchase",),
    "relaxed": tuple(a for a in ACTIONS if getattr(ActionWeights(), a) >= ActionWeights().basket),
}
BASKET_KEY_DESCRIPTION = (
    "Bought together: what makes one basket: 'order' (order_id / GA4 transaction_id), "
    "'session' (session_id / GA4 ga_session_id) or 'day' (user and UTC day); events "
    "without the key fall back to their day."
)
#: The bought-together parameters (``basket_<name>``) among the model's.
BASKET_PARAMS: tuple[str, ...] = ("basket_key", "basket_actions")
BASKET_ACTIONS_DESCRIPTION = (
    "Bought together: 'strict' = purchases only (co-purchases); 'relaxed' = basket and "
    "purchase events (co-baskets)."
)
USER_WEIGHTING_DESCRIPTION = (
    "Down-weight very active users: row scaled by 1/log2(1+n) ('log') or n**-user_alpha "
    "('power'), n = the user's items; 'none' = off."
)


@dataclass(frozen=True)
class ModelParams:
    """Everything that decides a model from a window of events. Validated on creation."""

    weights: ActionWeights = field(default_factory=ActionWeights)
    threshold: float = 0.1
    top_k: int = 100
    seed: int = 42
    max_items_per_user: int = 500
    min_items_per_user: int = 2
    half_life_days: float = 0.0
    user_weighting: str = "power"
    user_alpha: float = 0.7
    shrinkage: float = 20.0
    cell_cap_percentile: float = 50.0
    asymmetric_alpha: float = 0.5
    bm25_b: float = 0.0
    bm25_k1: float = 1.2
    popularity_discount: float = 0.0
    popularity_fill: int = 0
    trending_recent_days: int = 7
    trending_min_support: float = 5.0
    trending_smoothing: float = 1.0
    tune_holdout_days: int = 0
    basket_key: str = "order"
    basket_actions: str = "strict"

    def __post_init__(self) -> None:
        for name, bounds in BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or (
                (bounds.ge is not None and value < bounds.ge)
                or (bounds.le is not None and value > bounds.le)
                or (bounds.gt is not None and value <= bounds.gt)
            ):
                raise ValueError(f"{name} must be in {_range(bounds)}, got {value!r}")
            whole = self.__dataclass_fields__[name].type == "int"
            if whole and value != int(value):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if self.max_items_per_user < self.min_items_per_user:
            raise ValueError(
                f"max_items_per_user ({self.max_items_per_user}) must be >= "
                f"min_items_per_user ({self.min_items_per_user})"
            )
        if self.basket_key not in BASKET_KEYS:
            raise ValueError(f"basket_key must be one of {', '.join(BASKET_KEYS)}, "
                             f"got {self.basket_key!r}")  # fmt: skip
        if self.basket_actions not in BASKET_ACTIONS:
            raise ValueError(f"basket_actions must be one of {', '.join(BASKET_ACTIONS)}, "
                             f"got {self.basket_actions!r}")  # fmt: skip
        quality.validate(self.half_life_days, self.user_weighting, self.user_alpha, self.shrinkage)

    def replace(self, **changes: Any) -> ModelParams:
        return dataclasses.replace(self, **changes)

    def plain(self) -> ModelParams:
        """Exact cosine without the quality features (same weights and user limits)."""
        return self.replace(threshold=0.0, **quality.OFF)

    def basket(self) -> ModelParams:
        """The bought-together model's parameters: the same matrix rule over baskets
        (rows = baskets instead of users), with the weight of every action
        ``basket_actions`` leaves out set to 0, so its events make no cell."""
        kept = BASKET_ACTIONS[self.basket_actions]
        weights = {a: (w if a in kept else 0.0) for a, w in self.weights.as_dict().items()}
        return self.replace(weights=ActionWeights.from_dict(weights))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["weights"] = self.weights.as_dict()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelParams:
        """From :meth:`to_json`'s shape; unknown keys fail.

        A missing quality feature is off (manifests written before it existed; the run id
        hash leaves out features that are off, see RunParams), any other missing key takes
        its default.
        """
        data = {**quality.OFF, **data}
        unknown = set(data) - set(NAMES)
        if unknown:
            raise ValueError(f"unknown model parameter(s): {', '.join(sorted(unknown))}")
        if "weights" in data:
            data["weights"] = ActionWeights.from_dict(data["weights"])
        return cls(**data)


#: Levers only the single-machine engine implements so far (issue 15.3): the Spark job
#: should refuse a run that sets one away from its off value (``local_engine_only``).
#: (``bm25_b``: both engines, the matrix rule's step after the cap.)
LOCAL_ENGINE_ONLY: tuple[str, ...] = (
    "asymmetric_alpha", "popularity_discount", "popularity_fill",
)


def local_engine_only(params: ModelParams) -> list[str]:
    """The :data:`LOCAL_ENGINE_ONLY` levers ``params`` switches on (``bm25_k1`` only
    matters with ``bm25_b``)."""
    return [n for n in LOCAL_ENGINE_ONLY if getattr(params, n) != quality.OFF[n]]


#: Every parameter's name, in declaration order.
NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ModelParams))
#: The product defaults.
DEFAULTS = ModelParams()
#: Parameters added after run ids were first hashed, at the value runs made before them
#: had: a run with these values keeps the id it had then (RunParams.params_hash).
HASH_NEUTRAL: dict[str, object] = {
    **quality.OFF, **{n: getattr(DEFAULTS, n) for n in (*TRENDING, *BASKET_PARAMS)},
}


def _range(bounds: Bounds) -> str:
    if bounds.gt is not None:
        lo = f"({bounds.gt:g}"
    else:
        lo = "[-inf" if bounds.ge is None else f"[{bounds.ge:g}"
    hi = "inf" if bounds.le is None else f"{bounds.le:g}"
    return f"{lo}, {hi}]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One optional ``--<name>`` flag per parameter (unset flags leave the value as is)."""
    for f in dataclasses.fields(ModelParams):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "weights":
            parser.add_argument(flag, type=json.loads, help='action weights, e.g. {"purchase": 6}')
        elif f.name == "user_weighting":
            parser.add_argument(flag, choices=list(quality.USER_WEIGHTINGS),
                                help=USER_WEIGHTING_DESCRIPTION)
        elif f.name == "basket_key":
            parser.add_argument(flag, choices=list(BASKET_KEYS), help=BASKET_KEY_DESCRIPTION)
        elif f.name == "basket_actions":
            parser.add_argument(flag, choices=list(BASKET_ACTIONS),
                                help=BASKET_ACTIONS_DESCRIPTION)
        else:
            kind = type(getattr(DEFAULTS, f.name))
            parser.add_argument(flag, type=kind, help=BOUNDS[f.name].description)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters :func:`add_arguments`'s flags set."""
    return {n: getattr(args, n) for n in NAMES if getattr(args, n, None) is not None}
