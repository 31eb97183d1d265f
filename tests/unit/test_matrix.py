"""The matrix rule on hand-made events and against a plain pandas rendering of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simrec.core.actions import ActionWeights
from simrec.core.matrix import build_matrix
from tests.builders import PLAIN

EVENTS = [
    # U1: 5 items, capped to its top 3 (A=6, then B and C tied at 2 with sku order)
    ("U1", "A", "purchase"),
    ("U1", "B", "basket"),
    ("U1", "C", "basket"),
    ("U1", "D", "browsed"),
    ("U1", "E", "browsed"),
    # U2: 4 items all 0.5: the tie keeps the 3 smallest skus
    ("U2", "D", "browsed"),
    ("U2", "C", "browsed"),
    ("U2", "B", "browsed"),
    ("U2", "A", "browsed"),
    # U3: one item (twice): dropped by min_items_per_user=2
    ("U3", "A", "browsed"),
    ("U3", "A", "browsed"),
    # U4: repeated events sum
    ("U4", "D", "browsed"),
    ("U4", "D", "browsed"),
    ("U4", "E", "basket"),
]


def _build(events=EVENTS, weights=None, lo=2, hi=3):
    users, skus, actions = zip(*events, strict=True)
    model = PLAIN.replace(
        weights=weights or ActionWeights(), min_items_per_user=lo, max_items_per_user=hi
    )
    return build_matrix(list(users), list(skus), list(actions), model)


def test_values_filters_and_cap():
    m = _build()
    assert m.user_ids.tolist() == ["U1", "U2", "U4"]
    assert m.skus.tolist() == ["A", "B", "C", "D", "E"]
    expected = np.array([[6, 2, 2, 0, 0], [0.5, 0.5, 0.5, 0, 0], [0, 0, 0, 1.0, 2.0]], dtype=float)
    np.testing.assert_array_equal(m.matrix.toarray(), expected)
    assert m.counts == {
        "events": 14,
        "users": 4,
        "users_kept": 3,
        "capped_users": 2,
        "items": 5,
        "cells": 8,
    }


def test_popularity_counts_every_user_before_the_filters():
    m = _build()
    assert m.item_skus.tolist() == ["A", "B", "C", "D", "E"]
    assert m.item_users.tolist() == [3, 2, 2, 3, 2]  # U3 and the capped cells count
    np.testing.assert_allclose(m.item_weight, [7.5, 2.5, 2.5, 2.0, 2.5])


def test_zero_weight_cells_are_not_cells():
    m = _build(weights=ActionWeights(browsed=0.0), lo=2, hi=10)
    # U2 browsed only: no cells left, dropped; U4 keeps one cell (E): dropped too.
    assert m.user_ids.tolist() == ["U1"]
    assert m.skus.tolist() == ["A", "B", "C"]
    assert m.counts["users"] == 4 and m.counts["cells"] == 3
    assert m.item_users.tolist() == [3, 2, 2, 3, 2]  # but they are still shoppers


def test_min_items_one_and_no_cap():
    m = _build(lo=1, hi=100)
    assert m.user_ids.tolist() == ["U1", "U2", "U3", "U4"]
    assert m.counts["capped_users"] == 0 and m.counts["cells"] == 5 + 4 + 1 + 2


@pytest.mark.parametrize(
    ("events", "lo", "hi", "match"),
    [
        ([("U1", "A", "bought")], 1, 5, "unknown actions"),
        ([(None, "A", "browsed")], 1, 5, "user_id has 1 missing"),
        ([("U1", None, "browsed")], 1, 5, "sku has 1 missing"),
        (EVENTS, 3, 2, "max_items_per_user"),
        (EVENTS, 0, 2, "min_items_per_user"),
    ],
)
def test_bad_input_is_a_clear_error(events, lo, hi, match):
    with pytest.raises(ValueError, match=match):
        _build(events, lo=lo, hi=hi)


def test_empty_events():
    m = build_matrix([], [], [], PLAIN)
    assert m.matrix.shape == (0, 0)
    assert m.counts == dict.fromkeys(
        ("events", "users", "users_kept", "capped_users", "items", "cells"), 0
    )


def _pandas_rule(df: pd.DataFrame, weights: ActionWeights, lo: int, hi: int) -> pd.Series:
    """The rule written the obvious (slow) way: value per kept (user, sku)."""
    w = df["action"].map(weights.as_dict())
    cells = df.assign(w=w).groupby(["user_id", "sku"])["w"].sum().reset_index()
    cells = cells[cells["w"] > 0]
    n = cells.groupby("user_id")["sku"].transform("size")
    cells = cells[n >= lo].sort_values(["user_id", "w", "sku"], ascending=[True, False, True])
    cells = cells[cells.groupby("user_id").cumcount() < hi]
    return cells.set_index(["user_id", "sku"])["w"].sort_index()


def test_matches_a_plain_pandas_rendering(shop_events):
    weights = ActionWeights()
    model = PLAIN.replace(weights=weights, min_items_per_user=3, max_items_per_user=12)
    m = build_matrix(shop_events["user_id"], shop_events["sku"], shop_events["action"], model)
    coo = m.matrix.tocoo()
    got = pd.Series(
        coo.data,
        index=pd.MultiIndex.from_arrays(
            [m.user_ids[coo.row].astype(str), m.skus[coo.col].astype(str)],
            names=["user_id", "sku"],
        ),
    ).sort_index()
    want = _pandas_rule(shop_events, weights, 3, 12)
    assert m.counts["capped_users"] > 0  # the cap really applies on this data
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)
