"""Similarity build: our Spark job and single-machine engine against their peers.

For each shop size (generated events, Zipf popularity, about 11 distinct items per user):

* ``S``: 50k users x 10k items, 1M events; ``M``: 300k users x 50k items, 6M events;
  ``L`` (``--sizes L``): 1M users x 150k items, 20M events, single-machine contenders only.

it writes the events once (an export: day partition + manifest) and builds the matrix
once (the matrix rule, ``simrec.core.matrix``), then runs every contender in its own
subprocess, each from the same files:

* ``spark-broadcast`` / ``spark-shuffle``: ``simrec.jobs.spark_similarity`` on ``local[2]``
  with each similarity plan, events to top-K written;
* ``mllib``: what a Spark user writes: same events and matrix rule as DataFrames, an RDD of
  sparse vectors built in Python, ``RowMatrix.columnSimilarities(threshold)``, then the same
  top-K (window) and a Parquet write, phases timed separately; same Spark configuration;
* ``scipy``: exact cosine (normalised columns, A^T A) + top-K per row;
* ``implicit``: ``CosineRecommender(K=top_k + 1).fit`` (optional: the ``bench`` extra);
* ``local``: ``cosine_topk`` (compiled kernel, all cores), exact and at the threshold;
  ``local-numpy``: its NumPy/scipy reference path (once).

Timing: best of ``--repeat`` (3) for the single-machine contenders, one run for the Spark
ones; the machine is shared and noisy. Peak memory per contender: ``ru_maxrss`` of its
subprocess (``wait4``); for Spark the driver's and the JVM's (``VmHWM`` of the java child)
are reported separately (local mode: the executor lives in that JVM). Quality against exact
cosine: recall of the true top-10 neighbors per item and the mean absolute error of the
scores of emitted pairs whose exact cosine is at least the threshold.

Writes ``.bench/similarity.json`` and ``.bench/similarity.md``; prints ratios ours/peer.
Run: ``python bench/similarity.py [--sizes S,M] [--quick]`` (``--quick``: S only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from common import OUT, ROOT, write_results  # noqa: E402

SIZES = {  # events, users, items
    "S": (1_000_000, 50_000, 10_000),
    "M": (6_000_000, 300_000, 50_000),
    "L": (20_000_000, 1_000_000, 150_000),
}
END = dt.date(2024, 3, 31)
RUN_DATE = END + dt.timedelta(days=1)
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.memory": "6g",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.session.timeZone": "UTC",
}


# --- data -------------------------------------------------------------------------------
def prepare(size: str, threshold: float, top_k: int) -> Path:
    """Events as an export (one folder + manifest) and the matrix (npz), once per size."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simrec import storage
    from simrec.core import dimsum
    from simrec.core.matrix import build_matrix
    from simrec.core.params import ModelParams
    from simrec.core.runs import RunParams
    from simrec.generate import generate_events

    n_events, n_users, n_items = SIZES[size]
    folder = OUT / "similarity" / size
    done = folder / "ready.json"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ev = generate_events(n_events, n_users=n_users, n_items=n_items, end_date=END, seed=5)
    day = folder / "export" / "dt=all"
    day.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(ev[["user_id", "sku", "action", "ts"]], preserve_index=False)
    pq.write_table(table, day / "part-0.parquet", row_group_size=1_000_000)
    # Plain cosine (no quality features): the engines are timed on the bare algorithm.
    model = ModelParams().plain().replace(threshold=threshold, top_k=top_k)
    params = RunParams(tenant="bench", date=RUN_DATE, window_days=30, model=model)
    manifest = {
        "stage": "export",
        "run_id": params.run_id,
        "tenant": "bench",
        "params": params.to_json(),
        "days": [{"date": END.isoformat(), "uri": str(day), "rows": len(ev)}],
        "counts": {"rows_read": len(ev), "rows_valid": len(ev), "rows_rejected": 0},
    }
    storage.write_json(str(folder / "export" / "_MANIFEST.json"), manifest)
    m = build_matrix(ev["user_id"], ev["sku"], ev["action"], model)
    sp.save_npz(folder / "matrix.npz", m.matrix)
    np.save(folder / "user_keys.npy", dimsum.string_keys(m.user_ids))
    np.save(folder / "item_keys.npy", dimsum.string_keys(m.skus))
    pd.Series(m.skus).to_frame("sku").to_parquet(folder / "skus.parquet")
    per_user = np.diff(m.matrix.indptr)
    info = {
        **m.counts,
        "co_occurrences": int((per_user * (per_user - 1) // 2).sum()),
        "prepare_s": round(time.perf_counter() - t0, 1),
    }
    done.write_text(json.dumps(info))
    return folder


def load_matrix(folder: Path) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    m = sp.load_npz(folder / "matrix.npz").tocsr()
    return m, np.load(folder / "user_keys.npy"), np.load(folder / "item_keys.npy")


def save_topk(path: Path, indptr: np.ndarray, nbr: np.ndarray, score: np.ndarray) -> None:
    np.savez(path, indptr=indptr, neighbors=nbr, scores=score)


def best_of(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# --- contenders (each runs in its own subprocess) ---------------------------------------
def scipy_exact_topk(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A good scipy baseline: normalise columns, A^T A, drop the diagonal, then per row an
    ``argpartition`` for the top-K and a sort of those K only (score desc, index asc)."""
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=0)).ravel())
    unit = (m @ sp.diags(1.0 / np.where(norms > 0, norms, 1.0))).tocsc()
    sim = (unit.T @ unit).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    n = sim.shape[0]
    cols, vals = [], []
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        lo, hi = sim.indptr[i], sim.indptr[i + 1]
        d, c = sim.data[lo:hi], sim.indices[lo:hi]
        if hi - lo > k:
            sel = np.argpartition(-d, k - 1)[:k]
            d, c = d[sel], c[sel]
        order = np.lexsort((c, -d))
        cols.append(c[order])
        vals.append(d[order])
        counts[i] = len(order)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    empty = np.zeros(0)
    return (
        indptr,
        np.concatenate(cols) if cols else empty.astype(np.int32),
        np.concatenate(vals) if vals else empty,
    )


def worker_scipy(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    m, _, _ = load_matrix(folder)
    seconds, out = best_of(lambda: scipy_exact_topk(m, args.top_k), args.repeat)
    save_topk(folder / f"out-{args.label}.npz", *out)
    return {"seconds": seconds, "pairs_out": int(len(out[1]))}


def worker_implicit(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    from implicit.nearest_neighbours import CosineRecommender
    from threadpoolctl import threadpool_limits

    m, _, _ = load_matrix(folder)
    with threadpool_limits(1, "blas"):
        seconds, model = best_of(
            lambda: _fit_implicit(CosineRecommender, m, args.top_k), args.repeat
        )
    sim = model.similarity.tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    row = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
    order = np.lexsort((sim.indices, -sim.data, row))
    indptr = np.zeros(sim.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=sim.shape[0]), out=indptr[1:])
    save_topk(folder / f"out-{args.label}.npz", indptr, sim.indices[order], sim.data[order])
    return {"seconds": seconds, "pairs_out": int(sim.nnz)}


def _fit_implicit(cls: Any, m: sp.csr_matrix, k: int) -> Any:
    model = cls(K=k + 1)  # its lists include the item itself
    model.fit(m, show_progress=False)
    return model


def worker_local(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    from simrec.core.similarity import cosine_topk

    m, uk, ik = load_matrix(folder)
    repeat = 1 if args.kernel == "numpy" else args.repeat
    seconds, t = best_of(
        lambda: cosine_topk(m, args.threshold, 42, args.top_k, uk, ik, kernel=args.kernel),
        repeat,
    )
    save_topk(folder / f"out-{args.label}.npz", t.indptr, t.neighbors, t.scores)
    return {"seconds": seconds, "pairs_out": int(len(t.neighbors)),
            "emitted_pairs": t.emitted_pairs, "pairs": t.pairs}


def _spark(conf_extra: dict[str, str] | None = None) -> Any:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("bench-similarity")
    for key, value in {**SPARK_CONF, **(conf_extra or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _own_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _java_hwm_mb() -> float | None:
    """Peak RSS of this process's java child (the Spark JVM: driver + local executor)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].split(")", 1)[0]
        except OSError:
            continue
        if fields[1] == me and comm == "java":
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return None


def worker_spark(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    from simrec.jobs import spark_similarity
    from simrec.storage.similarities import neighbor_pairs, read_neighbors

    spark = _spark()
    out = folder / f"spark-{args.label}"
    t0 = time.perf_counter()
    manifest = spark_similarity.run(
        spark, str(folder / "export" / "_MANIFEST.json"), str(out),
        {"threshold": args.threshold, "top_k": args.top_k}, plan=args.plan,
    )
    seconds = time.perf_counter() - t0
    jvm = _java_hwm_mb()
    spark.stop()
    pairs = neighbor_pairs(read_neighbors(manifest["outputs"]["neighbors"]))
    _save_pairs(folder, args.label, pairs)
    return {"seconds": seconds, "phases": manifest["timings"], "jvm_peak_mb": jvm,
            "emitted_pairs": manifest["counts"]["emitted_pairs"],
            "pairs": manifest["counts"]["pairs"]}


def _save_pairs(folder: Path, label: str, pairs: Any) -> None:
    """Long (sku, neighbor, rank, score) -> the npz top-K form over matrix columns."""
    import pandas as pd

    skus = pd.read_parquet(folder / "skus.parquet")["sku"]
    idx = pd.Series(np.arange(len(skus)), index=skus.to_numpy())
    a = idx.reindex(pairs["sku"]).to_numpy()
    b = idx.reindex(pairs["neighbor"]).to_numpy()
    order = np.lexsort((b, -pairs["score"].to_numpy(), a))
    indptr = np.zeros(len(skus) + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=len(skus)), out=indptr[1:])
    save_topk(folder / f"out-{label}.npz", indptr, b[order], pairs["score"].to_numpy()[order])


def worker_mllib(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """MLlib as a Spark user would write it, from the same export files."""
    from pyspark.mllib.linalg import Vectors
    from pyspark.mllib.linalg.distributed import RowMatrix
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from simrec.core.actions import ActionWeights

    spark = _spark()
    manifest = json.loads((folder / "export" / "_MANIFEST.json").read_text())
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    weights = ActionWeights().as_dict()
    w = F.create_map(*[x for a, v in weights.items() for x in (F.lit(a), F.lit(float(v)))])
    events = spark.read.parquet(*[d["uri"] for d in manifest["days"]])
    cells = events.groupBy("user_id", "sku").agg(F.sum(w[F.col("action")]).alias("value"))
    per_user = Window.partitionBy("user_id")
    cells = cells.withColumn("n", F.count(F.lit(1)).over(per_user)).where("n >= 2 AND value > 0")
    skus = cells.select("sku").distinct().orderBy("sku")
    index = skus.rdd.zipWithIndex().map(lambda r: (r[0][0], int(r[1]))).toDF(["sku", "idx"])
    n_items = index.count()
    rows = (
        cells.join(F.broadcast(index), "sku")
        .groupBy("user_id")
        .agg(F.collect_list(F.struct("idx", "value")).alias("cells"))
        .rdd.map(lambda r: Vectors.sparse(n_items, sorted((c[0], c[1]) for c in r["cells"])))
        .cache()
    )
    n_rows = rows.count()
    phases["load_rows_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    matrix = RowMatrix(rows, numRows=n_rows, numCols=n_items)
    sims = matrix.columnSimilarities(args.threshold).entries.cache()
    n_pairs = sims.count()
    phases["column_similarities_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    entries = sims.map(lambda e: (int(e.i), int(e.j), float(e.value))).toDF(["a", "b", "score"])
    both = entries.unionByName(entries.select(F.col("b").alias("a"), F.col("a").alias("b"),
                                              "score"))
    ranked = both.withColumn(
        "rank",
        F.row_number().over(Window.partitionBy("a").orderBy(F.desc("score"), F.asc("b"))),
    ).where(F.col("rank") <= args.top_k)
    out = folder / f"mllib-{args.label}"
    ranked.write.mode("overwrite").parquet(str(out))
    phases["topk_write_s"] = time.perf_counter() - t2
    seconds = time.perf_counter() - t0
    jvm = _java_hwm_mb()
    spark.stop()
    import pandas as pd

    got = pd.read_parquet(out)
    skus = pd.read_parquet(folder / "skus.parquet")["sku"].to_numpy()
    pairs = pd.DataFrame({"sku": skus[got["a"]], "neighbor": skus[got["b"]],
                          "score": got["score"]})
    _save_pairs(folder, args.label, pairs)
    return {"seconds": seconds, "phases": phases, "jvm_peak_mb": jvm, "pairs": n_pairs}


WORKERS = {"scipy": worker_scipy, "implicit": worker_implicit, "local": worker_local,
           "spark": worker_spark, "mllib": worker_mllib}


# --- the parent: runs the contenders, scores them ---------------------------------------
def run_worker(name: str, label: str, folder: Path, args: argparse.Namespace,
               threshold: float, kernel: str = "cython", plan: str = "auto") -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
           "--folder", str(folder), "--label", label, "--threshold", str(threshold),
           "--top-k", str(args.top_k), "--repeat", str(args.repeat), "--kernel", kernel,
           "--plan", plan]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, text=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {"contender": label, "threshold": threshold,
                              "wall_with_startup_s": time.perf_counter() - t0}
    if proc.returncode not in (0, None):
        result["error"] = f"exit {proc.returncode}"
        return result
    result.update(json.loads(stdout.strip().splitlines()[-1]))
    # VmHWM read by the worker itself: ru_maxrss would carry this (large) parent's RSS
    # over fork + exec.
    result["ru_maxrss_mb"] = usage.ru_maxrss / 1024
    print(f"  {label:<22} t={threshold:<4} {result['seconds']:8.2f}s  "
          f"peak {result['peak_mb']:7.0f} MB"
          + (f"  jvm {result['jvm_peak_mb']:.0f} MB" if result.get("jvm_peak_mb") else ""),
          flush=True)
    return result


def quality(folder: Path, label: str, exact: sp.csr_matrix, exact_top: Any,
            threshold: float) -> dict[str, float]:
    """Recall@10 against the exact top-10 and MAE on emitted pairs with exact >= threshold."""
    path = folder / f"out-{label}.npz"
    if not path.exists():
        return {}
    got = np.load(path)
    indptr, nbr, score = got["indptr"], got["neighbors"], got["scores"]
    n = len(indptr) - 1
    counts = np.diff(indptr)
    rows = np.repeat(np.arange(n), counts)
    rank = np.arange(len(rows)) - np.repeat(indptr[:-1], counts)
    e_ptr, e_nbr = exact_top
    e_counts = np.minimum(np.diff(e_ptr), 10)
    e_rows = np.repeat(np.arange(n), np.diff(e_ptr))
    e_rank = np.arange(len(e_rows)) - np.repeat(e_ptr[:-1], np.diff(e_ptr))
    e_keys = e_rows[e_rank < 10].astype(np.int64) * n + e_nbr[e_rank < 10]
    g_keys = rows[rank < 10].astype(np.int64) * n + nbr[rank < 10]
    hit = np.isin(e_keys, g_keys)
    has = e_counts > 0
    hits = np.bincount(e_rows[e_rank < 10][hit], minlength=n)
    recall = float((hits[has] / e_counts[has]).mean()) if has.any() else 1.0
    true = np.asarray(exact[rows, nbr]).ravel()
    above = true >= threshold
    mae = float(np.abs(score[above] - true[above]).mean()) if above.any() else 0.0
    return {"recall_at_10": recall, "mae_above_threshold": mae, "pairs_scored": int(above.sum())}


def exact_matrix(folder: Path) -> sp.csr_matrix:
    m, _, _ = load_matrix(folder)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=0)).ravel())
    unit = m @ sp.diags(1.0 / np.where(norms > 0, norms, 1.0))
    sim = (unit.T.tocsr() @ unit).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    return sim


def bench_size(size: str, args: argparse.Namespace) -> dict[str, Any]:
    folder = prepare(size, args.threshold, args.top_k)
    info = json.loads((folder / "ready.json").read_text())
    print(f"\n== {size}: {info['users_kept']} users x {info['items']} items, "
          f"{info['cells']} cells, {info['co_occurrences']} co-occurrences", flush=True)
    t = args.threshold
    runs = [run_worker("scipy", "scipy-exact", folder, args, 0.0)]
    if _has_implicit():
        runs.append(run_worker("implicit", "implicit", folder, args, 0.0))
    runs.append(run_worker("local", "local-exact", folder, args, 0.0))
    runs.append(run_worker("local", "local", folder, args, t))
    if size != "L" or args.numpy_at_l:
        runs.append(run_worker("local", "local-numpy-exact", folder, args, 0.0, "numpy"))
    if size != "L" and not args.no_spark:
        runs.append(run_worker("spark", "spark-broadcast", folder, args, t, plan="broadcast"))
        runs.append(run_worker("spark", "spark-shuffle", folder, args, t, plan="shuffle"))
        runs.append(run_worker("mllib", "mllib", folder, args, t))
        if size == "S":
            runs.append(run_worker("spark", "spark-ours-exact", folder, args, 0.0))
            runs.append(run_worker("mllib", "mllib-exact", folder, args, 0.0))
    exact = exact_matrix(folder)
    ref = np.load(folder / "out-scipy-exact.npz")
    for r in runs:
        r.update(quality(folder, r["contender"], exact, (ref["indptr"], ref["neighbors"]),
                         r["threshold"] or t))
    return {"size": size, "data": info, "runs": runs}


def _has_implicit() -> bool:
    try:
        import implicit  # noqa: F401
    except ImportError:
        print("  implicit not installed (pip install '.[bench]'): skipped")
        return False
    return True


def ratios(runs: list[dict[str, Any]]) -> dict[str, float]:
    by = {r["contender"]: r.get("seconds") for r in runs if "seconds" in r}
    pairs = [("local-exact", "implicit"), ("local-exact", "scipy-exact"),
             ("local", "implicit"), ("local-exact", "local-numpy-exact"),
             ("spark-broadcast", "mllib"), ("spark-shuffle", "mllib"),
             ("spark-ours-exact", "mllib-exact")]
    out = {f"{a}/{b}": by[a] / by[b] for a, b in pairs if by.get(a) and by.get(b)}
    # The Spark job's similarity phase against the kernel on the same cores and sample.
    phase = {r["contender"]: r["phases"].get("similarity_s") for r in runs if "phases" in r}
    for name in ("spark-broadcast", "spark-shuffle"):
        if phase.get(name) and by.get("local"):
            out[f"{name} similarity phase/local"] = phase[name] / by["local"]
    return out


def _num(x: Any) -> str:
    return "" if x is None else f"{x:,.0f}"


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"## Similarity build (top-{args.top_k}, threshold {args.threshold}; "
             f"best of {args.repeat} single-machine, 1 Spark run)", ""]
    for res in results:
        d = res["data"]
        lines += [f"### {res['size']}: {d['users_kept']:,} users x {d['items']:,} items, "
                  f"{d['cells']:,} cells", "",
                  "| contender | threshold | time s | peak MB | JVM peak MB | distinct pairs | "
                  "top-K rows | recall@10 | MAE >= t |", "|---|---|---|---|---|---|---|---|---|"]
        for r in res["runs"]:
            if "error" in r:
                lines.append(f"| {r['contender']} | {r['threshold']} | {r['error']} |||||| ")
                continue
            lines.append(
                f"| {r['contender']} | {r['threshold']} | {r['seconds']:.2f} | "
                f"{r['peak_mb']:.0f} | {_num(r.get('jvm_peak_mb'))} | "
                f"{_num(r.get('pairs'))} | {_num(r.get('pairs_out'))} | "
                f"{r.get('recall_at_10', float('nan')):.4f} | "
                f"{r.get('mae_above_threshold', float('nan')):.2e} |")
        phases = {r["contender"]: r["phases"] for r in res["runs"] if "phases" in r}
        for name, ph in phases.items():
            lines.append(f"\n{name} phases: " + ", ".join(
                f"{k} {v:.1f}" for k, v in ph.items()))
        lines += ["", "Ratios (time ours / peer): " + ", ".join(
            f"{k} {v:.2f}" for k, v in res["ratios"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="S,M")
    parser.add_argument("--quick", action="store_true", help="S only")
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--name", default="similarity", help="result file name")
    parser.add_argument("--numpy-at-l", action="store_true")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    parser.add_argument("--kernel", default="cython", help=argparse.SUPPRESS)
    parser.add_argument("--plan", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = WORKERS[args.worker](Path(args.folder), args)
        result["peak_mb"] = _own_hwm_mb()
        print(json.dumps(result))
        return 0
    sizes = ["S"] if args.quick else [s.strip() for s in args.sizes.split(",") if s.strip()]
    results = []
    for size in sizes:
        res = bench_size(size, args)
        res["ratios"] = ratios(res["runs"])
        print("  ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in res["ratios"].items()))
        results.append(res)
    targets = {}
    for res in results:
        if res["size"] == "L":  # issue 17.2: the local engine at most implicit's fit time
            targets["L_local_vs_implicit_le_1.0"] = (
                res["ratios"].get("local-exact/implicit", 9) <= 1.0
            )
        if res["size"] == "M":
            rt = res["ratios"]
            by = {r["contender"]: r for r in res["runs"]}
            targets |= {
                # issue 17: broadcast plan <= 0.2x MLlib + top-K, its similarity phase <= 5x
                # the kernel's time on the same cores; the shuffle plan still beats MLlib.
                "spark_broadcast_vs_mllib_le_0.2": rt.get("spark-broadcast/mllib", 9) <= 0.2,
                "spark_broadcast_phase_vs_kernel_le_5": rt.get(
                    "spark-broadcast similarity phase/local", 99) <= 5,
                "spark_shuffle_vs_mllib_le_0.7": rt.get("spark-shuffle/mllib", 9) <= 0.7,
                "spark_recall_ge_0.95": by.get("spark-broadcast", {}).get(
                    "recall_at_10", 0) >= 0.95,
                "local_vs_implicit_le_1.2": rt.get("local-exact/implicit", 9) <= 1.2,
                "local_peak_lt_1500mb": by.get("local-exact", {}).get("peak_mb", 1e9) < 1500,
                # ties aside: a tie at rank 10 may break differently from scipy's
                "local_recall_exact_ties_aside": by.get("local-exact", {}).get(
                    "recall_at_10", 0) >= 0.999,
            }
    write_results(args.name, {"results": results, "targets": targets,
                                 "args": vars(args)}, markdown(results, args))
    if targets:
        print("targets:", json.dumps(targets))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
