"""A synthetic shop's event log, realistic enough that item-to-item similarity means something.

The model, fully vectorised (10 million events take seconds):

* items belong to categories; item popularity is Zipf-like (a few hits, a long tail);
* user activity is log-normal (most shoppers browse a little, a few browse a lot);
* each user favours one to three categories and browses mostly in them, so items of a
  category share shoppers and have real neighbors; the rest is exploration;
* about 85% of events are ``browsed``, 10% ``basket`` and 5% ``purchase``; a basket
  follows a browse of the same item by the same user minutes later, and a purchase
  mostly follows a basket;
* events are spread uniformly over ``days`` days ending with ``end_date`` (inclusive);
* a user's purchases less than ``ORDER_GAP_S`` apart are one order: they share an
  ``order_id`` (other events have none), so bought-together has baskets.

The same arguments and seed always give the same events.
"""

from __future__ import annotations

import datetime as dt
from pathlib import PurePath

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from simrec.core.actions import Action
from simrec.core.events import EVENT_COLUMNS

#: Shares of the actions in the generated log.
ACTION_SHARES: dict[str, float] = {
    Action.BROWSED.value: 0.85,
    Action.BASKET.value: 0.10,
    Action.PURCHASE.value: 0.05,
}
ZIPF_EXPONENT = 0.9
ACTIVITY_SIGMA = 1.0
FAVOURITE_SHARE = 0.85  # share of browses that fall in the user's favourite categories
MAX_FAVOURITES = 3
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ORDER_GAP_S = 86_400  # a user's purchases closer than this are one order (a day: the
# log has about one purchase per user, so shorter gaps leave almost no multi-item orders)
#: The generated log's columns: the event columns and the order id.
COLUMNS: tuple[str, ...] = (*EVENT_COLUMNS, "order_id")


def default_sizes(n_events: int) -> tuple[int, int, int]:
    """``(n_users, n_items, n_categories)`` for a log of ``n_events`` events.

    Calibrated to about 11 distinct items per user and 100 events per item.
    """
    n_items = max(20, n_events // 100)
    n_users = max(10, n_events // 21)
    n_categories = max(4, min(n_items // 4, round(n_items / 50)))
    return n_users, n_items, n_categories


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    width = max(width, len(str(max(n - 1, 0))))
    return pa.array(np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width)))


def _pick(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Index drawn in ``[lo, hi)`` of each segment of the cumulative weights ``cum``."""
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    target = base + rng.random(len(lo)) * (cum[hi - 1] - base)
    return np.clip(np.searchsorted(cum, target, side="right"), lo, hi - 1)


def generate_catalog(n_items: int, n_categories: int, seed: int = 42) -> pd.DataFrame:
    """Items ``sku, category, weight``: Zipf-like popularity over a random ranking, items
    spread evenly over the categories. ``generate_events`` uses the catalog of its seed,
    so tests can check the category structure of the events."""
    if n_items < 1 or not 1 <= n_categories <= n_items:
        raise ValueError("need n_items >= 1 and 1 <= n_categories <= n_items")
    rng = np.random.default_rng([seed, 1])
    weight = 1.0 / np.arange(1, n_items + 1) ** ZIPF_EXPONENT
    return pd.DataFrame(
        {
            "sku": pd.array(_ids("SKU-", n_items, 6), dtype="str"),
            "category": rng.permutation(np.arange(n_items) % n_categories),
            "weight": weight[rng.permutation(n_items)],
        }
    )


TITLE_WORDS = tuple(f"w{i}" for i in range(400))
#: Prefix of the catalog-only skus ``shop_catalog`` adds (items no event names yet).
NEW_SKU_PREFIX = "NEW-"


def shop_catalog(
    n_items: int, n_categories: int, seed: int = 42, new_items: int = 0
) -> pd.DataFrame:
    """``generate_catalog`` as a shop publishes it (``sku, category, in_stock, brand,
    price, title``; brand, price and title drawn around each category), plus
    ``new_items`` catalog-only items (``NEW-...``, drawn the same way): cold items
    ``generate_events`` never names, answered from their attributes
    (``simrec.core.content``)."""
    base = generate_catalog(n_items, n_categories, seed)
    rng = np.random.default_rng([seed, 99])
    cat = base["category"].to_numpy()
    cat_brands = rng.integers(0, 60, (n_categories, 3))
    cat_price = rng.lognormal(3.0, 1.0, n_categories)
    cat_words = rng.integers(0, len(TITLE_WORDS), (n_categories, 6))

    def draw(rng: np.random.Generator, cat: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
        n = len(cat)
        brand = cat_brands[cat, rng.integers(0, 3, n)]
        brand = np.where(rng.random(n) < 0.2, rng.integers(0, 60, n), brand)
        price = cat_price[cat] * rng.lognormal(0.0, 0.3, n)
        titles = []
        for i in range(n):
            own = [TITLE_WORDS[w] for w in rng.choice(cat_words[cat[i]], 2, replace=False)]
            titles.append(" ".join([*own, TITLE_WORDS[rng.integers(len(TITLE_WORDS))],
                                    f"model{i % 97}"]))  # fmt: skip
        return brand, price, titles

    brand, price, titles = draw(rng, cat)
    skus = base["sku"].tolist()
    if new_items:
        extra = np.random.default_rng([seed, 100])
        new_cat = extra.integers(0, n_categories, new_items)
        new_brand, new_price, new_titles = draw(extra, new_cat)
        skus += list(_ids(NEW_SKU_PREFIX, new_items, 3).to_pylist())
        cat = np.concatenate([cat, new_cat])
        brand, price = np.concatenate([brand, new_brand]), np.concatenate([price, new_price])
        titles += new_titles
    return pd.DataFrame({
        "sku": pd.array(skus, dtype="str"), "category": [f"cat{c}" for c in cat],
        "in_stock": True, "brand": [f"brand{b}" for b in brand], "price": price.round(2),
        "title": titles,
    })  # fmt: skip


def generate_events(
    n_events: int,
    n_users: int | None = None,
    n_items: int | None = None,
    n_categories: int | None = None,
    days: int = 30,
    end_date: dt.date | None = None,
    seed: int = 42,
) -> pd.DataFrame:
    """Events ``user_id, sku, action, ts, order_id`` (ts: UTC timestamp; order_id only
    on purchases), sorted by ts.

    ``end_date`` defaults to yesterday (UTC), so a run dated today covers the log; pass it
    explicitly for reproducible output.
    """
    if n_events < 1:
        raise ValueError(f"n_events must be >= 1, got {n_events}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    d_users, d_items, d_cats = default_sizes(n_events)
    n_items = d_items if n_items is None else n_items
    n_users = d_users if n_users is None else n_users
    n_categories = min(d_cats if n_categories is None else n_categories, n_items)
    if n_users < 1 or n_items < 1 or n_categories < 1:
        raise ValueError("n_users, n_items and n_categories must be >= 1")
    if end_date is None:
        end_date = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    rng = np.random.default_rng(seed)

    n_basket = round(n_events * ACTION_SHARES[Action.BASKET])
    n_purchase = round(n_events * ACTION_SHARES[Action.PURCHASE])
    n_browse = n_events - n_basket - n_purchase
    if n_browse < 1:
        n_browse, n_basket, n_purchase = n_events, 0, 0
    n_users = min(n_users, n_browse)

    catalog = generate_catalog(n_items, n_categories, seed)
    item_weight = catalog["weight"].to_numpy()
    item_cat = catalog["category"].to_numpy()
    by_cat = np.argsort(item_cat, kind="stable")  # items grouped by category
    cum_item = np.cumsum(item_weight[by_cat])
    cat_hi = np.searchsorted(item_cat[by_cat], np.arange(n_categories), side="right")
    cat_lo = np.concatenate(([0], cat_hi[:-1]))
    cat_weight = np.bincount(item_cat, weights=item_weight, minlength=n_categories)
    cum_cat = np.cumsum(cat_weight)

    # Users: log-normal activity, every user at least one browse.
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, n_users)
    counts = 1 + rng.multinomial(n_browse - n_users, activity / activity.sum())
    user = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    n_fav = rng.integers(1, MAX_FAVOURITES + 1, n_users)
    favs = np.searchsorted(cum_cat, rng.random((n_users, MAX_FAVOURITES)) * cum_cat[-1])
    favs = np.minimum(favs, n_categories - 1)

    # Browses: a favourite category mostly, else any (by popularity); Zipf within it.
    fav_pick = favs[user, (rng.random(n_browse) * n_fav[user]).astype(np.int64)]
    explore = np.minimum(
        np.searchsorted(cum_cat, rng.random(n_browse) * cum_cat[-1]), n_categories - 1
    )
    cat = np.where(rng.random(n_browse) < FAVOURITE_SHARE, fav_pick, explore)
    item = by_cat[_pick(rng, cum_item, cat_lo[cat], cat_hi[cat])]
    start = int(pd.Timestamp(end_date - dt.timedelta(days=days - 1), tz="UTC").timestamp())
    last = start + days * 86_400 - 1
    ts = start + rng.integers(0, days * 86_400, n_browse)

    # Baskets follow a browse of the same item, purchases mostly a basket.
    src = rng.integers(0, n_browse, n_basket)
    b_user, b_item = user[src], item[src]
    b_ts = np.minimum(ts[src] + rng.exponential(600.0, n_basket).astype(np.int64), last)
    if n_basket:
        from_basket = rng.random(n_purchase) < 0.8
        src_b = rng.integers(0, n_basket, n_purchase)
        src_v = rng.integers(0, n_browse, n_purchase)
        p_user = np.where(from_basket, b_user[src_b], user[src_v])
        p_item = np.where(from_basket, b_item[src_b], item[src_v])
        p_prev = np.where(from_basket, b_ts[src_b], ts[src_v])
    else:
        src_v = rng.integers(0, n_browse, n_purchase)
        p_user, p_item, p_prev = user[src_v], item[src_v], ts[src_v]
    p_ts = np.minimum(p_prev + rng.exponential(1200.0, n_purchase).astype(np.int64), last)

    users = np.concatenate((user, b_user, p_user))
    items = np.concatenate((item, b_item, p_item))
    times = np.concatenate((ts, b_ts, p_ts))
    actions = np.repeat(np.arange(3, dtype=np.int8), [n_browse, n_basket, n_purchase])
    order = np.argsort(times, kind="stable")

    def strings(codes: np.ndarray, vocab: pa.Array) -> pd.Series:
        arr = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), vocab)
        return pd.Series(pd.array(arr.cast(pa.string()), dtype="str"))

    action_vocab = pa.array([a.value for a in Action])
    return pd.DataFrame(
        {
            "user_id": strings(users[order], _ids("U-", n_users, 7)),
            "sku": strings(items[order], pa.array(catalog["sku"].to_numpy())),
            "action": strings(actions[order], action_vocab),
            "ts": pd.to_datetime(times[order], unit="s", utc=True),
            "order_id": _order_ids(users[order], times[order], actions[order] == 2),
        },
        columns=list(COLUMNS),
    )


def _order_ids(users: np.ndarray, times: np.ndarray, purchase: np.ndarray) -> pd.Series:
    """``O-<n>`` per purchase (a new order when the user's previous purchase is at least
    ``ORDER_GAP_S`` earlier), null for other events. Drawn from no random numbers, so
    the other columns are those of a log without orders."""
    out = np.full(len(users), None, dtype=object)
    idx = np.flatnonzero(purchase)
    if len(idx):
        by_user = idx[np.lexsort((times[idx], users[idx]))]
        u, t = users[by_user], times[by_user]
        new = np.ones(len(by_user), dtype=bool)
        new[1:] = (u[1:] != u[:-1]) | (t[1:] - t[:-1] >= ORDER_GAP_S)
        out[by_user] = np.char.add("O-", (np.cumsum(new) - 1).astype(str)).astype(object)
    return pd.Series(pd.array(out, dtype="str"))


def _events_table(df: pd.DataFrame) -> pa.Table:
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"events are missing columns {missing}")
    columns = [c for c in COLUMNS if c in df.columns]  # the order id when there is one
    table = pa.Table.from_pandas(df[columns], preserve_index=False)
    ts = table.column("ts")
    if not pa.types.is_timestamp(ts.type):
        raise ValueError(f"ts must be a timestamp column, got {ts.type}")
    if ts.type.tz is None:
        ts = pc.assume_timezone(ts, "UTC")
    ts = ts.cast(pa.timestamp("us", tz="UTC"))
    return table.set_column(table.schema.get_field_index("ts"), "ts", ts)


def write_events(df: pd.DataFrame, path: str | PurePath) -> str:
    """Write events as ``.csv``, ``.csv.gz`` or ``.parquet`` (chosen by suffix).

    CSV timestamps are ISO-8601 ``YYYY-MM-DDTHH:MM:SSZ``; Parquet keeps a UTC timestamp.
    ``path`` may be any fsspec URI. Returns it as a string.
    """
    path = str(path)
    table = _events_table(df)
    lower = path.lower()
    if lower.endswith(".parquet"):
        with fsspec.open(path, "wb", auto_mkdir=True) as f:
            pq.write_table(table, f, compression="zstd")
    elif lower.endswith((".csv", ".csv.gz")):
        seconds = table.column("ts").cast(pa.timestamp("s", tz="UTC"), safe=False)
        ts_text = pc.strftime(seconds, format=ISO_FORMAT)
        table = table.set_column(table.schema.get_field_index("ts"), "ts", ts_text)
        compression = "gzip" if lower.endswith(".gz") else None
        with fsspec.open(path, "wb", auto_mkdir=True, compression=compression) as f:
            pacsv.write_csv(table, f, pacsv.WriteOptions(quoting_style="needed"))
    else:
        raise ValueError(f"unsupported events file {path!r}: use .csv, .csv.gz or .parquet")
    return path
