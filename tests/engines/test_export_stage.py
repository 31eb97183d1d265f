"""The export stage on DuckDB: day partitions, rejects and a manifest that adds up."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import os
import random
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simrec import storage
from simrec.adapters.ports import ExportResult, Warehouse
from simrec.adapters.warehouse_local import DuckDBWarehouse
from simrec.core import layout
from simrec.core.events import MAX_SKU_LENGTH, REJECT_REASONS, SourceError
from simrec.core.runs import RunParams
from simrec.stages.export import run_export

UTC = dt.UTC
# Window: 2024-02-01 .. 2024-02-29.
PARAMS = RunParams("shop", dt.date(2024, 3, 1), window_days=29)
NOW = dt.datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
HEADER = ["user_id", "sku", "action", "ts"]


def _write_csv(path: Path, rows, header=HEADER, opener=open) -> Path:
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _export(source, root, schema="plain", warehouse=None, params=PARAMS) -> dict:
    return run_export(
        params, warehouse or DuckDBWarehouse(), str(source), schema, str(root), now=NOW
    )


def _manifest_uri(root, params=PARAMS) -> str:
    return layout.export_manifest(str(root), params.tenant, params.run_id)


def _valid_rows(root, tenant="shop", params=PARAMS) -> list[tuple]:
    """Every row in the window's day folders (each must sit in the folder of its UTC day)."""
    files = [
        str(f)
        for f in sorted(Path(root, "exports", tenant).glob("dt=*/*.parquet"))
        if params.start_date.isoformat() <= f.parent.name[3:] <= params.end_date.isoformat()
    ]
    if not files:
        return []
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    rows = con.execute(
        "SELECT user_id, sku, action, ts, parse_path(filename)[-2] AS folder "
        "FROM read_parquet(?, filename=true)",
        [files],
    ).fetchall()
    for *_, ts, folder in rows:
        assert folder == f"dt={ts.astimezone(UTC).date().isoformat()}"
    return [(u, s, a, ts.astimezone(UTC)) for u, s, a, ts, _ in rows]


def _rejects(manifest: dict) -> list[tuple]:
    table = pq.read_table(manifest["rejects_uri"])
    assert table.column_names == ["user_id", "sku", "action", "ts", "reason"]
    return [tuple(r.values()) for r in table.to_pylist()]


# --- an independent oracle of the rules, for text rows written to a CSV ---------------
def _parse_ts(text: str | None) -> dt.datetime | None:
    """The ts forms the generated data uses (the SQL accepts more; see test_export_sql)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _oracle(rows, params=PARAMS, outside=None):
    """(valid events, rejects as raw values + reason) of CSV text rows, per the rules;
    rows outside the window are counted by side and day into ``outside``."""
    valid, rejects = [], []
    start = dt.datetime.combine(params.start_date, dt.time(), UTC)
    end = dt.datetime.combine(params.end_date + dt.timedelta(days=1), dt.time(), UTC)
    for raw in rows:
        raw = tuple(v if v else None for v in raw)  # a CSV cannot tell '' from NULL
        user, sku, action, ts_text = raw
        ts = _parse_ts(ts_text)
        if ts is not None and not start <= ts < end:
            if outside is not None:
                outside["before" if ts < start else "after"][ts.date()] += 1
            continue
        user_n = (user or "").strip() or None
        sku_n = (sku or "").strip() or None
        action_n = (action or "").strip().lower()
        if user_n is None:
            reason = "missing_user_id"
        elif sku_n is None:
            reason = "empty_sku"
        elif "(not set)" in (user_n.lower(), sku_n.lower()):
            reason = "placeholder_id"
        elif len(sku_n) > MAX_SKU_LENGTH:
            reason = "sku_too_long"
        elif action_n not in ("browsed", "basket", "purchase"):
            reason = "unknown_action"
        elif ts is None:
            reason = "bad_timestamp"
        else:
            valid.append((user_n, sku_n, action_n, ts))
            continue
        rejects.append((*raw, reason))
    return valid, rejects


def _check_against_oracle(manifest, root, rows) -> None:
    outside: dict[str, Counter] = {"before": Counter(), "after": Counter()}
    valid, rejects = _oracle(rows, outside=outside)
    assert Counter(_valid_rows(root)) == Counter(valid)
    assert Counter(_rejects(manifest)) == Counter(rejects)
    counts = manifest["counts"]
    assert counts["rows_valid"] == len(valid)
    assert counts["rows_rejected"] == len(rejects)
    # Every row of the file is accounted for: valid, rejected, or outside the window.
    assert counts["rows_read"] == len(rows) == len(valid) + len(rejects) + counts["rows_outside"]
    for side, days in outside.items():
        assert counts["outside_window"][side] == {
            "rows": sum(days.values()),
            "first": min(days).isoformat() if days else None,
            "last": max(days).isoformat() if days else None,
        }
    assert counts["rejected_by_reason"] == {
        r: sum(x[-1] == r for x in rejects) for r in REJECT_REASONS
    }
    per_day = Counter(ts.date().isoformat() for *_, ts in valid)
    assert [(d["date"], d["rows"]) for d in manifest["days"]] == sorted(per_day.items())


# --- crafted CSV: every kind of bad row, in and out of the window ------------------------
CRAFTED = (
    "user_id,sku,action,ts\n"
    "u1,s1,browsed,2024-02-01\n"  # valid, first day
    " u2 , s2 , PURCHASE ,2024-02-29T23:59:59Z\n"  # valid, last second, trimmed
    '"u,3",s3,basket,2024-02-10 10:00:00+02:00\n'  # valid, quoted comma, 08:00 UTC
    "u4,s4,basket,2024-03-01\n"  # after the window: not read
    "u5,s5,basket,2024-01-31 23:59:59\n"  # before the window: not read
    ",s6,browsed,2024-02-05\n"  # missing_user_id
    "   ,s7,browsed,2024-02-05\n"  # missing_user_id (blank)
    "u8,,browsed,2024-02-05\n"  # empty_sku
    "u9,s9,clicked,2024-02-05\n"  # unknown_action
    "u10,s10,,2024-02-05\n"  # unknown_action (missing)
    "u11,s11,browsed,yesterday\n"  # bad_timestamp
    "u12,s12,browsed,\n"  # bad_timestamp (missing)
    "u13,s13\n"  # short line: padded -> unknown_action
    ",,,\n"  # all missing -> missing_user_id
    ",s15,clicked,2023-01-01\n"  # outside the window: counted as before the window
    "u16,(not set),browsed,2024-02-07\n"  # placeholder_id
    "(NOT SET),s17,browsed,2024-02-07\n"  # placeholder_id (case-insensitive)
)


def test_crafted_csv_every_row_accounted_for(tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text(CRAFTED)
    root = tmp_path / "data"
    manifest = _export(source, root)

    run_dir = layout.export_run(str(root), "shop", PARAMS.run_id)
    assert manifest == {
        "stage": "export",
        "run_id": PARAMS.run_id,
        "tenant": "shop",
        "params": PARAMS.to_json(),
        "source": {"schema": "plain", "table": str(source)},
        "days": [
            {"date": d, "uri": f"{root}/exports/shop/dt={d}", "rows": 1}
            for d in ("2024-02-01", "2024-02-10", "2024-02-29")
        ],
        "counts": {
            "rows_read": 17,
            "rows_valid": 3,
            "rows_rejected": 11,
            "rejected_by_reason": dict.fromkeys(REJECT_REASONS, 0) | {
                "missing_user_id": 3, "empty_sku": 1, "placeholder_id": 2,
                "unknown_action": 3, "bad_timestamp": 2,
            },
            "rows_ignored": 0,
            "ignored_events": {},
            "rows_outside": 3,
            "outside_window": {
                "before": {"rows": 2, "first": "2023-01-01", "last": "2024-01-31"},
                "after": {"rows": 1, "first": "2024-03-01", "last": "2024-03-01"},
            },
        },
        "future": {"rows": 0, "last": None},  # fmt: skip
        "rejects_uri": f"{run_dir}/rejects",
        "created_at": "2024-03-01T02:00:00Z",
        "timings": manifest["timings"],
    }
    assert set(manifest["timings"]) >= {"export_s"}
    assert storage.read_json(_manifest_uri(root)) == manifest
    lines = list(csv.reader(CRAFTED.splitlines()[1:]))
    _check_against_oracle(manifest, root, [(*r, None, None, None, None)[:4] for r in lines])
    # The layout is exact: one part file per day folder, nothing else.
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "exports/shop/dt=2024-02-01/part-0.parquet",
        "exports/shop/dt=2024-02-10/part-0.parquet",
        "exports/shop/dt=2024-02-29/part-0.parquet",
        f"exports/shop/runs/{PARAMS.run_id}/_MANIFEST.json",
        f"exports/shop/runs/{PARAMS.run_id}/rejects/part-0.parquet",
    ]
    schema = pq.read_schema(root / "exports/shop/dt=2024-02-10/part-0.parquet")
    assert schema.names == ["user_id", "sku", "action", "ts", *layout.GROUP_COLUMNS]
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")


def _random_rows(n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(40)] + [" u1 ", "", "  ", None, "(not set)"]
    skus = [f"s{i}" for i in range(60)] + ["s1 ", "", " ", None, " (Not Set) "]
    skus += ["x" * MAX_SKU_LENGTH, "y" * (MAX_SKU_LENGTH + 1)]  # the API's limit, and over
    actions = ["browsed", "basket", "purchase", "BASKET", " Purchase ", "clicked", "", None]
    stamps = (
        [f"2024-02-{d:02d}" for d in range(1, 30)]
        + ["2024-01-31", "2024-03-01", "2023-12-25", "2024-02-15T13:45:00Z"]
        + ["2024-02-29 23:59:59", "2024-03-01 01:30:00+02:00", "2024-02-01 00:30:00+01:00"]
        + ["yesterday", "2024-02-30", "", "   ", None, "1709251200"]
    )
    return [
        (rng.choice(users), rng.choice(skus), rng.choice(actions), rng.choice(stamps))
        for _ in range(n)
    ]


def test_random_rows_match_the_oracle(tmp_path: Path) -> None:
    rows = _random_rows(3000, seed=7)
    source = _write_csv(tmp_path / "events.csv", rows)
    manifest = _export(source, tmp_path / "data")
    _check_against_oracle(manifest, tmp_path / "data", rows)
    counts = manifest["counts"]
    plain_reasons = [r for r in REJECT_REASONS if not REJECT_REASONS[r].startswith("GA4")]
    assert counts["rows_valid"] > 500
    assert all(counts["rejected_by_reason"][r] for r in plain_reasons)
    assert counts["rows_outside"] > 100


# --- manifest last, none on failure ------------------------------------------------------
class _Spy:
    """Wraps a warehouse to observe what exists while it runs, or to fail after writing."""

    def __init__(self, root: Path, fail: bool = False) -> None:
        self.inner, self.root, self.fail = DuckDBWarehouse(), root, fail
        self.manifest_seen: bool | None = None

    def export(self, params, source, schema, data_root) -> ExportResult:
        self.manifest_seen = storage.exists(_manifest_uri(self.root, params))
        result = self.inner.export(params, source, schema, data_root)
        if self.fail:
            raise RuntimeError("warehouse died after writing the days")
        return result


def test_manifest_is_written_last(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "e.csv", _random_rows(300, seed=1))
    root = tmp_path / "data"
    spy = _Spy(root)
    assert isinstance(spy, Warehouse)  # structural check of the port's shape
    _export(source, root, warehouse=spy)
    assert spy.manifest_seen is False
    manifest_mtime = os.stat(_manifest_uri(root)).st_mtime_ns
    outputs = [p for p in root.rglob("*.parquet")]
    assert outputs and all(os.stat(p).st_mtime_ns <= manifest_mtime for p in outputs)


def test_failed_export_writes_no_manifest_and_drops_a_stale_one(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "e.csv", _random_rows(300, seed=2))
    root = tmp_path / "data"
    _export(source, root)
    assert storage.exists(_manifest_uri(root))
    spy = _Spy(root, fail=True)
    with pytest.raises(RuntimeError, match="warehouse died"):
        _export(source, root, warehouse=spy)
    assert spy.manifest_seen is False  # removed before the export started
    assert not storage.exists(_manifest_uri(root))


class _Liar:
    def export(self, params, source, schema, data_root) -> ExportResult:
        return ExportResult(
            days={dt.date(2024, 2, 3): 5}, rows_read=9, rows_valid=5, rows_rejected=3,
            rejected_by_reason=dict.fromkeys(REJECT_REASONS, 0) | {"empty_sku": 3},
            rejects_uri="x",
        )  # fmt: skip


class _OutOfWindow:
    def export(self, params, source, schema, data_root) -> ExportResult:
        return ExportResult.from_counts([(dt.date(2024, 3, 1), None, None, 2)], rejects_uri="x")


@pytest.mark.parametrize(
    ("warehouse", "message"),
    [(_Liar(), "rows_read != rows_valid"), (_OutOfWindow(), "outside the window")],
)
def test_inconsistent_counts_write_no_manifest(tmp_path: Path, warehouse, message) -> None:
    with pytest.raises(ValueError, match=message):
        _export(tmp_path / "unused.csv", tmp_path, warehouse=warehouse)
    assert not storage.exists(_manifest_uri(tmp_path))


# --- idempotency -------------------------------------------------------------------------
def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_rerun_overwrites_the_same_days_and_manifest(tmp_path: Path) -> None:
    rows = _random_rows(500, seed=3)
    source = _write_csv(tmp_path / "e.csv", rows)
    root = tmp_path / "data"
    # Leftovers: a stale file in a window day, and a day outside the window.
    stale_in = root / "exports/shop/dt=2024-02-05/part-9.parquet"
    outside = root / "exports/shop/dt=2023-06-01/part-0.parquet"
    for p in (stale_in, outside):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"old")

    first = _export(source, root)
    files_first, rows_first = _files(root), Counter(_valid_rows(root))
    assert not stale_in.exists()
    assert outside.read_bytes() == b"old"  # days outside the window are not touched
    second = _export(source, root)
    strip = ("created_at", "timings")
    assert {k: v for k, v in first.items() if k not in strip} == {
        k: v for k, v in second.items() if k not in strip
    }
    assert _files(root) == files_first
    assert Counter(_valid_rows(root)) == rows_first
    _check_against_oracle(second, root, rows)

    # The source changes: every event of Feb 5 goes away -> that day's folder goes too.
    kept = [r for r in rows if not (r[3] or "").startswith("2024-02-05")]
    _write_csv(source, kept)
    third = _export(source, root)
    assert "2024-02-05" not in [d["date"] for d in third["days"]]
    assert not (root / "exports/shop/dt=2024-02-05").exists()
    _check_against_oracle(third, root, kept)


def test_no_valid_rows_is_an_error_naming_the_reasons_with_counts_written(
    tmp_path: Path,
) -> None:
    from simrec.stages.export import NoValidEvents, failed_report_uri

    rows = [("u1", "s1", "browsed", "2020-01-01"), ("u2", "s2", "browsed", "1709251200"),
            ("u3", "s3", "clicked", "2024-02-03")]  # fmt: skip
    source = _write_csv(tmp_path / "e.csv", rows)
    root = tmp_path / "data"
    with pytest.raises(NoValidEvents) as err:
        _export(source, root)
    message = str(err.value)
    assert "\n" not in message
    assert "no valid events in the window 2024-02-01..2024-02-29" in message
    assert "1 bad_timestamp" in message and "1 unknown_action" in message
    assert "1 before the window (2020-01-01..2020-01-01)" in message
    assert not storage.exists(_manifest_uri(root))
    report = storage.read_json(failed_report_uri(str(root), PARAMS))
    assert report["error"] == message
    assert report["counts"]["rows_read"] == 3 and report["counts"]["rows_outside"] == 1
    # A rerun that succeeds removes the report.
    _write_csv(source, [*rows, ("u4", "s4", "browsed", "2024-02-04")])
    _export(source, root)
    assert not storage.exists(failed_report_uri(str(root), PARAMS))


@pytest.mark.parametrize(
    "content",
    ["user_id,sku,action,ts\n",  # header only
     "user_id,sku,action,ts\nu1,s1,browsed,1706745600\nu2,s2,basket,1706832000\n"],  # epoch
    ids=["header_only", "integer_epoch"],
)
def test_zero_valid_rows_from_header_only_or_epoch_timestamps(tmp_path: Path, content) -> None:
    from simrec.stages.export import NoValidEvents

    source = tmp_path / "e.csv"
    source.write_text(content)
    with pytest.raises(NoValidEvents, match=r"no valid events .*: \d+ rows read"):
        _export(source, tmp_path / "data")


# --- other source forms -----------------------------------------------------------------
def test_csv_gz_folder_with_date_column(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    a = [("u1", "s1", "purchase", "2024-02-02"), ("u2", "s2", "browsed", "2024-02-03")]
    b = [("u1", "s3", "basket", "2024-02-03"), ("u3", "", "basket", "2024-02-03")]
    header = ["user_id", "sku", "action", "date"]
    _write_csv(folder / "a.csv.gz", a, header, opener=gzip.open)
    _write_csv(folder / "b.csv.gz", b, header, opener=gzip.open)
    (folder / "_SUCCESS").write_text("")
    manifest = _export(folder, tmp_path / "data")
    assert [(d["date"], d["rows"]) for d in manifest["days"]] == [
        ("2024-02-02", 1), ("2024-02-03", 2)
    ]  # fmt: skip
    assert manifest["counts"]["rejected_by_reason"]["empty_sku"] == 1
    # A glob of the same files gives the same result.
    again = _export(f"{folder}/*.csv.gz", tmp_path / "data2")
    assert again["counts"] == manifest["counts"]


def test_parquet_with_typed_timestamps_and_column_mapping(tmp_path: Path) -> None:
    table = pa.table(
        {
            "customer": ["c1", "c2", None, "c4"],
            "item": ["i1", "i2", "i3", "i4"],
            "kind": ["browsed", "purchase", "basket", "basket"],
            "event_time": pa.array(
                [dt.datetime(2024, 2, 1, 5), dt.datetime(2024, 2, 28, 23, 59), None,
                 dt.datetime(2024, 3, 2)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )  # fmt: skip
    pq.write_table(table, tmp_path / "events.parquet")
    warehouse = DuckDBWarehouse(
        columns={"user_id": "customer", "sku": "item", "action": "kind", "ts": "event_time"}
    )
    manifest = _export(tmp_path / "events.parquet", tmp_path / "data", warehouse=warehouse)
    assert sorted(_valid_rows(tmp_path / "data")) == [
        ("c1", "i1", "browsed", dt.datetime(2024, 2, 1, 5, tzinfo=UTC)),
        ("c2", "i2", "purchase", dt.datetime(2024, 2, 28, 23, 59, tzinfo=UTC)),
    ]
    assert _rejects(manifest) == [(None, "i3", "basket", None, "missing_user_id")]


# --- GA4 ---------------------------------------------------------------------------------
ITEM = pa.struct([("item_id", pa.string()), ("item_name", pa.string()),
                  ("quantity", pa.int64()), ("price", pa.float64())])  # fmt: skip
GA4_SCHEMA = pa.schema(
    [
        ("event_date", pa.string()),
        ("event_timestamp", pa.int64()),
        ("event_name", pa.string()),
        ("user_pseudo_id", pa.string()),
        ("user_id", pa.string()),
        ("items", pa.list_(ITEM)),
    ]
)


def _ga4_file(folder: Path, name: str, events: list[tuple]) -> None:
    rows = [
        {
            "event_date": name[-8:],
            "event_timestamp": None if ts is None else int(ts.timestamp() * 1_000_000),
            "event_name": event,
            "user_pseudo_id": user,
            "user_id": None,
            "items": None if items is None
            else [{"item_id": i, "item_name": f"n{i}", "quantity": None, "price": 1.5}
                  for i in items],
        }
        for event, ts, user, items in events
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, GA4_SCHEMA), folder / f"{name}.parquet")


def test_ga4_parquet_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ga4"
    folder.mkdir()
    t = dt.datetime
    _ga4_file(folder, "events_20240131", [
        ("view_item", t(2024, 1, 31, 12, tzinfo=UTC), "p0", ["X"]),  # before the window
    ])  # fmt: skip
    _ga4_file(folder, "events_20240210", [
        ("view_item", t(2024, 2, 10, 9, tzinfo=UTC), "p1", ["A", "B"]),
        ("add_to_cart", t(2024, 2, 10, 9, 5, tzinfo=UTC), "p1", ["A"]),
        ("purchase", t(2024, 2, 10, 9, 9, tzinfo=UTC), "p2", ["A", "C"]),
        ("page_view", t(2024, 2, 10, 9, tzinfo=UTC), "p1", None),  # not of interest
        ("view_item", t(2024, 2, 10, 9, tzinfo=UTC), "p3", []),  # no items: empty_sku
        ("view_item", None, "p3", ["D"]),  # no timestamp: bad_timestamp
    ])  # fmt: skip
    _ga4_file(folder, "events_20240301", [
        ("purchase", t(2024, 2, 29, 23, 30, tzinfo=UTC), "p4", ["E"]),  # UTC day in window
        ("purchase", t(2024, 3, 1, 8, tzinfo=UTC), "p4", ["E"]),  # after the window
    ])  # fmt: skip
    _ga4_file(folder, "events_intraday_20240210", [
        ("view_item", t(2024, 2, 10, 9, tzinfo=UTC), "p9", ["Z"]),  # intraday: never read
    ])  # fmt: skip
    manifest = _export(folder, tmp_path / "data", schema="ga4")
    assert manifest["source"] == {"schema": "ga4", "table": str(folder)}
    assert [(d["date"], d["rows"]) for d in manifest["days"]] == [
        ("2024-02-10", 5), ("2024-02-29", 1)
    ]  # fmt: skip
    counts = manifest["counts"]
    assert counts["rows_read"] == 11  # 6 valid + 2 rejected + 1 ignored + 2 outside
    assert counts["rejected_by_reason"] == dict.fromkeys(REJECT_REASONS, 0) | {
        "empty_sku": 1, "bad_timestamp": 1
    }  # fmt: skip
    assert counts["ignored_events"] == {"page_view": 1}
    assert counts["outside_window"] == {
        "before": {"rows": 1, "first": "2024-01-31", "last": "2024-01-31"},
        "after": {"rows": 1, "first": "2024-03-01", "last": "2024-03-01"},
    }
    assert sorted((u, s, a) for u, s, a, _ in _valid_rows(tmp_path / "data")) == [
        ("p1", "A", "basket"), ("p1", "A", "browsed"), ("p1", "B", "browsed"),
        ("p2", "A", "purchase"), ("p2", "C", "purchase"), ("p4", "E", "purchase"),
    ]  # fmt: skip
    assert sorted(_rejects(manifest), key=repr) == sorted([
        ("p3", None, "view_item", str(int(t(2024, 2, 10, 9, tzinfo=UTC).timestamp() * 10**6)),
         "empty_sku"),
        ("p3", "D", "view_item", None, "bad_timestamp"),
    ], key=repr)  # fmt: skip


# --- bad input -----------------------------------------------------------------------------
def test_bad_input_fails_clearly_without_manifest(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match="events source not found"):
        _export(tmp_path / "missing.csv", root)
    no_sku = _write_csv(tmp_path / "e.csv", [("u", "b", "2024-02-02")], ["user_id", "action", "ts"])
    with pytest.raises(ValueError, match=r"lacks sku"):
        _export(no_sku, root)
    with pytest.raises(ValueError, match="unknown events schema"):
        _export(no_sku, root, schema="avro")
    with pytest.raises(ValueError, match="no events source"):
        _export("", root)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _write_csv(mixed / "a.csv", [("u", "s", "browsed", "2024-02-02")])
    pq.write_table(pa.table({"user_id": ["u"]}), mixed / "b.parquet")
    with pytest.raises(ValueError, match="mixes CSV and Parquet"):
        _export(mixed, root)
    with pytest.raises(SourceError, match="a.csv: not a GA4 export file"):
        _export(mixed, root, schema="ga4")
    with pytest.raises(ValueError, match="local paths only"):  # checked before any IO
        DuckDBWarehouse().export(PARAMS, str(mixed / "a.csv"), "plain", "gs://bucket/data")
    assert not (root / "exports").exists() or not list(root.rglob("_MANIFEST.json"))


# --- real data and volume -----------------------------------------------------------------
def test_shared_online_retail(tmp_path: Path, shared_data: Path) -> None:
    source = shared_data / "online_retail_uci.csv.gz"
    params = RunParams("retail", dt.date(2011, 12, 10), window_days=380)
    manifest = _export(source, tmp_path, params=params)
    con = duckdb.connect()
    per_day = dict(
        con.execute(
            "SELECT strftime(CAST(date AS DATE), '%Y-%m-%d'), count(*) FROM read_csv(?) "
            "WHERE CAST(date AS DATE) >= ? GROUP BY 1",
            [str(source), params.start_date],
        ).fetchall()
    )
    assert {d["date"]: d["rows"] for d in manifest["days"]} == per_day
    assert manifest["counts"]["rows_rejected"] == 0
    assert manifest["counts"]["rows_valid"] == sum(per_day.values())


@pytest.mark.slow
def test_one_million_rows(tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    duckdb.execute(
        "COPY (SELECT 'u' || (i % 50000) AS user_id, 's' || (i * 7 % 20000) AS sku, "
        "['browsed', 'basket', 'purchase', 'clicked'][1 + (i % 4)::INT] AS action, "
        "strftime(TIMESTAMP '2024-01-25' + to_seconds(i * 3), '%Y-%m-%d %H:%M:%S') AS ts "
        f"FROM range(1000000) t(i)) TO '{source}' (HEADER)"
    )
    manifest = _export(source, tmp_path / "data")
    # Oracle: row i is at 2024-01-25 + 3i seconds and clicked when i % 4 == 3.
    first = (7 * 86400 + 2) // 3  # first i on 2024-02-01
    last = (36 * 86400 - 1) // 3  # last i before 2024-03-01
    in_window = min(last, 999_999) - first + 1
    clicked = sum(1 for i in range(first, min(last, 999_999) + 1) if i % 4 == 3)
    assert manifest["counts"]["rows_read"] == 1_000_000
    assert manifest["counts"]["rows_read"] - manifest["counts"]["rows_outside"] == in_window
    assert manifest["counts"]["rejected_by_reason"]["unknown_action"] == clicked
    assert manifest["counts"]["rows_valid"] == in_window - clicked


# --- the message handler and the local run's default date ----------------------------------
def test_on_message_exports_once_per_run(tmp_path: Path) -> None:
    from simrec.config import Settings
    from simrec.stages.cloudevents import BadEvent
    from simrec.stages.export import on_message

    source = tmp_path / "events.csv"
    source.write_text(CRAFTED)
    settings = Settings(
        data_uri=str(tmp_path / "data"), events_source=str(source), tenant="shop",
        window_days=29,
    )  # fmt: skip
    payload = {"date": "2024-03-01"}
    first = on_message(payload, settings, DuckDBWarehouse(), dt.date(2024, 3, 9))
    expected = dataclasses.replace(PARAMS, model=settings.model)  # the deployment's model
    assert (first.action, first.run_id) == ("exported", expected.run_id)
    assert first.ids["rows_valid"] == 3 and first.ids["rows_rejected"] == 11
    # A redelivery does not export again, but resumes the chain where it stopped (no
    # similarities yet): the export manifest is re-emitted for the cluster stage.
    again = on_message(payload, settings, DuckDBWarehouse(), dt.date(2024, 3, 9))
    assert (again.action, again.run_id) == ("resumed", first.run_id)
    assert "re-emitted the export manifest" in again.reason
    with pytest.raises(BadEvent):
        on_message({"date": "March"}, settings, DuckDBWarehouse(), dt.date(2024, 3, 9))


def test_newest_event_date(tmp_path: Path) -> None:
    from simrec.adapters.warehouse_local import newest_event_date

    source = tmp_path / "events.csv"
    source.write_text(CRAFTED)
    assert newest_event_date(str(source), "plain") == dt.date(2024, 3, 1)
    empty = _write_csv(tmp_path / "empty.csv", [("u", "s", "browsed", "never")])
    assert newest_event_date(str(empty), "plain") is None
    folder = tmp_path / "ga4"
    folder.mkdir()
    _ga4_file(folder, "events_20240210", [
        ("view_item", dt.datetime(2024, 2, 10, 23, 59, tzinfo=UTC), "p", ["A"]),
        ("page_view", dt.datetime(2024, 2, 11, 0, 30, tzinfo=UTC), "p", None),
    ])  # fmt: skip
    assert newest_event_date(str(folder), "ga4") == dt.date(2024, 2, 11)


def test_settings_rules_reach_both_warehouses() -> None:
    """One definition: the rules the settings declare are the ones both engines run."""
    from simrec.adapters import build_adapters
    from simrec.config import Settings

    settings = Settings(
        ga4_event_actions="view_item=browsed,refund=basket", ga4_user_key="user_id",
        ga4_time_zone="Europe/Berlin", placeholder_ids="(not set),unknown",
        duplicate_tolerance_seconds=2.5, gcp_project="p",
    )  # fmt: skip
    rules = settings.export_rules
    assert dict(rules.event_actions) == {"view_item": "browsed", "refund": "basket"}
    assert rules.placeholders == ("(not set)", "unknown")
    assert (rules.user_key, rules.time_zone, rules.duplicate_tolerance_s) == (
        "user_id", "Europe/Berlin", 2.5
    )  # fmt: skip
    assert build_adapters(settings).warehouse.rules == rules
    gcp = Settings(**{**settings.model_dump(), "backend": "gcp"})
    assert build_adapters(gcp).warehouse.rules == rules
    with pytest.raises(ValueError, match="bad event mapping"):
        Settings(ga4_event_actions="view_item=clicked")
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(ga4_time_zone="Nowhere/City")
