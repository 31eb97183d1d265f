"""The Spark job's two plans (broadcast kernel, DIMSUM shuffle) under the engine contract,
on real local Spark."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simrec.core.similarity import resolve_params
from simrec.jobs import spark_similarity
from simrec.jobs.local_similarity import run_local_similarity
from tests.builders import ExportedShop
from tests.engines.engine_contract import SAMPLED, EngineContract, pairs_of

pytestmark = pytest.mark.spark


class SparkPlan(EngineContract):
    engine = "spark"
    plan: str

    @pytest.fixture(autouse=True)
    def _session(self, spark) -> None:
        self.spark = spark

    def compute(
        self, shop: ExportedShop, output_uri: str, overrides: dict[str, Any]
    ) -> dict[str, Any]:
        manifest = spark_similarity.run(
            self.spark, shop.manifest_uri, output_uri, overrides, plan=self.plan
        )
        assert manifest["plan"] == self.plan
        return manifest


class TestSparkShufflePlan(SparkPlan):
    plan = "shuffle"


class TestSparkBroadcastPlan(SparkPlan):
    plan = "broadcast"

    def test_sampled_output_is_the_local_engines_bit_for_bit(self, exported_dense_shop):
        """The broadcast plan runs the single-machine kernel on the same sample: beyond
        the contract's tolerance, its output is the local engine's bit for bit."""
        shop = exported_dense_shop
        spark_run = self.run(shop, "sampled", SAMPLED)
        params = resolve_params(shop.manifest["params"], SAMPLED)
        local = run_local_similarity(
            shop.manifest_uri, shop.similarities_uri("local-for-broadcast"), params
        )
        a, b = pairs_of(spark_run), pairs_of(local)
        for column in ("sku", "neighbor", "rank", "score", "users"):
            np.testing.assert_array_equal(a[column].to_numpy(), b[column].to_numpy())
        assert spark_run["counts"] == local["counts"]
