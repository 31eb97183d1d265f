"""The similarity stage on Spark: weighted user x item matrix, DIMSUM cosine, top-K.

Runs unchanged on ``local[*]`` and on Dataproc (shipped with the simrec package zip)::

    python spark/dimsum_job.py --export-manifest URI --output URI [--threshold T]
        [--top-k K] [--seed S] [--weights JSON] [--max-items-per-user N]
        [--min-items-per-user N] [--master M]

Parameters given on the command line override the export manifest's ``params``. The job
reads the export manifest and writes its own through Hadoop's FileSystem (py4j), so
local paths and ``gs://`` work alike with no extra Python package. The matrix rule and
the sampling rule come from ``simrec.core``; the single-machine engine
(``simrec.core.similarity``) draws the same sample and is the oracle in the tests.
Pair sums are exact fixed-point sums, so reruns are bit-identical whatever the
partitioning. Output: ``<output>/neighbors``, ``<output>/items``, then
``<output>/_MANIFEST.json`` (a stale one is deleted first).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from simrec.core import dimsum, layout
from simrec.core.actions import ACTIONS
from simrec.core.runs import RunParams
from simrec.core.similarity import SCORE_DECIMALS, resolve_params, similarity_manifest

LOCAL_SHUFFLE_PARTITIONS = 8
EVENT_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in ("user_id", "sku", "action")]
)


# --- IO through Spark / Hadoop -------------------------------------------------------
def _read_text(spark: SparkSession, uri: str) -> str:
    """A small object through Hadoop's FileSystem. (``spark.read.text`` skips files whose
    name starts with ``_``, such as ``_MANIFEST.json``, even when named explicitly.)"""
    fs, path = _hadoop_fs(spark, uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"no such file: {uri}")
    stream = fs.open(path)
    try:
        data = spark._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def _hadoop_fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path


def _delete(spark: SparkSession, uri: str) -> None:
    fs, path = _hadoop_fs(spark, uri)
    if fs.exists(path):
        fs.delete(path, True)


def _write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small object whole: aside then renamed (an object store's put is atomic)."""
    fs, path = _hadoop_fs(spark, uri)
    fs.setWriteChecksum(False)
    tmp = spark._jvm.org.apache.hadoop.fs.Path(path.getParent(), "._" + path.getName() + ".tmp")
    out = fs.create(tmp, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()
    if fs.exists(path):
        fs.delete(path, False)
    if not fs.rename(tmp, path):
        raise OSError(f"could not move {tmp} to {uri}")


def _read_events(spark: SparkSession, export_manifest: dict) -> DataFrame:
    uris = [day["uri"] for day in export_manifest.get("days", [])]
    if not uris:
        return spark.createDataFrame([], EVENT_SCHEMA)
    return spark.read.parquet(*uris).select("user_id", "sku", "action")


# --- the steps -----------------------------------------------------------------------
def _weight(params: RunParams) -> Any:
    """CASE over the actions: the weights are literals, unknown actions give null."""
    weights = params.weights.as_dict()
    expr = None
    for action in ACTIONS:
        cond = F.col("action") == F.lit(action)
        value = F.lit(float(weights[action]))
        expr = F.when(cond, value) if expr is None else expr.when(cond, value)
    return expr


def _keep_udf(seed: int) -> Any:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(T.BooleanType())
    def keep(user_key: pd.Series, item_key: pd.Series, p: pd.Series) -> pd.Series:
        draw = dimsum.uniform(seed, user_key.to_numpy(), item_key.to_numpy())
        return pd.Series(draw < p.to_numpy())

    return keep


def _crc32(column: str) -> Any:
    return F.crc32(F.col(column).cast("binary"))


def _clip(column: Any) -> Any:
    return F.least(F.greatest(column, F.lit(0.0)), F.lit(1.0))


def fixed_point_bits(max_sq_norm: float) -> int:
    """Bits of the fixed-point scale for exact, order-independent pair sums.

    Every product ``s_i s_j`` is rounded to a multiple of ``2**-bits`` and summed as a
    long: integer addition is associative, so a pair's sum (hence its rank) is the same
    whatever the partitioning or shuffle order. By Cauchy-Schwarz a pair's sum is at most
    ``max_sq_norm`` (the largest column norm of the kept, scaled entries), which keeps
    the long below 2**61.
    """
    if not max_sq_norm > 0:
        return 0
    return int(min(1000, 60 - math.ceil(math.log2(max_sq_norm))))


def _probabilities(
    spark: SparkSession, norms: list[Any], threshold: float, max_entry: float
) -> tuple[DataFrame, float, np.ndarray]:
    """Small (sku, p, q) DataFrame from the collected column norms, for a broadcast join."""
    skus = [r["sku"] for r in norms]
    c = np.array([r["norm"] for r in norms], dtype=np.float64)
    p, q = dimsum.probabilities_and_scales(c, threshold, len(skus), max_entry)
    schema = T.StructType(
        [
            T.StructField("sku", T.StringType(), False),
            T.StructField("p", T.DoubleType()),
            T.StructField("q", T.DoubleType()),
        ]
    )
    rows = list(zip(skus, p.tolist(), q.tolist(), strict=True))
    return spark.createDataFrame(rows, schema), dimsum.gamma(threshold, len(skus)), p


def run(
    spark: SparkSession,
    export_manifest_uri: str,
    output_uri: str,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute and write one run's similarities; returns the manifest (written last)."""
    t0 = time.perf_counter()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    if (
        spark.sparkContext.master.startswith("local")
        and spark.conf.get("spark.sql.shuffle.partitions") == "200"
    ):
        spark.conf.set("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
    export_manifest = json.loads(_read_text(spark, export_manifest_uri))
    if export_manifest.get("stage") != "export":
        raise ValueError(f"{export_manifest_uri} is not an export manifest")
    params = resolve_params(export_manifest["params"], overrides)
    neighbors_uri = layout.join(output_uri, "neighbors")
    items_uri = layout.join(output_uri, "items")
    manifest_uri = layout.join(output_uri, layout.MANIFEST_NAME)
    _delete(spark, manifest_uri)  # a stale manifest must never describe new partial output
    cached: list[DataFrame] = []

    # 1. value per (user, sku); every event is counted, invalid ones are an error.
    events = _read_events(spark, export_manifest).withColumn("w", _weight(params))
    bad = F.col("w").isNull() | F.col("user_id").isNull() | F.col("sku").isNull()
    cells = events.groupBy("user_id", "sku").agg(
        F.sum("w").alias("value"),
        F.count(F.lit(1)).alias("n_events"),
        F.sum(F.when(bad, 1).otherwise(0)).alias("bad"),
    )
    # 2-3. distinct items per user and rank by value desc, sku asc: one window, one shuffle.
    by_value = Window.partitionBy("user_id").orderBy(F.desc("value"), F.asc("sku"))
    whole = by_value.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    ranked = cells.select(
        "user_id",
        "sku",
        "value",
        "n_events",
        "bad",
        F.sum(F.when(F.col("value") > 0, 1).otherwise(0)).over(whole).alias("n_items"),
        F.row_number().over(by_value).alias("rank"),
    ).persist()
    cached.append(ranked)
    first = F.col("rank") == 1
    kept_user = first & (F.col("n_items") >= params.min_items_per_user)
    stats = ranked.agg(
        F.sum("n_events").alias("events"),
        F.sum("bad").alias("bad"),
        F.sum(F.when(first, 1).otherwise(0)).alias("users"),
        F.sum(F.when(kept_user, 1).otherwise(0)).alias("users_kept"),
        F.sum(
            F.when(kept_user & (F.col("n_items") > params.max_items_per_user), 1).otherwise(0)
        ).alias("capped_users"),
    ).first()
    counts = {k: int(stats[k] or 0) for k in ("events", "users", "users_kept", "capped_users")}
    if stats["bad"]:
        raise ValueError(
            f"{stats['bad']} exported events have no user_id, no sku or an action other "
            f"than {', '.join(ACTIONS)}: the export must reject them"
        )
    matrix = (
        ranked.where(
            (F.col("value") > 0)
            & (F.col("n_items") >= params.min_items_per_user)
            & (F.col("rank") <= params.max_items_per_user)
        )
        .select("user_id", "sku", "value")
        .persist()
    )
    cached.append(matrix)

    # 4. column norms to the driver, p and q back as a broadcast table.
    norms = (
        matrix.groupBy("sku")
        .agg(
            F.sqrt(F.sum(F.col("value") * F.col("value"))).alias("norm"),
            F.count(F.lit(1)).alias("cells"),
            F.max("value").alias("max_value"),
        )
        .orderBy("sku")
        .collect()
    )
    counts["items"] = len(norms)
    counts["cells"] = int(sum(r["cells"] for r in norms))
    max_entry = max((float(r["max_value"]) for r in norms), default=1.0)
    probs, gamma, p = _probabilities(spark, norms, params.threshold, max_entry)
    t1 = time.perf_counter()

    # 5. DIMSUM sample: keep iff uniform(seed, crc32(user), crc32(sku)) < p; scale by 1/q.
    entries = matrix.join(F.broadcast(probs), "sku")
    if np.any(p < 1.0):
        keep = _keep_udf(params.seed)
        entries = entries.withColumn(
            "keep", keep(_crc32("user_id"), _crc32("sku"), F.col("p"))
        ).where(F.col("keep"))
    kept = entries.select("user_id", "sku", (F.col("value") / F.col("q")).alias("s"), "p").persist()
    cached.append(kept)
    max_sq_norm = (
        kept.groupBy("sku")
        .agg(F.sum(F.col("s") * F.col("s")).alias("n2"))
        .agg(F.max("n2"))
        .first()[0]
    )
    scale = float(2.0 ** fixed_point_bits(max_sq_norm or 0.0))
    left = kept.select(
        "user_id", F.col("sku").alias("sku_i"), F.col("s").alias("s_i"), F.col("p").alias("p_i")
    )
    right = kept.select(
        "user_id", F.col("sku").alias("sku_j"), F.col("s").alias("s_j"), F.col("p").alias("p_j")
    )
    fixed = F.round(F.col("s_i") * F.col("s_j") * F.lit(scale)).cast("long")
    pairs = (
        left.join(right, "user_id")
        .where(F.col("sku_i") < F.col("sku_j"))
        .groupBy("sku_i", "sku_j")
        .agg(
            F.sum(fixed).alias("fixed"),
            F.count(F.lit(1)).alias("emitted"),
            F.max("p_i").alias("p_i"),
            F.max("p_j").alias("p_j"),
        )
        .select(
            "sku_i",
            "sku_j",
            "emitted",
            F.round(_clip(F.col("fixed").cast("double") / F.lit(scale)), SCORE_DECIMALS).alias(
                "score"
            ),
            (F.col("emitted") / (F.col("p_i") * F.col("p_j"))).alias("users"),
        )
        .persist()
    )
    cached.append(pairs)
    pair_stats = pairs.agg(
        F.count(F.lit(1)).alias("pairs"), F.sum("emitted").alias("emitted_pairs")
    ).first()
    counts["pairs"] = int(pair_stats["pairs"] or 0)
    counts["emitted_pairs"] = int(pair_stats["emitted_pairs"] or 0)

    # 6. both directions, top-K per item by score desc, neighbour sku asc.
    both = pairs.select(
        F.col("sku_i").alias("sku"), F.col("sku_j").alias("nbr"), "score", "users"
    ).unionByName(
        pairs.select(F.col("sku_j").alias("sku"), F.col("sku_i").alias("nbr"), "score", "users")
    )
    by_score = Window.partitionBy("sku").orderBy(F.desc("score"), F.asc("nbr"))
    neighbors = (
        both.withColumn("rank", F.row_number().over(by_score))
        .where(F.col("rank") <= params.top_k)
        .groupBy("sku")
        .agg(F.sort_array(F.collect_list(F.struct("rank", "nbr", "score", "users"))).alias("l"))
        .select(
            "sku",
            F.transform(
                "l",
                lambda x: F.struct(
                    x["nbr"].alias("sku"), x["score"].alias("score"), x["users"].alias("users")
                ),
            ).alias("neighbors"),
        )
    )
    items = ranked.groupBy("sku").agg(
        F.count(F.lit(1)).alias("users"), F.sum("value").alias("weight")
    )
    t2 = time.perf_counter()

    # 7. outputs (overwrite), then the manifest last.
    neighbors.write.mode("overwrite").parquet(neighbors_uri)
    items.write.mode("overwrite").parquet(items_uri)
    counts["neighbor_rows"] = spark.read.parquet(neighbors_uri).count()
    for df in cached:
        df.unpersist()
    t3 = time.perf_counter()
    manifest = similarity_manifest(
        export_manifest=export_manifest,
        export_manifest_uri=export_manifest_uri,
        params=params,
        engine="spark",
        outputs={"neighbors": neighbors_uri, "items": items_uri},
        counts=counts,
        gamma=gamma,
        timings={
            "read_s": t1 - t0,
            "similarity_s": t2 - t1,
            "write_s": t3 - t2,
            "total_s": t3 - t0,
        },
    )
    _write_text(spark, manifest_uri, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


# --- command line --------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export-manifest", required=True, help="export _MANIFEST.json URI")
    parser.add_argument("--output", required=True, help="similarities/<tenant>/<run_id> URI")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--weights", type=json.loads, help='e.g. {"purchase": 6}')
    parser.add_argument("--max-items-per-user", type=int)
    parser.add_argument("--min-items-per-user", type=int)
    parser.add_argument("--master", help="Spark master for local runs (e.g. local[*])")
    return parser.parse_args(argv)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("threshold", "top_k", "seed", "weights", "max_items_per_user", "min_items_per_user")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    existing = SparkSession.getActiveSession()
    builder = SparkSession.builder.appName("simrec-dimsum").config(
        "spark.sql.session.timeZone", "UTC"
    )
    if args.master:
        builder = builder.master(args.master)
        if args.master.startswith("local"):
            builder = builder.config(
                "spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS)
            ).config("spark.ui.enabled", "false")
    spark = builder.getOrCreate()
    try:
        manifest = run(spark, args.export_manifest, args.output, overrides_from_args(args))
    finally:
        if existing is None:
            spark.stop()
    print(json.dumps({"counts": manifest["counts"], "timings": manifest["timings"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
