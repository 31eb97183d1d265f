"""The nightly tuning step (simrec.evaluation.nightly): the grid's rules, the winner on a
shop built so that one setting is clearly better, determinism for a seed, the skip rule,
and the record's place in the evaluation's JSON and report."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from simrec.core.actions import ActionWeights
from simrec.core.params import LOCAL_ENGINE_ONLY, ModelParams
from simrec.core.runs import RunParams
from simrec.evaluation import nightly
from simrec.evaluation.evaluate import run_evaluation
from simrec.evaluation.report import TABLES, render
from simrec.evaluation.split import temporal_split
from simrec.generate import generate_events

END = dt.date(2024, 3, 29)
#: Exact plain cosine without user limits: only the grid's change moves the ranking.
BASE = ModelParams(
    weights=ActionWeights(1.0, 1.0, 1.0), threshold=0.0, min_items_per_user=1,
    user_weighting="none", shrinkage=0.0, cell_cap_percentile=0.0, tune_holdout_days=3,
)  # fmt: skip


def _day(n: int) -> pd.Timestamp:
    return pd.Timestamp(END - dt.timedelta(days=29 - n))


def support_shop(pairs: int = 20) -> pd.DataFrame:
    """Per pair i: 30 shoppers of ``a_i``; 10 of them and 200 others buy ``b_i``; five
    rare items ``c_i_j`` are each bought by two ``a_i`` shoppers only. Cosine ranks the
    rare items above ``b_i`` (2/sqrt(60) = 0.26 vs 10/sqrt(6300) = 0.13), shrinkage ranks
    ``b_i`` first (its 10 shared users against 2). Three ``a_i`` shoppers buy ``b_i`` in
    the held-out last days: the shop where shrinkage is clearly better."""
    rows = []
    for i in range(pairs):
        a, b = f"a{i}", f"b{i}"
        base = [f"u{i}-{n}" for n in range(27)]
        rows += [(u, a, "purchase", _day(5)) for u in base]
        rows += [(u, b, "purchase", _day(6)) for u in base[:10]]
        rows += [(f"o{i}-{n}", b, "purchase", _day(8)) for n in range(200)]
        for j in range(5):
            rows += [(u, f"c{i}-{j}", "purchase", _day(7)) for u in base[10 + 2 * j : 12 + 2 * j]]
        for n in range(3):
            rows += [(f"e{i}-{n}", a, "purchase", _day(10)), (f"e{i}-{n}", b, "purchase", _day(28))]
    events = pd.DataFrame(rows, columns=["user_id", "sku", "action", "day"])
    events["day"] = events["day"].astype("datetime64[s]")
    return events


def test_candidates_follow_the_engine_and_the_configured_weighting():
    local = nightly.candidates(BASE, "local")
    assert local[0] == ({}, BASE)  # the configured model first
    changed = [next(iter(c)) for c, _ in local[1:]]
    assert "user_alpha" not in changed  # weighting "none": user_alpha changes nothing
    assert "cell_cap_percentile" in changed and {"cell_cap_percentile": 0.0} not in [
        c for c, _ in local
    ]  # already 0: not a candidate
    spark = [next(iter(c)) for c, _ in nightly.candidates(BASE, "spark")[1:]]
    assert spark and not set(spark) & set(LOCAL_ENGINE_ONLY)
    assert set(LOCAL_ENGINE_ONLY) & set(changed)
    power = nightly.candidates(BASE.replace(user_weighting="power"), "spark")
    assert {"user_alpha": 0.9} in [c for c, _ in power]
    with pytest.raises(ValueError, match="engine"):
        nightly.candidates(BASE, "beam")


def test_the_grid_winner_on_a_shop_where_shrinkage_is_clearly_better():
    chosen, record = nightly.tune(support_shop(), BASE, END, "local")
    assert record["status"] == nightly.TUNED
    assert set(record["chosen"]["changes"]) == {"shrinkage"}
    assert chosen.shrinkage == record["chosen"]["changes"]["shrinkage"] > 0
    assert ModelParams.from_json(record["chosen"]["params"]) == chosen
    v = record["validation"]
    assert v["configured"]["ndcg"] < 0.5 < 0.99 < v["metrics"]["ndcg"]  # rank 6 -> rank 1
    assert v["vs_configured"]["low"] > 0  # the paired interval is above zero
    assert v["intervals"]["ndcg"][0] <= v["metrics"]["ndcg"] <= v["intervals"]["ndcg"][1]
    assert record["split"]["split_date"] == (END - dt.timedelta(days=2)).isoformat()
    assert record["protocol"]["users_evaluated"] == 60


def test_tuning_is_deterministic_for_a_seed():
    events = generate_events(20_000, days=20, end_date=END, seed=5)
    events = events.assign(day=pd.to_datetime(events["ts"], utc=True).dt.tz_localize(None)
                           .dt.floor("D").astype("datetime64[s]"))  # fmt: skip
    model = ModelParams(tune_holdout_days=4, seed=7)
    first = nightly.tune(events, model, END, "spark", max_users=60)
    again = nightly.tune(events, model, END, "spark", max_users=60)
    strip = [{k: v for k, v in r.items() if k != "timings_s"} for _, r in (first, again)]
    assert first[0] == again[0] and strip[0] == strip[1]
    assert first[1]["status"] == nightly.TUNED and first[1]["seed"] == 7
    assert first[1]["protocol"]["sampled"] and first[1]["protocol"]["users_evaluated"] == 60
    other = nightly.tune(events, model.replace(seed=8), END, "spark", max_users=60)[1]
    assert other["protocol"]["users_evaluated"] == 60 and other["seed"] == 8


def test_window_events_gives_the_utc_day_of_each_event():
    def days(ts: pd.Series) -> list[str]:
        frame = nightly.window_events(pd.DataFrame(
            {"user_id": ["u", "v"], "sku": ["a", "b"], "action": ["purchase"] * 2, "ts": ts}
        ))  # fmt: skip
        assert list(frame.columns) == ["user_id", "sku", "action", "day"]
        return frame["day"].dt.strftime("%Y-%m-%d").tolist()

    # As exported (aware) and as Spark's toPandas gives it (naive, the session's UTC).
    aware = pd.to_datetime(["2024-03-01T23:30:00-01:00", "2024-03-02T00:10:00Z"], utc=True)
    assert days(pd.Series(aware)) == ["2024-03-02", "2024-03-02"]
    naive = pd.to_datetime(["2024-03-01T23:59:00", "2024-03-02T00:10:00"])
    assert days(pd.Series(naive)) == ["2024-03-01", "2024-03-02"]


def test_too_little_evidence_skips_and_keeps_the_configured_model():
    shop = support_shop(pairs=2)  # 6 held-out shoppers < MIN_USERS
    chosen, record = nightly.tune(shop, BASE, END, "local")
    assert chosen == BASE and record["status"] == nightly.SKIPPED
    assert f"< {nightly.MIN_USERS}" in record["reason"] and record["candidates"] == []
    empty = shop.loc[shop["day"] < pd.Timestamp(END - dt.timedelta(days=5))]
    chosen, record = nightly.tune(empty, BASE, END, "local")
    assert chosen == BASE and record["status"] == nightly.SKIPPED
    assert record["reason"].startswith("no validation split")
    assert set(record) == set(nightly.RECORD_KEYS)
    assert "configured parameters" in nightly.describe(record)
    with pytest.raises(ValueError, match="off"):
        nightly.tune(shop, BASE.replace(tune_holdout_days=0), END, "local")


def test_the_tuning_setting_changes_the_run_id_and_off_keeps_old_ids():
    night = dt.date(2024, 3, 30)
    off = RunParams("default", night, model=ModelParams())
    on = RunParams("default", night, model=ModelParams(tune_holdout_days=3))
    assert off.run_id != on.run_id
    # A manifest written before the setting existed reads as tuning off, with its old id.
    legacy = {k: v for k, v in off.to_json().items() if k != "tune_holdout_days"}
    assert RunParams.from_json(legacy).run_id == off.run_id


def test_evaluation_scores_the_tuned_model_and_reports_the_choice():
    shop = support_shop()
    # Test: day 28; the tuning holds out days 26-27 of the training days, which are empty.
    split = temporal_split(shop, holdout_days=1)
    result = run_evaluation(split, BASE.replace(tune_holdout_days=2), thresholds=(0.0,))
    record = result["tuning"]
    assert set(nightly.RECORD_KEYS) <= set(record)
    assert result["models"]["tuned"]["kind"] == "tuned"
    assert set(record["test_vs_configured"]) == {"difference", "low", "high"}
    html = render(result)
    assert 'id="table-tuning"' in html and "table-tuning" in TABLES
    assert record["status"] == nightly.SKIPPED and record["reason"] in html
    off = run_evaluation(split, BASE.replace(tune_holdout_days=0), thresholds=(0.0,))
    assert off["tuning"] is None and "tuned" not in off["models"]
    assert 'id="table-tuning"' in render(off)
    # A record that chose: its candidates, the chosen row, its interval and the test figure.
    _, tuned = nightly.tune(shop, BASE, END, "local")
    tuned["test_vs_configured"] = {"difference": 0.25, "low": 0.125, "high": 0.375}
    html = render({**off, "tuning": tuned})
    # One row per candidate instead of the one "off" row.
    assert html.count("<tr") - render(off).count("<tr") == len(tuned["candidates"]) - 1
    assert '<tr class="best"><td>shrinkage=5</td>' in html
    assert "Chosen: validation NDCG@10" in html and "+0.2500 [0.1250, 0.3750] (above 0)" in html
