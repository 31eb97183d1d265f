"""The basket rule (``simrec.core.baskets``) and its parameters (``ModelParams``)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from simrec.core import baskets
from simrec.core.actions import ActionWeights
from simrec.core.params import ModelParams
from simrec.core.runs import RunParams

DAYS = np.array(["2024-03-01", "2024-03-01", "2024-03-02"], dtype="datetime64[D]")


def test_basket_ids_by_key_with_the_day_as_fallback() -> None:
    ids, fell_back = baskets.basket_ids(["u1", "u1", "u2"], ["o1", None, "o1"], DAYS)
    sep = baskets.SEPARATOR
    assert ids.tolist() == [f"u1{sep}k:o1", f"u1{sep}d:2024-03-01", f"u2{sep}k:o1"]
    assert fell_back.tolist() == [False, True, False]  # u2's o1 is another basket
    ids, fell_back = baskets.basket_ids(["u1", "u1", "u2"], None, DAYS)
    assert ids.tolist() == [f"u1{sep}d:2024-03-01"] * 2 + [f"u2{sep}d:2024-03-02"]
    assert fell_back.all()


def test_basket_params_zero_the_actions_left_out() -> None:
    params = ModelParams(weights=ActionWeights(browsed=1.0, basket=3.0, purchase=5.0))
    assert params.basket().weights == ActionWeights(browsed=0.0, basket=0.0, purchase=5.0)
    relaxed = params.replace(basket_actions="relaxed").basket()
    assert relaxed.weights == ActionWeights(browsed=0.0, basket=3.0, purchase=5.0)
    assert dataclasses.replace(params.basket(), weights=params.weights) == params  # only those


@pytest.mark.parametrize(("name", "value"), [("basket_key", "invoice"),
                                             ("basket_actions", "loose")])  # fmt: skip
def test_bad_basket_parameters_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be one of"):
        ModelParams(**{name: value})


def test_run_ids_keep_their_hash_at_the_basket_defaults() -> None:
    base = RunParams("shop", dt.date(2024, 4, 1))
    data = base.to_json()
    old = RunParams.from_json({k: v for k, v in data.items()
                               if k not in ("basket_key", "basket_actions")})  # fmt: skip
    assert old.run_id == base.run_id
    other = RunParams("shop", dt.date(2024, 4, 1), model=base.model.replace(basket_key="day"))
    assert other.run_id != base.run_id


def test_summary_says_when_it_fell_back_to_days() -> None:
    entry = baskets.summary("order", "strict", events=10, fell_back=10, baskets=3,
                            neighbor_rows=4)  # fmt: skip
    assert entry["grouped_by"] == "day"
    assert "no order id on any event: fell back to day" in baskets.describe(entry)
    partial = baskets.summary("order", "strict", 10, 2, 3, 4)
    assert partial["grouped_by"] == "order" and "2 events without" in baskets.describe(partial)
    none = baskets.summary("order", "strict", 0, 0, 0, 0)
    assert none["grouped_by"] == "order" and "no events" in baskets.describe(none)
