"""One run of an exported shop on each engine with the same overrides: what the tests of
Spark-equals-local with a model feature on start from."""

from __future__ import annotations

from typing import Any

from simrec.core.similarity import resolve_params
from simrec.jobs import spark_similarity
from simrec.jobs.local_similarity import run_local_similarity
from tests.builders import ExportedShop


def spark_and_local_runs(
    spark: Any, shop: ExportedShop, overrides: dict[str, Any], plan: str, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Spark job's manifest (``plan``) and the local engine's, written under ``name``;
    both ran on the parameters the overrides resolve to."""
    params = resolve_params(shop.manifest["params"], overrides)
    spark_run = spark_similarity.run(
        spark, shop.manifest_uri, shop.similarities_uri(f"spark-{name}-{plan}"), overrides,
        plan=plan,
    )  # fmt: skip
    local_uri = shop.similarities_uri(f"local-{name}")
    local_run = run_local_similarity(shop.manifest_uri, local_uri, params)
    assert spark_run["params"] == local_run["params"] == params.to_json()
    return spark_run, local_run
