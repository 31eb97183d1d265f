"""The similarity engines' contract: one suite of tests, subclassed once per engine.

As implicit runs one test mixin against every implementation (and gorse one base suite
against every storage backend), every engine that writes a similarity run (the
single-machine engine, the Spark job's broadcast and shuffle plans) is held to the same
tests here: the output schema and layout of :mod:`simrec.core.layout`, exact cosine
against a scipy oracle, the matrix rule's cap and minimum on a hand-made shop, top-K,
the DIMSUM threshold (sampling), determinism for a seed, empty input and bad rows, and
the items table's trending sums.

A subclass names its ``engine`` (the manifest's) and implements :meth:`compute`. Runs
are cached per class and output name, so each configuration runs once per engine.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from simrec.core import baskets, dimsum, layout, trending
from simrec.core.actions import ACTIONS, ActionWeights
from simrec.core.matrix import build_matrix
from simrec.core.params import DEFAULTS
from simrec.core.runs import RunParams
from simrec.core.similarity import column_norms, fit_similarities, resolve_params
from simrec.storage import similarities
from tests.builders import BINARY_WEIGHTS, PLAIN, ExportedShop, export_events

ALL = 1000  # top_k at least the number of items: every pair is listed
SAMPLED = {"threshold": 0.2, "top_k": ALL}  # samples on the dense shop at test size
#: Scores of different engines agree to this (fixed-point pair sums, rounded scores).
SCORE_TOL = 1e-9

#: Counts every manifest has (``simrec.core.similarity.similarity_manifest``).
COUNT_KEYS = {"events", "users", "users_kept", "capped_users", "items", "cells",
              "emitted_pairs", "pairs", "neighbor_rows"}  # fmt: skip

HAND_MADE = [
    # U1: 5 items, capped to its top 3 (A=6, then B and C tied at 2: sku order)
    ("U1", "A", "purchase"), ("U1", "B", "basket"), ("U1", "C", "basket"),
    ("U1", "D", "browsed"), ("U1", "E", "browsed"),
    # U2: 4 items all 0.5: keeps A, B, C
    ("U2", "D", "browsed"), ("U2", "C", "browsed"), ("U2", "B", "browsed"),
    ("U2", "A", "browsed"),
    # U3: a single item: dropped
    ("U3", "A", "purchase"), ("U3", "A", "browsed"),
    # U4, U5: two items each
    ("U4", "D", "browsed"), ("U4", "D", "browsed"), ("U4", "E", "basket"),
    ("U5", "B", "purchase"), ("U5", "A", "browsed"),
]  # fmt: skip
HAND_DAY = pd.Timestamp("2024-03-01").date()


def columns(fields: Any) -> list[tuple[str, Any]]:
    """(name, type) of a schema's or a struct's fields. Nullability is the writer's own
    (Spark marks a count ``required``), so it is not part of the contract."""
    return [(f.name, f.type) for f in fields]


def pairs_of(manifest: dict[str, Any], table: str = layout.NEIGHBORS) -> pd.DataFrame:
    """The run's neighbor lists (or ``table``'s) in long form (sku, neighbor, rank,
    score, users)."""
    return similarities.neighbor_pairs(similarities.read_neighbors(manifest["outputs"][table]))


def scipy_cosine(events: pd.DataFrame, weights: ActionWeights | None = None):
    """The oracle: the matrix rule, then scipy (unit columns, A^T A, zero diagonal)."""
    m = build_matrix(events["user_id"], events["sku"], events["action"],
                     PLAIN.replace(weights=weights or ActionWeights()))  # fmt: skip
    unit = m.matrix @ sp.diags(1.0 / column_norms(m.matrix))
    cos = (unit.T @ unit).toarray()
    np.fill_diagonal(cos, 0.0)
    return m, cos


def core_pairs(
    shop: ExportedShop, overrides: dict[str, Any], bought_together: bool = False
) -> tuple[pd.DataFrame, Any]:
    """The core's own result in memory (matrix rule + sampled cosine top-K), long form:
    what every engine's output must be, for the same parameters and seed. With
    ``bought_together``: over the baskets of ``simrec.core.baskets`` instead of users."""
    params = resolve_params(shop.manifest["params"], overrides).model
    ev = shop.events
    rows_of = ev["user_id"]
    if bought_together:
        column = baskets.key_column(params.basket_key)
        days = pd.to_datetime(ev["ts"], utc=True).dt.tz_localize(None).to_numpy("datetime64[D]")
        rows_of, _ = baskets.basket_ids(ev["user_id"], ev.get(column), days)
        params = params.basket()
    m, topk = fit_similarities(rows_of, ev["sku"], ev["action"], params)
    rows = np.repeat(np.arange(topk.n_items), np.diff(topk.indptr))
    starts = np.repeat(topk.indptr[:-1], np.diff(topk.indptr))
    long = pd.DataFrame({
        "sku": m.skus[rows], "neighbor": m.skus[topk.neighbors],
        "rank": np.arange(len(rows)) - starts, "score": topk.scores, "users": topk.users,
    })  # fmt: skip
    return long, topk


def assert_same_pairs(got: pd.DataFrame, want: pd.DataFrame, tol: float = SCORE_TOL) -> None:
    """Same (sku, neighbor) pairs at the same ranks; scores and users within ``tol``."""
    merged = got.merge(want, on=["sku", "neighbor"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    assert (merged["rank_x"] == merged["rank_y"]).all()
    np.testing.assert_allclose(merged["score_x"], merged["score_y"], atol=tol, rtol=0)
    np.testing.assert_allclose(merged["users_x"], merged["users_y"], atol=tol, rtol=1e-12)


class EngineContract:
    """Base suite: every similarity engine passes each of these unchanged."""

    #: The manifest's ``engine`` for this implementation.
    engine: ClassVar[str]
    _runs: ClassVar[dict[str, dict[str, Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._runs = {}

    def compute(
        self, shop: ExportedShop, output_uri: str, overrides: dict[str, Any]
    ) -> dict[str, Any]:
        """Run the engine on ``shop``'s export into ``output_uri``; its manifest."""
        raise NotImplementedError

    def run(self, shop: ExportedShop, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
        """``compute``, once per class and output name."""
        key = f"{shop.root}:{name}"
        if key not in self._runs:
            out = shop.similarities_uri(f"{self.engine}-{type(self).__name__}-{name}")
            self._runs[key] = self.compute(shop, out, overrides)
        return self._runs[key]

    # --- output format -----------------------------------------------------------------
    def test_output_layout_schema_and_manifest(self, exported_shop):
        manifest = self.run(exported_shop, "exact", {"threshold": 0.0, "top_k": ALL})
        out = os.path.dirname(manifest["outputs"][layout.NEIGHBORS])
        uris = layout.similarity_outputs(out)
        tables = (layout.NEIGHBORS, layout.ITEMS, layout.BOUGHT_TOGETHER)
        assert manifest["outputs"] == {k: uris[k] for k in tables}
        assert sorted(os.listdir(out)) == sorted([layout.MANIFEST_NAME, *tables])
        assert similarities.read_manifest(out) == manifest
        assert manifest["stage"] == "similarities" and manifest["engine"] == self.engine
        assert manifest["run_id"] == exported_shop.params.run_id
        assert manifest["tenant"] == exported_shop.tenant
        assert manifest["export_manifest"] == exported_shop.manifest_uri
        assert manifest["params"]["seed"] == exported_shop.params.model.seed  # the export's
        assert set(manifest["counts"]) == COUNT_KEYS
        assert set(manifest["timings"]) == {"read_s", "similarity_s", "write_s", "total_s"}
        neighbors = similarities.read_neighbors(uris[layout.NEIGHBORS])
        items = similarities.read_items(uris[layout.ITEMS])
        # The written columns are the schema's: names and types, whatever the writer.
        assert neighbors.schema.names == similarities.NEIGHBORS_SCHEMA.names
        assert columns(neighbors.schema.field(layout.NEIGHBORS).type.value_type) == columns(
            similarities.NEIGHBOR_TYPE
        )
        assert columns(items.schema) == columns(similarities.ITEMS_SCHEMA)
        assert neighbors.num_rows == manifest["counts"]["neighbor_rows"]
        for name in tables:  # every part file has every column
            for part in (p for p in os.listdir(uris[name]) if p.endswith(".parquet")):
                schema = pq.read_schema(os.path.join(uris[name], part))
                want = similarities.ITEMS_SCHEMA if name == layout.ITEMS else (
                    similarities.NEIGHBORS_SCHEMA)  # fmt: skip
                assert schema.names == want.names

    def test_items_are_the_windows_popularity(self, exported_shop):
        manifest = self.run(exported_shop, "exact", {"threshold": 0.0, "top_k": ALL})
        events = exported_shop.events
        items = similarities.read_items(manifest["outputs"][layout.ITEMS]).to_pandas()
        w = events["action"].map(ActionWeights().as_dict())
        want = events.assign(w=w).groupby("sku").agg(users=("user_id", "nunique"),
                                                     weight=("w", "sum"))  # fmt: skip
        assert items["sku"].tolist() == want.index.tolist()
        assert items["users"].tolist() == want["users"].tolist()
        np.testing.assert_allclose(items["weight"], want["weight"], rtol=1e-12)

    def test_items_carry_the_trending_sums(self, exported_shop):
        """Per sku, its summed action weights on the recent days (``simrec.core.trending``:
        from ``split_day`` to the window's last day) and before, undecayed: the same with
        time decay on; split at the run's own ``trending_recent_days``."""
        events = exported_shop.events
        w = events["action"].map(ActionWeights().as_dict())
        days = pd.to_datetime(events["ts"], utc=True).dt.date
        for name, overrides in (("exact", {"threshold": 0.0, "top_k": ALL}),
                                ("decayed-top3", {"threshold": 0.0, "top_k": 3,
                                                  "half_life_days": 7.0}),
                                ("recent-3", {"threshold": 0.0, "top_k": 3,
                                              "trending_recent_days": 3})):  # fmt: skip
            recent_days = overrides.get("trending_recent_days", DEFAULTS.trending_recent_days)
            recent = days >= trending.split_day(exported_shop.params.end_date, recent_days)
            want = events.assign(r=w.where(recent, 0.0), p=w.where(~recent, 0.0))
            want = want.groupby("sku").agg(recent_weight=("r", "sum"), prior_weight=("p", "sum"))
            assert (want["recent_weight"] > 0).sum() > 10 and (want["prior_weight"] > 0).sum() > 10
            manifest = self.run(exported_shop, name, overrides)
            items = similarities.read_items(manifest["outputs"][layout.ITEMS]).to_pandas()
            assert items["sku"].tolist() == want.index.tolist(), name
            for column in ("recent_weight", "prior_weight"):
                np.testing.assert_allclose(items[column], want[column], rtol=1e-12, err_msg=name)

    # --- the numbers ---------------------------------------------------------------------
    def test_threshold_zero_is_exact_cosine(self, exported_shop):
        manifest = self.run(exported_shop, "exact", {"threshold": 0.0, "top_k": ALL})
        m, cos = scipy_cosine(exported_shop.events)
        pairs = pairs_of(manifest)
        idx = {s: i for i, s in enumerate(m.skus)}
        i, j = pairs["sku"].map(idx).to_numpy(), pairs["neighbor"].map(idx).to_numpy()
        got = np.zeros_like(cos)
        got[i, j] = pairs["score"].to_numpy()
        np.testing.assert_allclose(got, cos, atol=SCORE_TOL, rtol=0)  # every pair, both ways
        binary = (m.matrix > 0).astype(np.float64)
        np.testing.assert_array_equal(pairs["users"], (binary.T @ binary).toarray()[i, j])
        counts = manifest["counts"]
        assert {k: counts[k] for k in m.counts} == m.counts  # every event accounted for
        assert counts["events"] == len(exported_shop.events)
        assert counts["pairs"] == np.count_nonzero(np.triu(cos)) == len(pairs) // 2
        assert manifest["gamma"] is None

    def test_top_k_is_the_head_of_the_full_lists(self, exported_shop):
        full = pairs_of(self.run(exported_shop, "exact", {"threshold": 0.0, "top_k": ALL}))
        top = pairs_of(self.run(exported_shop, "top3", {"threshold": 0.0, "top_k": 3}))
        assert top.groupby("sku").size().max() == 3
        for sku, group in full.groupby("sku"):  # score desc, then neighbor sku asc
            order = group.sort_values(["score", "neighbor"], ascending=[False, True])
            assert group["neighbor"].tolist() == order["neighbor"].tolist(), sku
        head = full[full["rank"] < 3].reset_index(drop=True)
        assert_same_pairs(top, head)

    def test_cap_and_min_items_on_a_hand_made_shop(self, tmp_path_factory):
        model = PLAIN.replace(threshold=0.0, top_k=1, min_items_per_user=2, max_items_per_user=3)
        params = RunParams(tenant="hand", date=HAND_DAY, window_days=2, model=model)
        events = pd.DataFrame(HAND_MADE, columns=["user_id", "sku", "action"]).assign(
            ts=pd.Timestamp("2024-02-29T12:00:00Z")
        )
        shop = export_events(tmp_path_factory.mktemp("hand"), events, params)
        manifest = self.run(shop, "hand", {})
        assert manifest["counts"] == {
            "events": 16, "users": 5, "users_kept": 4, "capped_users": 2, "items": 5,
            "cells": 10, "emitted_pairs": 3 + 3 + 1 + 1, "pairs": 4, "neighbor_rows": 5,
        }  # fmt: skip
        # Columns A..E of the matrix the rule gives (U1 keeps A, B, C; U2 keeps A, B, C).
        a = np.array([[6, 2, 2, 0, 0], [0.5, 0.5, 0.5, 0, 0], [0, 0, 0, 1, 2],
                      [0.5, 6, 0, 0, 0]], float)  # fmt: skip
        unit = a / np.linalg.norm(a, axis=0)
        cos = unit.T @ unit
        np.fill_diagonal(cos, 0)
        best = pairs_of(manifest).set_index("sku")
        assert best.index.tolist() == list("ABCDE")  # top_k = 1: one neighbor each
        for i, sku in enumerate("ABCDE"):
            j = int(np.lexsort((np.arange(5), -cos[i]))[0])  # score desc, sku asc
            assert best.loc[sku, "neighbor"] == "ABCDE"[j]
            assert best.loc[sku, "score"] == pytest.approx(cos[i, j], abs=SCORE_TOL)
        assert best.loc["A", "neighbor"] == "C" and best.loc["A", "users"] == 2.0  # U1, U2
        assert best.loc["D", "neighbor"] == "E" and best.loc["D", "users"] == 1.0

    def test_threshold_samples_as_the_core_does(self, exported_dense_shop):
        shop = exported_dense_shop
        sampled = self.run(shop, "sampled", SAMPLED)
        exact = self.run(shop, "dense-exact", {"threshold": 0.0, "top_k": ALL})
        m, cos = scipy_cosine(shop.events, BINARY_WEIGHTS)
        counts = sampled["counts"]
        assert counts["emitted_pairs"] < 0.9 * exact["counts"]["emitted_pairs"]  # it samples
        assert sampled["gamma"] == pytest.approx(dimsum.gamma(0.2, counts["items"]))
        want, topk = core_pairs(shop, SAMPLED)
        assert_same_pairs(pairs_of(sampled), want)  # the core's sample, not just any
        assert (counts["emitted_pairs"], counts["pairs"]) == (topk.emitted_pairs, topk.pairs)
        # DIMSUM's guarantee: estimates of pairs above the threshold are close.
        pairs = pairs_of(sampled)
        idx = {s: i for i, s in enumerate(m.skus)}
        est = np.zeros_like(cos)
        est[pairs["sku"].map(idx), pairs["neighbor"].map(idx)] = pairs["score"]
        above = np.triu(cos >= 0.2)
        rel = np.abs(est[above] - cos[above]) / cos[above]
        assert above.sum() > 100 and (rel <= 0.2).mean() >= 0.8

    def test_a_seed_gives_one_output_bit_for_bit(self, exported_dense_shop):
        shop = exported_dense_shop
        first = self.run(shop, "sampled", SAMPLED)
        again = self.run(shop, "sampled-again", SAMPLED)
        other = self.run(shop, "sampled-seed-3", {**SAMPLED, "seed": 3})
        read = similarities.read_neighbors
        assert read(again["outputs"][layout.NEIGHBORS]).equals(
            read(first["outputs"][layout.NEIGHBORS])
        )
        assert again["counts"] == first["counts"]
        assert other["params"]["seed"] == 3
        assert not pairs_of(other)["score"].equals(pairs_of(first)["score"])

    # --- frequently bought together (simrec.core.baskets) --------------------------------
    def test_bought_together_is_the_cores_cosine_over_orders(self, exported_shop):
        overrides = {"threshold": 0.0, "top_k": ALL}
        manifest = self.run(exported_shop, "exact", overrides)
        got = pairs_of(manifest, layout.BOUGHT_TOGETHER)
        want, _ = core_pairs(exported_shop, overrides, bought_together=True)
        assert len(want) > 20
        assert_same_pairs(got, want)
        ev = exported_shop.events
        purchases = ev[ev["action"] == "purchase"]
        assert manifest["bought_together"] == {
            "basket_key": "order", "basket_actions": "strict", "grouped_by": "order",
            "events": len(purchases), "events_without_key": 0,
            "baskets": int((purchases.groupby("order_id")["sku"].nunique() >= 2).sum()),
            "neighbor_rows": got["sku"].nunique(),
        }  # fmt: skip

    def test_bought_together_without_the_key_falls_back_to_days(self, exported_shop):
        """The shop has no session ids: relaxed co-baskets by user and day."""
        overrides = {"threshold": 0.0, "top_k": 5, "basket_key": "session",
                     "basket_actions": "relaxed"}  # fmt: skip
        manifest = self.run(exported_shop, "relaxed-session", overrides)
        want, _ = core_pairs(exported_shop, overrides, bought_together=True)
        assert_same_pairs(pairs_of(manifest, layout.BOUGHT_TOGETHER), want)
        entry = manifest["bought_together"]
        ev = exported_shop.events
        used = ev["action"].isin(["basket", "purchase"]).sum()
        assert (entry["grouped_by"], entry["events"], entry["events_without_key"]) == (
            "day", used, used)  # fmt: skip
        assert "fell back to day" in baskets.describe(entry)

    def test_bought_together_hand_made_against_scipy(self, tmp_path_factory):
        model = PLAIN.replace(threshold=0.0, top_k=ALL)
        params = RunParams(tenant="orders", date=HAND_DAY, window_days=2, model=model)
        rows = [  # (user, sku, action, order): baskets o1 {A, B}, o2 {A, C}, o3 {A, B, C},
            ("U1", "A", "purchase", "o1"), ("U1", "B", "purchase", "o1"),  # U2's day {C, D}
            ("U1", "A", "purchase", "o2"), ("U1", "C", "purchase", "o2"),
            ("U2", "A", "purchase", "o3"), ("U2", "B", "purchase", "o3"),
            ("U2", "C", "purchase", "o3"), ("U2", "B", "purchase", "o3"),
            ("U2", "C", "purchase", None), ("U2", "D", "purchase", None),
            ("U3", "A", "browsed", "o4"), ("U3", "D", "basket", "o4"),  # strict: no cells
        ]  # fmt: skip
        events = pd.DataFrame(rows, columns=["user_id", "sku", "action", "order_id"]).assign(
            ts=pd.Timestamp("2024-02-29T12:00:00Z")
        )
        manifest = self.run(export_events(tmp_path_factory.mktemp("orders"), events, params),
                            "orders", {})  # fmt: skip
        # Basket x item matrix (A, B, C, D): summed purchase weights (6 each).
        a = 6.0 * sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 2, 1, 0],
                                          [0, 0, 1, 1]], float))  # fmt: skip
        unit = a @ sp.diags(1.0 / column_norms(a))
        cos = (unit.T @ unit).toarray()
        np.fill_diagonal(cos, 0.0)
        got = pairs_of(manifest, layout.BOUGHT_TOGETHER)
        skus = "ABCD"
        want = {(skus[i], skus[j]): cos[i, j] for i in range(4) for j in range(4) if cos[i, j]}
        assert {(r.sku, r.neighbor): pytest.approx(r.score, abs=SCORE_TOL)
                for r in got.itertuples()} == want  # fmt: skip
        assert got.set_index(["sku", "neighbor"]).loc[("A", "B"), "users"] == 2.0  # o1, o3
        entry = manifest["bought_together"]
        assert (entry["baskets"], entry["events"], entry["events_without_key"]) == (4, 10, 2)
        assert entry["grouped_by"] == "order"

    # --- edges ---------------------------------------------------------------------------
    def test_empty_export_writes_empty_tables(self, tmp_path_factory, exported_shop):
        empty = pd.DataFrame({"user_id": [], "sku": [], "action": [], "ts": []}).astype(
            {"user_id": str, "sku": str, "action": str, "ts": "datetime64[us, UTC]"}
        )
        shop = export_events(tmp_path_factory.mktemp("empty"), empty, exported_shop.params)
        assert shop.manifest["days"] == []
        manifest = self.run(shop, "empty", {})
        assert manifest["counts"] == dict.fromkeys(COUNT_KEYS, 0)
        neighbors = similarities.read_neighbors(manifest["outputs"][layout.NEIGHBORS])
        assert neighbors.num_rows == 0
        assert similarities.read_items(manifest["outputs"][layout.ITEMS]).num_rows == 0
        assert pairs_of(manifest, layout.BOUGHT_TOGETHER).empty
        assert manifest["bought_together"]["baskets"] == 0

    def test_bad_rows_fail_clearly_and_write_no_manifest(self, tmp_path_factory):
        params = RunParams(tenant="bad", date=HAND_DAY, window_days=2, model=PLAIN)
        events = pd.DataFrame(
            [("U1", "A", "browsed"), ("U1", "B", "bought")], columns=["user_id", "sku", "action"]
        ).assign(ts=pd.Timestamp("2024-02-29T12:00:00Z"))
        shop = export_events(tmp_path_factory.mktemp("bad"), events, params)
        out = shop.similarities_uri(f"{self.engine}-bad")
        with pytest.raises(ValueError, match=", ".join(ACTIONS)):  # names what is allowed
            self.compute(shop, out, {})
        assert not os.path.exists(layout.similarity_outputs(out)["manifest"])
