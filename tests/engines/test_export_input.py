"""Hostile but realistic input files: valid CSV dialects are read; every unreadable file,
wrongly typed column or GA4 layout ``bq extract`` does not write ends in one line naming
the file (and line or column), and the CLI exits 1 with that line and a summary."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simrec import storage
from simrec.adapters.warehouse_local import GA4_JSON_COLUMNS, DuckDBWarehouse
from simrec.cli import main
from simrec.core import layout
from simrec.core.events import SourceError
from simrec.core.runs import RunParams
from simrec.local.runner import run_warnings
from simrec.stages.export import run_export

UTC = dt.UTC
PARAMS = RunParams("shop", dt.date(2024, 3, 1), window_days=29)  # 2024-02-01 .. 2024-02-29
HEADER = "user_id,sku,action,ts\n"


def _export(source: Path, root: Path, schema: str = "plain") -> dict:
    return run_export(PARAMS, DuckDBWarehouse(), str(source), schema, str(root))


def _valid(root: Path) -> list[tuple]:
    files = sorted(str(p) for p in Path(root, "exports", "shop").glob("dt=*/*.parquet"))
    table = pq.read_table(files) if files else None
    return sorted((r["user_id"], r["sku"], r["action"]) for r in table.to_pylist()) if files else []


# --- CSV dialects that must be read --------------------------------------------------------
def test_quoted_newlines_short_rows_crlf_and_bom_are_read(tmp_path: Path) -> None:
    """A quoted newline used to crash DuckDB's parallel reader (with null padding on)."""
    source = tmp_path / "e.csv"
    text = (
        "\ufeff" + HEADER + 'u1,"s\n1",browsed,2024-02-01\n' + '"u,2",s2,basket,2024-02-02\n'
        + 'u3,"say ""hi""",purchase,2024-02-03\n' + "u4,s4\n"  # short line: a reject
    )  # fmt: skip
    source.write_bytes(text.replace("\n", "\r\n").encode())
    manifest = _export(source, tmp_path / "data")
    assert manifest["counts"]["rows_read"] == 4
    assert manifest["counts"]["rejected_by_reason"]["unknown_action"] == 1
    assert _valid(tmp_path / "data") == [
        ("u,2", "s2", "basket"), ("u1", "s\r\n1", "browsed"), ("u3", 'say "hi"', "purchase")
    ]  # fmt: skip


# --- files that cannot be read: one line naming file and line -----------------------------
def _gzip_truncated(path: Path) -> None:
    rng = random.Random(3)
    body = "".join(f"u{rng.randrange(10**6)},s{rng.randrange(10**6)},browsed,2024-02-0"
                   f"{rng.randrange(1, 9)}\n" for _ in range(20_000))  # fmt: skip
    data = gzip.compress((HEADER + body).encode())
    path.write_bytes(data[: len(data) // 2])


BAD_FILES = {
    "latin1.csv": (lambda p: p.write_bytes(
        (HEADER + "u1,s1,browsed,2024-02-01\nu2,s\xe92,browsed,2024-02-02\n").encode("latin-1")),
        r"latin1.csv: line 3: not UTF-8 text"),
    "truncated.csv.gz": (_gzip_truncated, r"truncated.csv.gz: truncated gzip file"),
    "binary.csv": (lambda p: p.write_bytes(bytes(range(256)) * 8), r"binary.csv: binary data"),
    "quotes.csv": (lambda p: p.write_text(
        HEADER + 'u1,s1,browsed,2024-02-01\nu2,"s2,browsed,2024-02-01\nu3,s3,basket,2024-02-02\n'),
        r"quotes.csv: line 3: .*unbalanced quote"),
    "plain.csv.gz": (lambda p: p.write_text(HEADER + "u1,s1,browsed,2024-02-01\n"),
                     r"plain.csv.gz: not a gzip file"),
    "broken.parquet": (lambda p: p.write_bytes(b"PAR1" + b"x" * 64),
                       r"broken.parquet: .*Parquet"),
    "empty.csv": (lambda p: p.write_bytes(b""), r"empty.csv: empty file"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_unreadable_file_is_one_line_naming_it(tmp_path: Path, name: str) -> None:
    write, message = BAD_FILES[name]
    write(tmp_path / name)
    with pytest.raises(SourceError, match=message) as err:
        _export(tmp_path / name, tmp_path / "data")
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "data").rglob(layout.MANIFEST_NAME))


def test_cli_input_error_is_one_line_exit_1_and_debug_shows_the_traceback(
    tmp_path: Path, capsys
) -> None:
    source = tmp_path / "quotes.csv"
    BAD_FILES["quotes.csv"][0](source)
    argv = ["run", "--events", str(source), "--workdir", str(tmp_path / "w"), "--engine", "local",
            "--date", "2024-03-01", "--window-days", "29"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    [line] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "quotes.csv: line 3" in line and "Traceback" not in err
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert summary["status"] == "failed" and "quotes.csv: line 3" in summary["error"]
    with pytest.raises(SourceError):
        main([*argv, "--debug"])


# --- Parquet columns of the wrong type -----------------------------------------------------
@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("sku", pa.array([1.0, 2.0]), r"column 'sku' \(sku\) is DOUBLE; expected text or integer"),
        ("sku", pa.array([["s1"], ["s2"]]), r"column 'sku' \(sku\) is VARCHAR\[\]"),
        ("user_id", pa.array([{"a": 1}, {"a": 2}]), r"column 'user_id' \(user_id\) is STRUCT"),
        ("ts", pa.array([1706745600, 1706832000]), r"column 'ts' \(ts\) is BIGINT.*epoch"),
    ],
)
def test_parquet_column_of_the_wrong_type_names_the_column(
    tmp_path: Path, column: str, values: pa.Array, message: str
) -> None:
    table = {"user_id": pa.array(["u1", "u2"]), "sku": pa.array(["s1", "s2"]),
             "action": pa.array(["browsed", "basket"]),
             "ts": pa.array(["2024-02-02", "2024-02-03"])}  # fmt: skip
    table[column] = values
    pq.write_table(pa.table(table), tmp_path / "e.parquet")
    with pytest.raises(SourceError, match=message):
        _export(tmp_path / "e.parquet", tmp_path / "data")


def test_parquet_integer_ids_are_read_as_their_digits(tmp_path: Path) -> None:
    table = pa.table({"user_id": [7, 8], "sku": [123, 456], "action": ["browsed"] * 2,
                      "ts": ["2024-02-02", "2024-02-03"]})  # fmt: skip
    pq.write_table(table, tmp_path / "e.parquet")
    _export(tmp_path / "e.parquet", tmp_path / "data")
    assert _valid(tmp_path / "data") == [("7", "123", "browsed"), ("8", "456", "browsed")]


# --- GA4 file layouts ----------------------------------------------------------------------
ITEM = pa.struct([("item_id", pa.string()), ("item_name", pa.string()),
                  ("quantity", pa.int64()), ("price", pa.float64())])  # fmt: skip
# The GA4 BigQuery export's shape (developers.google.com/analytics/bigquery/event-schema):
# event_params is a repeated record of key and value{string,int,float,double}_value (the
# session's ga_session_id an INT64 in value.int_value); ecommerce.transaction_id a STRING.
VALUE = pa.struct([("string_value", pa.string()), ("int_value", pa.int64()),
                   ("float_value", pa.float64()), ("double_value", pa.float64())])  # fmt: skip
PARAM = pa.struct([("key", pa.string()), ("value", VALUE)])
GA4 = pa.schema([("event_date", pa.string()), ("event_timestamp", pa.int64()),
                 ("event_name", pa.string()), ("user_pseudo_id", pa.string()),
                 ("user_id", pa.string()), ("event_params", pa.list_(PARAM)),
                 ("ecommerce", pa.struct([("transaction_id", pa.string())])),
                 ("items", pa.list_(ITEM))])  # fmt: skip


def _events(day: str, user: str, skus: list[str]) -> list[dict]:
    ts = int(dt.datetime.strptime(day + "12", "%Y%m%d%H").replace(tzinfo=UTC).timestamp() * 1e6)
    return [{"event_date": day, "event_timestamp": ts + i, "event_name": "view_item",
             "user_pseudo_id": user, "user_id": None,
             "items": [{"item_id": s, "item_name": s, "quantity": None, "price": 1.0}]}
            for i, s in enumerate(skus)]  # fmt: skip


def _parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, GA4), path)


def _ndjson(path: Path, rows: list[dict], compress: bool) -> None:
    """As ``bq extract --destination_format=NEWLINE_DELIMITED_JSON`` writes: INT64 as
    JSON strings, NULL fields left out."""

    def encode(value):
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return str(value) if isinstance(value, int) else value

    text = "".join(json.dumps(encode(r)) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())


def test_ga4_every_bq_extract_layout_is_read(tmp_path: Path) -> None:
    src = tmp_path / "ga4"
    _parquet(src / "events_20240210.parquet", _events("20240210", "p1", ["A", "B"]))
    _parquet(src / "events_20240211-000000000000.parquet", _events("20240211", "p2", ["A"]))
    _parquet(src / "events_20240211-000000000001.parquet", _events("20240211", "p3", ["C"]))
    _parquet(src / "events_20240212" / "000000000000.parquet", _events("20240212", "p4", ["D"]))
    _parquet(src / "events_intraday_20240212.parquet", _events("20240212", "p9", ["Z"]))
    manifest = _export(src, tmp_path / "data", "ga4")
    assert [(d["date"], d["rows"]) for d in manifest["days"]] == [
        ("2024-02-10", 2), ("2024-02-11", 2), ("2024-02-12", 1)
    ]  # fmt: skip
    assert "p9" not in {u for u, _, _ in _valid(tmp_path / "data")}  # intraday: not read


@pytest.mark.parametrize("compress", [False, True], ids=["json", "json.gz"])
def test_ga4_ndjson_export_with_int64_as_strings(tmp_path: Path, compress: bool) -> None:
    src = tmp_path / "ga4"
    ext = ".json.gz" if compress else ".json"
    rows = _events("20240210", "p1", ["A", "B"])
    rows[1]["items"][0]["quantity"] = 2  # the only item with a quantity in its event
    _ndjson(src / f"events_20240210-000000000000{ext}", rows, compress)
    _ndjson(src / f"events_20240211-000000000000{ext}", _events("20240211", "p2", ["C"]),
            compress)  # fmt: skip
    manifest = _export(src, tmp_path / "data", "ga4")
    assert manifest["counts"]["rows_valid"] == 3
    assert _valid(tmp_path / "data") == [("p1", "A", "browsed"), ("p1", "B", "browsed"),
                                         ("p2", "C", "browsed")]  # fmt: skip
    assert set(GA4_JSON_COLUMNS) <= set(GA4.names)  # the typed fields are the export's


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("events_20240210-000000000000.avro", "Avro is not read locally"),
        ("events_20240210.csv", "not a GA4 export file"),
        ("export-000000000000.parquet", "not named after its day table"),
    ],
)
def test_ga4_other_files_are_refused_by_name(tmp_path: Path, name: str, message: str) -> None:
    src = tmp_path / "ga4"
    _parquet(src / "events_20240210.parquet", _events("20240210", "p1", ["A"]))
    (src / name).write_bytes(b"x")
    with pytest.raises(SourceError, match=f"{name}: {message}"):
        _export(src, tmp_path / "data", "ga4")


def test_ga4_mixed_formats_and_missing_quantity_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "ga4"
    _parquet(src / "events_20240210.parquet", _events("20240210", "p1", ["A"]))
    _ndjson(src / "events_20240211.json", _events("20240211", "p1", ["A"]), False)
    with pytest.raises(SourceError, match="mixes Parquet and NDJSON"):
        _export(src, tmp_path / "data", "ga4")
    old = tmp_path / "old"
    item = pa.struct([("item_id", pa.string())])
    schema = pa.schema([*[GA4.field(n) for n in GA4.names if n != "items"],
                        ("items", pa.list_(item))])  # fmt: skip
    rows = [{**r, "items": [{"item_id": "A"}]} for r in _events("20240210", "p", ["A"])]
    old.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema), old / "events_20240210.parquet")
    with pytest.raises(SourceError, match="'items' is .*expected a repeated record with "
                                          "item_id and quantity"):  # fmt: skip
        _export(old, tmp_path / "data", "ga4")


# --- the run summary: zero valid rows, warnings -------------------------------------------
def test_cli_zero_valid_rows_writes_the_summary_and_names_the_reasons(
    tmp_path: Path, capsys
) -> None:
    source = tmp_path / "e.csv"
    source.write_text(HEADER + "u1,s1,browsed,1706745600\nu2,s2,clicked,2024-02-03\n"
                      "u3,s3,browsed,2023-01-05\n")  # fmt: skip
    workdir = tmp_path / "w"
    argv = ["run", "--events", str(source), "--workdir", str(workdir), "--engine", "local",
            "--date", "2024-03-01", "--window-days", "29"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    [line] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "no valid events in the window 2024-02-01..2024-02-29" in line
    assert "1 bad_timestamp" in line and "1 unknown_action" in line
    assert "1 before the window (2023-01-05..2023-01-05)" in line
    summary = json.loads((workdir / "summary.json").read_text())
    rows = summary["rows"]
    assert rows["rows_read"] == 3 == (rows["rows_valid"] + rows["rows_rejected"]
                                      + rows["rows_ignored"] + rows["rows_outside"])  # fmt: skip
    assert summary["status"] == "failed" and summary["error"] in line
    assert storage.exists(summary["rejects_uri"])


def _counts(read: int, before: int, after: int = 0) -> dict:
    span = {"rows": before, "first": "2022-01-01", "last": "2023-12-31"}
    return {"rows_read": read, "rows_outside": before + after,
            "outside_window": {"before": span,
                               "after": {"rows": after, "first": None, "last": None}}}  # fmt: skip


def test_warnings_for_a_data_chosen_window_that_leaves_out_most_rows() -> None:
    [warning] = run_warnings(_counts(100, 60), {}, date_from_data=True)
    assert "leaves out 60 of 100 rows: 60 before (2022-01-01..2023-12-31)" in warning
    assert "--date" in warning
    assert run_warnings(_counts(100, 60), {}, date_from_data=False) == []  # the user chose
    assert run_warnings(_counts(100, 40), {}, date_from_data=True) == []


def test_future_rows_warn_and_do_not_choose_the_window(tmp_path: Path, capsys) -> None:
    """Four rows dated 2099 used to move the default window to 2099 (a 2-item model)."""
    rng = random.Random(5)
    rows = [(f"u{rng.randrange(60)}", f"s{rng.randrange(40)}", "purchase",
             f"2024-02-{rng.randrange(1, 29):02d}") for _ in range(3000)]  # fmt: skip
    rows += [("u1", "s1", "browsed", f"2099-01-0{d}") for d in range(1, 5)]
    source = tmp_path / "e.csv"
    with source.open("w", newline="") as fh:
        csv.writer(fh).writerows([HEADER.strip().split(","), *rows])
    workdir = tmp_path / "w"
    assert main(["run", "--events", str(source), "--workdir", str(workdir), "--engine", "local",
                 "--json"]) == 0  # fmt: skip
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["date"] == "2024-02-29"  # the day after the newest event not in the future
    assert summary["rows"]["rows_read"] == 3004
    assert summary["rows"]["outside_window"]["after"] == {
        "rows": 4, "first": "2099-01-01", "last": "2099-01-04"
    }  # fmt: skip
    assert summary["future_rows"] == {"rows": 4, "last": "2099-01-04"}
    [warning] = summary["warnings"]
    assert warning.startswith("4 rows are dated after today (up to 2099-01-04)")
    assert "warning: 4 rows are dated after today" in capsys.readouterr().err
    assert summary["items"] >= 30


def test_a_bad_file_in_a_folder_is_named(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text(HEADER + "u1,s1,browsed,2024-02-01\n")
    BAD_FILES["quotes.csv"][0](src / "b.csv")
    (src / "c.csv").write_text(HEADER + "u3,s3,browsed,2024-02-03\n")
    with pytest.raises(SourceError, match=r"b\.csv: line 3: .*unbalanced quote"):
        _export(src, tmp_path / "data")


def _run_argv(source: Path, workdir: Path, *extra: str) -> list[str]:
    return ["run", "--events", str(source), "--workdir", str(workdir), "--engine", "local",
            "--date", "2024-03-01", "--window-days", "29", *extra]  # fmt: skip


def test_a_refused_run_leaves_the_summary_of_the_run_holding_the_lock(
    tmp_path: Path, capsys
) -> None:
    """A run refused by the run lock writes no failure summary over the other run's."""
    from simrec.cli import local_settings
    from simrec.local.runner import Workdir, run_lock

    source = tmp_path / "e.csv"
    source.write_text(HEADER + "u1,s1,browsed,2024-02-01\nu1,s2,browsed,2024-02-01\n")
    workdir = tmp_path / "w"
    workdir.mkdir()
    theirs = '{"run_id": "the run holding the lock"}'
    (workdir / "summary.json").write_text(theirs)
    with run_lock(local_settings(Workdir(workdir)), "default"):
        assert main(_run_argv(source, workdir)) == 1
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: another run of tenant 'default'")
    assert (workdir / "summary.json").read_text() == theirs


def test_a_failed_forced_rerun_summarises_its_own_attempt(tmp_path: Path) -> None:
    """The failure summary of a forced rerun has the new attempt's id and counts, not
    those of the earlier, complete attempt."""
    source = tmp_path / "e.csv"
    good = [f"u{u},s{s},browsed,2024-02-0{1 + s}" for u in range(4) for s in range(3)]
    source.write_text(HEADER + "\n".join(good) + "\n")
    workdir = tmp_path / "w"
    assert main(_run_argv(source, workdir)) == 0
    first = json.loads((workdir / "summary.json").read_text())
    assert first["rows"]["rows_valid"] == 12
    source.write_text(HEADER + "u1,s1,clicked,2024-02-03\nu2,s2,browsed,later\n")
    assert main(_run_argv(source, workdir, "--force")) == 1
    failed = json.loads((workdir / "summary.json").read_text())
    assert failed["status"] == "failed" and failed["run_id"] == f"{first['run_id']}-a1"
    assert failed["rows"]["rows_read"] == 2 and failed["rows"]["rows_valid"] == 0
    assert failed["rows"]["rejected_by_reason"]["unknown_action"] == 1
    assert first["run_id"] in failed["rejects_uri"] and failed["rejects_uri"].endswith(
        f"{failed['run_id']}/rejects"
    )
