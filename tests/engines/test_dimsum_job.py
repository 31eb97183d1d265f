"""What is the Spark job's own, on local Spark: its command line (a rerun through it is
bit-identical and overwrites), the plan choice, the broadcast plan's item ranges and a
failed write's one-line error. Its output is held to the engine contract with every other
engine: tests/engines/test_engine_spark.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from simrec.core import dimsum, params
from simrec.core.matrix import build_matrix
from simrec.core.similarity import kernel_operands
from simrec.jobs import spark_similarity
from simrec.storage.similarities import (
    read_manifest,
    read_neighbors,
)
from tests.builders import PLAIN

pytestmark = pytest.mark.spark

ALL = 1000  # >= number of items: every pair is listed
PLANS = [p for p in spark_similarity.PLANS if p != "auto"]


@pytest.fixture(scope="module", params=PLANS)
def sampled_run(spark, exported_dense_shop, request):
    """Sampled at threshold 0.2 on the shop where sampling happens at test size."""
    shop = exported_dense_shop
    out = shop.similarities_uri(f"spark-sampled-{request.param}")
    overrides = {"threshold": 0.2, "top_k": ALL}
    return spark_similarity.run(spark, shop.manifest_uri, out, overrides, plan=request.param)


def test_cli_rerun_is_identical_and_overwrites(sampled_run, exported_dense_shop):
    exported_shop = exported_dense_shop
    out = exported_shop.similarities_uri(f"spark-sampled-{sampled_run['plan']}")
    before = read_neighbors(sampled_run["outputs"]["neighbors"])
    stale = os.path.join(sampled_run["outputs"]["neighbors"], "part-99999-stale.parquet")
    with open(stale, "wb") as f:
        f.write(b"left over from an older run")
    code = spark_similarity.main(
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


def test_parse_args_precedence():
    args = spark_similarity.parse_args(
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
    assert spark_similarity.choose_plan("auto", 10, 10) == "broadcast"
    assert spark_similarity.choose_plan("auto", 11, 10) == "shuffle"
    assert spark_similarity.choose_plan("shuffle", 1, 10) == "shuffle"
    assert spark_similarity.choose_plan("broadcast", 11, 10) == "broadcast"
    with pytest.raises(ValueError, match="plan"):
        spark_similarity.choose_plan("gpu", 1, 10)


def test_item_ranges_cover_every_item_once_with_balanced_work(shop_events):
    m = build_matrix(shop_events["user_id"], shop_events["sku"], shop_events["action"], PLAIN)
    operands, _, _ = kernel_operands(
        m.matrix, 0.0, 1, dimsum.string_keys(m.user_ids), dimsum.string_keys(m.skus)
    )
    ranges = spark_similarity.item_ranges(operands, 8)
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
    code = spark_similarity.main(
        ["--export-manifest", exported_shop.manifest_uri, "--output", str(blocker / "sims"),
         "--threshold", "0"]
    )
    assert code == 1
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: the similarity job failed: ")
    assert "\tat " not in line and ("not-a-folder" in line or "ot a directory" in line), line
