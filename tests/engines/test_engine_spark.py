"""The Spark job's two plans (broadcast kernel, DIMSUM shuffle) under the engine contract,
on real local Spark."""

from __future__ import annotations

from typing import Any

import pytest

from simrec.jobs import spark_similarity
from tests.engines.engine_contract import EngineContract
from tests.plugins.data import ExportedShop

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


class TestSparkBroadcastPlan(SparkPlan):
    plan = "broadcast"


class TestSparkShufflePlan(SparkPlan):
    plan = "shuffle"
