"""The similarity stage on Spark: weighted user x item matrix, DIMSUM cosine, top-K.

Runs unchanged on ``local[*]`` and on Dataproc (whose main file, ``spark/dimsum_job.py``,
calls :func:`main`; the simrec package zip is its ``--py-files``)::

    python -m simrec.jobs.spark_similarity --export-manifest URI --output URI
        [--threshold T] [--top-k K] [--seed S] [--weights JSON] [--max-items-per-user N]
        [--min-items-per-user N] [--half-life-days H] [--user-weighting none|log|power]
        [--user-alpha A] [--shrinkage L] [--master M] [--plan auto|broadcast|shuffle]

Parameters given on the command line override the export manifest's ``params``. The job
reads the export manifest and writes its own through Hadoop's FileSystem (py4j), so
local paths and ``gs://`` work alike with no extra Python package. The matrix rule and
the sampling rule come from ``simrec.core``; the single-machine engine
(``simrec.core.similarity``) draws the same sample and is the oracle in the tests.
The hot path is vectorised: each task turns groups of whole user rows into partial pair
sums with sparse products (Arrow batches, NumPy/scipy), and one shuffle by item feeds the
top-K selection. Pair sums are exact fixed-point sums, so reruns are bit-identical
whatever the partitioning. Output: the layout of ``simrec.core.layout``
(``<output>/neighbors``, ``<output>/items``, then ``<output>/_MANIFEST.json``; a stale
manifest is deleted first).

:func:`run` is the job as named steps: :func:`read_export_manifest`, :func:`tuned`
(the nightly tuning, when on), :func:`build_matrix`, :func:`column_stats`, :func:`choose_plan`,
:func:`broadcast_topk` / :func:`shuffle_topk`, :func:`pair_counts`,
:func:`write_tables`, :func:`write_manifest`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from simrec import logs
from simrec.core import baskets, dimsum, layout, quality, similarity, trending
from simrec.core import matrix as matrix_rule
from simrec.core import params as model_params
from simrec.core.actions import ACTIONS
from simrec.core.runs import RunParams
from simrec.core.similarity import resolve_params, similarity_manifest, stage_timings
from simrec.evaluation import nightly

LOCAL_SHUFFLE_PARTITIONS = 8
#: Cells per user-partition (at least one partition per core): large, so each task
#: combines many users' pairs before the shuffle.
CELLS_PER_TASK = 2_000_000
#: Rows a task turns into pair sums at once (whole users / whole items): bounds memory.
CELLS_PER_CHUNK = 2_000_000
PAIRS_PER_CHUNK = 4_000_000
#: The similarity plans: ``broadcast`` (the compiled kernel over a broadcast matrix, in
#: item-range tasks), ``shuffle`` (DIMSUM's pair shuffle) or ``auto`` (broadcast when the
#: matrix has at most ``BROADCAST_MAX_CELLS`` cells).
PLANS = ("auto", "broadcast", "shuffle")
#: About 40 bytes a kept cell (CSR + CSC of the sampled matrix, values and DIMSUM weights)
#: in every executor: 0.8 GB at most.
BROADCAST_MAX_CELLS = 20_000_000
#: Item ranges per core in the broadcast plan (a few, so a slow range does not hold all).
TASKS_PER_CORE = 4
PARTIAL_SCHEMA = "a int, b int, fixed long, n long, w long"
#: Spark's names of the Arrow types of ``simrec.core.layout``'s output schema.
_SPARK_TYPES = {"string": "string", "double": "double", "int64": "long"}
#: The neighbors table as the top-K steps emit it: the output schema, plus each row's
#: share of the pair counts (summed for the manifest, not written).
NEIGHBORS_DDL = (
    f"sku string, {layout.NEIGHBORS} array<struct<"
    + ", ".join(f"{name}: {_SPARK_TYPES[kind]}" for name, kind in layout.NEIGHBOR_FIELDS)
    + ">>, n_pairs long, n_emitted long"
)
NEIGHBOR_NAMES = [name for name, _ in layout.NEIGHBOR_FIELDS]
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


def _read_events(spark: SparkSession, export_manifest: dict, with_ts: bool = False) -> DataFrame:
    uris = [day["uri"] for day in export_manifest.get("days", [])]
    columns = ["user_id", "sku", "action"] + (["ts"] if with_ts else [])
    if not uris:
        schema = T.StructType(
            [*EVENT_SCHEMA.fields] + ([T.StructField("ts", T.TimestampType())] if with_ts else [])
        )
        return spark.createDataFrame([], schema)
    return spark.read.parquet(*uris).select(*columns)


# --- quality features (simrec.core.quality): tables computed by the core, joined -------
def _lookup(spark: SparkSession, key: str, name: str, table: np.ndarray) -> DataFrame:
    """A small (key int, name double) DataFrame of a core-computed table, for a broadcast
    join: the very floats the local engine uses, not a Spark re-computation of them."""
    schema = T.StructType(
        [T.StructField(key, T.IntegerType(), False), T.StructField(name, T.DoubleType())]
    )
    return F.broadcast(spark.createDataFrame(list(enumerate(table.tolist())), schema))


def _decayed_weight(spark: SparkSession, events: DataFrame, params: RunParams) -> DataFrame:
    """``w`` -> ``floor(w * decay(age) * 2^FIXED_BITS)`` (long), age = whole days from the
    event's UTC day to the window's last day. An event outside the window finds no decay:
    its ``w`` is null and the job fails on it like on an unknown action."""
    table = quality.decay_table(params.window_days, params.model.half_life_days)
    age = F.datediff(F.lit(params.end_date.isoformat()).cast("date"), F.to_date("ts"))
    return (
        events.withColumn("age", age)
        .join(_lookup(spark, "age", "decay", table), "age", "left")
        .withColumn(
            "w",
            F.floor(F.col("w") * F.col("decay") * F.lit(float(2**quality.FIXED_BITS))),
        )
    )


# --- the steps -----------------------------------------------------------------------
def _weight(params: RunParams) -> Any:
    """CASE over the actions: the weights are literals, unknown actions give null."""
    weights = params.model.weights.as_dict()
    expr = None
    for action in ACTIONS:
        cond = F.col("action") == F.lit(action)
        value = F.lit(float(weights[action]))
        expr = F.when(cond, value) if expr is None else expr.when(cond, value)
    return expr


def _crc32(column: str) -> Any:
    return F.crc32(F.col(column).cast("binary"))


def _key_chunks(batches: Any, key: str, max_rows: int) -> Any:
    """Arrow batches sorted by ``key`` -> tables of whole ``key`` groups, each about
    ``max_rows`` rows (more when one group is larger): bounded memory per task."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pending: list[Any] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows < max_rows:
            continue
        table = pa.Table.from_batches(pending).combine_chunks()
        column = table.column(key)
        tail = int(pc.sum(pc.equal(column, column[table.num_rows - 1])).as_py())
        cut = table.num_rows - tail
        if cut == 0:
            continue  # one group so far: keep reading
        yield table.slice(0, cut)
        pending = table.slice(cut).to_batches()
        rows = tail
    if pending:
        yield pa.Table.from_batches(pending).combine_chunks()


def _partial_pairs_fn(
    arrays: Any, seed: int, g: float, n_items: int, scales: tuple[float, float]
) -> Any:
    """``mapInArrow`` step: sorted (user_id, ukey, idx, value) -> partial pair sums of the
    DIMSUM sample (``dimsum.sample_entries``, the single-machine engine's own rule)."""

    def partial_pairs(batches: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        from simrec.core import dimsum as dims
        from simrec.core import similarity as sim

        norms, item_keys = arrays.value["norms"], arrays.value["item_keys"]
        for table in _key_chunks(batches, "user_id", CELLS_PER_CHUNK):
            n = table.num_rows
            users = table.column("user_id")
            new_user = np.ones(n, dtype=bool)
            if n > 1:
                new_user[1:] = pc.not_equal(users.slice(1), users.slice(0, n - 1)).to_numpy(
                    zero_copy_only=False
                )
            row = np.cumsum(new_user) - 1
            idx = table.column("idx").to_numpy().astype(np.int64)
            ukey = table.column("ukey").to_numpy().astype(np.uint64)
            kept = dims.sample_entries(
                seed, ukey, item_keys[idx], table.column("value").to_numpy(), norms[idx], g
            )
            row, idx = row[kept.keep], idx[kept.keep]
            n_rows = int(new_user.sum())
            indptr = np.zeros(n_rows + 1, dtype=np.int64)
            np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
            a, b, fixed, count, weight = sim.partial_pair_sums(
                indptr, idx.astype(np.int32), kept.values, kept.weights, n_items, scales
            )
            yield pa.RecordBatch.from_arrays(
                [pa.array(a), pa.array(b), pa.array(fixed), pa.array(count), pa.array(weight)],
                names=["a", "b", "fixed", "n", "w"],
            )

    return partial_pairs


def _topk_fn(arrays: Any, scales: tuple[float, float], top_k: int, shrinkage: float) -> Any:
    """``mapInArrow`` step: partial sums sorted by (a, b) -> one neighbors row per item,
    plus its share of the pair counts (for the manifest)."""

    def topk(batches: Any) -> Any:
        import pyarrow as pa

        from simrec.core import similarity as sim

        skus = arrays.value["skus"]
        for table in _key_chunks(batches, "a", PAIRS_PER_CHUNK):
            a, b, score, users, pairs, emitted = sim.topk_from_pair_sums(
                table.column("a").to_numpy(),
                table.column("b").to_numpy(),
                table.column("fixed").to_numpy(),
                table.column("n").to_numpy(),
                table.column("w").to_numpy(),
                scales,
                top_k,
                shrinkage,
            )
            if len(a) == 0:
                continue
            first = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
            offsets = np.r_[first, len(a)].astype(np.int32)
            structs = pa.StructArray.from_arrays(
                [pa.array(skus[b], pa.string()), pa.array(score), pa.array(users)],
                names=NEIGHBOR_NAMES,
            )
            n_pairs = np.zeros(len(first), dtype=np.int64)
            n_emitted = np.zeros(len(first), dtype=np.int64)
            n_pairs[0], n_emitted[0] = pairs, emitted
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(skus[a[first]], pa.string()),
                    pa.ListArray.from_arrays(pa.array(offsets), structs),
                    pa.array(n_pairs),
                    pa.array(n_emitted),
                ],
                names=["sku", layout.NEIGHBORS, "n_pairs", "n_emitted"],
            )

    return topk


# --- the run, step by step ----------------------------------------------------------
@dataclass
class Matrix:
    """The matrix rule's result on Spark: kept cells, every cell (for item stats), counts."""

    cells: DataFrame  # user_id, sku, value: the matrix (after cap and user weighting)
    ranked: DataFrame  # every (user, sku) of the window with its value
    counts: dict[str, int]


@dataclass
class Columns:
    """Per item (sku order): its norm, cells and sum of ``1 / value^2`` (the bounds of
    ``dimsum.sum_bounds``), and DIMSUM's gamma."""

    skus: list[str]
    norms: np.ndarray
    cells: np.ndarray
    inv_sq: np.ndarray
    gamma: float


def build_matrix(
    spark: SparkSession, export_manifest: dict, params: RunParams, events: DataFrame | None = None
) -> Matrix:
    """The matrix rule (``simrec.core.matrix``) with DataFrame expressions: one window,
    one shuffle. Every event is counted; invalid ones are an error. ``events``: rows
    other than the export's users (the baskets of :func:`basket_events`)."""
    model = params.model
    # 1. value per (user, sku)
    decayed = model.half_life_days > 0
    if events is None:
        events = _read_events(spark, export_manifest, with_ts=True)
    # Events hashed by user (row) once: the (user, sku) sums and the per-user window below
    # both find their input already partitioned: one shuffle (of the events) instead of two.
    events = events.repartition(
        int(spark.conf.get("spark.sql.shuffle.partitions")), "user_id"
    ).withColumn("w", _weight(params))
    # The trending sums (simrec.core.trending): undecayed weights, recent days vs before.
    first_recent = F.lit(
        trending.split_day(params.end_date, model.trending_recent_days).isoformat()
    ).cast("date")
    events = events.withColumn("recent", F.to_date("ts") >= first_recent).withColumn(
        "w_raw", F.col("w")
    )
    value = F.sum("w")
    if decayed:  # fixed-point sums: exact, whatever the order (quality.to_fixed)
        events = _decayed_weight(spark, events, params)
        value = value.cast("double") * F.lit(1.0 / float(2**quality.FIXED_BITS))
    bad = F.col("w").isNull() | F.col("user_id").isNull() | F.col("sku").isNull()
    cells = events.groupBy("user_id", "sku").agg(
        value.alias("value"),
        F.count(F.lit(1)).alias("n_events"),
        F.sum(F.when(bad, 1).otherwise(0)).alias("bad"),
        F.sum(F.when(F.col("recent"), F.col("w_raw")).otherwise(0.0)).alias("recent_weight"),
        F.sum(F.when(F.col("recent"), 0.0).otherwise(F.col("w_raw"))).alias("prior_weight"),
    )
    # 2-3. distinct items per user and rank by value desc, sku asc.
    by_value = Window.partitionBy("user_id").orderBy(F.desc("value"), F.asc("sku"))
    whole = by_value.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    ranked = cells.select(
        "user_id",
        "sku",
        "value",
        "n_events",
        "bad",
        "recent_weight",
        "prior_weight",
        F.sum(F.when(F.col("value") > 0, 1).otherwise(0)).over(whole).alias("n_items"),
        F.row_number().over(by_value).alias("rank"),
    ).persist()
    first = F.col("rank") == 1
    kept_user = first & (F.col("n_items") >= model.min_items_per_user)
    stats = ranked.agg(
        F.sum("n_events").alias("events"),
        F.sum("bad").alias("bad"),
        F.sum(F.when(first, 1).otherwise(0)).alias("users"),
        F.sum(F.when(kept_user, 1).otherwise(0)).alias("users_kept"),
        F.sum(
            F.when(kept_user & (F.col("n_items") > model.max_items_per_user), 1).otherwise(0)
        ).alias("capped_users"),
        # The matrix's cells: each kept user's row holds min(n_items, max_items_per_user).
        F.sum(
            F.when(kept_user, F.least("n_items", F.lit(model.max_items_per_user))).otherwise(0)
        ).alias("matrix_cells"),
    ).first()
    counts = {k: int(stats[k] or 0) for k in ("events", "users", "users_kept", "capped_users")}
    if stats["bad"]:
        raise ValueError(
            f"{stats['bad']} exported events have no user_id, no sku or an action other "
            f"than {', '.join(ACTIONS)}: the export must reject them"
        )
    matrix = ranked.where(
        (F.col("value") > 0)
        & (F.col("n_items") >= model.min_items_per_user)
        & (F.col("rank") <= model.max_items_per_user)
    )
    if model.cell_cap_percentile > 0:  # 5. min(value, cap) / cap (simrec.core.matrix.cell_cap)
        found = matrix.agg(F.expr(matrix_rule.cell_cap_sql(model.cell_cap_percentile))).first()[0]
        cap = F.lit(1.0 if found is None else float(found))
        matrix = matrix.withColumn("value", F.least(F.col("value"), cap) / cap)
    if model.bm25_b > 0:  # simrec.core.matrix.bm25_cells: the same IEEE operations, in order
        k1, b = model.bm25_k1, model.bm25_b
        mean_n = (stats["matrix_cells"] or 0) / max(1, counts["users_kept"])
        length = F.lit(1.0 - b) + F.lit(b) * _row_cells(model) / F.lit(float(mean_n or 1.0))
        matrix = matrix.withColumn(
            "value", F.col("value") * F.lit(k1 + 1.0) / (F.lit(k1) * length + F.col("value"))
        )
    if model.user_weighting != "none":  # row scale f(n), n = the user's cells after the cap
        table = quality.user_factor_table(
            model.max_items_per_user, model.user_weighting, model.user_alpha
        )
        matrix = matrix.withColumn("n", _row_cells(model).cast("int")).join(
            _lookup(spark, "n", "f", table), "n"
        )
        matrix = matrix.withColumn("value", F.col("value") * F.col("f"))
    matrix = matrix.select("user_id", "sku", "value").persist()
    return Matrix(matrix, ranked, counts)


def _row_cells(model: model_params.ModelParams) -> Any:
    """The user's cells in the matrix (``n`` of user weighting and BM25)."""
    return F.least(F.col("n_items"), F.lit(model.max_items_per_user))


def column_stats(matrix: Matrix, params: RunParams) -> Columns:
    """4. Column norms (and the sums bounding the shuffle plan's fixed point) to the driver."""
    norms = (
        matrix.cells.groupBy("sku")
        .agg(
            F.sqrt(F.sum(F.col("value") * F.col("value"))).alias("norm"),
            F.count(F.lit(1)).alias("cells"),
            F.sum(1.0 / (F.col("value") * F.col("value"))).alias("inv_sq"),
        )
        .orderBy("sku")
        .collect()
    )
    matrix.counts["items"] = len(norms)
    matrix.counts["cells"] = int(sum(r["cells"] for r in norms))
    skus = [r["sku"] for r in norms]

    def column(name: str) -> np.ndarray:
        return np.array([float(r[name]) for r in norms], dtype=np.float64)

    g = dimsum.gamma(params.model.threshold, len(skus))
    return Columns(skus, column("norm"), column("cells"), column("inv_sq"), g)


def choose_plan(plan: str, cells: int, broadcast_max_cells: int) -> str:
    """``broadcast`` when the matrix fits the limit (``auto``), else the DIMSUM shuffle."""
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {', '.join(PLANS)}, got {plan!r}")
    if plan != "auto":
        return plan
    return "broadcast" if cells <= broadcast_max_cells else "shuffle"


def _item_index(spark: SparkSession, skus: list[str]) -> DataFrame:
    return spark.createDataFrame(
        list(zip(skus, range(len(skus)), strict=True)),
        T.StructType(
            [T.StructField("sku", T.StringType(), False), T.StructField("idx", T.IntegerType())]
        ),
    )


def shuffle_topk(
    spark: SparkSession, matrix: Matrix, cols: Columns, params: RunParams
) -> DataFrame:
    """5-6, DIMSUM's shuffle plan, for matrices larger than an executor's memory.

    Items become indices (sku order); ``p``, ``q`` and the CRC-32 item keys travel as one
    compact broadcast of NumPy arrays. Users are hashed to a few large partitions and
    sorted, and each task turns groups of whole user rows into partial pair sums with
    sparse products (simrec.core.similarity.partial_pair_sums): no per-row Python, a
    heavy user (at most max_items_per_user cells) is one more CSR row, and pairs are
    combined within the task before the single shuffle. Sums are fixed-point integers,
    so totals are exact whatever the grouping: reruns are bit-identical.
    """
    model = params.model
    skus = cols.skus
    bounds = dimsum.sum_bounds(cols.cells, cols.norms, cols.inv_sq, cols.gamma)
    scales = (similarity.fixed_point_scale(bounds[0]), similarity.fixed_point_scale(bounds[1]))
    arrays = spark.sparkContext.broadcast(
        {"norms": cols.norms, "item_keys": dimsum.string_keys(skus), "skus": np.array(skus, object)}
    )
    user_parts = max(
        spark.sparkContext.defaultParallelism, math.ceil(matrix.counts["cells"] / CELLS_PER_TASK)
    )
    partial = (
        matrix.cells.join(F.broadcast(_item_index(spark, skus)), "sku")
        .select("user_id", _crc32("user_id").alias("ukey"), "idx", "value")
        .repartition(user_parts, "user_id")
        .sortWithinPartitions("user_id", "idx")
        .mapInArrow(
            _partial_pairs_fn(arrays, model.seed, cols.gamma, len(skus), scales), PARTIAL_SCHEMA
        )
    )
    pair_parts = int(spark.conf.get("spark.sql.shuffle.partitions"))
    return (
        partial.repartition(pair_parts, "a")
        .sortWithinPartitions("a", "b")
        .mapInArrow(_topk_fn(arrays, scales, model.top_k, model.shrinkage), NEIGHBORS_DDL)
    )


def broadcast_topk(
    spark: SparkSession, matrix: Matrix, cols: Columns, params: RunParams
) -> DataFrame:
    """5-6, the broadcast plan, when the matrix fits in an executor's memory.

    The matrix (built with DataFrames) comes to the driver as Arrow, is sampled there by
    the single-machine engine's own rule (``similarity.kernel_operands``: the same keep
    decisions, scaling and user order), and is broadcast once; each task runs the
    compiled kernel over one range of items. No pair ever crosses the network, and the
    output is the single-machine engine's, bit for bit.
    """
    import pandas as pd
    import scipy.sparse as sp

    model = params.model
    skus = cols.skus
    table = (
        matrix.cells.join(F.broadcast(_item_index(spark, skus)), "sku")
        .select("user_id", "idx", "value")
        .toArrow()
    )
    codes, users = pd.factorize(
        table.column("user_id").to_numpy(zero_copy_only=False), sort=True
    )
    m = sp.csr_matrix(
        (
            table.column("value").to_numpy(),
            (codes, table.column("idx").to_numpy().astype(np.int64)),
        ),
        shape=(len(users), len(skus)),
    )
    operands, emitted, _ = similarity.kernel_operands(
        m, model.threshold, model.seed, dimsum.string_keys(users), dimsum.string_keys(skus)
    )
    ranges = item_ranges(operands, max(1, spark.sparkContext.defaultParallelism * TASKS_PER_CORE))
    if not ranges:  # no item (an empty export): no neighbors row, and no task to run
        return spark.createDataFrame([], NEIGHBORS_DDL)
    shared = spark.sparkContext.broadcast(
        {"operands": operands, "skus": np.array(skus, object), "emitted": emitted}
    )
    schema = T.StructType(
        [T.StructField("first", T.IntegerType()), T.StructField("last", T.IntegerType())]
    )
    return (
        spark.createDataFrame(ranges, schema)
        .repartition(len(ranges))
        .mapInArrow(_range_topk_fn(shared, model.top_k, model.shrinkage), NEIGHBORS_DDL)
    )


def item_ranges(operands: similarity.KernelOperands, n_ranges: int) -> list[tuple[int, int]]:
    """Contiguous item ranges of about equal work (item ``i`` costs the summed row
    lengths of its users: the products the kernel accumulates for it)."""
    row_len = np.diff(operands.indptr)
    summed = np.r_[0, np.cumsum(row_len[operands.t_indices])]
    per_item = summed[operands.t_indptr[1:]] - summed[operands.t_indptr[:-1]]
    cost = np.cumsum(per_item.astype(np.float64) + 1.0)
    cuts = np.searchsorted(cost, cost[-1] * np.arange(1, n_ranges) / n_ranges) if len(cost) else []
    bounds = sorted({0, *map(int, cuts), operands.n_items})
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _range_topk_fn(shared: Any, top_k: int, shrinkage: float) -> Any:
    """``mapInArrow`` step: item ranges -> one neighbors row per item of each range."""

    def topk(batches: Any) -> Any:
        import pyarrow as pa

        value = shared.value
        operands, skus = value["operands"], value["skus"]
        for batch in batches:
            for first, last in zip(
                batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
            ):
                count, nbr, score, users, pairs = operands.topk(
                    first, last, top_k, shrinkage, n_threads=1
                )
                rows = np.flatnonzero(count)
                offsets = np.r_[0, np.cumsum(count[rows])].astype(np.int32)
                structs = pa.StructArray.from_arrays(
                    [pa.array(skus[nbr], pa.string()), pa.array(score), pa.array(users)],
                    names=NEIGHBOR_NAMES,
                )
                n_pairs = np.zeros(len(rows), dtype=np.int64)
                n_emitted = np.zeros(len(rows), dtype=np.int64)
                if len(rows):
                    n_pairs[0] = int(pairs.sum())
                    n_emitted[0] = value["emitted"] if first == 0 else 0
                yield pa.RecordBatch.from_arrays(
                    [
                        pa.array(skus[first + rows], pa.string()),
                        pa.ListArray.from_arrays(pa.array(offsets), structs),
                        pa.array(n_pairs),
                        pa.array(n_emitted),
                    ],
                    names=["sku", layout.NEIGHBORS, "n_pairs", "n_emitted"],
                )

    return topk


def item_stats(matrix: Matrix) -> DataFrame:
    """Per sku of the window (before the user filters): distinct users, summed weight,
    and the trending sums (recent and prior weight), in the output schema's order."""
    return matrix.ranked.groupBy("sku").agg(
        F.count(F.lit(1)).alias("users"),
        F.sum("value").alias("weight"),
        F.sum("recent_weight").alias("recent_weight"),
        F.sum("prior_weight").alias("prior_weight"),
    ).select(*(name for name, _ in layout.ITEMS_FIELDS))


def _configure(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    if (
        spark.sparkContext.master.startswith("local")
        and spark.conf.get("spark.sql.shuffle.partitions") == "200"
    ):
        spark.conf.set("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))


def read_export_manifest(spark: SparkSession, uri: str) -> dict[str, Any]:
    """0. The export manifest the run reads (another stage's manifest is an error)."""
    export_manifest = json.loads(_read_text(spark, uri))
    if not isinstance(export_manifest, dict) or export_manifest.get("stage") != "export":
        raise ValueError(f"{uri} is not an export manifest")
    return export_manifest


def topk(
    spark: SparkSession, matrix: Matrix, cols: Columns, params: RunParams, plan: str
) -> DataFrame:
    """5-6. One neighbors row per item, by the chosen plan (same output either way)."""
    step = broadcast_topk if plan == "broadcast" else shuffle_topk
    return step(spark, matrix, cols, params)


def tuned(
    spark: SparkSession, export_manifest: dict, params: RunParams
) -> tuple[RunParams, dict[str, Any] | None]:
    """0b. With ``tune_holdout_days``, the nightly tuning step on the driver
    (simrec.evaluation.nightly, the local engine's fits on the window's events, which the
    Spark job's output equals bit for bit): the parameters to train with, and its record."""
    if not params.model.tune_holdout_days:  # off: the events are not even read
        return params, None
    events = _read_events(spark, export_manifest, with_ts=True).toPandas()
    return nightly.tuned_run(events, params, "spark")


def pair_counts(ranked_pairs: DataFrame) -> dict[str, int]:
    """The manifest's pair counts: the per-row shares the top-K steps emitted, summed."""
    stats = ranked_pairs.agg(
        F.sum("n_pairs").alias("pairs"), F.sum("n_emitted").alias("emitted_pairs")
    ).first()
    return {"pairs": int(stats["pairs"] or 0), "emitted_pairs": int(stats["emitted_pairs"] or 0)}


def write_tables(
    spark: SparkSession, ranked_pairs: DataFrame, matrix: Matrix, output_uri: str
) -> dict[str, str]:
    """7. The two tables (overwritten); returns their URIs, the manifest's ``outputs``."""
    uris = layout.similarity_outputs(output_uri)
    outputs = {name: uris[name] for name in (layout.NEIGHBORS, layout.ITEMS)}
    ranked_pairs.select(*layout.NEIGHBORS_COLUMNS).write.mode("overwrite").parquet(
        outputs[layout.NEIGHBORS]
    )
    item_stats(matrix).write.mode("overwrite").parquet(outputs[layout.ITEMS])
    return outputs


# --- frequently bought together (simrec.core.baskets): the same steps over baskets -----
def basket_events(spark: SparkSession, export_manifest: dict, basket_key: str) -> DataFrame:
    """The export's events with ``user_id`` replaced by the basket id of
    ``simrec.core.baskets.basket_ids`` (the same strings), and ``fell_back``: the event
    had no value for the key. Partitions without the grouping columns read as null."""
    uris = [day["uri"] for day in export_manifest.get("days", [])]
    column = baskets.key_column(basket_key)
    if not uris:
        schema = T.StructType([*EVENT_SCHEMA.fields, T.StructField("ts", T.TimestampType())])
        events = spark.createDataFrame([], schema)
    else:
        events = spark.read.option("mergeSchema", "true").parquet(*uris)
    key = F.col(column) if column is not None and column in events.columns else F.lit(None)
    day = F.concat(F.lit(baskets.DAY_PREFIX), F.date_format("ts", "yyyy-MM-dd"))
    group = F.coalesce(F.concat(F.lit(baskets.KEY_PREFIX), key.cast("string")), day)
    return events.select(
        F.concat(F.col("user_id"), F.lit(baskets.SEPARATOR), group).alias("user_id"),
        "sku", "action", "ts", key.isNull().alias("fell_back"),
    )  # fmt: skip


def bought_together(
    spark: SparkSession, export_manifest: dict, params: RunParams, output_uri: str,
    plan: str, broadcast_max_cells: int,
) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """The second neighbor model: matrix rule, column stats and top-K of the related
    items, over baskets with ``ModelParams.basket``'s weights; written to its own table.
    Returns the table's URI and the manifest's ``bought_together`` entry."""
    model = params.model
    basket_params = dataclasses.replace(params, model=model.basket())
    events = basket_events(spark, export_manifest, model.basket_key).persist()
    matrix = build_matrix(spark, export_manifest, basket_params, events.drop("fell_back"))
    cols = column_stats(matrix, basket_params)
    chosen = choose_plan(plan, matrix.counts["cells"], broadcast_max_cells)
    ranked = topk(spark, matrix, cols, basket_params, chosen)
    uri = layout.similarity_outputs(output_uri)[layout.BOUGHT_TOGETHER]
    ranked.select(*layout.NEIGHBORS_COLUMNS).write.mode("overwrite").parquet(uri)
    kept = F.col("action").isin(*model_params.BASKET_ACTIONS[model.basket_actions])
    used = events.agg(F.sum(F.when(kept, 1).otherwise(0)).alias("events"),
                      F.sum(F.when(kept & F.col("fell_back"), 1).otherwise(0)).alias("fell"),
                      ).first()  # fmt: skip
    entry = baskets.summary(model.basket_key, model.basket_actions, int(used["events"] or 0),
                            int(used["fell"] or 0), matrix.counts["users_kept"],
                            spark.read.parquet(uri).count())  # fmt: skip
    for df in (events, matrix.cells, matrix.ranked):
        df.unpersist()
    return uri, entry


def write_manifest(spark: SparkSession, output_uri: str, manifest: dict[str, Any]) -> None:
    """8. The manifest, last: its presence says the tables are complete."""
    uri = layout.similarity_outputs(output_uri)["manifest"]
    _write_text(spark, uri, json.dumps(manifest, indent=2, sort_keys=True))


def run(
    spark: SparkSession,
    export_manifest_uri: str,
    output_uri: str,
    overrides: dict[str, Any] | None = None,
    plan: str = "auto",
    broadcast_max_cells: int = BROADCAST_MAX_CELLS,
) -> dict[str, Any]:
    """Compute and write one run's similarities; returns the manifest (written last)."""
    t0 = time.perf_counter()
    _configure(spark)
    export_manifest = read_export_manifest(spark, export_manifest_uri)
    params = resolve_params(export_manifest["params"], overrides)
    refused = model_params.local_engine_only(params.model)
    if refused:  # never a silently different model than the one asked for
        raise ValueError(
            f"{', '.join(refused)}: only the local engine implements these yet; "
            "leave them at their off values for the Spark job"
        )
    # a stale manifest must never describe new partial output
    _delete(spark, layout.similarity_outputs(output_uri)["manifest"])

    trained, tuning = tuned(spark, export_manifest, params)
    matrix = build_matrix(spark, export_manifest, trained)
    cols = column_stats(matrix, trained)
    counts = matrix.counts
    chosen = choose_plan(plan, counts["cells"], broadcast_max_cells)
    t1 = time.perf_counter()
    ranked_pairs = topk(spark, matrix, cols, trained, chosen).persist()
    counts.update(pair_counts(ranked_pairs))
    t2 = time.perf_counter()

    outputs = write_tables(spark, ranked_pairs, matrix, output_uri)
    counts["neighbor_rows"] = spark.read.parquet(outputs[layout.NEIGHBORS]).count()
    for df in (ranked_pairs, matrix.cells, matrix.ranked):
        df.unpersist()
    outputs[layout.BOUGHT_TOGETHER], bought = bought_together(
        spark, export_manifest, params, output_uri, plan, broadcast_max_cells
    )
    t3 = time.perf_counter()
    manifest = similarity_manifest(
        export_manifest, export_manifest_uri, params, engine="spark", outputs=outputs,
        counts=counts, gamma=cols.gamma, timings=stage_timings(t0, t1, t2, t3), plan=chosen,
        tuning=tuning,
    )  # fmt: skip
    manifest["bought_together"] = bought
    write_manifest(spark, output_uri, manifest)
    return manifest


# --- command line --------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export-manifest", required=True, help="export _MANIFEST.json URI")
    parser.add_argument("--output", required=True, help="similarities/<tenant>/<run_id> URI")
    model_params.add_arguments(parser)
    parser.add_argument("--master", help="Spark master for local runs (e.g. local[*])")
    parser.add_argument(
        "--plan", choices=PLANS, default="auto", help="similarity plan (same output)"
    )
    parser.add_argument(
        "--broadcast-max-cells", type=int, default=BROADCAST_MAX_CELLS,
        help="largest matrix the auto plan broadcasts",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logs.configure()
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
        overrides = model_params.overrides_from_args(args)
        manifest = run(
            spark, args.export_manifest, args.output, overrides,
            plan=args.plan, broadcast_max_cells=args.broadcast_max_cells,
        )
    except Exception as exc:  # one line for the operator; the log above has the frames
        print(f"error: the similarity job failed: {root_cause(exc)}", file=sys.stderr)
        return 1
    finally:
        if existing is None:
            spark.stop()
    print(json.dumps({"counts": manifest["counts"], "timings": manifest["timings"]}))
    return 0


def root_cause(exc: BaseException) -> str:
    """The innermost cause of a failure, one line: for a JVM error (Py4J) the Java root
    cause (``java.io.IOException: Mkdirs failed to create ...``), not its stack frames."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        cause = java
        while cause.getCause() is not None:
            cause = cause.getCause()
        return " ".join(str(cause.toString()).split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())


if __name__ == "__main__":  # python -m simrec.jobs.spark_similarity
    sys.exit(main())
