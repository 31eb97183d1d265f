"""The nightly tuning step inside the Spark job (real local Spark): the Spark grid's choice,
recorded in the manifest, and the output trained with it, equal to the local engine's."""

from __future__ import annotations

import dataclasses

import pytest

from simrec.core.params import LOCAL_ENGINE_ONLY
from simrec.core.similarity import resolve_params
from simrec.evaluation import nightly
from simrec.jobs import spark_similarity
from simrec.jobs.local_similarity import run_local_similarity
from tests.engines.test_quality import _assert_same

pytestmark = pytest.mark.spark


def test_spark_tunes_on_the_window_and_trains_with_the_choice(spark, exported_shop):
    shop = exported_shop
    overrides = {"tune_holdout_days": 5, "threshold": 0.0, "top_k": 20}
    params = resolve_params(shop.manifest["params"], overrides)
    spark_run = spark_similarity.run(
        spark, shop.manifest_uri, shop.similarities_uri("spark-tuned"), overrides
    )
    record = spark_run["tuning"]
    assert spark_run["params"] == params.to_json()  # the run's, naming its run id
    assert record["status"] == nightly.TUNED and record["engine"] == "spark"
    assert not {n for c in record["candidates"] for n in c["changes"]} & set(LOCAL_ENGINE_ONLY)
    chosen, expected = nightly.tune(
        nightly.window_events(shop.events), params.model, params.end_date, "spark"
    )
    assert {k: v for k, v in record.items() if k != "timings_s"} == {
        k: v for k, v in expected.items() if k != "timings_s"
    }
    trained = dataclasses.replace(params, model=chosen.replace(tune_holdout_days=0))
    local_run = run_local_similarity(
        shop.manifest_uri, shop.similarities_uri("local-with-choice"), trained
    )
    _assert_same(spark_run, local_run)


@pytest.mark.parametrize("lever", LOCAL_ENGINE_ONLY)
def test_spark_refuses_the_levers_its_grid_leaves_out(spark, exported_shop, lever):
    on = {"asymmetric_alpha": 0.3, "popularity_discount": 0.2, "popularity_fill": 1}[lever]
    with pytest.raises(ValueError, match=f"{lever}: only the local engine"):
        spark_similarity.run(
            spark, exported_shop.manifest_uri, exported_shop.similarities_uri("refused"),
            {lever: on},
        )
