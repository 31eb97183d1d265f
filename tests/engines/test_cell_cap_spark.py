"""The cell cap in the Spark job: the same cap (Spark's ``percentile_disc``) and the same
output as the local engine, exact and sampled, on both plans."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from simrec.core.matrix import cell_cap, cell_cap_sql
from simrec.core.similarity import resolve_params
from simrec.jobs.local_similarity import run_local_similarity
from simrec.storage.similarities import neighbor_pairs, read_neighbors
from tests.engines.spark_vs_local import spark_and_local_runs

pytestmark = pytest.mark.spark

PERCENTILES = (0.1, 10, 25, 37.5, 50, 75, 90, 99, 100)


def test_spark_percentile_is_the_local_cap(spark):
    """Every (array, percentile), boundary ranks (n * P / 100 an integer) included."""
    rng = np.random.default_rng(3)
    arrays = {n: rng.integers(1, 9, size=n) * 0.25 for n in (1, 2, 7, 10, 20, 100, 1001)}
    arrays[-1] = rng.random(257) * 40  # distinct values, as decayed sums have
    rows = [(g, float(v)) for g, a in arrays.items() for v in a]
    df = spark.createDataFrame(rows, "g int, value double")
    aggs = [F.expr(cell_cap_sql(q)).alias(f"q{i}") for i, q in enumerate(PERCENTILES)]
    got = {r["g"]: r for r in df.groupBy("g").agg(*aggs).collect()}
    for g, a in arrays.items():
        for i, q in enumerate(PERCENTILES):
            assert got[g][f"q{i}"] == cell_cap(a, q), (g, q)


def _pairs(manifest: dict):  # noqa: ANN202
    return neighbor_pairs(read_neighbors(manifest["outputs"]["neighbors"]))


@pytest.mark.parametrize(
    ("shop_name", "overrides"),
    [
        ("exported_shop", {"threshold": 0.0, "top_k": 20, "cell_cap_percentile": 37.5,
                           "half_life_days": 5.0, "user_weighting": "power", "user_alpha": 0.7}),
        ("exported_dense_shop", {"threshold": 0.2, "top_k": 1000, "cell_cap_percentile": 50.0,
                                 "half_life_days": 10.0, "user_weighting": "power",
                                 "user_alpha": 0.7, "shrinkage": 20.0}),
    ],
)
@pytest.mark.parametrize("plan", ["broadcast", "shuffle"])
def test_spark_equals_local_with_the_cap(spark, request, shop_name, overrides, plan):
    shop = request.getfixturevalue(shop_name)
    spark_run, local = spark_and_local_runs(spark, shop, overrides, plan, "cap")
    assert spark_run["counts"] == local["counts"]
    a, b = _pairs(spark_run), _pairs(local)
    merged = a.merge(b, on=["sku", "neighbor"], how="outer", indicator=True)
    assert len(a) == len(b) > 100 and (merged["_merge"] == "both").all()
    assert (merged["rank_x"] == merged["rank_y"]).all()
    if plan == "broadcast":  # the local kernel on the same sample: bit for bit
        np.testing.assert_array_equal(merged["score_x"], merged["score_y"])
    np.testing.assert_allclose(merged["score_x"], merged["score_y"], atol=1e-9, rtol=0)
    np.testing.assert_allclose(merged["users_x"], merged["users_y"], rtol=1e-12)
    # The cap really changes the output.
    off = run_local_similarity(
        shop.manifest_uri, shop.similarities_uri("local-cap-off"),
        resolve_params(shop.manifest["params"], {**overrides, "cell_cap_percentile": 0.0}),
    )
    c = _pairs(off)
    assert not b[["sku", "neighbor", "score"]].equals(c[["sku", "neighbor", "score"]])
