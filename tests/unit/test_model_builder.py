"""simrec.core.model_builder: vocabulary, CSR order and popularity against a scipy oracle."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import scipy.sparse as sp

from simrec.core import model_builder
from simrec.core.snapshot import ModelSnapshot


def _record(sku: str, neighbors: list[tuple[str, float, float]]) -> dict:
    return {"sku": sku, "neighbors": [{"sku": s, "score": c, "users": u} for s, c, u in neighbors]}


def _rows(data: dict[str, list[tuple[str, float, float]]]) -> list[dict]:
    return [model_builder.neighbor_row(_record(k, v)) for k, v in data.items()]


def _oracle(data: dict[str, list[tuple[str, float, float]]], skus: list[str], field: int):
    """Dense item x item matrix of one field (1 score, 2 users) straight from the input."""
    index = {s: i for i, s in enumerate(skus)}
    r, c, v = [], [], []
    for sku, neighbors in data.items():
        for entry in neighbors:
            r.append(index[sku])
            c.append(index[entry[0]])
            v.append(entry[field])
    n = len(skus)
    return sp.coo_matrix((v, (r, c)), shape=(n, n), dtype=np.float64).toarray()


def _random_data(seed: int, n_items: int = 60, max_k: int = 9):
    rng = random.Random(seed)
    skus = [f"sku-{i:03d}" for i in range(n_items)]
    data = {}
    for sku in rng.sample(skus, n_items * 2 // 3):
        others = rng.sample([s for s in skus if s != sku], rng.randint(1, max_k))
        # scores from a small grid so ties are frequent and the tie rule is exercised
        data[sku] = [
            (o, rng.choice([0.125, 0.25, 0.5, 0.75, 1.0]), rng.randint(1, 9)) for o in others
        ]
    items = {s: rng.randint(1, 50) for s in rng.sample(skus, n_items // 2)}
    data["only-in-neighbors"] = [("sku-000", 0.5, 2.0)]
    return data, items


def test_neighbor_row_sorts_by_score_then_sku() -> None:
    row = model_builder.neighbor_row(
        _record("a", [("d", 0.5, 1.0), ("b", 0.25, 4.0), ("c", 0.5, 2.0), ("e", 0.9, 3.0)])
    )
    assert row == {
        "sku": "a",
        "items": ["e", "c", "d", "b"],
        "scores": [0.9, 0.5, 0.5, 0.25],
        "users": [3.0, 2.0, 1.0, 4.0],
    }


def test_neighbor_row_missing_users_is_zero_and_null_list_is_empty() -> None:
    row = model_builder.neighbor_row({"sku": "a", "neighbors": [{"sku": "b", "score": 0.5}]})
    assert row["users"] == [0.0]
    assert model_builder.neighbor_row({"sku": "z", "neighbors": None})["items"] == []


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_record("a", [("a", 0.5, 1.0)]), "itself"),
        (_record("a", [("b", 0.5, 1.0), ("b", 0.4, 1.0)]), "twice"),
        (_record("", [("b", 0.5, 1.0)]), "non-empty"),
        (_record("a", [("", 0.5, 1.0)]), "non-empty"),
        (_record("a", [("b", math.nan, 1.0)]), "not finite"),
        (_record("a", [("b", None, 1.0)]), "not a number"),
    ],
)
def test_neighbor_row_rejects_bad_records(record: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model_builder.neighbor_row(record)


def test_item_stats_normalises_and_rejects_negative_users() -> None:
    assert model_builder.item_stats({"sku": "a", "users": np.int64(3), "weight": None}) == {
        "sku": "a",
        "users": 3,
        "weight": 0.0,
        "recent_weight": 0.0,
        "prior_weight": 0.0,
    }
    with pytest.raises(ValueError, match="users"):
        model_builder.item_stats({"sku": "a", "users": -1, "weight": 1.0})


def test_vocabulary_popularity_and_counts() -> None:
    data = {"b": [("a", 0.5, 2.0), ("x", 0.25, 1.0)], "a": [("b", 0.5, 2.0)], "e": []}
    items = [{"sku": s, "users": u, "weight": 1.0} for s, u in [("a", 7), ("b", 3), ("f", 1)]]
    meta = {"version": "v1", "counts": {"events": 10}}
    snap = model_builder.build_snapshot(_rows(data), items, meta)
    assert snap.skus == ["a", "b", "e", "f", "x"]  # items + neighbor skus + row skus
    assert snap.popularity.tolist() == [7.0, 3.0, 0.0, 1.0, 0.0]
    assert snap.indptr.tolist() == [0, 1, 3, 3, 3, 3]
    assert snap.indices.tolist() == [1, 0, 4]
    assert snap.metadata["counts"] == {"events": 10, "items": 5, "neighbor_rows": 2, "nnz": 3}
    assert meta == {"version": "v1", "counts": {"events": 10}}  # input left untouched
    assert snap.version == "v1"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_csr_matches_scipy_oracle(seed: int) -> None:
    data, popularity = _random_data(seed)
    rows = _rows(data)
    random.Random(seed).shuffle(rows)  # the read order must not matter
    items = [{"sku": s, "users": u, "weight": 0.0} for s, u in popularity.items()]
    snap = model_builder.build_snapshot(rows, items, {"version": "v"})

    expected_skus = sorted(set(popularity) | set(data) | {n for v in data.values() for n, *_ in v})
    assert snap.skus == expected_skus
    csr_scores = sp.csr_matrix((snap.scores, snap.indices, snap.indptr), shape=(snap.n_items,) * 2)
    csr_users = sp.csr_matrix((snap.users, snap.indices, snap.indptr), shape=(snap.n_items,) * 2)
    # grid scores and small integer users are exact in float32
    np.testing.assert_array_equal(csr_scores.toarray(), _oracle(data, snap.skus, 1))
    np.testing.assert_array_equal(csr_users.toarray(), _oracle(data, snap.skus, 2))
    assert snap.popularity.tolist() == [float(popularity.get(s, 0)) for s in snap.skus]
    for i in range(snap.n_items):
        idx, sc = snap.neighbors(i)
        order = sorted(range(len(idx)), key=lambda j: (-sc[j], idx[j]))
        assert order == list(range(len(idx))), f"row {snap.skus[i]} not in contract order"
    assert snap.metadata["counts"]["nnz"] == sum(len(v) for v in data.values())


def test_ties_are_decided_on_the_stored_float32_score() -> None:
    # 0.3 and its float64 successor are distinct in float64 and equal in float32: the
    # stored row must then be in neighbor index order.
    hi = np.nextafter(0.3, 1.0)
    assert np.float32(hi) == np.float32(0.3) and hi > 0.3
    snap = model_builder.build_snapshot(_rows({"a": [("b", 0.3, 1.0), ("c", hi, 1.0)]}), [])
    assert snap.indices.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("rows", "items", "message"),
    [
        ([{"sku": "a", "items": ["b"], "scores": [0.5], "users": [1.0]}] * 2, [], "two"),
        ([{"sku": "a", "items": ["b"], "scores": [], "users": [1.0]}], [], "length"),
        ([], [{"sku": "a", "users": 1}, {"sku": "a", "users": 2}], "twice"),
    ],
)
def test_build_rejects_inconsistent_input(rows: list, items: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model_builder.build_snapshot(rows, items)


def test_empty_input_gives_a_valid_empty_snapshot() -> None:
    snap = model_builder.build_snapshot([], [], {"version": "v"})
    assert snap.n_items == 0 and snap.indptr.tolist() == [0]


def test_same_content_survives_serialisation_and_detects_changes() -> None:
    data, popularity = _random_data(7, n_items=20)
    items = [{"sku": s, "users": u} for s, u in popularity.items()]
    snap = model_builder.build_snapshot(_rows(data), items, {"version": "v"})
    loaded = ModelSnapshot.from_files(snap.to_files())
    assert model_builder.same_content(snap, loaded)
    changed = ModelSnapshot.from_files(snap.to_files())
    changed.scores[0] += 0.5
    assert not model_builder.same_content(snap, changed)
