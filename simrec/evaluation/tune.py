"""Search for the best configuration with optuna, without looking at the test period.

Trials are scored by NDCG@k on the *validation* split (the held-out period moved one
period earlier, :func:`simrec.evaluation.split.validation_split`); the best trial's
configuration, and the configured one for comparison, are then scored once on the test
split. The search: browsed and basket weights (purchase fixed: cosine and the ranking are
invariant to scaling all weights), DIMSUM threshold, half-life, user weighting and its
exponent, shrinkage and ``max_items_per_user``. TPE sampler, seeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from simrec.core.actions import ActionWeights
from simrec.core.params import ModelParams
from simrec.evaluation.evaluate import DEFAULT_QUERY_ITEMS, Evaluator
from simrec.evaluation.peers import PopularityPeer
from simrec.evaluation.split import Split, validation_split


def suggest(trial: Any, base: ModelParams) -> ModelParams:
    """One point of the search space (``trial``: an ``optuna.Trial``)."""
    purchase = base.weights.purchase or 1.0
    decay = trial.suggest_categorical("time_decay", [False, True])
    weighting = trial.suggest_categorical("user_weighting", ["none", "log", "power"])
    return base.replace(
        weights=ActionWeights(
            browsed=trial.suggest_float("weight_browsed", 0.0, purchase),
            basket=trial.suggest_float("weight_basket", 0.0, purchase),
            purchase=purchase,
        ),
        threshold=trial.suggest_categorical("threshold", [0.0, 0.05, 0.1, 0.2, 0.5]),
        half_life_days=(
            trial.suggest_float("half_life_days", 3.0, 365.0, log=True) if decay else 0.0
        ),
        user_weighting=weighting,
        user_alpha=trial.suggest_float("user_alpha", 0.1, 1.2) if weighting == "power" else 0.5,
        shrinkage=trial.suggest_float("shrinkage", 0.0, 100.0),
        max_items_per_user=trial.suggest_int("max_items_per_user", 20, 2000, log=True),
    )


def tune(
    events: pd.DataFrame,
    test: Split,
    base: ModelParams,
    *,
    window_days: int | None = None,
    trials: int = 30,
    timeout_s: float | None = None,
    k: int = 10,
    seed: int = 0,
    max_users: int | None = None,
    query_items: int = DEFAULT_QUERY_ITEMS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the search; returns the best configuration and its validation/test metrics."""
    import optuna

    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    val = validation_split(events, test, window_days)
    val_ev = Evaluator(val, k, query_items, max_users, seed)
    say(f"validation split {val.split_date} to {val.end_date}: "
        f"{val_ev.info['users_evaluated']:,} users")

    def objective(trial: Any) -> float:
        config = suggest(trial, base)
        trial.set_user_attr("config", config.to_json())
        value = val_ev.evaluate(config)["metrics"]["ndcg"]
        say(f"trial {trial.number}: ndcg@{k} {value:.4f}")
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
    )
    study.enqueue_trial(_params_of(base))  # the configured model is always trial 0
    study.optimize(objective, n_trials=trials, timeout=timeout_s)
    best = ModelParams.from_json(study.best_trial.user_attrs["config"])

    test_ev = Evaluator(test, k, query_items, max_users, seed)
    held_out = {
        "best": test_ev.evaluate(best)["metrics"],
        "configured": test_ev.evaluate(base)["metrics"],
        "cosine": test_ev.evaluate(base.plain())["metrics"],
        "popularity": test_ev.evaluate_peer(PopularityPeer(), base.weights)["metrics"],
    }
    return {
        "k": k,
        "trials": len(study.trials),
        "seed": seed,
        "validation": {**val.describe(), **val_ev.info},
        "test": {**test.describe(), **test_ev.info},
        "best_config": best.to_json(),
        "best_validation_ndcg": study.best_value,
        "configured_validation_ndcg": study.trials[0].value,
        "held_out": held_out,
        "history": [
            {"number": t.number, "ndcg": t.value, "params": t.params}
            for t in study.trials
            if t.value is not None
        ],
        "timings": {"total_s": round(time.perf_counter() - t0, 2)},
    }


def _params_of(config: ModelParams) -> dict[str, Any]:
    """The trial parameters that reproduce ``config`` (so it is evaluated as trial 0)."""
    params: dict[str, Any] = {
        "time_decay": config.half_life_days > 0,
        "user_weighting": config.user_weighting,
        "weight_browsed": min(config.weights.browsed, config.weights.purchase or 1.0),
        "weight_basket": min(config.weights.basket, config.weights.purchase or 1.0),
        "threshold": config.threshold
        if config.threshold in (0.0, 0.05, 0.1, 0.2, 0.5)
        else 0.1,
        "shrinkage": min(config.shrinkage, 100.0),
        "max_items_per_user": min(max(config.max_items_per_user, 20), 2000),
    }
    if config.half_life_days > 0:
        params["half_life_days"] = min(max(config.half_life_days, 3.0), 365.0)
    if config.user_weighting == "power":
        params["user_alpha"] = min(max(config.user_alpha, 0.1), 1.2)
    return params
