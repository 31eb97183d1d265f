"""The Spark DIMSUM job on local Spark, against scipy and the single-machine engine.

Six job runs in all (each a few seconds on 2 cores): exact, sampled, a CLI rerun of the
sampled one, sampled with unit weights (accuracy), a hand-made shop (filters), and an
export with a bad row.
"""

from __future__ import annotations

import os

import dimsum_job
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from simrec.core import dimsum, params
from simrec.core.actions import ActionWeights
from simrec.core.matrix import build_matrix
from simrec.core.runs import RunParams
from simrec.core.similarity import column_norms, kernel_operands, resolve_params
from simrec.similarity_output import (
    neighbor_pairs,
    read_items,
    read_manifest,
    read_neighbors,
    run_local_similarity,
)
from tests.builders import BINARY_WEIGHTS, PLAIN, export_events

pytestmark = pytest.mark.spark

ALL = 1000  # >= number of items: every pair is listed


def exact_cosine(events: pd.DataFrame, weights: ActionWeights | None = None):
    """The oracle: matrix rule, then scipy (normalised columns, A^T A)."""
    model = PLAIN.replace(weights=weights or ActionWeights())
    m = build_matrix(events["user_id"], events["sku"], events["action"], model)
    unit = m.matrix @ sp.diags(1.0 / column_norms(m.matrix))
    cos = (unit.T @ unit).toarray()
    np.fill_diagonal(cos, 0.0)
    return m, cos


def pairs_of(manifest: dict) -> pd.DataFrame:
    return neighbor_pairs(read_neighbors(manifest["outputs"]["neighbors"]))


def assert_same_output(a: dict, b: dict, tol: float = 1e-9) -> None:
    """Same pairs, same ranks, scores and users within ``tol``, same counts."""
    pa_, pb = pairs_of(a), pairs_of(b)
    assert len(pa_) == len(pb)
    merged = pa_.merge(pb, on=["sku", "neighbor"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["rank_x"] == merged["rank_y"]).all()
    np.testing.assert_allclose(merged["score_x"], merged["score_y"], atol=tol, rtol=0)
    np.testing.assert_allclose(merged["users_x"], merged["users_y"], atol=tol, rtol=1e-12)
    assert a["counts"] == b["counts"]
    if {a["plan"], b["plan"]} <= {"broadcast", None}:
        # The broadcast plan runs the single-machine kernel on the same sample: bit for bit.
        np.testing.assert_array_equal(merged["score_x"], merged["score_y"])
        np.testing.assert_array_equal(merged["users_x"], merged["users_y"])


#: Every test of a run's output runs once per plan: both must give the same output.
PLANS = [p for p in dimsum_job.PLANS if p != "auto"]


@pytest.fixture(scope="module", params=PLANS)
def exact_run(spark, exported_shop, request):
    out = exported_shop.similarities_uri(f"spark-exact-{request.param}")
    overrides = {"threshold": 0.0, "top_k": ALL}
    return dimsum_job.run(spark, exported_shop.manifest_uri, out, overrides, plan=request.param)


@pytest.fixture(scope="module", params=PLANS)
def sampled_run(spark, exported_dense_shop, request):
    """Sampled at threshold 0.2 on the shop where sampling happens at test size."""
    shop = exported_dense_shop
    out = shop.similarities_uri(f"spark-sampled-{request.param}")
    overrides = {"threshold": 0.2, "top_k": ALL}
    return dimsum_job.run(spark, shop.manifest_uri, out, overrides, plan=request.param)


@pytest.fixture(scope="module")
def dense_exact_run(spark, exported_dense_shop):
    shop = exported_dense_shop
    out = shop.similarities_uri("spark-exact")
    return dimsum_job.run(spark, shop.manifest_uri, out, {"threshold": 0.0, "top_k": ALL})


def test_threshold_zero_equals_scipy_cosine(exact_run, exported_shop):
    m, cos = exact_cosine(exported_shop.events)
    pairs = pairs_of(exact_run)
    idx = {s: i for i, s in enumerate(m.skus)}
    i, j = pairs["sku"].map(idx).to_numpy(), pairs["neighbor"].map(idx).to_numpy()
    got = np.zeros_like(cos)
    got[i, j] = pairs["score"].to_numpy()
    np.testing.assert_allclose(got, cos, atol=1e-9, rtol=0)  # every pair, both directions
    binary = (m.matrix > 0).astype(np.float64)
    np.testing.assert_array_equal(pairs["users"], (binary.T @ binary).toarray()[i, j])
    counts = exact_run["counts"]
    assert {k: counts[k] for k in m.counts} == m.counts
    assert counts["pairs"] == np.count_nonzero(np.triu(cos)) == len(pairs) // 2
    assert exact_run["gamma"] is None and exact_run["engine"] == "spark"


def test_manifest_and_layout(exact_run, exported_shop):
    out = exported_shop.similarities_uri(f"spark-exact-{exact_run['plan']}")
    assert exact_run["plan"] in PLANS
    assert read_manifest(out) == exact_run
    assert exact_run["stage"] == "similarities"
    assert exact_run["run_id"] == exported_shop.params.run_id
    assert exact_run["tenant"] == exported_shop.tenant
    assert exact_run["export_manifest"] == exported_shop.manifest_uri
    assert exact_run["params"]["threshold"] == 0.0 and exact_run["params"]["top_k"] == ALL
    assert exact_run["params"]["seed"] == exported_shop.params.model.seed  # from the manifest
    assert set(exact_run["timings"]) == {"read_s", "similarity_s", "write_s", "total_s"}
    assert sorted(os.listdir(out)) == ["_MANIFEST.json", "items", "neighbors"]
    neighbors = read_neighbors(exact_run["outputs"]["neighbors"])
    assert neighbors.num_rows == exact_run["counts"]["neighbor_rows"]
    assert neighbors.schema.field("neighbors").type.value_type.names == ["sku", "score", "users"]


def test_items_are_the_windows_popularity(exact_run, exported_shop):
    events = exported_shop.events
    items = read_items(exact_run["outputs"]["items"]).to_pandas()
    w = events["action"].map(ActionWeights().as_dict())
    expected = (
        events.assign(w=w).groupby("sku").agg(users=("user_id", "nunique"), weight=("w", "sum"))
    )
    assert items["sku"].tolist() == expected.index.tolist()
    assert items["users"].tolist() == expected["users"].tolist()
    np.testing.assert_allclose(items["weight"], expected["weight"], rtol=1e-12)


def test_exact_equals_local_engine(exact_run, exported_shop):
    params = resolve_params(exported_shop.manifest["params"], {"threshold": 0.0, "top_k": ALL})
    local = run_local_similarity(
        exported_shop.manifest_uri, exported_shop.similarities_uri("local-exact-all"), params
    )
    assert_same_output(exact_run, local)


def test_sampled_equals_local_engine_same_sample(
    sampled_run, dense_exact_run, exported_dense_shop
):
    exported_shop = exported_dense_shop
    m, _ = exact_cosine(exported_shop.events, BINARY_WEIGHTS)
    p, _ = dimsum.probabilities_and_scales(column_norms(m.matrix), 0.2, None, m.matrix.data.max())
    assert (p < 1).sum() > 10  # sampling really happens
    counts = sampled_run["counts"]
    assert counts["emitted_pairs"] < dense_exact_run["counts"]["emitted_pairs"]
    assert sampled_run["gamma"] == pytest.approx(dimsum.gamma(0.2, counts["items"]))
    params = resolve_params(exported_shop.manifest["params"], {"threshold": 0.2, "top_k": ALL})
    local = run_local_similarity(
        exported_shop.manifest_uri, exported_shop.similarities_uri("local-sampled"), params
    )
    assert_same_output(sampled_run, local)


def test_cli_rerun_is_identical_and_overwrites(sampled_run, exported_dense_shop):
    exported_shop = exported_dense_shop
    out = exported_shop.similarities_uri(f"spark-sampled-{sampled_run['plan']}")
    before = read_neighbors(sampled_run["outputs"]["neighbors"])
    stale = os.path.join(sampled_run["outputs"]["neighbors"], "part-99999-stale.parquet")
    with open(stale, "wb") as f:
        f.write(b"left over from an older run")
    code = dimsum_job.main(
        [
            "--export-manifest",
            exported_shop.manifest_uri,
            "--output",
            out,
            "--threshold",
            "0.2",
            "--top-k",
            str(ALL),
            "--plan",
            sampled_run["plan"],
        ]
    )
    assert code == 0
    assert not os.path.exists(stale)
    rerun = read_manifest(out)
    assert rerun["counts"] == sampled_run["counts"]
    assert rerun["params"] == sampled_run["params"]
    assert read_neighbors(rerun["outputs"]["neighbors"]).equals(before)  # bit for bit


def test_sampled_estimates_above_threshold_are_accurate(spark, exported_dense_shop):
    """>= 80% of estimates for pairs with exact cosine >= threshold are within 20%."""
    exported_shop = exported_dense_shop
    out = exported_shop.similarities_uri("spark-seed-3")
    run = dimsum_job.run(
        spark, exported_shop.manifest_uri, out, {"threshold": 0.2, "top_k": ALL, "seed": 3}
    )
    assert run["params"]["seed"] == 3
    m, cos = exact_cosine(exported_shop.events, BINARY_WEIGHTS)
    p, _ = dimsum.probabilities_and_scales(column_norms(m.matrix), 0.2, None, m.matrix.data.max())
    per_user = np.diff(m.matrix.indptr)
    assert (p < 1).sum() >= 10
    assert run["counts"]["emitted_pairs"] < (per_user * (per_user - 1) // 2).sum()
    pairs = pairs_of(run)
    idx = {s: i for i, s in enumerate(m.skus)}
    est = np.zeros_like(cos)
    est[pairs["sku"].map(idx), pairs["neighbor"].map(idx)] = pairs["score"]
    above = np.triu(cos >= 0.2)
    rel = np.abs(est[above] - cos[above]) / cos[above]
    assert above.sum() > 100
    assert (rel <= 0.2).mean() >= 0.8


HAND_MADE = [
    # U1: 5 items, capped to its top 3 (A=6, then B and C tied at 2: sku order)
    ("U1", "A", "purchase"),
    ("U1", "B", "basket"),
    ("U1", "C", "basket"),
    ("U1", "D", "browsed"),
    ("U1", "E", "browsed"),
    # U2: 4 items all 0.5: keeps A, B, C
    ("U2", "D", "browsed"),
    ("U2", "C", "browsed"),
    ("U2", "B", "browsed"),
    ("U2", "A", "browsed"),
    # U3: a single item: dropped
    ("U3", "A", "purchase"),
    ("U3", "A", "browsed"),
    # U4, U5: two items each
    ("U4", "D", "browsed"),
    ("U4", "D", "browsed"),
    ("U4", "E", "basket"),
    ("U5", "B", "purchase"),
    ("U5", "A", "browsed"),
]


def test_cap_and_min_items_on_a_hand_made_shop(spark, tmp_path):
    params = RunParams(
        tenant="hand",
        date=pd.Timestamp("2024-03-01").date(),
        window_days=2,
        model=PLAIN.replace(threshold=0.0, top_k=1, min_items_per_user=2, max_items_per_user=3),
    )
    events = pd.DataFrame(HAND_MADE, columns=["user_id", "sku", "action"]).assign(
        ts=pd.Timestamp("2024-02-29T12:00:00Z")
    )
    shop = export_events(tmp_path, events, params)
    run = dimsum_job.run(spark, shop.manifest_uri, shop.similarities_uri("hand"), {})
    assert run["counts"] == {
        "events": 16,
        "users": 5,
        "users_kept": 4,
        "capped_users": 2,
        "items": 5,
        "cells": 10,
        "emitted_pairs": 3 + 3 + 1 + 1,
        "pairs": 4,
        "neighbor_rows": 5,
    }
    # Columns A..E of the matrix the rule must give (U1 keeps A, B, C; U2 keeps A, B, C).
    a = np.array(
        [[6, 2, 2, 0, 0], [0.5, 0.5, 0.5, 0, 0], [0, 0, 0, 1, 2], [0.5, 6, 0, 0, 0]], float
    )
    unit = a / np.linalg.norm(a, axis=0)
    cos = unit.T @ unit
    np.fill_diagonal(cos, 0)
    skus = list("ABCDE")
    table = read_neighbors(run["outputs"]["neighbors"])
    lists = dict(
        zip(table.column("sku").to_pylist(), table.column("neighbors").to_pylist(), strict=True)
    )
    assert sorted(lists) == skus and all(len(v) == 1 for v in lists.values())  # top_k = 1
    best = {s: v[0] for s, v in lists.items()}
    for i, s in enumerate(skus):
        j = int(np.lexsort((np.arange(5), -cos[i]))[0])  # top-1: score desc, sku asc
        assert best[s]["sku"] == skus[j]
        assert best[s]["score"] == pytest.approx(cos[i, j], abs=1e-9)
    assert best["A"]["sku"] == "C" and best["A"]["users"] == 2.0  # U1 and U2
    assert best["D"]["sku"] == "E" and best["D"]["users"] == 1.0  # U1's, U2's D were cut


def test_bad_rows_are_a_clear_error(spark, tmp_path):
    params = RunParams(
        tenant="bad", date=pd.Timestamp("2024-03-01").date(), window_days=2, model=PLAIN
    )
    events = pd.DataFrame(
        [("U1", "A", "browsed"), ("U1", "B", "bought")], columns=["user_id", "sku", "action"]
    ).assign(ts=pd.Timestamp("2024-02-29T12:00:00Z"))
    shop = export_events(tmp_path, events, params)
    with pytest.raises(ValueError, match="1 exported events"):
        dimsum_job.run(spark, shop.manifest_uri, shop.similarities_uri("bad"), {})
    assert not os.path.exists(os.path.join(shop.similarities_uri("bad"), "_MANIFEST.json"))


def test_parse_args_precedence():
    args = dimsum_job.parse_args(
        [
            "--export-manifest",
            "m",
            "--output",
            "o",
            "--top-k",
            "5",
            "--weights",
            '{"purchase": 4}',
            "--master",
            "local[2]",
        ]
    )
    assert params.overrides_from_args(args) == {"top_k": 5, "weights": {"purchase": 4}}
    assert args.master == "local[2]"


def test_auto_plan_broadcasts_what_fits():
    assert dimsum_job.choose_plan("auto", 10, 10) == "broadcast"
    assert dimsum_job.choose_plan("auto", 11, 10) == "shuffle"
    assert dimsum_job.choose_plan("shuffle", 1, 10) == "shuffle"
    assert dimsum_job.choose_plan("broadcast", 11, 10) == "broadcast"
    with pytest.raises(ValueError, match="plan"):
        dimsum_job.choose_plan("gpu", 1, 10)


def test_item_ranges_cover_every_item_once_with_balanced_work(shop_events):
    m = build_matrix(shop_events["user_id"], shop_events["sku"], shop_events["action"], PLAIN)
    operands, _, _ = kernel_operands(
        m.matrix, 0.0, 1, dimsum.string_keys(m.user_ids), dimsum.string_keys(m.skus)
    )
    ranges = dimsum_job.item_ranges(operands, 8)
    assert ranges[0][0] == 0 and ranges[-1][1] == operands.n_items
    assert all(a < b for a, b in ranges)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(ranges, ranges[1:], strict=False))
    assert len(ranges) >= 6
    # The work (products accumulated) of each range is within 2x of the mean.
    row_len = np.diff(operands.indptr)
    cost = [
        int(row_len[operands.t_indices[operands.t_indptr[a] : operands.t_indptr[b]]].sum())
        for a, b in ranges
    ]
    assert max(cost) <= 2 * np.mean(cost)
    # A range's top-K is the matching slice of the whole.
    whole = operands.topk(0, operands.n_items, 5, 0.0)
    a, b = ranges[2]
    part = operands.topk(a, b, 5, 0.0)
    np.testing.assert_array_equal(part[0], whole[0][a:b])
    first = int(whole[0][:a].sum())
    np.testing.assert_array_equal(part[1], whole[1][first : first + int(part[0].sum())])
    np.testing.assert_array_equal(part[4], whole[4][a:b])


def test_an_unwritable_output_is_one_line_naming_the_cause(spark, exported_shop, tmp_path,
                                                            capsys):
    """A write the storage refuses ends in one `error:` line with the JVM's root cause, not
    Java stack frames (here: the output's parent is a file, so Hadoop cannot create it;
    a read-only bucket fails the same way, but root may write to any local folder)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    code = dimsum_job.main(
        ["--export-manifest", exported_shop.manifest_uri, "--output", str(blocker / "sims"),
         "--threshold", "0"]
    )
    assert code == 1
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: the similarity job failed: ")
    assert "\tat " not in line and ("not-a-folder" in line or "ot a directory" in line), line
