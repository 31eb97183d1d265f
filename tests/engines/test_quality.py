"""Quality features (simrec.core.quality): definitions, the local engine against a scipy
oracle, run ids, and the Spark job == the local engine with every feature on."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from simrec.config import Settings
from simrec.core import dimsum, quality
from simrec.core.matrix import build_matrix
from simrec.core.params import HASH_NEUTRAL
from simrec.core.runs import RUN_CONTROL, RunParams
from simrec.core.similarity import column_norms, cosine_topk, resolve_params
from simrec.jobs.local_similarity import run_local_similarity
from simrec.storage.similarities import neighbor_pairs, read_neighbors
from tests.builders import PLAIN
from tests.engines.spark_vs_local import spark_and_local_runs

DAY = dt.date(2024, 3, 10)


# --- definitions ------------------------------------------------------------------------
def test_decay_halves_every_half_life():
    assert quality.decay(np.array([0, 7, 14, 21]), 7.0).tolist() == [1.0, 0.5, 0.25, 0.125]
    assert quality.decay(np.array([0, 30]), 0.0).tolist() == [1.0, 1.0]  # off
    with pytest.raises(ValueError, match="after the window"):
        quality.decay(np.array([-1]), 7.0)
    # The table and the per-event values are the same bits whatever the table's length.
    assert quality.decay_table(3650, 3.3)[:40].tolist() == quality.decay_table(40, 3.3).tolist()


def test_age_is_whole_days_to_the_reference():
    days = np.array(["2024-03-10", "2024-03-09", "2024-02-10"], dtype="datetime64[D]")
    assert quality.age_days(days, DAY).tolist() == [0, 1, 29]


def test_user_factors():
    n = np.array([1, 3, 7])
    np.testing.assert_allclose(quality.user_factor(n, "log"), [1.0, 0.5, 1 / 3], rtol=1e-15)
    np.testing.assert_allclose(
        quality.user_factor(n, "power", 0.5), [1.0, 3**-0.5, 7**-0.5], rtol=1e-15
    )
    assert quality.user_factor(n, "none").tolist() == [1.0, 1.0, 1.0]
    assert quality.user_factor_table(3, "log")[0] == 0.0
    with pytest.raises(ValueError, match="user_weighting"):
        quality.validate(user_weighting="sqrt")


def test_shrink():
    assert quality.shrink(np.array([1.0, 0.5]), np.array([2.0, 98.0]), 2.0).tolist() == [
        0.5,
        0.49,
    ]
    assert quality.shrink(np.array([0.3]), np.array([1.0]), 0.0).tolist() == [0.3]
    with pytest.raises(ValueError, match="shrinkage"):
        quality.validate(shrinkage=-1)


def test_fixed_point_sums_do_not_depend_on_order():
    rng = np.random.default_rng(0)
    values = rng.random(1000) * quality.decay(rng.integers(0, 30, 1000), 3.7)
    fixed = quality.to_fixed(values)
    assert int(fixed.sum()) == int(fixed[::-1].sum()) == int(fixed[rng.permutation(1000)].sum())
    assert abs(quality.from_fixed(np.array([fixed.sum()]))[0] - values.sum()) < 1e-8


# --- the local engine against hand-made values and a scipy oracle ------------------------
def test_matrix_with_decay_and_user_weighting_by_hand():
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "u2"],
            "sku": ["a", "a", "b", "a", "c"],
            "action": ["purchase", "browsed", "basket", "browsed", "browsed"],
            "day": np.array(
                ["2024-03-10", "2024-03-03", "2024-03-03", "2024-03-10", "2024-02-25"],
                dtype="datetime64[D]",
            ),
        }
    )
    model = PLAIN.replace(half_life_days=7.0, user_weighting="log")
    m = build_matrix(
        events["user_id"], events["sku"], events["action"], model,
        days=events["day"], reference_day=DAY,
    )
    expected = np.array([[6 + 0.5 * 0.5, 2 * 0.5, 0.0], [0.5, 0.0, 0.5 * 0.25]])
    expected = expected / math.log2(3)  # both users have 2 items: f = 1 / log2(3)
    np.testing.assert_allclose(m.matrix.toarray(), expected, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="day"):
        build_matrix(events["user_id"], events["sku"], events["action"], model)


def test_cap_ranks_decayed_values():
    """u1 has an old purchase and a fresh browse: with decay the fresh browse is kept."""
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "u2"],
            "sku": ["old", "new", "x", "old", "new"],
            "action": ["purchase", "browsed", "browsed", "browsed", "browsed"],
            "day": np.array(["2024-01-01", "2024-03-10", "2024-03-01"] + ["2024-03-10"] * 2,
                            dtype="datetime64[D]"),
        }
    )
    model = PLAIN.replace(max_items_per_user=2)
    plain = build_matrix(events["user_id"], events["sku"], events["action"], model)
    decayed = build_matrix(events["user_id"], events["sku"], events["action"],
                           model.replace(half_life_days=3.0), days=events["day"],
                           reference_day=DAY)
    row = dict(zip(plain.skus, plain.matrix[0].toarray().ravel(), strict=True))
    assert row == {"new": 0.5, "old": 6.0}  # x dropped by the cap (tie with new: sku order)
    row = dict(zip(decayed.skus, decayed.matrix[0].toarray().ravel(), strict=True))
    assert row == {"new": 0.5, "old": 0.0, "x": 0.5 * 0.5**3}  # old: 6 * 0.5**23 < x


def test_shrinkage_equals_the_oracle(shop_events):
    ev = shop_events
    m = build_matrix(ev["user_id"], ev["sku"], ev["action"], PLAIN)
    unit = m.matrix @ sp.diags(1.0 / column_norms(m.matrix))
    cos = (unit.T @ unit).toarray()
    binary = (m.matrix > 0).astype(np.float64)
    users = (binary.T @ binary).toarray()
    np.fill_diagonal(cos, 0.0)
    expected = cos * users / (users + 10.0)
    topk = cosine_topk(m.matrix, 0.0, 1, 10**6, dimsum.string_keys(m.user_ids),
                       dimsum.string_keys(m.skus), shrinkage=10.0)
    n = topk.n_items
    got = sp.csr_matrix((topk.scores, topk.neighbors, topk.indptr), (n, n)).toarray()
    np.testing.assert_allclose(got, expected, atol=1e-9, rtol=0)
    # Ranked by the shrunk score: descending within each row.
    for i in range(n):
        row = topk.scores[topk.indptr[i] : topk.indptr[i + 1]]
        assert np.all(np.diff(row) <= 0)


# --- parameters ---------------------------------------------------------------------------
def test_run_params_round_trip_and_stable_ids():
    base = RunParams("shop", DAY, model=PLAIN)
    on = RunParams("shop", DAY, model=PLAIN.replace(
        half_life_days=14.0, user_weighting="power", user_alpha=0.3, shrinkage=20.0
    ))
    assert RunParams.from_json(on.to_json()) == on
    legacy = {  # manifests written before the later parameters and before attempts
        k: v for k, v in base.to_json().items() if k not in HASH_NEUTRAL and k not in RUN_CONTROL
    }
    assert RunParams.from_json(legacy) == base  # manifests written before the features
    # With the features off the id is the one of a run made before they existed.
    assert base.run_id == "2024-03-10-" + _legacy_hash(legacy)
    assert on.run_id != base.run_id


def _legacy_hash(payload: dict) -> str:
    import hashlib
    import json

    data = {k: v for k, v in payload.items() if k not in ("tenant", "date")}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_settings_and_overrides_validate(exported_shop):
    s = Settings(half_life_days=7, user_weighting="log", shrinkage=5)
    assert (s.half_life_days, s.user_weighting, s.shrinkage) == (7, "log", 5)
    params = resolve_params(exported_shop.manifest["params"], {"shrinkage": 3.0})
    assert params.model.shrinkage == 3.0
    with pytest.raises(ValueError, match="user_weighting"):
        resolve_params(exported_shop.manifest["params"], {"user_weighting": "cube"})


# --- Spark == local with every feature on ---------------------------------------------------
def _assert_same(a: dict, b: dict) -> None:
    pa_ = neighbor_pairs(read_neighbors(a["outputs"]["neighbors"]))
    pb = neighbor_pairs(read_neighbors(b["outputs"]["neighbors"]))
    merged = pa_.merge(pb, on=["sku", "neighbor"], how="outer", indicator=True)
    assert len(pa_) == len(pb) > 100
    assert (merged["_merge"] == "both").all()
    assert (merged["rank_x"] == merged["rank_y"]).all()
    np.testing.assert_allclose(merged["score_x"], merged["score_y"], atol=1e-9, rtol=0)
    np.testing.assert_allclose(merged["users_x"], merged["users_y"], rtol=1e-12)
    assert a["counts"] == b["counts"]


@pytest.mark.spark
@pytest.mark.parametrize(
    ("shop_name", "overrides"),
    [
        (
            "exported_shop",
            {"threshold": 0.0, "top_k": 20, "half_life_days": 5.0, "user_weighting": "log",
             "shrinkage": 4.0, "max_items_per_user": 6},
        ),
        (
            "exported_dense_shop",
            {"threshold": 0.2, "top_k": 1000, "half_life_days": 10.0,
             "user_weighting": "power", "user_alpha": 0.7, "shrinkage": 2.0},
        ),
        (  # BM25 after the cap, on rows cut to max_items_per_user, before the power
            "exported_shop",
            {"threshold": 0.0, "top_k": 20, "bm25_b": 0.75, "bm25_k1": 1.2,
             "cell_cap_percentile": 50.0, "user_weighting": "power", "max_items_per_user": 6},
        ),
    ],
    ids=["decay-log-shrink", "dense-sampled", "bm25"],
)
@pytest.mark.parametrize("plan", ["broadcast", "shuffle"])
def test_spark_equals_local_with_features_on(spark, request, shop_name, overrides, plan):
    shop = request.getfixturevalue(shop_name)
    spark_run, local_run = spark_and_local_runs(spark, shop, overrides, plan, "quality")
    _assert_same(spark_run, local_run)
    plain = run_local_similarity(
        shop.manifest_uri, shop.similarities_uri("local-plain"),
        resolve_params(shop.manifest["params"], {"threshold": overrides["threshold"],
                                                 "top_k": overrides["top_k"]}),
    )
    # The features really change the output.
    a = neighbor_pairs(read_neighbors(local_run["outputs"]["neighbors"]))
    b = neighbor_pairs(read_neighbors(plain["outputs"]["neighbors"]))
    assert not a[["sku", "neighbor", "score"]].equals(b[["sku", "neighbor", "score"]])
