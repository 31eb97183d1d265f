"""The synthetic shop: deterministic, the requested size, and shaped like a real shop."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from simrec.core.matrix import build_matrix
from simrec.generate import default_sizes, generate_catalog, generate_events, write_events
from tests.builders import PLAIN

END = dt.date(2024, 2, 29)


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate_events(40_000, end_date=END, seed=3)


def test_same_seed_same_events_other_seed_other_events():
    a = generate_events(5_000, end_date=END, seed=9)
    b = generate_events(5_000, end_date=END, seed=9)
    c = generate_events(5_000, end_date=END, seed=10)
    pd.testing.assert_frame_equal(a, b)
    assert not a[["user_id", "sku"]].equals(c[["user_id", "sku"]])


@pytest.mark.parametrize("n", [1, 7, 10_000, 123_457])
def test_sizes_ids_and_window(n):
    df = generate_events(n, days=7, end_date=END, seed=1)
    n_users, n_items, _ = default_sizes(n)
    assert len(df) == n
    assert list(df.columns) == ["user_id", "sku", "action", "ts", "order_id"]
    purchase = df["action"] == "purchase"
    assert df.loc[~purchase, "order_id"].isna().all()  # orders: purchases only
    assert df.loc[purchase, "order_id"].str.fullmatch(r"O-\d+").all()
    assert df["user_id"].nunique() <= n_users
    assert df["sku"].nunique() <= n_items
    assert df["user_id"].str.fullmatch(r"U-\d{7}").all()
    assert df["sku"].str.fullmatch(r"SKU-\d{6}").all()
    assert str(df["ts"].dt.tz) == "UTC"
    assert df["ts"].is_monotonic_increasing
    assert df["ts"].min() >= pd.Timestamp(END - dt.timedelta(days=6), tz="UTC")
    assert df["ts"].max() < pd.Timestamp(END + dt.timedelta(days=1), tz="UTC")


def test_explicit_sizes_and_bad_arguments():
    df = generate_events(20_000, n_users=500, n_items=80, n_categories=4, end_date=END)
    assert df["user_id"].nunique() == 500  # every user gets at least one event
    assert df["sku"].nunique() <= 80
    with pytest.raises(ValueError, match="n_events"):
        generate_events(0)
    with pytest.raises(ValueError, match="days"):
        generate_events(10, days=0)


def test_default_sizes_scale_with_the_log():
    users, items, cats = default_sizes(10_000_000)
    assert items == 100_000 and 400_000 <= users <= 600_000 and 1 <= cats <= items


def test_action_mix(events):
    shares = events["action"].value_counts(normalize=True)
    assert shares["browsed"] == pytest.approx(0.85, abs=0.01)
    assert shares["basket"] == pytest.approx(0.10, abs=0.01)
    assert shares["purchase"] == pytest.approx(0.05, abs=0.01)


def test_baskets_and_purchases_follow_a_browse_of_the_same_item(events):
    first_browse = events[events["action"] == "browsed"].groupby(["user_id", "sku"])["ts"].min()
    for action in ("basket", "purchase"):
        rows = events[events["action"] == action].join(
            first_browse.rename("browse_ts"), on=["user_id", "sku"]
        )
        assert (rows["browse_ts"] <= rows["ts"]).mean() > 0.95


def test_about_eleven_distinct_items_per_user(events):
    per_user = events.groupby("user_id")["sku"].nunique()
    assert 8 <= per_user.mean() <= 14
    assert per_user.max() > 5 * per_user.median()  # log-normal activity: a heavy tail


def test_popularity_is_skewed(events):
    counts = events["sku"].value_counts().to_numpy()
    top = counts[: max(1, len(counts) // 10)].sum() / counts.sum()
    assert top > 0.25  # the top 10% of items take far more than 10% of the events
    assert counts[0] > 20 * np.median(counts)


def test_items_of_a_category_are_neighbors(events):
    n_users, n_items, n_cats = default_sizes(len(events))
    catalog = generate_catalog(n_items, n_cats, seed=3).set_index("sku")
    m = build_matrix(events["user_id"], events["sku"], events["action"], PLAIN)
    norms = np.sqrt(np.asarray(m.matrix.multiply(m.matrix).sum(axis=0))).ravel()
    unit = m.matrix @ sp.diags(1.0 / norms)
    cos = (unit.T @ unit).toarray()
    cat = catalog.loc[m.skus, "category"].to_numpy()
    same = cat[:, None] == cat[None, :]
    off = ~np.eye(len(cat), dtype=bool)
    assert cos[same & off].mean() > 3 * cos[~same].mean()
    # Each item's 5 nearest neighbors are mostly of its own category.
    np.fill_diagonal(cos, -1)
    top5 = np.argsort(-cos, axis=1)[:, :5]
    assert (cat[top5] == cat[:, None]).mean() > 0.6


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_write_events_round_trip(tmp_path, suffix):
    df = generate_events(2_000, end_date=END, seed=5)
    path = write_events(df, tmp_path / f"events{suffix}")
    if suffix == ".parquet":
        back = pq.read_table(path).to_pandas()
        assert str(back["ts"].dt.tz) == "UTC"
    else:
        back = pd.read_csv(path, dtype=str)
        assert back["ts"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
        back["ts"] = pd.to_datetime(back["ts"], utc=True)
    assert back["user_id"].tolist() == df["user_id"].tolist()
    assert back["sku"].tolist() == df["sku"].tolist()
    assert back["action"].tolist() == df["action"].tolist()
    assert (back["ts"] == df["ts"]).all()


def test_write_events_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="unsupported"):
        write_events(generate_events(10, end_date=END), tmp_path / "events.json")


@pytest.mark.slow
def test_ten_million_events():
    df = generate_events(10_000_000, end_date=END, seed=1)
    assert len(df) == 10_000_000
    assert df["sku"].nunique() > 50_000
    assert df.memory_usage(deep=True).sum() < 1.5e9


def test_shop_catalog_adds_catalog_only_items_no_event_names() -> None:
    """The demo's catalog: every generated item with its attributes, and new items (cold:
    no events) drawn the same way; the items before them do not depend on how many."""
    from simrec.core.snapshot import catalog_table
    from simrec.generate import NEW_SKU_PREFIX, shop_catalog

    n_events = 5_000
    _, n_items, n_cats = default_sizes(n_events)
    catalog = shop_catalog(n_items, n_cats, seed=42, new_items=3)
    events = generate_events(n_events, seed=42, end_date=dt.date(2026, 11, 30))
    new = catalog["sku"][catalog["sku"].str.startswith(NEW_SKU_PREFIX)].tolist()
    assert new == ["NEW-000", "NEW-001", "NEW-002"]
    assert not set(new) & set(events["sku"]) and set(events["sku"]) <= set(catalog["sku"])
    assert catalog[["brand", "price", "title"]].notna().all().all()
    plain = shop_catalog(n_items, n_cats, seed=42)
    assert plain.equals(catalog.iloc[:n_items].reset_index(drop=True))
    assert catalog_table(catalog).num_rows == n_items + 3  # a catalog the load accepts
