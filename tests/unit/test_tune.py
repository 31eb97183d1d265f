"""``simrec tune``: a seeded optuna search on the validation split, scored on the test split."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from simrec.cli import main
from simrec.config import Settings
from simrec.core.params import ModelParams
from simrec.evaluation.split import temporal_split
from simrec.evaluation.tune import _params_of, tune
from simrec.generate import generate_events, write_events

optuna = pytest.importorskip("optuna", reason="optuna is not installed")


@pytest.fixture(scope="module")
def events():
    ev = generate_events(30_000, n_users=1200, n_items=200, days=28,
                         end_date=dt.date(2024, 3, 31), seed=21)
    return ev.assign(day=ev["ts"].dt.tz_localize(None).astype("datetime64[s]"))


def test_tune_is_seeded_and_never_worse_than_the_configured_model_on_validation(events):
    split = temporal_split(events, holdout_days=7)
    base = Settings().model
    first = tune(events, split, base, trials=4, seed=3, max_users=300)
    again = tune(events, split, base, trials=4, seed=3, max_users=300)
    assert first["best_config"] == again["best_config"]
    assert first["trials"] == 4
    assert first["history"][0]["ndcg"] == first["configured_validation_ndcg"]  # trial 0
    assert first["best_validation_ndcg"] >= first["configured_validation_ndcg"]
    assert first["validation"]["end_date"] < first["test"]["split_date"]  # no peeking
    assert set(first["held_out"]) == {"best", "configured", "cosine", "popularity"}
    assert ModelParams.from_json(first["best_config"])  # a valid configuration


def test_configured_model_is_reproducible_as_trial_zero():
    base = Settings().model
    params = _params_of(base)
    assert params["user_weighting"] == base.user_weighting
    assert params["shrinkage"] == base.shrinkage


def test_tune_command(events, tmp_path, capsys):
    path = write_events(events.drop(columns="day"), tmp_path / "events.parquet")
    code = main(["tune", "--events", path, "--holdout-days", "7", "--trials", "2",
                 "--max-users", "200", "--out", str(tmp_path / "out")])
    assert code == 0
    result = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert result["trials"] == 2
    printed = capsys.readouterr().out
    assert "best of 2 trials" in printed and "held-out" in printed
