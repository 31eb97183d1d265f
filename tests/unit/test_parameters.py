"""Query parameter parsing: the fast paths give what the plain rules give."""

from __future__ import annotations

import pytest

from simrec.serving.parameters import MAX_SKU_LENGTH, BadRequest, split_skus

TRICKY = [
    "a,b,c", "a, b", " a,b ", "a,,b", ",", "", "a\tb,c", "a\x1c,b", "a\u00a0,b", "\u3000x",
    "ü,日本", "a b,c", "x" * MAX_SKU_LENGTH + ",y",
]  # fmt: skip


@pytest.mark.parametrize("value", TRICKY)
def test_split_skus_strips_drops_empty_and_keeps_order(value: str) -> None:
    want = [s.strip() for s in value.split(",") if s.strip()]
    assert split_skus([value, "z"], "browsed") == [*want, "z"]


@pytest.mark.parametrize("value", ["x" * (MAX_SKU_LENGTH + 1), "a," + "x" * (MAX_SKU_LENGTH + 1)])
def test_split_skus_rejects_a_long_sku_naming_the_field(value: str) -> None:
    with pytest.raises(BadRequest) as info:
        split_skus([value], "basket")
    assert info.value.field == "basket"
