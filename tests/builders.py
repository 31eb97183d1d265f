"""Stage outputs for tests, written with the production builders (no copy of a format).

``shop_events``: a small generated shop (30k events over the 30 days before
``SHOP_RUN_DATE``). ``exported_shop``: the same shop exported as the export stage writes it
(``exports/<tenant>/dt=YYYY-MM-DD/part-0.parquet`` + the run's ``_MANIFEST.json``, built by
:func:`simrec.stages.export.build_manifest`). ``export_events`` does the export for any
events (hand-made ones too). :func:`write_similarities` writes a similarity run folder in
the Spark job's layout (several parts) with :mod:`simrec.storage.similarities`'s schemas and
:func:`simrec.core.similarity.similarity_manifest`.

The fixtures here are imported by the conftest of each folder that uses them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simrec import storage
from simrec.adapters.ports import ExportResult
from simrec.core import layout, quality
from simrec.core.actions import ActionWeights
from simrec.core.params import ModelParams
from simrec.core.runs import RunParams
from simrec.core.similarity import similarity_manifest
from simrec.generate import generate_events
from simrec.stages.export import build_manifest
from simrec.storage import similarities

SHOP_RUN_DATE = dt.date(2024, 3, 1)
SHOP_EVENTS = 30_000
SHOP_SEED = 11

#: Every cell 1 (one event per user and sku): an entry is sampled once its item's norm
#: exceeds sqrt(gamma) times it (simrec.core.dimsum), i.e. once the item has more than
#: gamma = 10 ln(n) / threshold users. The dense shop reaches that at test size: few
#: items, many users.
BINARY_WEIGHTS = ActionWeights(browsed=1.0, basket=1.0, purchase=1.0)
#: Plain cosine at the default threshold (quality features off): what the oracles compute.
PLAIN = ModelParams(**quality.OFF)
EXPORTED_AT = dt.datetime(2024, 3, 1, 2, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ExportedShop:
    root: str  # data root (a folder)
    tenant: str
    params: RunParams
    manifest_uri: str
    manifest: dict[str, Any]
    events: pd.DataFrame  # the window's events, as exported

    def similarities_uri(self, name: str) -> str:
        """A fresh output folder for one similarity run of this export."""
        return layout.join(self.root, "similarities", self.tenant, name)


def export_events(root: str | Path, events: pd.DataFrame, params: RunParams) -> ExportedShop:
    """Write ``events`` as the export stage does: day partitions, then the manifest last.
    The grouping columns (``layout.GROUP_COLUMNS``) are written when ``events`` has them
    (else the partitions lack them, as exports made before they existed)."""
    root = str(root)
    ts = pd.to_datetime(events["ts"], utc=True)
    day = ts.dt.date
    in_window = (day >= params.start_date) & (day <= params.end_date)
    groups = [c for c in layout.GROUP_COLUMNS if c in events.columns]
    window = events.loc[in_window, ["user_id", "sku", "action"]].assign(ts=ts[in_window])
    window = window.assign(**{c: events.loc[in_window, c] for c in groups})
    window = window.reset_index(drop=True)
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("sku", pa.string()),
            ("action", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            *((c, pa.string()) for c in groups),
        ]
    )
    counts = []  # (day, reason, event_name, rows) groups, as the warehouse's counts query
    for d, rows in window.groupby(day[in_window].reset_index(drop=True), sort=True):
        uri = layout.export_day(root, params.tenant, d)
        Path(uri).mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(rows, schema=schema, preserve_index=False)
        pq.write_table(table, layout.join(uri, "part-0.parquet"))
        counts.append((d, None, None, len(rows)))
    run = layout.export_run(root, params.tenant, params.run_id)
    result = ExportResult.from_counts(counts, rejects_uri=layout.join(run, "rejects"))
    manifest = build_manifest(
        params, result, source="generated", schema="plain", data_root=root, export_s=0.0,
        created_at=EXPORTED_AT,
    )  # fmt: skip
    manifest_uri = layout.export_manifest(root, params.tenant, params.run_id)
    storage.write_json(manifest_uri, manifest)
    return ExportedShop(root, params.tenant, params, manifest_uri, manifest, window)


@pytest.fixture(scope="session")
def shop_events() -> pd.DataFrame:
    return generate_events(
        SHOP_EVENTS, days=30, end_date=SHOP_RUN_DATE - dt.timedelta(days=1), seed=SHOP_SEED
    )


@pytest.fixture(scope="session")
def exported_shop(tmp_path_factory: pytest.TempPathFactory, shop_events) -> ExportedShop:
    params = RunParams(tenant="default", date=SHOP_RUN_DATE, window_days=30, model=PLAIN)
    return export_events(tmp_path_factory.mktemp("shop"), shop_events, params)


@pytest.fixture(scope="session")
def dense_shop_events() -> pd.DataFrame:
    """60 items, 3,000 users, one event per (user, sku): the regime where DIMSUM samples."""
    events = generate_events(
        40_000, n_users=3_000, n_items=60, days=30,
        end_date=SHOP_RUN_DATE - dt.timedelta(days=1), seed=13,
    )
    return events.drop_duplicates(["user_id", "sku"]).reset_index(drop=True)


@pytest.fixture(scope="session")
def exported_dense_shop(
    tmp_path_factory: pytest.TempPathFactory, dense_shop_events
) -> ExportedShop:
    params = RunParams(
        tenant="default", date=SHOP_RUN_DATE, window_days=30,
        model=PLAIN.replace(weights=BINARY_WEIGHTS),
    )
    return export_events(tmp_path_factory.mktemp("dense-shop"), dense_shop_events, params)


# --- similarity run folders (input of the load) ----------------------------------------
RUN_ID = "2024-03-01-1a2b3c4d"
CREATED_AT = "2024-03-01T02:00:00Z"
CREATED_AT_DT = dt.datetime(2024, 3, 1, 2, 0, tzinfo=dt.UTC)
#: The run parameters every written similarity manifest carries (tenant replaced).
SIMILARITY_PARAMS = RunParams(
    tenant="default", date=dt.date(2024, 3, 1), model=ModelParams(top_k=3, seed=42)
)

# a/c/d: a tie at 0.5 (c before d); x is only a neighbor; f has stats but no neighbors.
SAMPLE_NEIGHBORS: dict[str, list[tuple[str, float, float]]] = {
    "a": [("b", 0.9, 3.0), ("c", 0.5, 2.0), ("d", 0.5, 1.0)],
    "b": [("a", 0.9, 3.0)],
    "c": [("a", 0.5, 2.0), ("x", 0.25, 1.0)],
    "d": [("a", 0.5, 1.0)],
}
SAMPLE_ITEMS: dict[str, tuple[int, float]] = {
    "a": (5, 9.5),
    "b": (4, 8.0),
    "c": (3, 6.0),
    "d": (2, 2.5),
    "f": (1, 0.5),
}


def item_row(sku: str, users: int, weight: float) -> dict:
    """An items output row; its trending sums: ``weight`` recent, ``users`` prior."""
    return {"sku": sku, "users": users, "weight": weight, "recent_weight": weight,
            "prior_weight": float(users)}  # fmt: skip


def write_similarities(
    root: Path,
    neighbors: dict[str, list[tuple[str, float, float]]] = SAMPLE_NEIGHBORS,
    items: dict[str, tuple[int, float]] = SAMPLE_ITEMS,
    *,
    tenant: str = "default",
    run_id: str = RUN_ID,
    parts: int = 2,
    manifest: bool = True,
    bought_together: dict[str, list[tuple[str, float, float]]] | None = None,
) -> str:
    """A similarity run folder in the Spark job's layout (``parts`` part files per table,
    Spark's ``_SUCCESS`` marker) with the production manifest; returns its URI. Without
    ``bought_together`` the run has no such table (as runs made before it)."""
    folder = Path(root) / "similarities" / tenant / run_id
    uris = layout.similarity_outputs(str(folder))

    def lists(table: dict[str, list[tuple[str, float, float]]]) -> list[dict]:
        return [{"sku": s, "neighbors": [{"sku": n, "score": c, "users": u} for n, c, u in v]}
                for s, v in table.items()]  # fmt: skip

    stats = [item_row(s, u, w) for s, (u, w) in items.items()]
    tables = [
        ("neighbors", lists(neighbors), similarities.NEIGHBORS_SCHEMA),
        ("items", stats, similarities.ITEMS_SCHEMA),
    ]
    if bought_together is not None:
        tables.append((layout.BOUGHT_TOGETHER, lists(bought_together),
                       similarities.NEIGHBORS_SCHEMA))  # fmt: skip
    for name, records, schema in tables:
        Path(uris[name]).mkdir(parents=True, exist_ok=True)
        for i in range(parts):
            table = pa.Table.from_pylist(records[i::parts], schema=schema)
            pq.write_table(table, Path(uris[name]) / f"part-{i:05d}.parquet")
    (Path(uris["neighbors"]) / "_SUCCESS").write_text("")  # Spark's marker is ignored
    if manifest:
        pairs = sum(len(v) for v in neighbors.values())
        counts = dict.fromkeys(
            ("events", "users", "users_kept", "capped_users", "cells", "emitted_pairs"), 0
        )
        doc = similarity_manifest(
            export_manifest={"run_id": run_id, "tenant": tenant},
            export_manifest_uri=layout.export_manifest(str(root), tenant, run_id),
            params=dataclasses.replace(SIMILARITY_PARAMS, tenant=tenant),
            engine="local",
            outputs={"neighbors": uris["neighbors"], "items": uris["items"]},
            counts={**counts, "items": len(items), "pairs": pairs, "neighbor_rows": len(neighbors)},
            gamma=np.inf,
            timings={},
        )
        similarities.write_manifest(str(folder), {**doc, "created_at": CREATED_AT})
    return str(folder)


def random_neighbors(seed: int, n_items: int = 80, top_k: int = 6):
    """Symmetric random similarities (both directions, top-k, grid scores with ties)."""
    rng = random.Random(seed)
    skus = [f"p{i:04d}" for i in range(n_items)]
    pairs: dict[tuple[str, str], tuple[float, float]] = {}
    for _ in range(n_items * 3):
        a, b = rng.sample(skus, 2)
        pairs[tuple(sorted((a, b)))] = (rng.choice([0.125, 0.25, 0.5, 1.0]), rng.randint(1, 9))
    lists: dict[str, list[tuple[str, float, float]]] = {}
    for (a, b), (score, users) in pairs.items():
        lists.setdefault(a, []).append((b, score, float(users)))
        lists.setdefault(b, []).append((a, score, float(users)))
    neighbors = {s: sorted(v, key=lambda e: (-e[1], e[0]))[:top_k] for s, v in lists.items()}
    items = {s: (rng.randint(1, 40), rng.uniform(0, 20)) for s in skus if rng.random() < 0.9}
    return neighbors, items
