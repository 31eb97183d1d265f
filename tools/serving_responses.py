"""Dump the serving answers of fixed shops, to check a refactoring changes none of them.

Run it on two checkouts and compare the outputs byte for byte::

    python tools/serving_responses.py --out before.jsonl   # on main
    python tools/serving_responses.py --out after.jsonl    # on the branch
    cmp before.jsonl after.jsonl

Shops: the hand-built catalog shop of ``tests/shops.py``, a synthetic
5,000-item shop with a catalog (``bench/common.synthetic_model``) and a generated event
log run through the evaluation's fit. Requests are drawn with a fixed seed over every
endpoint, list parameter, filter, ``exclude``/``exclude_seen``, unknown skus, the
fallback and bad parameters; each line is ``[path, query, status, orjson body]``, and
the evaluation's recommendations frame is the last line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from simrec import publishing  # noqa: E402
from simrec.config import Settings  # noqa: E402
from simrec.core.snapshot import ModelSnapshot  # noqa: E402
from simrec.serving.api import ServingApp  # noqa: E402
from tests.shops import catalog_shop  # noqa: E402

ENDPOINTS = ("/recommendations", "/similar", "/make_recommendation")


def hand_shop() -> ModelSnapshot:
    return catalog_shop({"version": "hand-v1", "tenant": "hand"})


def synthetic_shop() -> ModelSnapshot:
    from common import synthetic_model

    snapshot = synthetic_model(5_000, 50, seed=3, version="synthetic-v1", catalog=True)
    snapshot.metadata["tenant"] = "synthetic"
    return snapshot


def queries(skus: list[str], categories: list[str], rng: random.Random, count: int):
    """``(path, query string)`` pairs over the parameters an endpoint takes."""
    pool = [*skus, "unknown-sku", " ", ""]

    def some(k: int) -> str:
        return ",".join(rng.choice(pool) for _ in range(k))

    for _ in range(count):
        path = rng.choice(ENDPOINTS)
        parts = []
        if path == "/similar":
            parts.append(f"sku={rng.choice(pool)}")
        else:
            for name in ("browsed", "basket", "purchased"):
                if rng.random() < 0.6:
                    parts.append(f"{name}={some(rng.randint(0, 12))}")
        if rng.random() < 0.7:
            parts.append(f"n={rng.choice(['1', '3', '10', '25', '0', 'x'])}")
        if path != "/make_recommendation":
            if rng.random() < 0.3:
                parts.append(f"exclude={some(rng.randint(1, 5))}")
            if rng.random() < 0.3:
                parts.append(f"in_stock_only={rng.choice(['true', 'false', '1', 'maybe'])}")
            if rng.random() < 0.3:
                parts.append(f"category={rng.choice([*categories, 'nope'])}")
        if path == "/recommendations" and rng.random() < 0.3:
            parts.append(f"exclude_seen={rng.choice(['true', 'false'])}")
        rng.shuffle(parts)
        yield path, "&".join(parts)


def serve_lines(snapshot: ModelSnapshot, count: int, seed: int) -> list[bytes]:
    tenant = snapshot.metadata["tenant"]
    root = tempfile.mkdtemp(prefix="simrec-responses-")
    publishing.write_snapshot(root, tenant, snapshot)
    app = ServingApp(Settings(models_uri=root, tenant=tenant))
    categories = sorted({c for c in snapshot.catalog["category"].to_pylist() if c})
    lines = []
    rng = random.Random(seed)
    for path, query in queries(list(snapshot.skus), categories, rng, count):
        (body, status), _ = app.dispatch("GET", path, query)
        lines.append(orjson.dumps([path, query, status, body], default=str))
    return lines


def evaluation_line() -> bytes:
    from simrec.core.params import ModelParams
    from simrec.evaluation.evaluate import Evaluator, recommend
    from simrec.evaluation.events import load_events
    from simrec.evaluation.split import temporal_split
    from simrec.generate import generate_events, write_events

    end = dt.date(2024, 3, 31)
    events = generate_events(40_000, n_users=1500, n_items=300, days=40, end_date=end, seed=5)
    path = str(Path(tempfile.mkdtemp(prefix="simrec-responses-")) / "events.parquet")
    write_events(events, path)
    split = temporal_split(load_events(path)[0], holdout_days=7, window_days=20)
    ev = Evaluator(split, k=10)
    config = ModelParams()
    recs, fallback = recommend(ev.fitted(config), ev.queries, config.weights, ev.k)
    return orjson.dumps(["evaluation", fallback, recs.to_dict(orient="list")], default=str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=3000, help="per shop")
    args = parser.parse_args(argv)
    lines = serve_lines(hand_shop(), args.requests, seed=1)
    lines += serve_lines(synthetic_shop(), args.requests, seed=2)
    lines.append(evaluation_line())
    Path(args.out).write_bytes(b"\n".join(lines) + b"\n")
    print(f"wrote {len(lines)} answers to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
