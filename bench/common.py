"""Shared by the benchmark scripts: synthetic models, timing statistics, result files.

Every benchmark writes ``.bench/<name>.json`` and ``.bench/<name>.md`` and prints its
table with ratios against baselines measured in the same run (never against figures
remembered from another machine).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simrec import publishing  # noqa: E402
from simrec.core.snapshot import ModelSnapshot  # noqa: E402

SIZES = {"S": (5_000, 50), "M": (50_000, 100), "L": (200_000, 100)}


def synthetic_model(
    n_items: int, k: int, seed: int = 0, version: str = "bench", catalog: bool = False
) -> ModelSnapshot:
    """A model shaped like a shop's: neighbors drawn with a popularity skew (a few items
    appear in many lists), ``k`` per item (fewer when duplicates collapse), scores sorted
    descending per row, Zipf-like popularity."""
    rng = np.random.default_rng(seed)
    draws = k + k // 4
    rows = np.repeat(np.arange(n_items, dtype=np.int64), draws)
    cols = (n_items * rng.random(len(rows)) ** 2).astype(np.int64)  # skewed to low ids
    keep = cols != rows
    keys = np.unique(rows[keep] * n_items + cols[keep])
    rows, cols = keys // n_items, keys % n_items
    counts = np.bincount(rows, minlength=n_items)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    perm = rng.permutation(len(rows))  # random neighbor order before cutting to k
    order = np.lexsort((perm, rows))
    rows, cols = rows[order], cols[order]
    rank = np.arange(len(rows)) - np.repeat(starts, counts)
    keep = rank < k
    rows, cols = rows[keep], cols[keep]
    scores = rng.random(len(rows)).astype(np.float32)
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_items), out=indptr[1:])
    popularity = np.floor(1000.0 / (1 + np.arange(n_items)) ** 0.8 * rng.random(n_items) + 1)
    skus = [f"sku{i:07d}" for i in range(n_items)]
    cat = None
    if catalog:
        cat = {
            "sku": skus,
            "category": [f"cat{i % 40:02d}" for i in range(n_items)],
            "in_stock": (rng.random(n_items) < 0.9).tolist(),
            "price": np.round(rng.random(n_items) * 100, 2).tolist(),
        }
    return ModelSnapshot(
        skus=skus,
        indptr=indptr,
        indices=cols.astype(np.int32),
        scores=scores,
        users=np.ones(len(cols), dtype=np.float32),
        popularity=popularity,
        metadata={"version": version, "tenant": "bench"},
        catalog=cat,
    )


def histories(n_items: int, size: int, count: int, seed: int = 1) -> list[list[int]]:
    """``count`` shopper histories of ``size`` distinct items (skewed to popular ones)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        seen: dict[int, None] = {}
        while len(seen) < size:
            seen[int(n_items * rng.random() ** 1.5)] = None
        out.append(list(seen))
    return out


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    a = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return {
        "p50_us": float(np.percentile(a, 50)),
        "p99_us": float(np.percentile(a, 99)),
        "mean_us": float(a.mean()),
        "n": len(a),
    }


def time_calls(fn: Any, args_list: list[Any], repeat: int = 1) -> list[int]:
    """Per-call wall time (ns) of ``fn(*args)`` over every args tuple, after a warm-up."""
    for args in args_list[:50]:
        fn(*args)
    samples = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        for args in args_list:
            t0 = clock()
            fn(*args)
            samples.append(clock() - t0)
    return samples


def machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
    }


def write_results(name: str, results: dict[str, Any], markdown: str) -> None:
    OUT.mkdir(exist_ok=True)
    results = {"benchmark": name, "machine": machine(), **results}
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2, default=str))
    (OUT / f"{name}.md").write_text(markdown)
    print(markdown)
    print(f"wrote {OUT / (name + '.json')} and {OUT / (name + '.md')}")


def cached_model(size: str = "M", catalog: bool = True) -> tuple[str, ModelSnapshot]:
    """The synthetic model of ``size``, published under ``.bench/models`` once (building
    takes a while) and read back afterwards: ``(models root, snapshot)``."""
    from simrec.storage import snapshots

    n_items, k = SIZES[size]
    root = str(OUT / "models")
    tenant = f"bench{size}"
    version = f"{size}-{n_items}-{k}-v1"
    if snapshots.latest_version(root, tenant) is None:
        snapshot = synthetic_model(n_items, k, version=version, catalog=catalog)
        snapshot.metadata["tenant"] = tenant
        publishing.write_snapshot(root, tenant, snapshot)
    latest = snapshots.latest_version(root, tenant)
    return root, snapshots.read_snapshot(root, tenant, latest)
