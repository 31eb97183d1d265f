"""Evaluation reads its events through the export path (issue 14.5): on a messy source,
the events ``simrec evaluate`` scores are exactly the events the nightly export writes
for the training stage (real DuckDB, the real export query), and the evaluation has no
validation rule of its own."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from simrec.adapters.warehouse_local import DuckDBWarehouse
from simrec.core import layout
from simrec.core.events import MAX_SKU_LENGTH
from simrec.core.runs import RunParams
from simrec.evaluation import split as split_mod
from simrec.evaluation.events import load_events
from simrec.sql import ExportRules

#: Each row exercises one export rule the old evaluation reader did not apply.
MESSY = pd.DataFrame(
    {
        "user_id": ["  u1 ", "u1", "(not set)", "u2", "u3", "u4", "u5", "u6", "u7"],
        "sku": ["a", " b ", "c", "(NOT SET)", "x" * (MAX_SKU_LENGTH + 1), "d", "e", "", "f"],
        "action": ["purchase", " Browsed ", "basket", "basket", "basket", "basket",
                   "clicked", "basket", "purchase"],
        "ts": ["2024-01-01T10:00:00Z", "2024-01-01T23:30:00-02:00", "2024-01-02T00:00:00Z",
               "2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z", "not a time",
               "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z", " 2024-01-03 08:00:00 "],
    }
)  # fmt: skip


def _exported(source: str, root: Path, rules: ExportRules) -> pd.DataFrame:
    """What the export stage writes for the training stage, read back from its day files."""
    params = RunParams(tenant="shop", date=dt.date(2024, 1, 10), window_days=30)
    DuckDBWarehouse(rules=rules).export(params, source, "plain", str(root))
    days = str(Path(layout.export_day(str(root), "shop", dt.date(2024, 1, 1))).parent)
    con = duckdb.connect()
    try:
        df = con.execute(
            f"SELECT user_id, sku, action, CAST(dt AS DATE) AS day "
            f"FROM read_parquet('{days}/dt=*/*.parquet', hive_partitioning = true)"
        ).df()
    finally:
        con.close()
    df["day"] = pd.to_datetime(df["day"]).astype("datetime64[s]")
    return df


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["user_id", "sku", "action", "day"]
    return df[cols].astype({"user_id": str, "sku": str, "action": str}).sort_values(
        cols).reset_index(drop=True)  # fmt: skip


def test_evaluation_events_are_the_exported_events(tmp_path):
    source = tmp_path / "events.csv"
    MESSY.to_csv(source, index=False)
    rules = ExportRules()
    events, counts = load_events(str(source), "plain", rules)
    exported = _exported(str(source), tmp_path / "data", rules)
    pd.testing.assert_frame_equal(_sorted(events), _sorted(exported))
    # Trimmed ids and actions, the UTC day of an offset timestamp:
    assert set(zip(events["user_id"], events["sku"], events["action"], strict=True)) == {
        ("u1", "a", "purchase"), ("u1", "b", "browsed"), ("u7", "f", "purchase")}
    assert events.loc[events["sku"] == "b", "day"].dt.strftime("%F").tolist() == ["2024-01-02"]
    assert counts["rows"] == len(MESSY)
    assert counts["dropped"] == len(MESSY) - 3
    assert counts["reasons"] == {"bad_timestamp": 1, "empty_sku": 1, "placeholder_id": 2,
                                 "sku_too_long": 1, "unknown_action": 1}  # fmt: skip


def test_evaluation_follows_the_configured_export_rules(tmp_path):
    source = tmp_path / "events.csv"
    MESSY.to_csv(source, index=False)
    rules = ExportRules(placeholders=())  # a shop whose ids may read "(not set)"
    events, counts = load_events(str(source), "plain", rules)
    assert "placeholder_id" not in counts["reasons"]
    assert "(not set)" in set(events["user_id"])
    exported = _exported(str(source), tmp_path / "data", rules)
    pd.testing.assert_frame_equal(_sorted(events), _sorted(exported))


def test_evaluation_imports_no_private_helper():
    tree = ast.parse(Path(split_mod.__file__).read_text())
    private = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_evaluate_command_shows_intervals_and_the_comparison(tmp_path, capsys):
    """``simrec evaluate``: peers, intervals and the paired comparison in the printed
    table, the JSON and the report, from the same result."""
    import json

    from simrec.cli import main
    from simrec.evaluation.metrics import interval_side
    from simrec.generate import generate_events, write_events

    events = generate_events(20_000, n_users=800, n_items=150, days=30,
                             end_date=dt.date(2024, 3, 31), seed=9)  # fmt: skip
    source = write_events(events, tmp_path / "events.parquet")
    out = tmp_path / "out"
    assert main(["evaluate", "--events", str(source), "--holdout-days", "5",
                 "--thresholds", "0", "--max-users", "200", "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "evaluation.json").read_text())
    c = result["comparison"]
    d = c["differences"]["ndcg"]
    printed = capsys.readouterr().out
    assert "ndcg 95% CI" in printed and "session knn" in printed
    assert f"configured - best peer ({c['best_peer']}): ndcg@10 {d['difference']:+.4f}" in printed
    assert interval_side(d["low"], d["high"]) in printed
    report = (out / "report.html").read_text()
    assert 'id="table-comparison"' in report and 'id="table-intervals"' in report
    assert f"best peer: {c['best_peer']}" in report

