"""The trending rule (``simrec.core.trending``) on hand-computed numbers, and the model
builder's use of it (the items output's recent/prior weights -> the snapshot's list)."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest

from simrec.config import Settings
from simrec.core import model_builder, trending
from simrec.core.params import DEFAULTS, ModelParams
from simrec.core.runs import RunParams
from simrec.core.snapshot import ModelSnapshot

#        A      B      C      D      G       H
RECENT = [4.0, 2.0, 6.0, 1.0, 10.0, 4.0]
PRIOR = [4.0, 0.0, 16.0, 0.0, 12.0, 4.0]
# recent_days 2, prior_days 4, smoothing 1: growth = (r/2 + 1) / (p/4 + 1)
#   A (2+1)/(1+1) = 1.5   B (1+1)/(0+1) = 2   C (3+1)/(4+1) = 0.8
#   D (0.5+1)/1 = 1.5 but recent 1 < min_support 2   G (5+1)/(3+1) = 1.5   H = A
HAND = DEFAULTS.replace(trending_recent_days=2, trending_min_support=2.0, trending_smoothing=1.0)


def test_growth_and_ranking_on_hand_computed_numbers() -> None:
    np.testing.assert_allclose(
        trending.growth(RECENT, PRIOR, 2, 4, 1.0), [1.5, 2.0, 0.8, 1.5, 1.5, 1.5], rtol=1e-15
    )
    items, scores = trending.ranking(RECENT, PRIOR, 2, 4, HAND)
    # B first; G, A, H tie at 1.5: more recent weight first (G), then sku order (A, H);
    # D is left out (support), C last.
    assert items.tolist() == [1, 4, 0, 5, 2]
    assert scores.tolist() == [2.0, 1.5, 1.5, 1.5, 0.8]
    assert items.dtype == np.int32


def test_no_prior_days_and_min_support_zero() -> None:
    # A window no longer than the recent days has no prior rate: growth = (r/d + s) / s.
    np.testing.assert_allclose(trending.growth([3.0, 0.0], [5.0, 0.0], 3, 0, 0.5), [3.0, 1.0])
    no_support = DEFAULTS.replace(trending_min_support=0)
    items, _ = trending.ranking([0.0, 0.0], [1.0, 0.0], 1, 1, no_support)
    assert items.tolist() == [1, 0]  # growth 1 beats 0.5; zero support admitted


def test_split_day_and_window_split() -> None:
    assert trending.split_day(dt.date(2024, 3, 10), 3) == dt.date(2024, 3, 8)
    assert trending.split_day(dt.date(2024, 3, 10), 1) == dt.date(2024, 3, 10)
    assert trending.window_split(30, 7) == (7, 23)
    assert trending.window_split(5, 7) == (5, 0)


def test_window_sums_split_weights_at_the_first_recent_day() -> None:
    days = np.array(["2024-03-07", "2024-03-08", "2024-03-10", "2024-03-01", "2024-03-09"],
                    dtype="datetime64[D]")  # fmt: skip
    skus, recent, prior = trending.window_sums(
        ["b", "a", "b", "a", "c"], np.array([1.0, 3.0, 6.0, 0.5, 0.0]), days,
        dt.date(2024, 3, 8),
    )  # fmt: skip
    assert skus.tolist() == ["a", "b", "c"]
    assert recent.tolist() == [3.0, 6.0, 0.0]
    assert prior.tolist() == [0.5, 1.0, 0.0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"trending_recent_days": 0}, "trending_recent_days"),
     ({"trending_recent_days": 1.5}, "trending_recent_days"),
     ({"trending_min_support": -1}, "trending_min_support"),
     ({"trending_smoothing": 0}, "trending_smoothing"),
     ({"trending_smoothing": float("nan")}, "trending_smoothing")],
)  # fmt: skip
def test_params_are_validated(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelParams(**changes)
    with pytest.raises(ValueError, match=message):  # the settings' own bounds say the same
        Settings(**changes)


def test_trending_params_are_settings_and_change_the_run_id_only_when_set() -> None:
    """Declared once (ModelParams): read from SIMREC_TRENDING_*, carried in the run's
    JSON; at their defaults a run keeps the id it had before they were parameters."""
    settings = Settings(trending_recent_days=3, trending_min_support=1.5)
    assert (settings.model.trending_recent_days, settings.model.trending_min_support) == (3, 1.5)
    run = RunParams("t", dt.date(2024, 3, 10), model=settings.model)
    assert RunParams.from_json(run.to_json()) == run
    default = RunParams("t", dt.date(2024, 3, 10))
    assert run.run_id != default.run_id
    old = {k: v for k, v in default.to_json().items() if not k.startswith("trending_")}
    assert RunParams.from_json(old) == default  # a manifest written before: the defaults
    assert default.run_id == "2024-03-10-f6a078f6"  # its id before trending was a parameter


def test_model_builder_ranks_the_items_output_over_the_runs_window() -> None:
    # window_days 10 -> recent 7 days, prior 3 (default recent_days 7); min support 5.
    items = [
        {"sku": "x", "users": 3, "weight": 17.0, "recent_weight": 14.0, "prior_weight": 3.0},
        {"sku": "y", "users": 2, "weight": 7.0, "recent_weight": 7.0, "prior_weight": 0.0},
        {"sku": "z", "users": 1, "weight": 3.0, "recent_weight": 3.0, "prior_weight": 0.0},
    ]
    rows = [{"sku": "x", "items": ["y"], "scores": [0.5], "users": [1.0]}]
    snap = model_builder.build_snapshot(rows, items, {"params": {"window_days": 10}})
    # y: (7/7 + 1) / (0 + 1) = 2;  x: (14/7 + 1) / (3/3 + 1) = 1.5;  z: support 3 < 5
    assert [snap.skus[i] for i in snap.trending] == ["y", "x"]
    assert snap.trending_scores.tolist() == [2.0, 1.5]
    again = ModelSnapshot.from_files(snap.to_files())
    assert again.trending.tolist() == snap.trending.tolist()
    assert model_builder.same_content(snap, again)
    # Without the window in the metadata, RunParams' default (30 days: 7 recent, 23 prior).
    default = model_builder.build_snapshot(rows, items, {})
    assert default.trending_scores[0] == pytest.approx((14 / 7 + 1) / (3 / 23 + 1))
    # The run's own trending parameters: recent 5 days, prior 5; support 3; smoothing 2.
    run = {"window_days": 10, "trending_recent_days": 5, "trending_min_support": 3.0,
           "trending_smoothing": 2.0}  # fmt: skip
    tuned = model_builder.build_snapshot(rows, items, {"params": run})
    # y: (7/5 + 2) / 2 = 1.7;  x: (14/5 + 2) / (3/5 + 2) = 4.8 / 2.6;  z: (3/5 + 2) / 2 = 1.3
    assert [tuned.skus[i] for i in tuned.trending] == ["x", "y", "z"]
    np.testing.assert_allclose(tuned.trending_scores, [4.8 / 2.6, 1.7, 1.3], rtol=1e-15)


def test_snapshot_rejects_a_bad_trending_list() -> None:
    base = dict(skus=["a", "b"], indptr=np.zeros(3), indices=[], scores=[], users=[],
                popularity=[1.0, 1.0])  # fmt: skip
    with pytest.raises(ValueError, match="out of range"):
        ModelSnapshot(**base, trending=[2], trending_scores=[1.0])
    with pytest.raises(ValueError, match="same length"):
        ModelSnapshot(**base, trending=[0], trending_scores=[])
    with pytest.raises(ValueError, match="non-finite"):
        ModelSnapshot(**base, trending=[0], trending_scores=[np.inf])
    assert ModelSnapshot(**base).trending.tolist() == []  # snapshots before trending


def test_a_snapshot_written_before_trending_loads_with_an_empty_list() -> None:
    items = [{"sku": "x", "users": 1, "weight": 9.0, "recent_weight": 9.0, "prior_weight": 0.0}]
    rows = [{"sku": "x", "items": ["y"], "scores": [0.5], "users": [1.0]}]
    files = model_builder.build_snapshot(rows, items, {}).to_files()
    with np.load(io.BytesIO(files["arrays.npz"])) as arrays:
        old = {k: arrays[k] for k in arrays.files if not k.startswith("trending")}
    assert len(old) == 5
    buf = io.BytesIO()
    np.savez(buf, **old)
    loaded = ModelSnapshot.from_files({**files, "arrays.npz": buf.getvalue()})
    assert loaded.trending.tolist() == [] and loaded.trending_scores.tolist() == []


def test_the_deployments_trending_parameters_reach_the_jobs(monkeypatch) -> None:
    """SIMREC_TRENDING_* (Terraform's model.json sets them on every function) -> the
    nightly request's run -> the export manifest's params the Spark job and the load
    resolve (simrec.core.similarity.resolve_params), and the jobs' own flags."""
    import argparse

    from simrec.core import params as model_params
    from simrec.core.similarity import resolve_params
    from simrec.stages.requests import run_params

    monkeypatch.setenv("SIMREC_TRENDING_RECENT_DAYS", "3")
    monkeypatch.setenv("SIMREC_TRENDING_SMOOTHING", "0.5")
    run = run_params({"date": "2024-03-10"}, Settings(), dt.date(2024, 3, 10))
    manifest = run.to_json()
    assert (manifest["trending_recent_days"], manifest["trending_smoothing"]) == (3, 0.5)
    assert resolve_params(manifest).model == run.model
    parser = argparse.ArgumentParser()
    model_params.add_arguments(parser)
    flags = parser.parse_args(["--trending-min-support", "2"])
    assert resolve_params(manifest, model_params.overrides_from_args(flags)).model == (
        run.model.replace(trending_min_support=2.0)
    )
