"""The evaluation protocol: reading events, the temporal split (no leakage), queries,
recommendations through the serving kernel, the whole run on a small generated shop and
on the shared datasets (skipped when absent), and the ``simrec evaluate`` command."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from simrec.cli import main
from simrec.config import Settings
from simrec.core.actions import ActionWeights
from simrec.core.params import ModelParams
from simrec.evaluation import evaluate as ev_mod
from simrec.evaluation.evaluate import Evaluator, fit, run_evaluation
from simrec.evaluation.events import load_events
from simrec.evaluation.peers import PopularityPeer
from simrec.evaluation.split import temporal_split, validation_split
from simrec.generate import generate_events, write_events

END = dt.date(2024, 3, 31)


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory) -> str:
    events = generate_events(40_000, n_users=1500, n_items=300, days=40, end_date=END, seed=5)
    return write_events(events, tmp_path_factory.mktemp("eval") / "events.parquet")


@pytest.fixture(scope="module")
def shop(shop_file) -> pd.DataFrame:
    return load_events(shop_file)[0]


# --- reading and splitting --------------------------------------------------------------------
def test_load_events_from_csv_with_date_and_drops_bad_rows(tmp_path):
    path = tmp_path / "e.csv.gz"
    pd.DataFrame(
        {
            "user_id": ["u1", "u2", None, "u3", "u4"],
            "sku": ["a", "b", "c", "", "d"],
            "action": ["purchase", "BROWSED", "basket", "basket", "clicked"],
            "date": ["2024-01-02", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-03"],
        }
    ).to_csv(path, index=False, compression="gzip")
    events, counts = load_events(str(path))
    assert counts == {"rows": 5, "dropped": 3, "reasons": {
        "empty_sku": 1, "missing_user_id": 1, "unknown_action": 1}}
    assert events["user_id"].tolist() == ["u2", "u1"]  # sorted by day
    assert events["action"].tolist() == ["browsed", "purchase"]
    assert events["day"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-01", "2024-01-02"]


def test_load_events_uses_the_utc_day_of_ts(tmp_path):
    path = tmp_path / "e.parquet"
    ts = pd.to_datetime(["2024-01-01T23:30:00-02:00", "2024-01-01T00:30:00+01:00"], utc=True)
    pd.DataFrame({"user_id": ["u", "v"], "sku": ["a", "b"], "action": ["basket"] * 2,
                  "ts": ts}).to_parquet(path)
    events, _ = load_events(str(path))
    assert events["day"].dt.strftime("%Y-%m-%d").tolist() == ["2023-12-31", "2024-01-02"]


def test_load_events_needs_the_columns(tmp_path):
    path = tmp_path / "e.csv"
    pd.DataFrame({"user": ["u"], "sku": ["a"], "action": ["basket"], "date": ["2024-01-01"]}
                 ).to_csv(path, index=False)
    with pytest.raises(ValueError, match="user_id"):
        load_events(str(path))


def test_split_has_no_leakage(shop):
    split = temporal_split(shop, holdout_days=7, window_days=20)
    assert split.split_date == END - dt.timedelta(days=6)
    assert split.train_start == split.split_date - dt.timedelta(days=20)
    train_days = split.train["day"].dt.date
    test_days = split.test["day"].dt.date
    assert train_days.max() < split.split_date <= test_days.min()
    assert train_days.min() >= split.train_start and test_days.max() <= END
    assert split.reference_day == split.split_date - dt.timedelta(days=1)
    by_date = temporal_split(shop, split_date=split.split_date, window_days=20)
    assert by_date.describe() == split.describe()
    val = validation_split(shop, split, window_days=20)
    assert val.end_date == split.split_date - dt.timedelta(days=1)
    assert val.test["day"].max() < pd.Timestamp(split.split_date)  # test period unseen
    with pytest.raises(ValueError, match="exactly one"):
        temporal_split(shop)
    with pytest.raises(ValueError, match="no training events"):
        temporal_split(shop, split_date=dt.date(2000, 1, 1))


def test_queries_exclusions_and_relevant_items():
    day = pd.Timestamp
    events = pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "u", "v", "v", "u", "u", "w"],
            "sku": ["a", "b", "a", "c", "a", "b", "b", "d", "d"],
            "action": ["browsed", "basket", "purchase", "browsed", "purchase", "purchase",
                       "purchase", "purchase", "basket"],
            "day": [day("2024-01-01"), day("2024-01-02"), day("2024-01-03"), day("2024-01-03"),
                    day("2024-01-01"), day("2024-01-02"), day("2024-01-05"), day("2024-01-05"),
                    day("2024-01-05")],
        }
    )
    split = temporal_split(events, split_date=dt.date(2024, 1, 5))
    vocab = np.array(["a", "b", "c"], dtype=object)
    queries, relevant, info = ev_mod.build_protocol(split, vocab, query_items=2)
    # u: relevant = d only (b re-bought: not new); v has no held-out event; w is cold.
    assert relevant.to_dict("list") == {"user_id": ["u"], "sku": ["d"]}
    assert info["cold_users"] == 1 and info["users_evaluated"] == 1
    assert queries.users.tolist() == ["u"]
    # Last 2 items by day desc, ties by sku: a and c (day 3), not b (day 2).
    assert queries.items[0].tolist() == [0, 2]
    assert queries.weights(ActionWeights())[0].tolist() == [6.5, 0.5]  # a browsed + bought
    assert queries.excluded[0].tolist() == [0, 1, 2]


# --- models and recommendations ---------------------------------------------------------------
def test_fit_is_a_serving_snapshot_over_every_training_item(shop):
    split = temporal_split(shop, holdout_days=7, window_days=30)
    fitted = fit(split.train, ModelParams().plain(), split.reference_day)
    snap = fitted.snapshot
    assert snap.skus == sorted(split.train["sku"].unique())
    assert snap.indptr[-1] == len(snap.indices) > 0
    pop = split.train.groupby("sku")["user_id"].nunique()
    np.testing.assert_array_equal(snap.popularity, pop.reindex(snap.skus).to_numpy())


def test_recommendations_are_the_serving_kernels(shop):
    from simrec.core import scoring

    split = temporal_split(shop, holdout_days=7, window_days=30)
    ev = Evaluator(split, k=5, max_users=50, seed=1)
    config = ModelParams().plain()
    fitted = ev.fitted(config)
    recs, _ = ev_mod.recommend(fitted, ev.queries, config.weights, 5)
    first = ev.queries.users[0]
    q = scoring.Query(ev.queries.items[0], ev.queries.weights(config.weights)[0])
    expected = scoring.score(fitted.snapshot, q, 5, exclude=ev.queries.excluded[0],
                             backend="python")
    got = recs.loc[recs["user_id"] == first]
    assert got["sku"].tolist() == [fitted.snapshot.skus[j] for j, _ in expected]
    assert got["rank"].tolist() == list(range(1, len(expected) + 1))
    assert ev.info["users_evaluated"] == 50 and ev.info["sampled"]
    # No recommendation is an item the user already had.
    hist = split.train[["user_id", "sku"]].drop_duplicates()
    assert recs.merge(hist, on=["user_id", "sku"]).empty


def test_whole_run_on_a_generated_shop(shop):
    split = temporal_split(shop, holdout_days=7, window_days=30)
    config = Settings().model
    result = run_evaluation(split, config, k=10, thresholds=(0.0, 0.1, 0.5), max_users=400)
    models = result["models"]
    assert {"popularity", "cosine", "configured", "dimsum t=0", "dimsum t=0.5"} <= set(models)
    for m in models.values():
        assert 0 <= m["metrics"]["ndcg"] <= 1 and 0 <= m["metrics"]["coverage"] <= 1
    assert [s["threshold"] for s in result["thresholds"]] == [0.0, 0.1, 0.5]
    pairs = [s["emitted_pairs"] for s in result["thresholds"]]
    assert pairs == sorted(pairs, reverse=True)  # a higher threshold never emits more
    assert len(result["weightings"]) == 1 + len(ev_mod.WEIGHTINGS)
    assert {f["feature"] for f in result["features"]} == {"time decay", "user weighting",
                                                          "shrinkage"}
    assert sum(result["score_distribution"]["configured"]) > 0
    json.dumps(result)  # serialisable as evaluation.json
    # The generated shop has co-purchase structure: item-to-item beats popularity.
    assert models["cosine"]["metrics"]["ndcg"] > models["popularity"]["metrics"]["ndcg"]


def test_evaluate_command_writes_json_report_and_table(shop_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["evaluate", "--events", shop_file, "--holdout-days", "7", "--k", "5",
                 "--thresholds", "0,0.2", "--max-users", "200", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["k"] == 5 and result["protocol"]["users_evaluated"] == 200
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    printed = capsys.readouterr().out
    assert "popularity" in printed and "configured" in printed
    assert main(["evaluate", "--events", str(tmp_path / "missing.csv"), "--out", str(out)]) == 1


# --- the shared datasets: the defaults beat popularity and plain cosine -------------------------
#: Protocol of docs/evaluation.md per dataset: held-out days and training window.
DATASETS = {
    "online_retail_uci.csv.gz": {"holdout_days": 30, "window_days": 365},
    "movielens_latest_small.csv.gz": {"holdout_days": 365, "window_days": None},
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_defaults_beat_popularity_and_cosine(shared_data, name):
    path = shared_data / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    events, _ = load_events(str(path))
    ev = Evaluator(temporal_split(events, **DATASETS[name]), k=10)
    config = Settings().model
    ndcg = ev.evaluate(config)["metrics"]["ndcg"]
    assert ndcg > ev.evaluate(config.plain())["metrics"]["ndcg"]
    assert ndcg > ev.evaluate_peer(PopularityPeer(), config.weights)["metrics"]["ndcg"]
