"""Engine tests (Spark, Beam, DuckDB): one local Spark session for the run (a session
costs about 8 s) and the exported shops the engines start from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.builders import (  # noqa: F401 (fixtures)
    dense_shop_events,
    exported_dense_shop,
    exported_shop,
    shop_events,
)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession  # PYSPARK_PYTHON: set by tests/conftest.py

    session = (
        SparkSession.builder.master("local[2]")
        .appName("simrec-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
