"""Generated and shared event data for tests.

``shop_events``: a small generated shop (30k events over the 30 days before
``SHOP_RUN_DATE``). ``exported_shop``: the same shop exported exactly as the export stage
writes it (``exports/<tenant>/dt=YYYY-MM-DD/part-0.parquet`` + the run's
``_MANIFEST.json``). ``export_events`` does the export for any events (hand-made ones too).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simrec import storage
from simrec.core import layout, quality
from simrec.core.actions import ActionWeights
from simrec.core.events import REJECT_REASONS
from simrec.core.params import ModelParams
from simrec.core.runs import RunParams
from simrec.generate import generate_events

SHOP_RUN_DATE = dt.date(2024, 3, 1)
SHOP_EVENTS = 30_000
SHOP_SEED = 11

#: Every cell 1 (one event per user and sku): DIMSUM's analysis assumes entries in [0, 1]
#: and a column is sampled once its scaled norm exceeds sqrt(gamma), i.e. once it has more
#: than gamma = 10 ln(n) / threshold users at value 1. The dense shop reaches that at test
#: size: few items, many users.
BINARY_WEIGHTS = ActionWeights(browsed=1.0, basket=1.0, purchase=1.0)
#: Plain cosine at the default threshold (quality features off): what the oracles compute.
PLAIN = ModelParams(**quality.OFF)


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
    """Write ``events`` as the export stage does: day partitions, then the manifest last."""
    root = str(root)
    ts = pd.to_datetime(events["ts"], utc=True)
    day = ts.dt.date
    in_window = (day >= params.start_date) & (day <= params.end_date)
    window = events.loc[in_window, ["user_id", "sku", "action"]].assign(ts=ts[in_window])
    window = window.reset_index(drop=True)
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("sku", pa.string()),
            ("action", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
        ]
    )
    days = []
    for d, rows in window.groupby(day[in_window].reset_index(drop=True), sort=True):
        uri = layout.export_day(root, params.tenant, d)
        Path(uri).mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(rows, schema=schema, preserve_index=False)
        pq.write_table(table, layout.join(uri, "part-0.parquet"))
        days.append({"date": d.isoformat(), "uri": uri, "rows": len(rows)})
    run = layout.export_run(root, params.tenant, params.run_id)
    manifest = {
        "stage": "export",
        "run_id": params.run_id,
        "tenant": params.tenant,
        "params": params.to_json(),
        "source": {"schema": "plain", "table": "generated"},
        "days": days,
        "counts": {
            "rows_read": len(window),
            "rows_valid": len(window),
            "rows_rejected": 0,
            "rejected_by_reason": dict.fromkeys(REJECT_REASONS, 0),
        },
        "rejects_uri": layout.join(run, "rejects"),
        "created_at": "2024-03-01T02:00:00Z",
        "timings": {"export_s": 0.0},
    }
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
